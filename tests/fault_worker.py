"""Subprocess helper for the fault tests (``tests/test_faults.py``): runs, writes and reads that get killed.

Importing torch, mteb and sentence-transformers takes 5-20 s on our 2-core machines, far too
long to pay once per killed run. So the tests start this script once as a *zygote*: it imports
everything, then forks one child per job. Each child is a separate process (its own pid, killed
with a real SIGKILL by the test); only the import cost is shared.

Protocol (JSON lines): the test writes commands to the zygote's stdin and reads events from its
stdout. Children write their events to the same stdout, one ``write`` call per line.

    {"cmd": "spawn", "job": {...}}   -> {"event": "spawned", "pid": P, "tag": T}
    {"cmd": "wait", "pid": P}        -> {"event": "exited", "pid": P, "code": C, "signal": S}
    {"cmd": "quit"}

Jobs (``job["kind"]``):

* ``run``: ``plan_run`` + ``execute`` with all-MiniLM-L6-v2 on real smoke tasks; emits the
  phase markers ``plan``, ``encode`` (before each model call), ``evaluate`` (unit start),
  ``write`` (just before ``store.write_unit``), ``written`` and ``done``. With
  ``fail_write_at = n`` the n-th write raises ``OSError(ENOSPC)`` inside the real
  ``write_unit`` (a full disk, simulated at the ``os.replace`` step).
* ``writeloop``: ``store.write_unit`` in a tight loop, ``units`` files of ``rows`` big rows
  each; emits ``wrote`` after each file.
* ``reader``: ``store.load_results`` in a loop until ``stop_file`` exists; writes a JSON report
  of every observation (and any exception) to ``report``.

``python tests/fault_worker.py writeloop STORE VARIANT UNITS ROWS`` runs one write loop
directly (no zygote), for manual experiments.
"""

from __future__ import annotations

import datetime
import errno
import hashlib
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

#: The tasks and dims of the ``run`` job: 2 real mteb tasks (smoke suite) x 4 dims = 8 store units.
RUN_TASKS = ("SmokeSTS", "SmokeRetrieval")
RUN_DIMS = (384, 256, 128, 64)
TASK = "FaultTask"


def emit(event: str, **data: Any) -> None:
    """One JSON line on stdout, written with a single ``os.write`` so lines never interleave."""
    line = json.dumps({"event": event, "pid": os.getpid(), "t": time.time(), **data}) + "\n"
    os.write(1, line.encode())


# ------------------------------------------------------------------ jobs


def make_rows(variant_key: str, unit: int, rows: int, *, task: str = TASK, pad: int = 400, **fields: Any) -> list[dict[str, Any]]:
    """Deterministic rows of one unit: ``value`` = unit * 1e6 + row index, a long ``extra`` string.

    ``finished_at`` grows with ``unit`` (one second per unit) so "newest" is well defined.
    """
    finished = (datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(seconds=unit)).isoformat()
    return [
        {
            "run_id": f"loop-{variant_key}", "model": "fault-model", "variant_key": variant_key, "variant": f"fault · {variant_key}",
            "dim": 64, "task": task, "hf_subset": f"s{i % 7}", "split": "test", "metric": f"m{i}", "value": float(unit * 1_000_000 + i),
            "is_main": i == 0, "main_score": float(unit), "finished_at": finished, "started_at": finished,
            # sha256 hex padding compresses poorly, so a file takes a while to write (kill window)
            "extra": json.dumps({"unit": unit, "row": i, "pad": (hashlib.sha256(f"{unit}-{i}".encode()).hexdigest() * (pad // 64 + 1))[:pad]}),
            **fields,
        }
        for i in range(rows)
    ]


def job_writeloop(job: dict[str, Any]) -> None:
    from evalgemma.store.parquet import write_unit

    if job.get("announce_writes"):
        # Say when the Parquet bytes start going into the temp file (it exists by then), and
        # linger a moment, so the test can kill inside a write on purpose, not by luck.
        import pyarrow.parquet as pq

        real_write_table = pq.write_table

        def announced(*args: Any, **kwargs: Any) -> None:
            emit("writing")
            time.sleep(0.05)
            real_write_table(*args, **kwargs)

        pq.write_table = announced
    store = Path(job["store"])
    for unit in range(int(job.get("start", 0)), int(job.get("start", 0)) + int(job["units"])):
        task = f"{job.get('task', TASK)}-{unit:04d}" if job.get("task_per_unit") else job.get("task", TASK)
        path = write_unit(store, make_rows(job["variant_key"], unit, int(job["rows"]), task=task))
        emit("wrote", unit=unit, path=str(path))
    emit("done")


def job_reader(job: dict[str, Any]) -> None:
    import warnings

    from evalgemma.store.parquet import load_results, scan_store

    stop = Path(job["stop_file"])
    observations: list[dict[str, Any]] = []
    errors: list[str] = []
    emit("reading")
    while True:
        last = stop.exists()  # read once more after the writers are done
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # a skipped (bad) file would be a warning: count it as an error
                frame = load_results(job["store"])
            _, problems = scan_store(job["store"])
            if problems:
                errors.append("; ".join(p.reason for p in problems))
            units = frame.groupby(["variant_key", "task"])["unit_id"].nunique().to_dict() if len(frame) else {}
            observations.append({
                "rows": len(frame),
                "units_per_key": sorted(set(units.values())),
                "rows_per_unit": sorted(set(frame.groupby("unit_id").size().tolist())) if len(frame) else [],
                "newest": {f"{k[0]}/{k[1]}": frame[frame["variant_key"] == k[0]]["unit_id"].iloc[0] for k in units},
            })
        except Exception:
            errors.append(traceback.format_exc())
        if last:
            break
    Path(job["report"]).write_text(json.dumps({"observations": observations, "errors": errors}))
    emit("done", reads=len(observations))


def job_run(job: dict[str, Any]) -> None:
    import warnings

    import evalgemma.store.parquet as store_mod
    from evalgemma.run import RunConfig, execute, plan_run

    real_write = store_mod.write_unit
    writes = {"n": 0}
    fail_at = job.get("fail_write_at")

    def write_unit(store: Path, rows: list[dict[str, Any]]) -> Path:
        writes["n"] += 1
        emit("write", n=writes["n"], task=rows[0]["task"], dim=int(rows[0]["dim"]))
        if fail_at is not None and writes["n"] == fail_at:
            real_replace = os.replace

            def full_disk(src: Any, dst: Any) -> None:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))

            os.replace = full_disk  # the temp file is written; the rename "fails" as on a full disk
            try:
                return real_write(store, rows)
            finally:
                os.replace = real_replace
        path = real_write(store, rows)
        emit("written", n=writes["n"], path=str(path))
        return path

    store_mod.write_unit = write_unit  # execute() imports it from the module at call time
    config = RunConfig.build(
        model="minilm", tasks=tuple(job.get("tasks", RUN_TASKS)), suite="smoke", dims=tuple(job.get("dims", RUN_DIMS)),
        store=Path(job["store"]), offline=False, device="cpu", show_progress=False, batch_size=16, force=bool(job.get("force", False)),
    )
    emit("plan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "not a declared Matryoshka dim": expected for MiniLM
        plan = plan_run(config)

    def on_event(kind: str, data: dict[str, Any]) -> None:
        if kind == "unit-start":
            emit("evaluate", task=data["task"], variant=data["variant"])

    def hook(encoder: Any) -> None:
        encoder.on_encode = lambda texts, prompt: emit("encode", n=len(texts))

    summary = execute(plan, on_event=on_event, encoder_hook=hook)
    emit("done", written=len(summary.written), skipped=summary.skipped)
    if job.get("linger"):
        time.sleep(120)  # a kill aimed at the last write must find the process alive


JOBS = {"run": job_run, "writeloop": job_writeloop, "reader": job_reader}


# ------------------------------------------------------------------ zygote


def _child(job: dict[str, Any]) -> None:
    code = 0
    try:
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)  # never read the zygote's commands
        JOBS[job["kind"]](job)
    except BaseException as exc:
        from evalgemma.errors import EvalgemmaError

        emit("error", type=type(exc).__name__, message=str(exc), exit_code=getattr(exc, "exit_code", 1), evalgemma=isinstance(exc, EvalgemmaError),
             traceback=traceback.format_exc()[-2000:])
        code = getattr(exc, "exit_code", 1) if isinstance(exc, EvalgemmaError) else 1
    finally:
        os._exit(code)


def zygote() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    torch.set_num_threads(1)  # one thread before any op: forked children must not inherit a thread pool
    import mteb  # noqa: F401
    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    import sentence_transformers  # noqa: F401

    import evalgemma.benchmarks.mteb.adapter
    import evalgemma.benchmarks.smoke.tasks
    import evalgemma.run.plan
    import evalgemma.store.parquet  # noqa: F401

    emit("ready")
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        if cmd["cmd"] == "quit":
            break
        if cmd["cmd"] == "spawn":
            pid = os.fork()
            if pid == 0:
                _child(cmd["job"])
            emit("spawned", child=pid, tag=cmd.get("tag", ""))
        elif cmd["cmd"] == "wait":
            _, status = os.waitpid(int(cmd["child"]), 0)
            emit("exited", child=int(cmd["child"]), code=os.waitstatus_to_exitcode(status))


def main(argv: list[str]) -> None:
    if argv[:1] == ["zygote"]:
        zygote()
    elif argv[:1] == ["writeloop"]:
        store, variant, units, rows = argv[1:5]
        job_writeloop({"store": store, "variant_key": variant, "units": int(units), "rows": int(rows)})
    else:
        raise SystemExit("usage: fault_worker.py zygote | writeloop STORE VARIANT UNITS ROWS")


if __name__ == "__main__":
    main(sys.argv[1:])
