"""The Slurm executor (``--executor slurm``): one submitit job array over the plan's missing units.

Each job runs :func:`evalgemma.run.executors.run_unit` on one unit (the Ray executor's worker: re-plan
from the ``RunConfig``, evaluate, *return* the ``UnitResult``s) and the driver — the process that ran
``evalgemma run`` — persists them with the same ``persist_outcome`` as the Ray driver, so the store only has
to be reachable from the driver and a killed job leaves nothing behind.

Retries, two ways: the job function is checkpointable (submitit's ``checkpoint`` hook), so a preempted or timed-out
job is requeued by submitit with the same unit; a job that dies otherwise (killed, node failure, an
unexpected exception) is resubmitted by the driver up to ``--max-retries`` times, each retry reported.
evalgemma errors (bad data, bad config) are deterministic: reported at once, never retried.

``--slurm-cluster local`` runs the jobs as local processes with submitit's ``LocalExecutor`` (what the
tests use); ``debug`` runs them in this process. submitit is imported only here (``evalgemma[slurm]``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalgemma.errors import ConfigError

if TYPE_CHECKING:
    from evalgemma.run.executors import UnitOutcome, UnitRequest
    from evalgemma.run.local import RunSummary
    from evalgemma.run.plan import Plan

log = logging.getLogger(__name__)

#: Clusters ``--slurm-cluster`` accepts (submitit's names).
CLUSTERS = ("slurm", "local", "debug")


def parse_slurm_time(text: str) -> int:
    """``--slurm-time`` as minutes: ``MINUTES``, ``H:MM:SS`` or ``D-HH:MM:SS`` (sbatch's forms, seconds rounded up).

    Raises:
        ConfigError: anything else, or not positive.
    """
    value = text.strip()
    try:
        days = 0
        if "-" in value:
            d, value = value.split("-", 1)
            days = int(d)
        parts = [int(p) for p in value.split(":")]
        if len(parts) == 1:
            minutes = parts[0]
        elif len(parts) == 3:
            minutes = parts[0] * 60 + parts[1] + (1 if parts[2] else 0)
        else:
            raise ValueError(text)
        minutes += days * 24 * 60
    except ValueError:
        raise ConfigError(f"--slurm-time {text}: expected minutes, H:MM:SS or D-HH:MM:SS (as sbatch --time)") from None
    if minutes < 1:
        raise ConfigError(f"--slurm-time {text}: must be at least one minute")
    return minutes


class SlurmUnit:
    """The job function: run one unit (checkpointable: a preempted or timed-out job is requeued with the same unit)."""

    def __init__(self, fn: Callable[[UnitRequest], UnitOutcome] | None = None) -> None:
        self.fn = fn

    def __call__(self, request: UnitRequest) -> UnitOutcome:
        from evalgemma.run.executors import run_unit

        return (self.fn or run_unit)(request)

    def checkpoint(self, request: UnitRequest) -> Any:
        """What submitit requeues on preemption or timeout: the same unit (nothing is stored until it returns)."""
        import submitit

        return submitit.helpers.DelayedSubmission(SlurmUnit(self.fn), request)


def _executor(plan: Plan, folder: Path) -> Any:
    import submitit

    xopts = plan.config.executor
    cluster = xopts.slurm_cluster
    if cluster not in CLUSTERS:
        raise ConfigError(f"--slurm-cluster {cluster}: expected one of {', '.join(CLUSTERS)}")
    if cluster == "slurm" and submitit.SlurmExecutor.affinity() < 0:
        raise ConfigError("--executor slurm: Slurm is not available here (no sbatch on the PATH); run it on a login node, "
                          "or --slurm-cluster local to run the units as local processes")
    gpus = xopts.gpus_per_unit
    if gpus is None:
        gpus = 1 if plan.config.runtime.device.startswith("cuda") else 0
    if gpus < 0 or gpus != int(gpus):
        raise ConfigError(f"--gpus-per-unit {gpus}: Slurm takes a whole number of GPUs, 0 or more")
    # slurm_max_num_timeout: how often submitit requeues a unit that hit its time limit (preemptions are always requeued)
    executor = submitit.AutoExecutor(folder=folder / "%j", cluster=cluster, slurm_max_num_timeout=max(0, xopts.max_retries))
    params: dict[str, Any] = {"timeout_min": xopts.slurm_time_min, "gpus_per_node": int(gpus), "cpus_per_task": 4 if gpus else 2, "name": "evalgemma"}
    if xopts.slurm_partition:
        params["slurm_partition"] = xopts.slurm_partition
    executor.update_parameters(**params)
    return executor


def execute_slurm(
    plan: Plan,
    *,
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
    unit_fn: Callable[[UnitRequest], UnitOutcome] | None = None,
    poll_s: float = 1.0,
) -> RunSummary:
    """Run every missing unit of ``plan`` as one submitit job array; the driver writes each unit's rows as its job returns.

    Emits the local executor's events (``unit-done``, ``unit-failed``) plus ``unit-retry``.

    Args:
        plan: the plan (possibly one shard of a plan).
        on_event: progress callback ``(kind, data)``.
        unit_fn: what each job runs (default :func:`evalgemma.run.executors.run_unit`); tests wrap it to kill a job.
        poll_s: seconds between looks at the jobs' states.

    Raises:
        ConfigError: submitit is not installed, Slurm is not available, a bad ``--slurm-*`` value.
        IncompleteRun: some units failed after their retries; every other unit is stored.
    """
    from evalgemma.errors import IncompleteRun
    from evalgemma.run.executors import UnitRequest, _short_error, persist_outcome, unit_key, worker_config
    from evalgemma.run.local import RunSummary, new_run_id
    from evalgemma.store.parquet import ensure_writable

    try:
        import submitit  # noqa: F401
    except ImportError as exc:
        raise ConfigError("--executor slurm: submitit is not installed (pip install 'evalgemma[slurm]')") from exc

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
    folder = (xopts.slurm_folder or config.runtime.store.resolve().parent / "slurm-jobs").expanduser().resolve() / run_id
    executor = _executor(plan, folder)
    base = worker_config(config, plan)
    job_fn = SlurmUnit(unit_fn)
    by_key = {unit_key(u): u for u in todo}
    requests = [UnitRequest(base, u.weight.key, u.task.name, tuple(v.key for v in u.variants)) for u in todo]
    pending: dict[Any, tuple[UnitRequest, int]] = {}
    written: list[Path] = []
    failures: list[tuple[str, str, str]] = []
    retries: list[tuple[str, int, str]] = []
    try:
        for job, request in zip(executor.map_array(job_fn, requests), requests, strict=True):
            pending[job] = (request, 1)
        log.info("submitted job array %s (%d units) in %s", next(iter(pending)).job_id.split("_")[0], len(requests), folder)
        while pending:
            done = [job for job in pending if job.done()]
            if not done:
                time.sleep(poll_s)
                continue
            for job in done:
                request, attempt = pending.pop(job)
                unit = by_key[request.key]
                try:
                    outcome = job.result()
                except Exception as exc:  # submitit's UncompletedJobError / FailedJobError: the job died or raised
                    reason = _short_error(exc)
                    if attempt <= xopts.max_retries:
                        retries.append((request.key, attempt, reason))
                        log.warning("unit %s: job %s failed (%s); resubmitting (%d of %d)", request.key, job.job_id, reason, attempt, xopts.max_retries)
                        emit("unit-retry", {"task": unit.task.name, "weight": unit.weight, "attempt": attempt, "error": reason})
                        pending[executor.submit(job_fn, request)] = (request, attempt + 1)
                        continue
                    for variant in unit.variants:
                        error = f"gave up after {attempt} attempt(s): {reason}"
                        failures.append((variant.label, unit.task.name, error))
                        emit("unit-failed", {"variant": variant.label, "task": unit.task.name, "error": error})
                    continue
                written.extend(persist_outcome(plan, unit, outcome, run_id, attempt, failures, emit))
    except BaseException:
        for job in list(pending):  # interrupted or a store error: cancel the jobs still queued or running
            try:
                job.cancel(check=False)
            except Exception as exc:  # best effort: the job may be gone already
                log.warning("could not cancel job %s: %s", job.job_id, exc)
        raise
    summary = RunSummary(run_id, written, failures, skipped, time.perf_counter() - started,
                         {"slurm_units": len(todo), "slurm_retries": len(retries)})
    if failures:
        lines = "; ".join(f"{v} / {t}: {e}" for v, t, e in failures[:5])
        raise IncompleteRun(f"{len(failures)} unit(s) failed, {len(written)} stored: {lines}")
    return summary
