"""Leaderboard rules on hand-made frames: task scores, means, incomplete, shared tasks, baseline Δ."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from evalgemma.errors import ConfigError, DataError
from evalgemma.store.parquet import load_results, write_unit
from evalgemma.views.leaderboard import (
    VariantName,
    build_leaderboard,
    build_subset_table,
    find_row,
    match_variant,
    recomputed_mismatches,
    task_scores,
)

# Variant A: T1 (STS) cells 0.5, 0.7 -> 0.6; T2 (STS) 0.8; T3 (Retrieval) 0.3
# Variant B: T1 0.4, T2 0.6, T3 0.5
# Variant C: T1 0.9, T3 0.1 (no T2)
SCORES = {
    ("a", "A"): {"T1": [0.5, 0.7], "T2": [0.8], "T3": [0.3]},
    ("b", "B"): {"T1": [0.4], "T2": [0.6], "T3": [0.5]},
    ("c", "C"): {"T1": [0.9], "T3": [0.1]},
}
TYPES = {"T1": "STS", "T2": "STS", "T3": "Retrieval"}


def _rows(suite: str = "mini") -> list[list[dict[str, object]]]:
    units = []
    for (key, label), tasks in SCORES.items():
        for task, cells in tasks.items():
            main = sum(cells) / len(cells)
            rows = []
            for i, v in enumerate(cells):
                base = dict(run_id="r1", model="m", variant_key=key, variant=label, dim=64, suite=suite, task=task,
                            task_type=TYPES[task], hf_subset=f"s{i}", split="test", main_score=main,
                            finished_at="2026-01-01T00:00:00+00:00")
                rows.append({**base, "metric": "main", "value": v, "is_main": True})
                rows.append({**base, "metric": "other", "value": 0.0, "is_main": False})
            units.append(rows)
    return units


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame([r for unit in _rows() for r in unit])


def test_task_scores_and_recomputation(frame: pd.DataFrame) -> None:
    ts = task_scores(frame).set_index(["variant_key", "task"])
    # computed from the cells: mean(0.5, 0.7); the is_main=False rows are ignored, the stored main_score is not read
    assert ts.loc[("a", "T1"), "main_score"] == pytest.approx(0.6, abs=1e-15)
    assert ts.loc[("a", "T1"), "n_cells"] == 2 and ts.loc[("a", "T1"), "n_expected"] == 2 and ts.loc[("a", "T1"), "complete"]
    assert recomputed_mismatches(frame).empty
    bad = frame.copy()
    bad.loc[(bad.variant_key == "b") & (bad.task == "T2"), "main_score"] = 0.61  # cells say 0.6
    mism = recomputed_mismatches(bad)
    assert list(zip(mism.variant_key, mism.task, strict=True)) == [("b", "T2")]


def test_means_and_incomplete(frame: pd.DataFrame) -> None:
    lb = build_leaderboard(frame, "mini")
    assert lb.expected == ("T1", "T2", "T3")
    assert [r.variant for r in lb.rows] == ["A", "B", "C"]  # 56.67, 50.00, then incomplete
    shown = lb.display_frame().set_index("Variant")
    # A: Mean(Task) = (0.6 + 0.8 + 0.3)/3 = 0.56667; types STS (0.6+0.8)/2 = 0.7, Retrieval 0.3 -> Mean(TaskType) 0.5
    assert shown.loc["A", "Mean(Task)"] == "56.67"
    assert shown.loc["A", "Mean(TaskType)"] == "50.00"
    assert shown.loc["A", "STS"] == "70.00" and shown.loc["A", "Retrieval"] == "30.00"
    # B: (0.4 + 0.6 + 0.5)/3 = 0.5; STS 0.5, Retrieval 0.5
    assert shown.loc["B", "Mean(Task)"] == "50.00" and shown.loc["B", "Mean(TaskType)"] == "50.00"
    # C lacks T2: no means, coverage instead; its complete type (Retrieval) still shows
    assert shown.loc["C", "Mean(Task)"] == "incomplete (2/3)"
    assert shown.loc["C", "Mean(TaskType)"] == "incomplete (2/3)"
    assert shown.loc["C", "STS"] == "incomplete (1/2)"
    assert shown.loc["C", "Retrieval"] == "10.00"
    numeric = lb.to_frame().set_index("variant")
    assert numeric.loc["A", "mean_task"] == pytest.approx(1.7 / 3, abs=1e-15)  # stored unrounded
    assert pd.isna(numeric.loc["C", "mean_task"]) and numeric.loc["C", "n_tasks"] == 2


def test_shared_tasks(frame: pd.DataFrame) -> None:
    lb = build_leaderboard(frame, "mini", shared_tasks=True)
    assert lb.compared == ("T1", "T3")
    shown = lb.display_frame().set_index("Variant")
    # shared T1, T3: A (0.6+0.3)/2 = 0.45; B (0.4+0.5)/2 = 0.45; C (0.9+0.1)/2 = 0.5; ties sorted by label
    assert [r.variant for r in lb.rows] == ["C", "A", "B"]
    assert shown.loc["C", "Mean(Task)"] == "50.00" and shown.loc["A", "Mean(Task)"] == "45.00"
    assert shown.loc["A", "Mean(TaskType)"] == "45.00"  # STS 0.6, Retrieval 0.3
    assert any("compared on 2 of 3 tasks" in n for n in lb.notes)


def test_shared_tasks_with_nothing_shared_is_a_data_error(frame: pd.DataFrame) -> None:
    # A, B, C have only T1; D has only T2: no task is common to all four
    only_t1 = frame[frame.task == "T1"]
    d = frame[(frame.variant_key == "a") & (frame.task == "T2")].assign(variant_key="d", variant="D")
    with pytest.raises(DataError, match="no task of suite 'mini' is shared"):
        build_leaderboard(pd.concat([only_t1, d]), "mini", shared_tasks=True)


@pytest.mark.parametrize("baseline", ["B", "b"])
def test_baseline_deltas(frame: pd.DataFrame, baseline: str) -> None:
    lb = build_leaderboard(frame, "mini", baseline=baseline)
    shown = lb.display_frame().set_index("Variant")
    # A − B: Mean(Task) 0.56667 − 0.5 = +6.67; Mean(TaskType) 0.5 − 0.5 = 0; STS 0.7 − 0.5 = +20; Retrieval 0.3 − 0.5 = −20
    assert shown.loc["A", "Δ Mean(Task)"] == "+6.67"
    assert shown.loc["A", "Δ Mean(TaskType)"] == "+0.00"
    assert shown.loc["A", "Δ STS"] == "+20.00" and shown.loc["A", "Δ Retrieval"] == "-20.00"
    # C is incomplete: no overall Δ; its Retrieval 0.1 − 0.5 = −40
    assert shown.loc["C", "Δ Mean(Task)"] == "–" and shown.loc["C", "Δ Retrieval"] == "-40.00"
    assert shown.loc["B", "Δ Mean(Task)"] == "+0.00"


def test_unknown_baseline_names_close_matches(frame: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match=r"--baseline: unknown variant 'AA'.*Valid: A, B, C"):
        build_leaderboard(frame, "mini", baseline="AA")


def test_unknown_suite_is_a_data_error(frame: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="suite 'nope': no results"):
        build_leaderboard(frame, "nope")


def test_subset_table_mean_and_missing_language() -> None:
    rows = []
    for key, vals in {"x": {"as": 0.4, "hi": 0.6}, "y": {"as": 0.2}}.items():
        for lang, v in vals.items():
            rows.append(dict(variant_key=key, variant=key.upper(), model="m", dim=8, suite="xtreme-up", task="xtreme-up-cross-lang",
                             task_type="Retrieval", hf_subset=lang, split="test", metric="mrr_at_10", value=v, is_main=True,
                             main_score=sum(vals.values()) / len(vals)))
    lb = build_subset_table(pd.DataFrame(rows), "xtreme-up", subsets=("as", "hi"), baseline="X")
    shown = lb.display_frame().set_index("Variant")
    assert shown.loc["X", "Mean"] == "50.00"  # (0.4 + 0.6)/2
    assert shown.loc["Y", "Mean"] == "incomplete (1/2)"
    assert shown.loc["Y", "hi"] == "–"
    assert shown.loc["Y", "Δ as"] == "-20.00"  # 0.2 − 0.4


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-c", "from evalgemma.cli.app import main; main()", *args], capture_output=True, text=True, env=env, timeout=120)


def test_cli_leaderboard_from_store(tmp_path: Path) -> None:
    store = tmp_path / "store"
    for unit in _rows():
        write_unit(store, unit)
    assert len(load_results(store)) == 2 * 9  # 9 main cells (+9 other-metric rows)
    proc = _cli("leaderboard", "--store", str(store), "--suite", "mini", "--reference", "none", "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    out = pd.read_csv(pd.io.common.StringIO(proc.stdout)).set_index("variant")
    assert out.loc["A", "mean_task"] == pytest.approx(1.7 / 3)
    assert pd.isna(out.loc["C", "mean_task"])
    proc = _cli("leaderboard", "--store", str(store), "--suite", "mini", "--reference", "none", "--format", "markdown", "--shared-tasks", "--baseline", "B")
    assert proc.returncode == 0, proc.stderr
    assert "| C | run | 50.00 | 50.00 | 90.00 | 10.00 | +5.00 |" in proc.stdout
    assert "--shared-tasks: compared on 2 of 3 tasks" in proc.stdout
    proc = _cli("leaderboard", "--store", str(store), "--format", "xml")
    assert proc.returncode == 2 and "Invalid value for '--format': unknown format 'xml'" in proc.stderr
    proc = _cli("leaderboard", "--store", str(store), "--reference", "papr")
    assert proc.returncode == 2 and "Did you mean 'paper'" in proc.stderr


# ---------------------------------------------------------------- --baseline: labels, keys, reference labels

RUN = VariantName("g · 768d", "v1-aaaaaaaaaaaa", "run")
PAPER = VariantName("g · 768d (paper)", "ref-paper0000000", "paper")
MTEB = VariantName("g · 768d (MTEB)", "ref-mteb00000000", "mteb")


@pytest.mark.parametrize(("name", "variants", "want"), [
    ("g · 768d", [RUN, PAPER], RUN),                 # the exact label wins over a reference label without suffix
    ("g · 768d", [PAPER], PAPER),                    # the README example: only the paper's row has it
    ("g · 768d", [MTEB], MTEB),
    ("g · 768d (paper)", [RUN, PAPER, MTEB], PAPER),  # full labels and keys stay exact
    ("ref-mteb00000000", [PAPER, MTEB], MTEB),
    ("g · 768d", [PAPER, PAPER], PAPER),             # the same variant on several boards is one variant
    ("m", [VariantName("m (paper)", "v1-bbbbbbbbbbbb", "run")], None),  # a run's label is never shortened
    ("g · 512d", [RUN, PAPER], None),
])
def test_match_variant(name: str, variants: list[VariantName], want: VariantName | None) -> None:
    assert match_variant(name, variants) == want


def test_match_variant_refuses_an_ambiguous_name() -> None:
    want = r"--baseline: 'g · 768d' matches 2 variants: 'g · 768d \(MTEB\)' \(ref-mteb00000000\), 'g · 768d \(paper\)' \(ref-paper0000000\)"
    with pytest.raises(ConfigError, match=want):
        match_variant("g · 768d", [PAPER, MTEB])
    twins = [RUN, VariantName("g · 768d", "v1-cccccccccccc", "run")]
    with pytest.raises(ConfigError, match="matches 2 variants"):
        match_variant("g · 768d", twins)


def test_find_row_suggests_labels_without_suffix(frame: pd.DataFrame) -> None:
    lb = build_leaderboard(frame, "mini")
    assert find_row(lb.rows, "b").variant == "B"
    with pytest.raises(ConfigError, match=r"--baseline: unknown variant 'BB'. Did you mean 'B'\?"):
        find_row(lb.rows, "BB")


def test_cli_baseline_is_a_paper_row_by_its_short_label(tmp_path: Path) -> None:
    """The README example: the paper's EmbeddingGemma row named without ' (paper)' is the Δ baseline."""
    empty = tmp_path / "store"
    empty.mkdir()
    proc = _cli(
        "leaderboard", "--store", str(empty), "--suite", "mteb-eng-v2", "--reference", "paper", "--baseline", "embeddinggemma-300m · 768d", "--format", "csv"
    )
    assert proc.returncode == 0, proc.stderr
    out = pd.read_csv(pd.io.common.StringIO(proc.stdout)).set_index("variant")
    base, q4 = out.loc["embeddinggemma-300m · 768d (paper)"], out.loc["embeddinggemma-300m · q4_0(qat) · 768d (paper)"]
    assert base["Δ Mean(Task)"] == 0.0
    # the paper's MTEB(eng, v2) means: 69.67 (full precision) and 69.31 (Q4_0 QAT)
    assert round(100 * base["mean_task"], 2) == 69.67 and round(100 * q4["mean_task"], 2) == 69.31
    assert q4["Δ Mean(Task)"] == pytest.approx(q4["mean_task"] - base["mean_task"], abs=0)
    both = _cli("leaderboard", "--store", str(empty), "--suite", "mteb-eng-v2", "--reference", "both", "--baseline", "embeddinggemma-300m · 768d")
    assert both.returncode == 2 and "'embeddinggemma-300m · 768d' matches 2 variants" in both.stderr
    typo = _cli("leaderboard", "--store", str(empty), "--suite", "mteb-eng-v2", "--reference", "paper", "--baseline", "embeddinggemma-300m · 786d")
    assert typo.returncode == 2 and "Did you mean 'embeddinggemma-300m · 768d'" in typo.stderr
