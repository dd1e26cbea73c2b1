"""Plan (suite × variants − stored units) and execute units, writing each one as it finishes.

A *store unit* is one (variant, task): its rows go into one atomic Parquet file. An
*execution unit* is one (weight variant, task): the model is loaded once per weight
variant, every text is encoded once, and all dims / embedding dtypes of that weight
variant are derived from the same vectors. A crash loses at most the unit in progress;
a rerun skips every stored unit and exits 0.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalgemma.errors import ConfigError, IncompleteRun
from evalgemma.encode.models import ResolvedModel, resolve_model
from evalgemma.variants.spec import VariantSpec, WeightSpec

log = logging.getLogger(__name__)

DEFAULT_MODEL = "google/embeddinggemma-300m"


@dataclass(frozen=True)
class RunConfig:
    """Everything ``evalgemma run`` accepts (library form)."""

    model: str = DEFAULT_MODEL
    revision: str | None = None
    suite: str | None = None
    tasks: tuple[str, ...] = ()
    langs: tuple[str, ...] = ()
    dims: tuple[int, ...] = ()
    dtype: str = "float32"
    max_seq_length: int | None = None
    batch_size: int | None = None  # None: 128 on CUDA, 32 elsewhere (runtime, not identity)
    device: str = "auto"
    prompts: bool = True
    store: Path = Path("results/store")
    data_dir: Path | None = None
    offline: bool = False
    run_name: str = ""
    force: bool = False
    quants: tuple[str, ...] = ("none",)
    quant_source: str | None = None
    embed_dtypes: tuple[str, ...] = ("float32",)
    split: str = "test"
    search_chunk: int = 8192
    cache_dir: Path | None = None
    trust_remote_code: bool = False
    allow_pickle_weights: bool = False
    show_progress: bool = True
    executor: str = "local"  # "local" | "ray" (see distributed.py)
    shard: tuple[int, int] | None = None  # (i, N), 0-based: run only shard i of N of the full plan
    ray_address: str | None = None
    gpus_per_unit: float | None = None  # Ray: GPUs per unit; None = 1 if the cluster has GPUs, else 0
    max_retries: int = 2  # Ray: resubmissions of a unit whose worker died or raised unexpectedly


@dataclass
class PlannedTask:
    """A task of the plan: an mteb task object, or an XTREME-UP language set."""

    name: str
    task_type: str
    kind: str  # "mteb" | "xtreme-up"
    obj: Any = None
    languages: tuple[str, ...] = ()
    xtreme_task: str = ""
    data_source: str = ""
    mirror: Path | None = None  # local dataset snapshot the mteb task is pointed at


@dataclass
class ExecUnit:
    """One (weight variant, task) with the derived variants still missing from the store."""

    weight: WeightSpec
    task: PlannedTask
    variants: list[VariantSpec]
    stored: list[VariantSpec]


@dataclass
class Plan:
    """What a run will do."""

    config: RunConfig
    model: ResolvedModel
    suite_name: str
    tasks: list[PlannedTask]
    variants: list[VariantSpec]
    units: list[ExecUnit]
    warnings: list[str] = field(default_factory=list)

    @property
    def n_missing(self) -> int:
        return sum(len(u.variants) for u in self.units)

    @property
    def n_total(self) -> int:
        return sum(len(u.variants) + len(u.stored) for u in self.units)


@dataclass
class RunSummary:
    """The outcome of ``execute``."""

    run_id: str
    written: list[Path]
    failures: list[tuple[str, str, str]]  # (variant label, task, error)
    skipped: int
    wall_s: float
    encode_stats: dict[str, int | float] = field(default_factory=dict)


# ---------------------------------------------------------------- planning


def _suite_tasks(config: RunConfig) -> tuple[str, list[PlannedTask]]:
    from evalgemma.catalog.suites import resolve_suite

    if config.suite is None and not config.tasks:
        raise ConfigError("give --suite NAME (see `evalgemma list suites`) or --tasks NAME[,NAME]")
    if config.suite is None:
        from evalgemma.benchmarks.mteb.adapter import named_tasks

        objs = named_tasks(config.tasks)
        return "tasks", [_mteb_planned(t) for t in objs]
    suite = resolve_suite(config.suite)
    if suite.kind == "xtreme-up":
        langs = tuple(config.langs) if config.langs else suite.languages
        unknown = set(langs) - set(suite.languages) if config.langs else set()
        if unknown:
            warnings.warn(f"--langs {','.join(sorted(unknown))}: not in suite {suite.name}'s language set; evaluated anyway", stacklevel=2)
        task_name = "xtreme-up-cross-lang" if suite.xtreme_task == "retrieval_cross_lang" else "xtreme-up-in-lang"
        return suite.name, [PlannedTask(task_name, "Retrieval", "xtreme-up", languages=langs, xtreme_task=str(suite.xtreme_task))]
    if suite.kind == "smoke":
        from evalgemma.benchmarks.smoke.tasks import smoke_tasks

        objs = smoke_tasks()
        for obj in objs:
            setattr(obj, "_evalgemma_local", True)  # built-in data: nothing to fetch, fine offline
    elif suite.kind == "mteb":
        from evalgemma.benchmarks.mteb.adapter import benchmark_tasks

        objs = benchmark_tasks(str(suite.benchmark))
    else:
        from evalgemma.benchmarks.mteb.adapter import named_tasks

        objs = named_tasks(suite.tasks)
    if config.tasks:
        by_name = {t.metadata.name: t for t in objs}
        missing = [n for n in config.tasks if n not in by_name]
        if missing:
            from evalgemma.errors import unknown_name

            raise unknown_name(f"task of suite {suite.name}", missing[0], by_name, where="--tasks")
        objs = [by_name[n] for n in config.tasks]
    return suite.name, [_mteb_planned(t) for t in objs]


def _mteb_planned(task: Any) -> PlannedTask:
    from evalgemma.benchmarks.mteb.adapter import check_text_task

    check_text_task(task)
    return PlannedTask(task.metadata.name, str(task.metadata.type), "mteb", obj=task)


def _weight_specs(config: RunConfig, model: ResolvedModel, max_len: int) -> list[WeightSpec]:
    specs = []
    for quant in config.quants:
        if quant not in ("none", "q8_0", "q4_0", "mixed"):
            from evalgemma.errors import unknown_name

            raise unknown_name("weight quantization format", quant, ["none", "q8_0", "q4_0", "mixed"], where="--quant")
        if quant == "none":
            specs.append(WeightSpec(model.model_id, model.revision, config.dtype, max_len))  # type: ignore[arg-type]
            continue
        from evalgemma.variants.weight_quant import default_quant_source, resolve_qat_checkpoint

        source = config.quant_source or default_quant_source(model.model_id)
        checkpoint = resolve_qat_checkpoint(model.model_id, quant) if source == "qat" else ""
        specs.append(WeightSpec(model.model_id, model.revision, config.dtype, max_len, quant, source, checkpoint))  # type: ignore[arg-type]
    return specs


def plan_run(config: RunConfig) -> Plan:
    """Resolve model, suite, tasks and variants; subtract what the store already holds.

    Raises:
        ConfigError: unknown names, dims out of range, float16 on Gemma 3, bad combinations.
        DataError: an offline model or dataset that is not available locally.
    """
    from evalgemma.encode.encoder import FP16_REFUSAL
    from evalgemma.store.parquet import scan_store

    if config.dtype not in ("float32", "bfloat16", "float16"):
        raise ConfigError(f"--dtype {config.dtype}: expected float32 or bfloat16")
    if config.offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["HF_DATASETS_OFFLINE"] = "1"
    model = resolve_model(config.model, config.revision)
    if config.dtype == "float16" and model.is_gemma3:
        raise ConfigError(FP16_REFUSAL)
    notes: list[str] = []
    full = model.output_dim
    dims = tuple(config.dims) or ((full,) if full else ())
    if not dims:
        raise ConfigError(f"--model {config.model}: cannot tell its output dimension; pass --dim")
    for d in dims:
        if d < 1:
            raise ConfigError(f"--dim {d}: must be a positive integer")
        if full is not None and d > full:
            raise ConfigError(f"--dim {d}: larger than {model.short_name}'s output dimension {full}")
        declared = model.declared_dims or ((full,) if full else ())
        if d not in declared:
            msg = f"--dim {d}: not a Matryoshka dimension declared by {model.short_name} ({', '.join(map(str, declared))}); truncating anyway"
            notes.append(msg)
            warnings.warn(msg, stacklevel=2)
    for e in config.embed_dtypes:
        if e not in ("float32", "int8", "uint8", "binary", "ubinary"):
            from evalgemma.errors import unknown_name

            raise unknown_name("embedding dtype", e, ["float32", "int8", "uint8", "binary", "ubinary"], where="--embed-dtype")
        if e in ("binary", "ubinary"):
            bad = [d for d in dims if d % 8]
            if bad:
                raise ConfigError(f"--embed-dtype {e}: needs dims divisible by 8 (got {bad})")
    # EmbeddingGemma's paper protocol is 512 tokens (its checkpoint ships 2048): Gemma 3
    # models default to 512 unless --max-seq-length says otherwise.
    max_len = config.max_seq_length or (512 if model.is_gemma3 else model.default_max_seq_length) or 512
    if config.max_seq_length is not None and config.max_seq_length < 1:
        raise ConfigError(f"--max-seq-length {config.max_seq_length}: must be positive")
    if config.batch_size is not None and config.batch_size < 1:
        raise ConfigError(f"--batch-size {config.batch_size}: must be positive")
    prompts = tuple(sorted(model.prompts.items())) if config.prompts else ()
    weights = _weight_specs(config, model, max_len)
    variants = [
        VariantSpec(w, model.short_name, prompts, d, e, "smoke-texts-v1" if e in ("int8", "uint8") else "", not config.prompts and bool(model.prompts))  # type: ignore[arg-type]
        for w in weights
        for d in dims
        for e in config.embed_dtypes
    ]
    stored_rows, _ = scan_store(config.store)  # read once: stored units and, when warm, task types
    done = set() if config.force else set(zip(stored_rows["variant_key"], stored_rows["task"], strict=True))
    types = dict(zip(stored_rows["task"], stored_rows["task_type"], strict=True))
    warm = _warm_plan(config, model, weights, variants, done, types, notes)
    if warm is not None and config.shard is None:  # a shard's membership needs the tasks' mteb costs
        return warm
    suite_name, tasks = _suite_tasks(config)
    if config.langs and tasks and tasks[0].kind == "mteb":
        tasks = _restrict_langs(tasks, list(config.langs))
    units = []
    for w in weights:
        for t in tasks:
            mine = [v for v in variants if v.weight == w]
            units.append(ExecUnit(w, t, [v for v in mine if (v.key, t.name) not in done], [v for v in mine if (v.key, t.name) in done]))
    plan = Plan(config, model, suite_name, tasks, variants, units, notes)
    if config.shard is not None:
        from evalgemma.run.executors import shard_plan

        plan = shard_plan(plan, config.shard)
    return plan


def _cheap_task_names(config: RunConfig) -> tuple[str, list[str]] | None:
    """(suite name, task names) without importing mteb, when that is possible.

    Used only to decide that *everything* is already stored (a warm rerun must not pay for
    importing mteb and building its task registry). ``--langs`` on MTEB suites changes
    which tasks remain, so it always takes the full path.
    """
    from evalgemma.catalog.suites import resolve_suite

    if config.suite is None:
        return ("tasks", list(config.tasks)) if config.tasks and not config.langs else None
    suite = resolve_suite(config.suite)
    if suite.kind == "xtreme-up":
        return None  # planning XTREME-UP never imports mteb anyway
    if config.langs:
        return None
    if config.tasks:
        return suite.name, list(config.tasks)
    if suite.kind == "smoke":
        from evalgemma.benchmarks.smoke.tasks import SMOKE_TASK_NAMES

        return suite.name, list(SMOKE_TASK_NAMES)
    if suite.kind == "tasks":
        return suite.name, list(suite.tasks)
    from evalgemma.catalog.reference import suite_tasks

    try:
        listed = suite_tasks()
    except Exception:  # the reference data is optional for planning
        return None
    names = [str(t) for t in listed[listed["suite"] == suite.name]["task"]]
    return (suite.name, names) if names else None


def _warm_plan(
    config: RunConfig, model: ResolvedModel, weights: list[WeightSpec], variants: list[VariantSpec],
    done: set[tuple[str, str]], types: dict[str, str], notes: list[str],
) -> Plan | None:
    """A plan with nothing to run, if every (variant, task) is stored; else None."""
    cheap = _cheap_task_names(config)
    if cheap is None:
        return None
    suite_name, names = cheap
    if not names or any((v.key, n) not in done for v in variants for n in names):
        return None
    tasks = [PlannedTask(n, str(types.get(n, "")), "mteb") for n in names]
    units = [ExecUnit(w, t, [], [v for v in variants if v.weight == w]) for w in weights for t in tasks]
    return Plan(config, model, suite_name, tasks, variants, units, notes)


def _restrict_langs(tasks: list[PlannedTask], langs: list[str]) -> list[PlannedTask]:
    from evalgemma.benchmarks.mteb.adapter import restrict_languages

    kept = []
    for t in tasks:
        obj = restrict_languages(t.obj, langs)
        if obj is not None:
            kept.append(t)
    if not kept:
        raise ConfigError(f"--langs {','.join(langs)}: no task of the suite has these languages or subsets")
    return kept


# ---------------------------------------------------------------- execution


def effective_batch_size(config: RunConfig, device: str) -> int:
    """``--batch-size``, or a default that fits the device: 128 on CUDA, 32 on CPU/MPS."""
    if config.batch_size is not None:
        return config.batch_size
    return 128 if device.startswith("cuda") else 32


def _load_encoder(plan: Plan, weight: WeightSpec, device: str) -> Any:
    from evalgemma.encode.encoder import Encoder, load_sentence_transformer

    config = plan.config
    load_path = None
    if weight.quant != "none" and weight.quant_source == "qat":
        from evalgemma.variants.weight_quant import fetch_checkpoint

        load_path, _, _ = fetch_checkpoint(plan.model.model_id, weight.quant, "qat")
    st = load_sentence_transformer(
        plan.model, weight, device=device, load_path=load_path,
        trust_remote_code=config.trust_remote_code, allow_pickle_weights=config.allow_pickle_weights,
    )
    quant_info: dict[str, Any] = {}
    if weight.quant != "none":
        from evalgemma.variants.weight_quant import quantize_model

        report = quantize_model(st, weight.quant)  # type: ignore[arg-type]
        quant_info = {"quant_tensors": json.dumps(list(report.tensors)), "weight_bytes": int(report.weight_bytes)}
    else:
        import torch

        quant_info = {"weight_bytes": int(sum(p.numel() * p.element_size() for p in st.parameters())), "quant_tensors": "[]"}
        del torch
    disk_cache = None
    if config.cache_dir is not None:
        from evalgemma.encode.cache import EmbeddingCache

        disk_cache = EmbeddingCache(config.cache_dir)
    encoder = Encoder(st, weight.key, batch_size=effective_batch_size(config, device), disk_cache=disk_cache, show_progress=config.show_progress)
    return encoder, quant_info


def _view(variant: VariantSpec, full_dim: int, calibration_vectors: Any) -> tuple[Callable[[Any], Any], str]:
    """The derived view of a variant (truncate + re-normalise, then embedding quantization) and its similarity."""
    from evalgemma.variants.views import truncate

    dim = variant.dim
    if variant.embed_dtype == "float32":
        if dim == full_dim:
            from evalgemma.variants.views import full_dimension

            return full_dimension, "cosine"
        return (lambda v: truncate(v, dim)), "cosine"
    from evalgemma.variants.embedding_quant import as_pm1, quantize_embeddings_view

    kind = variant.embed_dtype
    calibration = view_calibration(variant, calibration_vectors)
    if kind in ("binary", "ubinary"):
        # Scored on the ±1 codes: cosine of ±1 vectors is 1 - 2·hamming/dim, so every mteb
        # evaluator (and XTREME-UP's search) ranks by Hamming distance, exactly.
        return (lambda v: as_pm1(quantize_embeddings_view(truncate(v, dim), kind, None), kind)), "hamming"  # type: ignore[arg-type]

    def view(v: Any) -> Any:
        return quantize_embeddings_view(truncate(v, dim), kind, calibration)  # type: ignore[arg-type]

    return view, "cosine"


def view_calibration(variant: VariantSpec, calibration_vectors: Any) -> Any:
    """int8/uint8 ranges of a variant: its own truncated view of the calibration vectors."""
    if variant.embed_dtype not in ("int8", "uint8"):
        return None
    from evalgemma.variants.embedding_quant import calibration_from
    from evalgemma.variants.views import truncate

    return calibration_from(truncate(calibration_vectors, variant.dim), variant.calibration)


def execute(plan: Plan, *, on_event: Callable[[str, dict[str, Any]], None] | None = None, encoder_hook: Callable[[Any], None] | None = None) -> RunSummary:
    """Run every missing unit of ``plan``, writing each store unit as soon as it finishes.

    A failing unit is reported and the run goes on; ``IncompleteRun`` is raised at the
    end if any unit failed (the others are saved). KeyboardInterrupt propagates after
    the finished units are on disk (they are written one by one).
    """
    from evalgemma.encode.encoder import resolve_device, set_determinism
    from evalgemma.benchmarks.mteb.adapter import prepare_data
    from evalgemma.run.provenance import git_commit, utc_now, versions
    from evalgemma.store.parquet import ensure_writable, write_unit

    config = plan.config
    if config.executor != "local":
        from evalgemma.run.executors import EXECUTORS, execute_ray

        if config.executor not in EXECUTORS:
            from evalgemma.errors import unknown_name

            raise unknown_name("executor", config.executor, EXECUTORS, where="--executor")
        if encoder_hook is not None:
            raise ValueError("encoder_hook needs the local executor (Ray workers load their own encoders)")
        return execute_ray(plan, on_event=on_event)
    emit = on_event or (lambda kind, data: None)
    run_id = (config.run_name + "-" if config.run_name else "") + uuid.uuid4().hex[:12]
    started = time.perf_counter()
    skipped = sum(len(u.stored) for u in plan.units)
    written: list[Path] = []
    failures: list[tuple[str, str, str]] = []
    stats: dict[str, int | float] = {}
    if plan.n_missing == 0:
        return RunSummary(run_id, written, failures, skipped, 0.0)
    ensure_writable(config.store)
    mteb_tasks = [t.obj for t in plan.tasks if t.kind == "mteb" and any(u.variants for u in plan.units if u.task is t)]
    sources = prepare_data(mteb_tasks, config.data_dir, config.offline)
    for t in plan.tasks:
        t.data_source = sources.get(t.name, t.data_source)
        if t.kind == "mteb" and Path(t.data_source).is_dir():
            t.mirror = Path(t.data_source)
        if t.kind == "xtreme-up" and any(u.variants for u in plan.units if u.task is t):
            # Read and validate the data before any model is loaded: a missing index or a
            # malformed line is a DataError (exit 3) naming the file, not a failed unit.
            from evalgemma.benchmarks.xtreme_up.unit import load_task_data

            t.data_source = str(load_task_data(plan, t).root)
    _ensure_datasets_cache()
    device = resolve_device(config.device)
    set_determinism()
    base = {**versions(), "git_commit": git_commit(), "device": device, "batch_size": effective_batch_size(config, device), "run_id": run_id, "suite": plan.suite_name}
    weights = list(dict.fromkeys(u.weight for u in plan.units if u.variants))
    for weight in weights:
        units = [u for u in plan.units if u.weight == weight and u.variants]
        emit("load", {"weight": weight})
        encoder, quant_info = _load_encoder(plan, weight, device)
        if encoder_hook is not None:
            encoder_hook(encoder)
        calibration = _calibration(encoder, plan) if any(v.embed_dtype in ("int8", "uint8") for u in units for v in u.variants) else None
        for unit in units:
            loaded_here = _load_task_data(unit.task)
            for variant in unit.variants:
                emit("unit-start", {"variant": variant.label, "task": unit.task.name})
                encoded_before, seconds_before = encoder.stats.texts_encoded, encoder.stats.encode_seconds
                t0 = utc_now()
                w0 = time.perf_counter()
                try:
                    rows = _evaluate(plan, encoder, variant, unit.task, calibration)
                except KeyboardInterrupt:
                    raise
                except Exception as exc:
                    from evalgemma.errors import EvalgemmaError

                    if not isinstance(exc, EvalgemmaError):
                        log.exception("unit failed: %s / %s", variant.label, unit.task.name)
                    failures.append((variant.label, unit.task.name, f"{type(exc).__name__}: {exc}"))
                    emit("unit-failed", {"variant": variant.label, "task": unit.task.name, "error": str(exc)})
                    continue
                wall = time.perf_counter() - w0
                finished = utc_now()
                ident = variant.identity()
                common = {
                    **base, **quant_info, **{k: ident[k] for k in ("model", "revision", "variant_key", "variant", "weight_key", "dim", "dtype", "max_seq_length", "prompt_set", "prompt_hash", "quant", "quant_source", "quant_checkpoint", "embed_dtype")},
                    "started_at": t0, "finished_at": finished, "status": "ok", "wall_s": wall,
                    "task": unit.task.name, "task_type": unit.task.task_type,
                    "embedding_bytes": _embedding_bytes(variant),
                    "calibration": _calibration_record(variant, calibration),
                }
                full_rows = [{**common, **r} for r in rows]
                path = write_unit(config.store, full_rows)
                written.append(path)
                encoded = encoder.stats.texts_encoded - encoded_before
                seconds = encoder.stats.encode_seconds - seconds_before
                emit("unit-done", {"variant": variant.label, "task": unit.task.name, "main_score": full_rows[0]["main_score"], "wall_s": wall, "path": path,
                                   "texts_encoded": encoded, "texts_per_s": encoded / seconds if seconds > 0 else None})
            if loaded_here:
                _unload_task_data(unit.task)
            encoder.clear_memory()
        stats = {k: v for k, v in encoder.stats.__dict__.items()}
        del encoder
    summary = RunSummary(run_id, written, failures, skipped, time.perf_counter() - started, stats)
    if failures:
        lines = "; ".join(f"{v} / {t}: {e}" for v, t, e in failures[:5])
        raise IncompleteRun(f"{len(failures)} unit(s) failed, {len(written)} stored: {lines}")
    return summary


def _calibration_record(variant: VariantSpec, calibration_vectors: Any) -> str:
    cal = view_calibration(variant, calibration_vectors)
    if cal is None:
        return ""
    return json.dumps({"name": cal.name, "n_vectors": cal.n_vectors, "sha256": cal.sha256, "dim": cal.dim, "texts": "evalgemma.benchmarks.smoke.tasks.calibration_texts()"})


def _load_task_data(task: PlannedTask) -> bool:
    """Load an mteb task's data once for all variants of a unit (mteb then keeps it loaded).

    mteb's ``unload_data`` drops the instance's metadata copy, so the redirect to a local
    mirror is re-applied before every load.

    Returns:
        True if the data was loaded here (and should be unloaded after the unit); data a
        caller loaded before stays loaded, as mteb itself does.
    """
    if task.kind != "mteb" or task.obj is None or task.obj.data_loaded:
        return False
    if task.mirror is not None:
        from evalgemma.benchmarks.mteb.adapter import point_to_mirror

        point_to_mirror(task.obj, task.mirror)
    task.obj.load_data()
    return True


def _unload_task_data(task: PlannedTask) -> None:
    if task.kind == "mteb" and task.obj is not None and task.obj.data_loaded:
        task.obj.unload_data()


def _embedding_bytes(variant: VariantSpec) -> int:
    if variant.embed_dtype in ("binary", "ubinary"):
        return variant.dim // 8
    if variant.embed_dtype in ("int8", "uint8"):
        return variant.dim
    return variant.dim * 4


def _ensure_datasets_cache() -> None:
    """mteb/datasets need a writable datasets cache even for local mirrors."""
    if "HF_DATASETS_CACHE" in os.environ:
        return
    from platformdirs import user_cache_dir

    path = Path(user_cache_dir("evalgemma")) / "hf-datasets"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        import tempfile

        path = Path(tempfile.mkdtemp(prefix="evalgemma-hf-datasets-"))
    os.environ["HF_DATASETS_CACHE"] = str(path)
    try:
        import datasets

        datasets.config.HF_DATASETS_CACHE = path
    except ImportError:
        pass


def _calibration(encoder: Any, plan: Plan) -> Any:
    """Full vectors of the recorded calibration set (the smoke suite's own texts, no prompt);
    int8/uint8 ranges are computed from them per view (same ranges for queries and documents)."""
    from evalgemma.benchmarks.smoke.tasks import calibration_texts

    return encoder.encode(calibration_texts(), None)


def _evaluate(plan: Plan, encoder: Any, variant: VariantSpec, task: PlannedTask, calibration: Any) -> list[dict[str, Any]]:
    if task.kind == "xtreme-up":
        return _evaluate_xtreme(plan, encoder, variant, task, calibration)
    return _evaluate_mteb(plan, encoder, variant, task, calibration)


def _evaluate_mteb(plan: Plan, encoder: Any, variant: VariantSpec, task: PlannedTask, calibration: Any) -> list[dict[str, Any]]:
    import mteb

    from evalgemma.benchmarks.mteb.adapter import MtebView, describe_prompts, task_result_rows

    view, sim = _view(variant, encoder.full_dim, calibration)
    adapter = MtebView(encoder, plan.model.model_id, plan.model.revision, dict(variant.prompts), view, sim, variant.dim)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        result = mteb.evaluate(
            adapter, task.obj, cache=None, show_progress_bar=False,
            encode_kwargs={"batch_size": encoder.batch_size, "show_progress_bar": False},
        )
    task_result = result.task_results[0]
    rows, score = task_result_rows(task.obj, task_result)
    prompts = describe_prompts(adapter.used_prompts)
    ds = task.obj.metadata.dataset
    n_samples = _n_samples(task.obj)
    extra = json.dumps({"data_source": task.data_source, "mteb_evaluation_time": task_result.evaluation_time}, default=str)
    for r in rows:
        r.update(
            main_score=score, prompts=prompts, n_samples=n_samples, extra=extra,
            task_version=str(getattr(task.obj.metadata, "version", "") or ""),
            data_revision=str(ds.get("revision", "")),
        )
    return rows


def _n_samples(task: Any) -> int:
    stats = getattr(task.metadata, "descriptive_stats", None) or {}
    try:
        return int(stats.get("num_samples", 0) or 0)
    except (TypeError, AttributeError, ValueError):
        return 0


def _evaluate_xtreme(plan: Plan, encoder: Any, variant: VariantSpec, task: PlannedTask, calibration: Any) -> list[dict[str, Any]]:
    from evalgemma.benchmarks.xtreme_up.unit import evaluate_xtreme_variant

    return evaluate_xtreme_variant(plan, encoder, variant, task, calibration)
