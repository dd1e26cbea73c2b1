"""The Parquet store: atomic units, crash safety, newest-run selection, schema checks."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evalgemma.errors import StoreError
from evalgemma.store.parquet import TMP_PREFIX, ensure_writable, load_results, safe_component, scan_store, stored_cells, unit_path, write_unit
from evalgemma.store.schema import SCHEMA_VERSION, arrow_schema


def rows(variant_key: str, task: str, value: float, finished_at: str, n: int = 3) -> list[dict[str, object]]:
    return [
        {
            "run_id": f"run-{finished_at}", "model": "m", "variant_key": variant_key, "variant": f"m · {variant_key}",
            "dim": 8, "task": task, "hf_subset": f"s{i}", "split": "test", "metric": "main", "value": value + i,
            "is_main": True, "main_score": value + 1, "finished_at": finished_at,
        }
        for i in range(n)
    ]


def test_write_and_load_round_trip(tmp_path: Path) -> None:
    path = write_unit(tmp_path, rows("v1-a", "T1", 0.5, "2026-01-01T00:00:00.000001Z"))
    assert path.parent == tmp_path / "v1-a" / "T1"
    frame = load_results(tmp_path)
    assert len(frame) == 3
    assert frame["value"].tolist() == [0.5, 1.5, 2.5]
    assert (frame["schema_version"] == SCHEMA_VERSION).all()
    assert frame["unit_id"].nunique() == 1
    assert stored_cells(frame) == {("v1-a", "T1", "", "test", f"s{i}") for i in range(3)}


def test_newest_run_wins_by_recorded_time_not_mtime(tmp_path: Path) -> None:
    newer = write_unit(tmp_path, rows("v1-a", "T1", 0.9, "2026-02-01T00:00:00.000000Z"))
    older = write_unit(tmp_path, rows("v1-a", "T1", 0.1, "2026-01-01T00:00:00.000000Z"))
    # Give the older run the newer mtime: the reader must still pick the recorded newest.
    os.utime(newer, (1, 1))
    os.utime(older, None)
    frame = load_results(tmp_path)
    assert frame["value"].tolist() == [0.9, 1.9, 2.9]
    assert len(load_results(tmp_path, all_runs=True)) == 6


def test_crash_inside_writer_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_unit(tmp_path, rows("v1-a", "T1", 0.5, "2026-01-01T00:00:00.000000Z"))

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq, "write_table", boom)
    with pytest.raises(StoreError, match="cannot write unit"):
        write_unit(tmp_path, rows("v1-b", "T1", 0.7, "2026-01-02T00:00:00.000000Z"))
    monkeypatch.undo()
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert len(files) == 1 and files[0].startswith("v1-a/T1/")
    assert load_results(tmp_path)["value"].tolist() == [0.5, 1.5, 2.5]


def test_killed_writer_leaves_no_visible_partial_file(tmp_path: Path) -> None:
    """A process SIGKILLed between writing the temp file and renaming it leaves only a .tmp- file."""
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        import evalgemma.store.parquet as store
        real_replace = os.replace
        def die(src, dst):
            os.kill(os.getpid(), signal.SIGKILL)
        store.os.replace = die
        rows = [dict(run_id="r", model="m", variant_key="v1-b", variant="m", dim=8, task="T1", hf_subset="x",
                     split="test", metric="main", value=0.1, is_main=True, finished_at="2026-01-03T00:00:00.000000Z")]
        store.write_unit(Path({str(tmp_path)!r}), rows)
        """
    )
    write_unit(tmp_path, rows("v1-a", "T1", 0.5, "2026-01-01T00:00:00.000000Z"))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -9
    leftovers = [p for p in tmp_path.rglob("*") if p.name.startswith(TMP_PREFIX)]
    assert len(leftovers) == 1  # the temp file of the killed write, never read
    frame, problems = scan_store(tmp_path)
    assert problems == []
    assert set(frame["variant_key"]) == {"v1-a"}


def test_bad_files_are_skipped_and_reported_never_deleted(tmp_path: Path) -> None:
    good = write_unit(tmp_path, rows("v1-a", "T1", 0.5, "2026-01-01T00:00:00.000000Z"))
    truncated = tmp_path / "v1-a" / "T1" / "truncated.parquet"
    truncated.write_bytes(good.read_bytes()[:100])
    foreign = tmp_path / "foreign.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), foreign)
    future = tmp_path / "v1-z" / "T1" / "future.parquet"
    future.parent.mkdir(parents=True)
    table = pa.Table.from_pylist([{**{f.name: None for f in arrow_schema()}, "schema_version": SCHEMA_VERSION + 1}], schema=arrow_schema())
    pq.write_table(table, future)
    before = {p: p.read_bytes() for p in (truncated, foreign, future)}
    with pytest.warns(UserWarning, match="skipped store file"):
        frame = load_results(tmp_path)
    assert frame["value"].tolist() == [0.5, 1.5, 2.5]
    _, problems = scan_store(tmp_path)
    reasons = {p.path.name: p.reason for p in problems}
    assert set(reasons) == {"truncated.parquet", "foreign.parquet", "future.parquet"}
    assert "unreadable Parquet" in reasons["truncated.parquet"]
    assert "not an evalgemma store file" in reasons["foreign.parquet"]
    assert "newer than this evalgemma" in reasons["future.parquet"]
    assert {p: p.read_bytes() for p in before} == before


def test_names_never_escape_the_store(tmp_path: Path) -> None:
    for name in ("../../etc", "/abs/path", "..", ".hidden", "a/b\\c", "ünïcødé/名前", "x" * 500, ""):
        comp = safe_component(name)
        assert "/" not in comp and "\\" not in comp and not comp.startswith(".") and comp
        path = unit_path(tmp_path, name, name, name).resolve()
        assert path.is_relative_to(tmp_path.resolve())


def test_unwritable_store_is_reported_before_work(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="not writable"):
        ensure_writable(blocker / "store")


def test_mixed_units_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="share variant_key and task"):
        write_unit(tmp_path, rows("v1-a", "T1", 0.5, "t") + rows("v1-b", "T1", 0.5, "t"))
