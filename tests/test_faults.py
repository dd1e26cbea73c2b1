"""Kill and concurrency tests (``pytest -m slow``): SIGKILL at random moments, concurrent writers.

The jobs run in processes forked from one zygote (``tests/fault_worker.py``) that imported torch,
mteb and sentence-transformers once; every job is still its own process, killed with a real
SIGKILL. Kill moments come from a seeded RNG and are printed (``-s``) and recorded in
``FAULT_LOG`` (``$EVALGEMMA_FAULT_LOG`` or a temp file), so a failing trial can be replayed.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from evalgemma.store.parquet import TMP_PREFIX, load_results, scan_store

pytestmark = pytest.mark.slow

WORKER = Path(__file__).parent / "fault_worker.py"
SEED = 20261127
KILLS = 20
KEY = ["variant_key", "task", "hf_subset", "split", "metric"]
RUN_JOB = {"kind": "run", "tasks": ["SmokeSTS"], "dims": [384, 256, 128, 64]}  # 4 store units per run


class Zygote:
    """The test's handle on ``fault_worker.py zygote``: spawn jobs, read their events, wait."""

    def __init__(self) -> None:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONWARNINGS": "ignore"}
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), "zygote"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True, bufsize=1
        )
        self.events: dict[int, queue.Queue[dict[str, Any]]] = defaultdict(queue.Queue)
        self.control: queue.Queue[dict[str, Any]] = queue.Queue()
        self.log: dict[int, list[dict[str, Any]]] = defaultdict(list)
        threading.Thread(target=self._read, daemon=True).start()
        ready = self.control.get(timeout=300)
        assert ready["event"] == "ready", ready

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if not line.startswith("{"):
                continue
            event = json.loads(line)
            if event["event"] in ("ready", "spawned", "exited"):
                self.control.put(event)
            else:
                self.log[event["pid"]].append(event)
                self.events[event["pid"]].put(event)

    def _send(self, cmd: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self.control.get(timeout=300)

    def spawn(self, job: dict[str, Any]) -> int:
        return int(self._send({"cmd": "spawn", "job": job})["child"])

    def wait(self, pid: int) -> int:
        """Exit code of a job: 0, an evalgemma code, or -9 after SIGKILL."""
        return int(self._send({"cmd": "wait", "child": pid})["code"])

    def next_event(self, pid: int, names: set[str], timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            event = self.events[pid].get(timeout=max(0.1, deadline - time.monotonic()))
            if event["event"] in names:
                return event
            if event["event"] in ("done", "error"):
                raise AssertionError(f"job {pid} ended before {names}: {event}")

    def run_to_end(self, job: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
        pid = self.spawn(job)
        code = self.wait(pid)
        return code, self.log[pid]

    def close(self) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write('{"cmd": "quit"}\n')
            self.proc.stdin.flush()
            self.proc.wait(timeout=30)
        except Exception:
            self.proc.kill()


@pytest.fixture(scope="module")
def zygote() -> Any:
    z = Zygote()
    yield z
    z.close()


@pytest.fixture(scope="module")
def fault_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(os.environ.get("EVALGEMMA_FAULT_LOG") or tmp_path_factory.mktemp("faults") / "fault_log.jsonl")


def values(frame: Any) -> dict[tuple[str, ...], float]:
    return {tuple(str(r[k]) for k in KEY): float(r["value"]) for _, r in frame.iterrows()}


def read_paths(store: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, list[Any], list[Path]]:
    """scan_store, recording every path pyarrow was asked to read."""
    import pyarrow.parquet as pq

    seen: list[Path] = []
    real = pq.read_table

    def spy(path: Any, *a: Any, **k: Any) -> Any:
        seen.append(Path(path))
        return real(path, *a, **k)

    monkeypatch.setattr(pq, "read_table", spy)
    frame, problems = scan_store(store)
    monkeypatch.setattr(pq, "read_table", real)
    return frame, problems, seen


@pytest.fixture(scope="module")
def reference(zygote: Zygote, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """An uninterrupted run: its values, rows per unit and the time each phase took."""
    store = tmp_path_factory.mktemp("reference")
    code, events = zygote.run_to_end({**RUN_JOB, "store": str(store)})
    assert code == 0, events[-1]
    frame = load_results(store)
    per_unit = frame.groupby("unit_id").size()
    assert len(per_unit) == 4 and per_unit.nunique() == 1
    # Duration of each phase occurrence: from its marker to the next event of the run.
    spans: dict[str, list[float]] = defaultdict(list)
    for a, b in itertools.pairwise(events):
        if a["event"] in ("encode", "evaluate", "write"):
            spans[a["event"]].append(b["t"] - a["t"])
    assert len(spans["write"]) == 4 and len(spans["evaluate"]) == 4 and spans["encode"]
    return {"values": values(frame), "rows_per_unit": int(per_unit.iloc[0]), "spans": dict(spans), "n_rows": len(frame)}


def check_consistent(store: Path, reference: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    """The store after a crash: loads, no partial unit, no temp file read, stored values exact.

    Returns (units stored, temp files left by the crash).
    """
    frame, problems, seen = read_paths(store, monkeypatch)
    assert problems == []
    assert not any(p.name.startswith(TMP_PREFIX) for p in seen)
    # unit files (per-sample side tables under _samples/ are not units; the scan skips them)
    files = [p for p in store.rglob("*.parquet") if not p.name.startswith(TMP_PREFIX) and "_samples" not in p.relative_to(store).parts]
    assert sorted(seen) == sorted(files)
    sizes = frame.groupby("unit_id").size()
    assert (sizes == reference["rows_per_unit"]).all()  # every unit file has all its rows
    assert len(sizes) == len(files)
    got = values(frame)
    assert got == {k: reference["values"][k] for k in got}  # what was stored is exactly right
    return len(files), len(list(store.rglob(f"{TMP_PREFIX}*")))


def test_kill_during_encode_evaluate_write_then_rerun(
    zygote: Zygote, reference: dict[str, Any], tmp_path: Path, fault_log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    survived = 0
    for trial in range(KILLS):
        rng = random.Random(SEED + trial)
        phase = ("encode", "evaluate", "write")[trial % 3]
        spans = reference["spans"][phase]
        occurrence = rng.randrange(len(spans))
        delay = rng.uniform(0, spans[occurrence])
        store = tmp_path / f"trial{trial:02d}"
        pid = zygote.spawn({**RUN_JOB, "store": str(store), "linger": True})
        for _ in range(occurrence + 1):
            zygote.next_event(pid, {phase})
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        assert zygote.wait(pid) == -signal.SIGKILL
        last = zygote.log[pid][-1]["event"]
        stored, temps = check_consistent(store, reference, monkeypatch)
        # Rerun: completes, evaluates only the missing units, ends identical to the uninterrupted run.
        code, events = zygote.run_to_end({**RUN_JOB, "store": str(store)})
        assert code == 0, events[-1]
        done = events[-1]
        assert done["event"] == "done" and done["written"] == 4 - stored and done["skipped"] == stored
        frame = load_results(store)
        assert values(frame) == reference["values"]
        assert frame.groupby(["variant_key", "task"])["unit_id"].nunique().max() == 1
        check_consistent(store, reference, monkeypatch)
        record = {
            "trial": trial,
            "seed": SEED + trial,
            "phase": phase,
            "occurrence": occurrence + 1,
            "delay_s": round(delay, 4),
            "last_event": last,
            "units_before_rerun": stored,
            "temp_files_left": temps,
        }
        with fault_log.open("a") as fh:
            fh.write(json.dumps(record) + "\n")
        print("kill", record)
        survived += 1
    assert survived == KILLS


def test_kill_in_a_tight_write_loop(zygote: Zygote, tmp_path: Path, fault_log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = 3000
    mid_write = 0
    for trial in range(KILLS):
        rng = random.Random(SEED + 1000 + trial)
        store = tmp_path / f"loop{trial:02d}"
        # Even trials kill right inside a write (the worker announces it); odd ones at a random moment.
        aimed = trial % 2 == 0
        pid = zygote.spawn(
            {"kind": "writeloop", "store": str(store), "variant_key": "vLoop", "units": 10_000, "rows": rows, "task_per_unit": True, "announce_writes": aimed}
        )
        zygote.next_event(pid, {"wrote"})  # the loop is running
        if aimed:
            zygote.next_event(pid, {"writing"})
        else:
            time.sleep(rng.uniform(0, 0.5))
        os.kill(pid, signal.SIGKILL)
        assert zygote.wait(pid) == -signal.SIGKILL
        frame, problems, seen = read_paths(store, monkeypatch)
        assert problems == [] and not any(p.name.startswith(TMP_PREFIX) for p in seen)
        written = [e["unit"] for e in zygote.log[pid] if e["event"] == "wrote"]
        sizes = frame.groupby("task").size()
        assert (sizes == rows).all()
        units = sorted(int(t.rsplit("-", 1)[1]) for t in sizes.index)
        # Every reported write is there, plus at most the one renamed just before the kill.
        assert units[: len(written)] == written and len(units) - len(written) in (0, 1)
        assert units == list(range(len(units)))
        for unit in units:  # exact content, row by row
            vals = frame[frame["task"] == f"FaultTask-{unit:04d}"]["value"].tolist()
            assert vals == [float(unit * 1_000_000 + i) for i in range(rows)]
        temps = len(list(store.rglob(f"{TMP_PREFIX}*")))
        mid_write += temps > 0
        with fault_log.open("a") as fh:
            fh.write(json.dumps({"loop_trial": trial, "units": len(units), "temp_files_left": temps}) + "\n")
    print(f"write-loop kills: {KILLS}/{KILLS} consistent, {mid_write} landed mid-write (temp file left behind)")
    assert mid_write >= KILLS // 2  # every aimed kill lands inside a write (a temp file is left), or the test proves little


def _reader(zygote: Zygote, store: Path, tmp: Path) -> tuple[int, Path, Path]:
    stop, report = tmp / "stop", tmp / "report.json"
    pid = zygote.spawn({"kind": "reader", "store": str(store), "stop_file": str(stop), "report": str(report)})
    zygote.next_event(pid, {"reading"})
    return pid, stop, report


def test_four_writers_and_a_reader(zygote: Zygote, tmp_path: Path, fault_log: Path) -> None:
    store, units, rows = tmp_path / "store", 25, 200
    store.mkdir()
    reader, stop, report = _reader(zygote, store, tmp_path)
    writers = [
        zygote.spawn({"kind": "writeloop", "store": str(store), "variant_key": f"v{w}", "units": units, "rows": rows, "task_per_unit": True}) for w in range(4)
    ]
    assert [zygote.wait(pid) for pid in writers] == [0, 0, 0, 0]
    stop.touch()
    assert zygote.wait(reader) == 0
    seen = json.loads(report.read_text())
    assert seen["errors"] == []
    obs = seen["observations"]
    assert len(obs) >= 2
    counts = [o["rows"] for o in obs]
    assert counts == sorted(counts)  # the store only grows, as every reader sees it
    assert all(o["rows_per_unit"] in ([], [rows]) for o in obs)  # never a partial unit
    frame, problems = scan_store(store)
    assert problems == [] and len(frame) == 4 * units * rows  # 0 rows lost
    assert frame.groupby("variant_key").size().to_dict() == {f"v{w}": units * rows for w in range(4)}
    with fault_log.open("a") as fh:
        fh.write(json.dumps({"concurrent_writers": 4, "reads_during_writes": len(obs), "rows": len(frame), "rows_lost": 4 * units * rows - len(frame)}) + "\n")


def test_two_processes_run_the_same_unit(zygote: Zygote, reference: dict[str, Any], tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    reader, stop, report = _reader(zygote, store, tmp_path)
    job = {**RUN_JOB, "store": str(store), "force": True}  # force: both evaluate, whoever plans first
    a, b = zygote.spawn(job), zygote.spawn(job)
    assert (zygote.wait(a), zygote.wait(b)) == (0, 0)
    stop.touch()
    assert zygote.wait(reader) == 0
    seen = json.loads(report.read_text())
    assert seen["errors"] == []
    # The reader got one answer per unit every time: one run's complete rows, never a mix.
    assert all(o["units_per_key"] in ([], [1]) and o["rows_per_unit"] in ([], [reference["rows_per_unit"]]) for o in seen["observations"])
    everything, problems = scan_store(store)
    assert problems == []
    assert everything.groupby(["variant_key", "task"])["unit_id"].nunique().tolist() == [2, 2, 2, 2]  # both runs stored
    newest = load_results(store)
    for key, group in everything.groupby(["variant_key", "task"]):
        want = group.sort_values(["finished_at", "unit_id"])["unit_id"].iloc[-1]
        assert set(newest[(newest["variant_key"] == key[0]) & (newest["task"] == key[1])]["unit_id"]) == {want}
    assert values(newest) == reference["values"]


def test_full_disk_mid_run_keeps_earlier_units(zygote: Zygote, reference: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "store"
    code, events = zygote.run_to_end({**RUN_JOB, "store": str(store), "fail_write_at": 3})
    assert code == 3  # StoreError
    error = events[-1]
    assert error["event"] == "error" and error["type"] == "StoreError"
    assert "cannot write unit (No space left on device); earlier units are intact" in error["message"]
    assert error["message"].startswith(str(store))
    stored, temps = check_consistent(store, reference, monkeypatch)
    assert (stored, temps) == (2, 0)  # units 1-2 stay, the failed one left no temp file
    code, events = zygote.run_to_end({**RUN_JOB, "store": str(store)})
    assert code == 0 and events[-1]["written"] == 2
    assert values(load_results(store)) == reference["values"]
