"""Scale-out: deterministic shards of a plan (Slurm arrays) and a Ray executor.

The unit of distributed work is the runner's execution unit, one (weight variant, task):
every dim and embedding dtype of a weight variant is derived inside the same unit, so no
text is encoded twice across workers.

**Shards** (``--shard i/N``, 0-based ``i``) split the *full* plan (stored and missing
units alike, so a shard's membership never changes when other shards finish first) with a
longest-processing-time-first greedy: units sorted by estimated cost (descending), then by
a stable string key, each given to the currently lightest shard (ties: the lowest index).
Nothing depends on dict order or hash randomisation, so every machine computes the same
partition, and the heaviest shard exceeds the lightest by at most one unit's cost.

**Ray** (``--executor ray``): each unit is one Ray task (``num_cpus=1``, ``num_gpus`` =
``--gpus-per-unit``). A worker re-plans the run from the ``RunConfig`` (pinned to the
driver's model revision), evaluates its one unit with the same evaluation loop as the local
executor and *returns the ``UnitResult``s* with its provenance; the driver is the only writer
of the results store and persists them exactly as the local executor does. A worker that dies or raises an unexpected error is resubmitted up to
``max_retries`` times, each retry reported; evalgemma errors (bad data, bad config) are
deterministic and are reported at once, without retry.

Ray is imported only inside :func:`execute_ray` (``pip install 'evalgemma[ray]'``).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from evalgemma.errors import Choice, ConfigError

if TYPE_CHECKING:
    from evalgemma.benchmarks.base import BenchTask, UnitResult
    from evalgemma.run.config import RunConfig
    from evalgemma.run.local import RunSummary
    from evalgemma.run.plan import ExecUnit, Plan

log = logging.getLogger(__name__)

T = TypeVar("T")



class Executor(Choice):
    """Executor."""

    LOCAL = "local"
    RAY = "ray"
    SLURM = "slurm"


# ---------------------------------------------------------------- shards


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (0-based) of ``count``."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``--shard i/N`` (0-based ``i``, as ``$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT``).

    Raises:
        ConfigError: not two integers separated by ``/``, ``N < 1`` or ``i`` outside ``0..N-1``.
    """
    parts = text.strip().split("/")
    try:
        if len(parts) != 2:
            raise ValueError(text)
        index, count = int(parts[0]), int(parts[1])
    except ValueError:
        raise ConfigError(f"--shard {text}: expected i/N with integers, e.g. --shard 0/4 (i is 0-based: 0..N-1)") from None
    return check_shard((index, count)).index, count


def check_shard(shard: tuple[int, int] | Shard) -> Shard:
    """Validate a shard given as ``(index, count)``.

    Raises:
        ConfigError: ``count < 1`` or ``index`` outside ``0..count-1`` (names ``--shard``).
    """
    index, count = (shard.index, shard.count) if isinstance(shard, Shard) else shard
    if count < 1:
        raise ConfigError(f"--shard {index}/{count}: the shard count N must be at least 1")
    if not 0 <= index < count:
        raise ConfigError(
            f"--shard {index}/{count}: the index must be in 0..{count - 1} (0-based; with Slurm use "
            "--array=0-(N-1) and --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)"
        )
    return Shard(index, count)


def unit_key(unit: ExecUnit) -> str:
    """A stable string identity of an execution unit: ``<weight key>/<task name>``."""
    return f"{unit.weight.key}/{unit.task.name}"


def task_cost(task: BenchTask) -> int:
    """Estimated cost of a task: its number of evaluation samples (texts/pairs/queries+documents).

    Read from mteb's precomputed ``metadata.descriptive_stats`` (no data is loaded): the sum of
    ``num_samples`` over the task's evaluation splits, restricted to its selected hf subsets
    when per-subset statistics exist; else ``metadata.n_samples``; else 1. XTREME-UP tasks
    count their languages. Only the ratios matter: the cost is used to balance shards.
    """
    if task.kind != "mteb" or task.obj is None:
        return max(1, len(task.languages))
    obj = task.obj
    metadata = getattr(obj, "metadata", None)
    splits = list(getattr(obj, "eval_splits", None) or getattr(metadata, "eval_splits", None) or [])
    subsets = list(getattr(obj, "hf_subsets", None) or [])
    stats = getattr(metadata, "descriptive_stats", None)
    total = 0
    if isinstance(stats, dict):
        for split in splits:
            split_stats = stats.get(split)
            if not isinstance(split_stats, dict):
                continue
            per_subset = split_stats.get("hf_subset_descriptive_stats")
            if isinstance(per_subset, dict) and subsets and all(s in per_subset for s in subsets):
                total += sum(_int(per_subset[s].get("num_samples")) for s in subsets)
            else:
                total += _int(split_stats.get("num_samples"))
    if total == 0:
        counts = getattr(metadata, "n_samples", None)
        if isinstance(counts, dict):
            total = sum(_int(counts.get(s)) for s in splits)
    return max(1, total)


def _int(value: Any) -> int:
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0


def unit_cost(unit: ExecUnit) -> int:
    """Estimated cost of an execution unit: its task's cost (the texts are encoded once per unit)."""
    return task_cost(unit.task)


def partition(items: Sequence[T], count: int, *, key: Callable[[T], str], cost: Callable[[T], int]) -> list[list[T]]:
    """Split ``items`` into ``count`` groups of balanced total cost, deterministically.

    Longest-processing-time-first greedy: items sorted by (cost descending, key), each given to
    the group with the smallest total so far (ties: the lowest group index). After every step
    the heaviest group exceeds the lightest by at most the largest item cost. Within a group,
    items keep their order in ``items``.

    Raises:
        ConfigError: ``count < 1``.
        ValueError: two items share a key (the order would be ambiguous; a bug in the caller).
    """
    if count < 1:
        raise ConfigError(f"--shard: the shard count must be at least 1 (got {count})")
    keys = [key(item) for item in items]
    if len(set(keys)) != len(keys):
        raise ValueError("partition: item keys must be unique")
    costs = [cost(item) for item in items]
    order = sorted(range(len(items)), key=lambda i: (-costs[i], keys[i]))
    loads = [0] * count
    members: list[list[int]] = [[] for _ in range(count)]
    for i in order:
        target = min(range(count), key=lambda g: (loads[g], g))
        loads[target] += costs[i]
        members[target].append(i)
    return [[items[i] for i in sorted(group)] for group in members]


def shard_units(units: Sequence[ExecUnit], shard: tuple[int, int] | Shard) -> list[ExecUnit]:
    """The units of one shard of ``units`` (which must be the full plan's units)."""
    checked = check_shard(shard)
    return partition(units, checked.count, key=unit_key, cost=unit_cost)[checked.index]


def restrict_plan(plan: Plan, units: Sequence[ExecUnit]) -> Plan:
    """A copy of ``plan`` holding only ``units`` (and only the tasks they use)."""
    from evalgemma.run.plan import Plan

    ids = {id(u.task) for u in units}
    tasks = [t for t in plan.tasks if id(t) in ids]
    return Plan(plan.config, plan.model, plan.suite_name, tasks, list(plan.variants), list(units), list(plan.warnings))


def shard_plan(plan: Plan, shard: tuple[int, int] | Shard) -> Plan:
    """The part of a full plan that shard ``i/N`` runs.

    Raises:
        ConfigError: an invalid shard (names ``--shard``).
    """
    return restrict_plan(plan, shard_units(plan.units, shard))


# ---------------------------------------------------------------- Ray


@dataclass(frozen=True)
class UnitRequest:
    """What a worker needs to evaluate one execution unit (small and picklable: no task objects)."""

    config: RunConfig
    weight_key: str
    task: str
    variant_keys: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.weight_key}/{self.task}"


@dataclass(frozen=True)
class UnitOutcome:
    """What a worker sends back: its results (variant key, result, provenance) and the failed variants."""

    key: str
    results: list[tuple[str, UnitResult, dict[str, Any]]]
    failures: list[tuple[str, str, str]]  # (variant label, task, error)
    host: str
    pid: int
    wall_s: float
    device: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def worker_config(config: RunConfig, plan: Plan) -> RunConfig:
    """The config a worker re-plans from: local executor, no shard, pinned model, absolute paths."""

    def absolute(path: Path | None) -> Path | None:
        return None if path is None else path.expanduser().resolve()

    suite = config.selection.suite
    if suite is not None and Path(suite).expanduser().is_file():
        suite = str(Path(suite).expanduser().resolve())
    model = config.variant.model
    if Path(model).expanduser().is_dir():
        model = str(Path(model).expanduser().resolve())
    revision = None if plan.model.is_local else plan.model.revision
    return config.with_(
        executor="local", shard=None, ray_address=None, force=True, show_progress=False,
        suite=suite, model=model, revision=revision, data_dir=absolute(config.runtime.data_dir),
        cache_dir=absolute(config.runtime.cache_dir), store=Path("unused-worker-store"),
    )


def run_unit(request: UnitRequest) -> UnitOutcome:
    """Evaluate one execution unit in this process (what a Ray worker runs); writes nothing.

    Re-plans from ``request.config``, keeps the one unit and the requested variants, evaluates
    them with the local executor's loop and returns the results. Evalgemma errors
    (deterministic: bad data, bad config) come back as failures of every requested variant;
    any other exception propagates so that the driver can retry the unit.
    """
    from evalgemma.errors import EvalgemmaError
    from evalgemma.run.local import evaluate_plan
    from evalgemma.run.plan import plan_run

    started = time.perf_counter()
    failures: list[tuple[str, str, str]] = []
    results: list[tuple[str, UnitResult, dict[str, Any]]] = []
    labels: dict[str, str] = {}
    device = ""
    try:
        plan = plan_run(request.config)
        matches = [u for u in plan.units if unit_key(u) == request.key]
        if not matches:
            raise ConfigError(f"worker on {socket.gethostname()}: unit {request.key} is not in the plan it computed "
                              "(is the same evalgemma and suite installed on every node?)")
        unit = matches[0]
        by_key = {v.key: v for v in unit.variants}
        absent = [k for k in request.variant_keys if k not in by_key]
        if absent:
            raise ConfigError(
                f"worker on {socket.gethostname()}: variants {absent} of unit {request.key} are not in the plan it computed "
                "(do all nodes have the same model files and evalgemma version?)"
            )
        labels = {k: by_key[k].label for k in request.variant_keys}
        unit = replace(unit, variants=[by_key[k] for k in request.variant_keys], stored=[])
        for item in evaluate_plan(restrict_plan(plan, [unit]), "worker", lambda kind, data: None, failures, {}):
            results.append((item.variant.key, item.result, item.provenance))
            device = str(item.provenance.get("device", ""))
    except EvalgemmaError as exc:
        names = labels or {k: k for k in request.variant_keys}
        done = {f[0] for f in failures} | {labels.get(k, k) for k, _, _ in results}
        failures.extend((label, request.task, f"{type(exc).__name__}: {exc}") for label in names.values() if label not in done)
    return UnitOutcome(request.key, results, failures, socket.gethostname(), os.getpid(), time.perf_counter() - started, device)


def _resolve_gpus(config: RunConfig, resources: dict[str, float]) -> float:
    available = float(resources.get("GPU", 0.0))
    gpus = config.executor.gpus_per_unit
    device = config.runtime.device
    if gpus is None:
        if device.startswith("cuda") and available < 1:
            raise ConfigError(f"--device {device} with --executor ray: the Ray cluster has no GPUs (use --device cpu, or --ray-address of a GPU cluster)")
        return 1.0 if available >= 1 and device != "cpu" else 0.0
    if gpus < 0:
        raise ConfigError(f"--gpus-per-unit {gpus}: must be 0 or more")
    if gpus > 0 and device == "cpu":
        raise ConfigError(f"--gpus-per-unit {gpus} with --device cpu: use --gpus-per-unit 0 for CPU workers")
    if gpus > available:
        raise ConfigError(
            f"--gpus-per-unit {gpus}: the Ray cluster has {available:g} GPU(s) in all, so no unit could ever be scheduled "
            "(use --gpus-per-unit 0 for CPU workers, or connect to a GPU cluster with --ray-address)"
        )
    return float(gpus)


def execute_ray(
    plan: Plan,
    *,
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
    unit_fn: Callable[[UnitRequest], UnitOutcome] | None = None,
) -> RunSummary:
    """Run every missing unit of ``plan`` as Ray tasks; the driver writes each unit's rows as it arrives.

    Connects to ``plan.config.ray_address`` (or ``$RAY_ADDRESS``, or starts a local Ray) unless
    Ray is already initialised in this process. Emits the same events as the local executor
    (``unit-done``, ``unit-failed``) plus ``unit-retry``. Every stored row gets this run's
    ``run_id`` and ``suite``; the other provenance (device, packages, timing) is the worker's.

    Args:
        plan: the plan (possibly one shard of a plan).
        on_event: progress callback ``(kind, data)``.
        unit_fn: what each Ray task runs (default :func:`run_unit`); tests wrap it to inject faults.

    Raises:
        ConfigError: Ray is not installed, the address is unreachable, or GPUs asked for do not exist.
        IncompleteRun: some units failed after their retries; every other unit is stored.
    """
    from evalgemma.errors import IncompleteRun
    from evalgemma.run.local import RunSummary, new_run_id
    from evalgemma.store.parquet import ensure_writable

    try:
        import ray
        from ray.exceptions import RayError
    except ImportError as exc:
        raise ConfigError("--executor ray: Ray is not installed (pip install 'evalgemma[ray]')") from exc

    config = plan.config
    xopts = config.executor
    emit = on_event or (lambda kind, data: None)
    run_id = new_run_id(config.runtime.run_name)
    started = time.perf_counter()
    skipped = sum(len(u.stored) for u in plan.units)
    todo = [u for u in plan.units if u.variants]
    if not todo:
        return RunSummary(run_id, [], [], skipped, 0.0)
    if xopts.max_retries < 0:
        raise ConfigError(f"--max-retries {xopts.max_retries}: must be 0 or more")
    ensure_writable(config.runtime.store)
    owns_ray = False
    if not ray.is_initialized():
        try:
            ray.init(address=xopts.ray_address, log_to_driver=False, logging_level=logging.WARNING)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            where = xopts.ray_address or os.environ.get("RAY_ADDRESS") or "a new local cluster"
            raise ConfigError(f"--ray-address {where}: cannot connect to Ray ({exc})") from exc
        owns_ray = True
    pending: dict[Any, tuple[UnitRequest, int]] = {}
    try:
        gpus = _resolve_gpus(config, ray.cluster_resources())
        base = worker_config(config, plan)
        remote = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=0, retry_exceptions=False)(unit_fn or run_unit)
        by_key = {unit_key(u): u for u in todo}

        def submit(request: UnitRequest, attempt: int) -> None:
            pending[remote.remote(request)] = (request, attempt)

        for unit in todo:
            submit(UnitRequest(base, unit.weight.key, unit.task.name, tuple(v.key for v in unit.variants)), 1)
        written: list[Path] = []
        failures: list[tuple[str, str, str]] = []
        retries: list[tuple[str, int, str]] = []
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            ref = ready[0]
            request, attempt = pending.pop(ref)
            unit = by_key[request.key]
            try:
                outcome = ray.get(ref)
            except RayError as exc:
                reason = _short_error(exc)
                if attempt <= xopts.max_retries:
                    retries.append((request.key, attempt, reason))
                    log.warning("unit %s: attempt %d failed (%s); retrying (%d of %d)", request.key, attempt, reason, attempt, xopts.max_retries)
                    emit("unit-retry", {"task": unit.task.name, "weight": unit.weight, "attempt": attempt, "error": reason})
                    submit(request, attempt + 1)
                    continue
                for variant in unit.variants:
                    error = f"gave up after {attempt} attempt(s): {reason}"
                    failures.append((variant.label, unit.task.name, error))
                    emit("unit-failed", {"variant": variant.label, "task": unit.task.name, "error": error})
                continue
            written.extend(persist_outcome(plan, unit, outcome, run_id, attempt, failures, emit))
    except BaseException:
        for ref in list(pending):  # interrupted or a store error: stop the units still running
            ray.cancel(ref, force=True)
        raise
    finally:
        if owns_ray:
            ray.shutdown()
    summary = RunSummary(run_id, written, failures, skipped, time.perf_counter() - started, {"ray_units": len(todo), "ray_retries": len(retries)})
    if failures:
        lines = "; ".join(f"{v} / {t}: {e}" for v, t, e in failures[:5])
        raise IncompleteRun(f"{len(failures)} unit(s) failed, {len(written)} stored: {lines}")
    return summary


def persist_outcome(
    plan: Plan, unit: ExecUnit, outcome: UnitOutcome, run_id: str, attempt: int,
    failures: list[tuple[str, str, str]], emit: Callable[[str, dict[str, Any]], None],
) -> list[Path]:
    """Store a worker's results as the local executor does (the driver is the only writer); record its failures.

    Every row gets this run's ``run_id`` and ``suite``; the other provenance (device, packages, timing) is the worker's.
    """
    from evalgemma.run.persist import unit_rows, write_result

    written: list[Path] = []
    variants = {v.key: v for v in unit.variants}
    for variant_key, result, provenance in outcome.results:
        rows = unit_rows(result, variants[variant_key], unit.task, {**provenance, "run_id": run_id, "suite": plan.suite_name})
        path = write_result(plan.config.runtime.store, rows, result.samples)
        written.append(path)
        emit("unit-done", {
            "variant": variants[variant_key].label, "task": result.task, "main_score": result.main_score,
            "cells": len(result.cells), "expected_cells": len(unit.task.cells),
            "wall_s": result.wall_s, "path": path, "host": outcome.host, "attempt": attempt,
        })
    for label, task, error in outcome.failures:
        failures.append((label, task, error))
        emit("unit-failed", {"variant": label, "task": task, "error": error})
    return written


def _short_error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = next((line for line in reversed(text) if line.strip()), "") if text else ""
    return f"{type(exc).__name__}: {first[:300]}"
