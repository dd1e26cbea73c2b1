"""Committed golden stores: one written by the v1 code (schema 1), one by this code (schema 2).

Both are real runs (all-MiniLM-L6-v2, CPU): smoke SmokeSTS + SmokeBitextMining at 384d and 64d, and
XTREME-UP de,es on the XQuAD-derived set. v1 files are read as they are (never rewritten) and upgraded
in memory; their cells equal the v2 run's, and every view computes task scores from cells.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import pytest

from evalgemma.store.parquet import load_results, scan_store
from evalgemma.store.schema import SCHEMA_VERSION
from evalgemma.views.leaderboard import build_leaderboard
from evalgemma.views.scores import task_scores

GOLDEN = Path(__file__).parent / "golden"


def digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("version", [1, 2])
def test_golden_store_reads_without_problems(version: int) -> None:
    root = GOLDEN / f"store-v{version}"
    before = digests(root)
    frame, problems = scan_store(root)
    assert problems == []
    assert set(frame["schema_version"]) == {version}
    assert version != SCHEMA_VERSION or version == 2
    assert (frame["backend"] == "torch").all()
    # every cell's version is set: v1's empty task_version becomes its dataset revision
    assert (frame["task_version"] != "").all()
    mteb_rows = frame[frame["task"] != "xtreme-up-cross-lang"]
    if version == 1:
        assert (mteb_rows["task_version"] == mteb_rows["data_revision"]).all()
    assert digests(root) == before  # reading never rewrites a file


def test_v1_and_v2_cells_are_equal() -> None:
    v1, v2 = load_results(GOLDEN / "store-v1"), load_results(GOLDEN / "store-v2")
    # XTREME-UP's cell version changed meaning in v2 (data version + index sha256, was "xtreme-up-<version>"),
    # so the cells are compared without it; MTEB and smoke versions are equal as stored.
    key = ["variant_key", "task", "split", "hf_subset", "metric"]
    mteb1, mteb2 = (f[f["task"] != "xtreme-up-cross-lang"] for f in (v1, v2))
    assert mteb1.set_index(key)["task_version"].sort_index().equals(mteb2.set_index(key)["task_version"].sort_index())
    a = v1.set_index(key)["value"].sort_index()
    b = v2.set_index(key)["value"].sort_index()
    assert list(a.index) == list(b.index)
    assert [x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b, strict=True)] == [True] * len(a)


@pytest.mark.parametrize("version", [1, 2])
def test_views_compute_task_scores_from_cells(version: int) -> None:
    frame = load_results(GOLDEN / f"store-v{version}")
    ts = task_scores(frame, "smoke").set_index(["variant", "task"])
    sts = ts.loc[("all-MiniLM-L6-v2 · 384d", "SmokeSTS")]
    assert sts["complete"] and (sts["n_cells"], sts["n_expected"]) == (5, 5)
    assert round(100 * sts["main_score"], 2) == 56.59  # the smoke baseline's value
    lb = build_leaderboard(frame, "smoke")
    assert all(r.mean_task.value is None and (r.mean_task.k, r.mean_task.n) == (2, 7) for r in lb.rows)
    # XTREME-UP: de and es are not languages of the paper's 20-language suite; v1 stored their
    # mean (45.05) as the unit's main_score, which no view reads as the suite's score
    xt = task_scores(frame, "xtreme-up").iloc[0]
    assert not xt["complete"] and (xt["n_cells"], xt["n_expected"]) == (0, 20)
    stored = frame[frame["task"] == "xtreme-up-cross-lang"]["main_score"].dropna().unique()
    assert (round(100 * stored[0], 2) == 45.05) if version == 1 else len(stored) == 0
