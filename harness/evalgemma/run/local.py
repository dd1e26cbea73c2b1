"""Execute a plan in this process: load each weight variant once, evaluate each unit's missing cells,
persist every result as soon as it finishes. A crash loses at most the unit in progress; a failing
unit is reported and the run goes on.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalgemma.benchmarks.base import EvalContext, UnitResult
from evalgemma.errors import EvalgemmaError, IncompleteRun
from evalgemma.run.plan import ExecUnit, Plan
from evalgemma.variants.spec import VariantSpec, WeightSpec

log = logging.getLogger(__name__)

Event = Callable[[str, dict[str, Any]], None]


@dataclass
class RunSummary:
    """The outcome of ``execute``."""

    run_id: str
    written: list[Path]
    failures: list[tuple[str, str, str]]  # (variant label, task, error)
    skipped: int
    wall_s: float
    encode_stats: dict[str, int | float] = field(default_factory=dict)


@dataclass(frozen=True)
class Finished:
    """One evaluated (variant, task) of a unit, ready to persist: the result and the worker's provenance."""

    unit: ExecUnit
    variant: VariantSpec
    result: UnitResult
    provenance: dict[str, Any]


def new_run_id(run_name: str) -> str:
    return (run_name + "-" if run_name else "") + uuid.uuid4().hex[:12]


def effective_batch_size(batch_size: int | None, device: str) -> int:
    """``--batch-size``, or a default that fits the device: 128 on CUDA, 32 on CPU/MPS."""
    if batch_size is not None:
        return batch_size
    return 128 if device.startswith("cuda") else 32


def execute(plan: Plan, *, on_event: Event | None = None, encoder_hook: Callable[[Any], None] | None = None) -> RunSummary:
    """Run every missing cell of ``plan`` with its executor, persisting each unit as it finishes.

    Raises:
        IncompleteRun: some units failed (the others are saved).
        ConfigError: an unknown executor, or ``encoder_hook`` with a remote executor.
        KeyboardInterrupt: propagates after the finished units are on disk.
    """
    from evalgemma.run.executors import Executor, execute_ray

    if Executor.parse(plan.config.executor.executor, "--executor") == Executor.RAY:
        if encoder_hook is not None:
            raise ValueError("encoder_hook needs the local executor (Ray workers load their own encoders)")
        return execute_ray(plan, on_event=on_event)
    if Executor.parse(plan.config.executor.executor, "--executor") == Executor.SLURM:
        if encoder_hook is not None:
            raise ValueError("encoder_hook needs the local executor (Slurm jobs load their own encoders)")
        from evalgemma.run.slurm import execute_slurm

        return execute_slurm(plan, on_event=on_event)
    return execute_local(plan, on_event=on_event, encoder_hook=encoder_hook)


def execute_local(plan: Plan, *, on_event: Event | None = None, encoder_hook: Callable[[Any], None] | None = None) -> RunSummary:
    """The local executor: evaluate in this process, write each result to the store at once."""
    from evalgemma.run.persist import unit_rows, write_result
    from evalgemma.store.parquet import ensure_writable

    emit = on_event or (lambda kind, data: None)
    run_id = new_run_id(plan.config.runtime.run_name)
    started = time.perf_counter()
    skipped = sum(len(u.stored) for u in plan.units)
    written: list[Path] = []
    failures: list[tuple[str, str, str]] = []
    if plan.n_missing == 0:
        return RunSummary(run_id, written, failures, skipped, 0.0)
    ensure_writable(plan.config.runtime.store)
    stats: dict[str, int | float] = {}
    for item in evaluate_plan(plan, run_id, emit, failures, stats, encoder_hook=encoder_hook):
        path = write_result(plan.config.runtime.store, unit_rows(item.result, item.variant, item.unit.task, item.provenance), item.result.samples)
        written.append(path)
        emit("unit-done", _done_event(item, path))
    summary = RunSummary(run_id, written, failures, skipped, time.perf_counter() - started, stats)
    if failures:
        lines = "; ".join(f"{v} / {t}: {e}" for v, t, e in failures[:5])
        raise IncompleteRun(f"{len(failures)} unit(s) failed, {len(written)} stored: {lines}")
    return summary


def _done_event(item: Finished, path: Path | None) -> dict[str, Any]:
    r = item.result
    return {"variant": item.variant.label, "task": r.task, "main_score": r.main_score, "cells": len(r.cells),
            "expected_cells": len(item.unit.task.cells), "wall_s": r.wall_s, "path": path, "texts_encoded": r.texts_encoded,
            "texts_per_s": r.texts_encoded / r.encode_seconds if r.encode_seconds > 0 else None}


def evaluate_plan(
    plan: Plan, run_id: str, emit: Event, failures: list[tuple[str, str, str]], stats: dict[str, int | float],
    *, encoder_hook: Callable[[Any], None] | None = None,
) -> Iterator[Finished]:
    """Evaluate every missing cell of ``plan`` in this process, yielding each result (nothing is written here).

    A unit that raises is recorded in ``failures`` (and reported by ``emit``) and the others go on.
    """
    from evalgemma.encode.encoder import resolve_device, set_determinism
    from evalgemma.provenance import git_commit, versions
    from evalgemma.run.evaluate import evaluate_unit
    from evalgemma.run.persist import with_calibration

    config = plan.config
    _ensure_datasets_cache()
    device = resolve_device(config.runtime.device)
    set_determinism()
    base = {**versions(), "git_commit": git_commit(), "device": device, "run_id": run_id, "suite": plan.suite_name,
            "batch_size": effective_batch_size(config.runtime.batch_size, device)}
    search_device = "cuda" if device.startswith("cuda") else "cpu"
    weights = list(dict.fromkeys(u.weight for u in plan.units if u.variants))
    for weight in weights:
        units = [u for u in plan.units if u.weight == weight and u.variants]
        emit("load", {"weight": weight})
        encoder, quant_info = load_encoder(plan, weight, device)
        if encoder_hook is not None:
            encoder_hook(encoder)
        needs_calibration = any(v.embed_dtype in ("int8", "uint8") for u in units for v in u.variants)
        calibration = _calibration(encoder) if needs_calibration else None
        ctx = EvalContext(plan.model.model_id, plan.model.revision, search_device, config.runtime.search_chunk, calibration, plan.suite_name)
        provenance = {**base, **quant_info}
        for unit in units:
            loaded_here = _load_task_data(unit)
            encoded: set[tuple[str, str]] = set()
            for variant in unit.variants:
                emit("unit-start", {"variant": variant.label, "task": unit.task.name, "cells": len(unit.cells_for(variant))})
                try:
                    result = evaluate_unit(unit.task, unit.cells_for(variant), encoder, variant, ctx)
                except KeyboardInterrupt:
                    raise
                except Exception as exc:
                    if not isinstance(exc, EvalgemmaError):
                        log.exception("unit failed: %s / %s", variant.label, unit.task.name)
                    failures.append((variant.label, unit.task.name, f"{type(exc).__name__}: {exc}"))
                    emit("unit-failed", {"variant": variant.label, "task": unit.task.name, "error": str(exc)})
                    continue
                encoded.update((c.split, c.subset) for c in unit.cells_for(variant))
                yield Finished(unit, variant, with_calibration(result, variant, calibration), provenance)
            if encoded and config.runtime.cache_dir is not None:  # for `evalgemma plan`: these cells' texts are cached
                from evalgemma.encode.cache import mark_encoded

                mark_encoded(config.runtime.cache_dir, weight.key, unit.task.name, unit.task.version, encoded)
            if loaded_here:
                _unload_task_data(unit)
            encoder.clear_memory()
        stats.update(encoder.stats.__dict__)
        del encoder


def load_encoder(plan: Plan, weight: WeightSpec, device: str) -> tuple[Any, dict[str, Any]]:
    """The encoder of one weight variant (from its backend's loader) and what its weights are
    (bytes as stored, quantized tensors). A non-torch backend is first checked against the torch
    float32 model on a few probe texts (:func:`evalgemma.run.parity.quick_probe`); a disagreement is warned about."""
    from evalgemma.encode.backends import LoadRequest, get_backend

    runtime = plan.config.runtime
    disk_cache = None
    if runtime.cache_dir is not None:
        from evalgemma.encode.cache import EmbeddingCache

        disk_cache = EmbeddingCache(runtime.cache_dir)
    request = LoadRequest(
        plan.model, weight, device=device, batch_size=effective_batch_size(runtime.batch_size, device), disk_cache=disk_cache,
        show_progress=runtime.show_progress, trust_remote_code=runtime.trust_remote_code,
        allow_pickle_weights=runtime.allow_pickle_weights, artifact_dir=runtime.artifact_dir,
    )
    loaded = get_backend(weight.backend).load(request)
    if loaded.artifact is not None:
        from evalgemma.run.parity import quick_probe

        quick_probe(plan.model, weight, loaded, device=device)
    return loaded.encoder, loaded.info


def _calibration(encoder: Any) -> Any:
    """Full vectors of the recorded calibration set (the smoke suite's own texts, no prompt);
    int8/uint8 ranges are computed from them per view (same ranges for queries and documents)."""
    from evalgemma.benchmarks.smoke.tasks import calibration_texts

    return encoder.encode(calibration_texts(), None)


def _load_task_data(unit: ExecUnit) -> bool:
    """Load an mteb task's data once for all variants of a unit (mteb then keeps it loaded).

    mteb's ``unload_data`` drops the instance's metadata copy, so the redirect to a local mirror
    is re-applied before every load. Returns True if the data was loaded here.
    """
    task = unit.task
    if task.kind != "mteb" or task.obj is None or task.obj.data_loaded:
        return False
    if task.mirror is not None:
        from evalgemma.benchmarks.mteb.adapter import point_to_mirror

        point_to_mirror(task.obj, task.mirror)
    task.obj.load_data()
    return True


def _unload_task_data(unit: ExecUnit) -> None:
    task = unit.task
    if task.kind == "mteb" and task.obj is not None and task.obj.data_loaded:
        task.obj.unload_data()


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
