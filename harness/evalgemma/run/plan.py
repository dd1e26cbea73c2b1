"""Plan a run: cells(suite × variants) − stored cells.

A *cell* is (variant, task, task version, split, subset); the store holds cells, and a rerun
evaluates only the cells it lacks: ``--langs deu`` then ``--langs deu,fra`` evaluates fra only, and
a later full-suite run the other subsets. An *execution unit* is one (weight variant, task): the
model is loaded once per weight variant, the task's data once per unit, every text encoded once,
and each variant of the unit (dims, embedding dtypes) evaluates its own missing cells from the same
vectors. Nothing here loads a model or writes a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass, field, replace

from evalgemma.benchmarks.base import BenchTask, Cell
from evalgemma.encode.models import ResolvedModel, resolve_model
from evalgemma.errors import ConfigError
from evalgemma.run.config import DEFAULT_MODEL, RunConfig
from evalgemma.variants.spec import Dtype, EmbedDtype, Quant, VariantSpec, WeightSpec

__all__ = ["DEFAULT_MODEL", "ExecUnit", "Plan", "RunConfig", "calibration_id", "plan_run"]


@dataclass
class ExecUnit:
    """One (weight variant, task): its variants with missing cells, and those already complete."""

    weight: WeightSpec
    task: BenchTask
    variants: list[VariantSpec]  # variants with at least one selected cell missing
    stored: list[VariantSpec]  # variants whose selected cells are all stored
    missing: dict[str, tuple[Cell, ...]] = field(default_factory=dict)  # variant key → cells to evaluate

    def cells_for(self, variant: VariantSpec) -> tuple[Cell, ...]:
        """The cells this run evaluates for ``variant`` (in the task's order)."""
        return self.missing.get(variant.key, ())


@dataclass
class Plan:
    """What a run will do."""

    config: RunConfig
    model: ResolvedModel
    suite_name: str
    tasks: list[BenchTask]
    variants: list[VariantSpec]
    units: list[ExecUnit]
    warnings: list[str] = field(default_factory=list)

    @property
    def n_missing(self) -> int:
        """(variant, task) pairs with cells to evaluate."""
        return sum(len(u.variants) for u in self.units)

    @property
    def n_total(self) -> int:
        """(variant, task) pairs of the plan."""
        return sum(len(u.variants) + len(u.stored) for u in self.units)

    @property
    def n_missing_cells(self) -> int:
        return sum(len(c) for u in self.units for c in u.missing.values())

    @property
    def n_cells(self) -> int:
        return sum(len(u.task.selected) * (len(u.variants) + len(u.stored)) for u in self.units)


def calibration_id(texts: list[str]) -> str:
    """Identity of an int8/uint8 calibration set: its name and the sha256 of its texts."""
    digest = hashlib.sha256(json.dumps(texts, ensure_ascii=False, separators=(",", ":")).encode("utf-8")).hexdigest()
    return f"smoke-texts@sha256:{digest[:16]}"


def _weight_specs(config: RunConfig, model: ResolvedModel, max_len: int, notes: list[str], *, build: bool) -> list[WeightSpec]:
    """One weight variant per (backend, quant) pair of the sweep that exists (the others are named in ``notes``).

    A non-torch backend's artifact is exported (``build``) or looked up in the artifact cache, so its
    sha256 joins the key; ``evalgemma plan`` does not export, and names an artifact it has not got.
    """
    from evalgemma.encode.backends import LoadRequest, check_backend_quants

    opts = config.variant
    pairs, left_out = check_backend_quants(opts.backends, opts.quants)
    notes.extend(left_out)
    specs = []
    for backend, quant in pairs:
        if backend.has_artifact:
            if opts.quant_source == "qat":
                raise ConfigError(f"--quant-source qat: the {backend.name} backend quantizes the given weights (use --quant-source ptq or leave it out)")
            base = WeightSpec(model.model_id, model.revision, opts.dtype, max_len, quant, "ptq" if quant != "none" else "none", "", backend.name)  # type: ignore[arg-type]
            if opts.dtype != "float32":
                raise ConfigError(f"--dtype {opts.dtype}: the {backend.name} backend runs its artifact as exported (float32); use --dtype float32")
            assert backend.artifact is not None
            artifact = backend.artifact(LoadRequest(model, base, artifact_dir=config.runtime.artifact_dir,
                                                    allow_pickle_weights=config.runtime.allow_pickle_weights), build)
            if artifact is None:
                notes.append(f"--backend {backend.name} --quant {quant}: no artifact yet (a run exports it; its sha256 then fixes the variant key)")
                specs.append(base)
            else:
                specs.append(replace(base, artifact_sha256=artifact.sha256))
            continue
        if quant == "none":
            specs.append(WeightSpec(model.model_id, model.revision, opts.dtype, max_len))  # type: ignore[arg-type]
            continue
        from evalgemma.variants.weight_quant import default_quant_source, resolve_qat_checkpoint

        source = opts.quant_source or default_quant_source(model.model_id)
        checkpoint = resolve_qat_checkpoint(model.model_id, Quant(quant)) if source == "qat" else ""
        specs.append(WeightSpec(model.model_id, model.revision, opts.dtype, max_len, Quant(quant), source, checkpoint))  # type: ignore[arg-type]
    return specs


def max_seq_length(config: RunConfig, model: ResolvedModel) -> int:
    """``--max-seq-length``, else 512 for Gemma 3 models (EmbeddingGemma's paper protocol; its
    checkpoint ships 2048), else the model's own, else 512."""
    return config.variant.max_seq_length or (512 if model.is_gemma3 else model.default_max_seq_length) or 512


def plan_weights(config: RunConfig, *, build: bool = True) -> tuple[ResolvedModel, list[WeightSpec], list[str]]:
    """The model and the weight variants of ``config`` (backends × quants), with the notes of the pairs left out."""
    model = resolve_run_model(config)
    notes: list[str] = []
    return model, _weight_specs(config, model, max_seq_length(config, model), notes, build=build), notes


def resolve_run_model(config: RunConfig) -> ResolvedModel:
    """``--model`` resolved: a backend's own artifact (an ONNX directory) when a backend recognises it, else a model.

    Raises:
        ConfigError: an artifact given with a backend that cannot run it (``--backend torch`` on an ONNX folder).
    """
    from pathlib import Path

    from evalgemma.encode.backends import get_backend

    opts = config.variant
    path = Path(opts.model).expanduser()
    if path.exists():
        for name in dict.fromkeys(opts.backends):
            backend = get_backend(name)
            described = backend.describe(path) if backend.describe is not None else None
            if described is None:
                continue
            others = [b for b in dict.fromkeys(opts.backends) if b != name]
            if others:
                raise ConfigError(f"--model {opts.model} is a {name} model: --backend {','.join(others)} cannot run it (use --backend {name})")
            return described
        if path.suffix == ".onnx" or (path.is_dir() and not (path / "modules.json").exists() and any(path.rglob("*.onnx"))):
            raise ConfigError(f"--model {opts.model}: an ONNX model; the {','.join(opts.backends)} backend cannot run it (use --backend onnx)")
        if path.suffix == ".gguf":
            raise ConfigError(f"--model {opts.model}: a GGUF model; the {','.join(opts.backends)} backend cannot run it (use --backend gguf)")
    return resolve_model(opts.model, opts.revision)


def plan_variants(config: RunConfig, *, build: bool = True) -> tuple[ResolvedModel, list[WeightSpec], list[VariantSpec], list[str]]:
    """The model, weight variants and variants of ``config`` (backends × quants × dims × embedding dtypes), with
    the planning notes; every check of the variant options runs here (``evalgemma run`` and ``evalgemma bench``).

    Raises:
        ConfigError: unknown names, dims out of range, float16 on Gemma 3, bad combinations.
    """
    from evalgemma.encode.encoder import FP16_REFUSAL

    opts, runtime = config.variant, config.runtime
    Dtype.parse(opts.dtype, "--dtype")
    if runtime.offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["HF_DATASETS_OFFLINE"] = "1"
    model = resolve_run_model(config)
    if opts.dtype == "float16" and model.is_gemma3:
        raise ConfigError(FP16_REFUSAL)
    notes: list[str] = []
    dims = _dims(config, model, notes)
    for e in opts.embed_dtypes:
        kind = EmbedDtype.parse(e, "--embed-dtype")
        if kind in ("binary", "ubinary"):
            bad = [d for d in dims if d % 8]
            if bad:
                raise ConfigError(f"--embed-dtype {e}: needs dims divisible by 8 (got {bad})")
    if opts.max_seq_length is not None and opts.max_seq_length < 1:
        raise ConfigError(f"--max-seq-length {opts.max_seq_length}: must be positive")
    if runtime.batch_size is not None and runtime.batch_size < 1:
        raise ConfigError(f"--batch-size {runtime.batch_size}: must be positive")
    max_len = max_seq_length(config, model)
    prompts = tuple(sorted(model.prompts.items())) if opts.prompts else ()
    weights = _weight_specs(config, model, max_len, notes, build=build)
    calibration = ""
    if any(e in ("int8", "uint8") for e in opts.embed_dtypes):
        from evalgemma.benchmarks.smoke.tasks import calibration_texts

        calibration = calibration_id(calibration_texts())
    variants = [
        VariantSpec(w, model.short_name, prompts, d, e, calibration if e in ("int8", "uint8") else "", not opts.prompts and bool(model.prompts))  # type: ignore[arg-type]
        for w in weights
        for d in dims
        for e in opts.embed_dtypes
    ]
    return model, weights, variants, notes


def plan_run(config: RunConfig, *, check_data: bool = True) -> Plan:
    """Resolve model, suite, tasks and variants; subtract the cells the store already holds.

    Every check that can fail before work runs here, before anything is printed or loaded: names,
    dims, dtypes, data presence offline (``DataError`` naming the tasks), supported task types.
    ``check_data=False`` (``evalgemma plan``) skips the data checks and the XTREME-UP data read;
    ``evalgemma.run.estimate`` then reports data presence per task instead of failing.

    Raises:
        ConfigError: unknown names, dims out of range, float16 on Gemma 3, bad combinations.
        DataError: an offline model or dataset that is not available locally.
    """
    from evalgemma.store.parquet import scan_store, stored_cells

    runtime = config.runtime
    model, weights, variants, notes = plan_variants(config, build=check_data)
    stored_rows, _ = scan_store(runtime.store)  # read once
    done = set() if runtime.force else stored_cells(stored_rows)
    if config.executor.shard is None and not runtime.force:
        warm = _warm_plan(config, model, weights, variants, done, notes)
        if warm is not None:
            return warm
    from evalgemma.benchmarks.suites import plan_tasks

    sel = config.selection
    suite_name, tasks = plan_tasks(sel.suite, sel.tasks, sel.langs, split=sel.split, data_dir=runtime.data_dir, offline=runtime.offline)
    units = [_unit(w, t, [v for v in variants if v.weight == w], done) for w in weights for t in tasks]
    plan = Plan(config, model, suite_name, tasks, variants, units, notes)
    for t in tasks:
        if t.order_dependent and t.selected != t.cells and sel.langs:
            notes.append(f"{t.name}: evaluated whole ({len(t.cells)} cells): its cells draw from one random generator in order, "
                         "so a subset alone would not give mteb's values")
    if config.executor.shard is not None:
        from evalgemma.run.executors import shard_plan

        plan = shard_plan(plan, config.executor.shard)
    if check_data:
        _check_data(plan)
    return plan


def _dims(config: RunConfig, model: ResolvedModel, notes: list[str]) -> tuple[int, ...]:
    full = model.output_dim
    dims = tuple(config.variant.dims) or ((full,) if full else ())
    if not dims:
        raise ConfigError(f"--model {config.variant.model}: cannot tell its output dimension; pass --dim")
    for d in dims:
        if d < 1:
            raise ConfigError(f"--dim {d}: must be a positive integer")
        if full is not None and d > full:
            raise ConfigError(f"--dim {d}: larger than {model.short_name}'s output dimension {full}")
        declared = model.declared_dims or ((full,) if full else ())
        if d not in declared:
            msg = f"--dim {d}: not a Matryoshka dimension declared by {model.short_name} ({', '.join(map(str, declared))}); truncating anyway"
            notes.append(msg)
            warnings.warn(msg, stacklevel=3)
    return dims


def _unit(weight: WeightSpec, task: BenchTask, variants: list[VariantSpec], done: set[tuple[str, str, str, str, str]]) -> ExecUnit:
    todo, stored, missing = [], [], {}
    for v in variants:
        cells = tuple(c for c in task.selected if (v.key, task.name, task.version, c.split, c.subset) not in done)
        if task.order_dependent and cells:
            cells = task.cells  # evaluated whole, in order, from a fresh seed
        if cells:
            todo.append(v)
            missing[v.key] = cells
        else:
            stored.append(v)
    return ExecUnit(weight, task, todo, stored, missing)


def _check_data(plan: Plan) -> None:
    """Point MTEB tasks at local mirrors and fail now on missing offline data; read XTREME-UP data.

    Only tasks with cells to evaluate are checked, so a warm rerun touches no data.
    """
    runtime = plan.config.runtime
    busy = {id(u.task) for u in plan.units if u.variants}
    mteb_tasks = [t for t in plan.tasks if t.kind == "mteb" and id(t) in busy]
    if mteb_tasks:
        from pathlib import Path

        from evalgemma.benchmarks.mteb.adapter import prepare_data

        sources = prepare_data([t.obj for t in mteb_tasks], runtime.data_dir, runtime.offline)
        for t in mteb_tasks:
            t.data_source = sources.get(t.name, t.data_source)
            if Path(t.data_source).is_dir():
                t.mirror = Path(t.data_source)
    for t in plan.tasks:
        if t.kind == "xtreme-up" and id(t) in busy:
            from evalgemma.benchmarks.xtreme_up.unit import find_root, load

            root = find_root(runtime.data_dir, offline=runtime.offline, download=True)
            assert root is not None  # download=True returns a root or raises
            version = t.version
            load(t, root)
            if version and version != t.version:  # cannot happen: the same files were read
                raise ConfigError(f"{t.name}: data changed while planning ({version} → {t.version})")


def _warm_plan(
    config: RunConfig, model: ResolvedModel, weights: list[WeightSpec], variants: list[VariantSpec],
    done: set[tuple[str, str, str, str, str]], notes: list[str],
) -> Plan | None:
    """A plan with nothing to run, if every expected cell of every variant is stored; else None.

    Decided from the suite's expected cells alone (no mteb import, no data read), so a warm rerun
    of a finished suite answers at once. ``--langs`` and task lists without a suite take the full path.
    """
    from evalgemma.benchmarks.suites import expected_cells

    sel = config.selection
    if sel.suite is None or sel.langs or sel.split is not None:
        return None
    expected = expected_cells(_suite_name(sel.suite))
    if not expected:
        return None
    names = list(sel.tasks) or list(expected)
    if any(n not in expected for n in names):
        return None
    tasks = []
    for n in names:
        e = expected[n]
        if not e.version:  # e.g. XTREME-UP: the version comes from the data
            return None
        if any((v.key, n, e.version, c.split, c.subset) not in done for v in variants for c in e.cells):
            return None
        tasks.append(BenchTask(n, e.task_type, "mteb" if not n.startswith("xtreme-up") else "xtreme-up", e.version, e.cells))
    units = [ExecUnit(w, t, [], [v for v in variants if v.weight == w]) for w in weights for t in tasks]
    return Plan(config, model, _suite_name(sel.suite), tasks, variants, units, notes)


def _suite_name(suite: str) -> str:
    from evalgemma.catalog.suites import resolve_suite

    return resolve_suite(suite).name

