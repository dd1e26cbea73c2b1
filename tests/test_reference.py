"""Reference data reproduces the published aggregates under the leaderboard's MTEB rules."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from evalgemma.catalog.reference import load_reference, paper_aggregates, paper_rows, reference_dir
from evalgemma.views.leaderboard import build_leaderboard, build_subset_table

REPO = Path(__file__).resolve().parents[1]
GEMMA_MTEB = "embeddinggemma-300m · 768d (MTEB)"
GEMMA_PAPER = "embeddinggemma-300m · 768d (paper)"


def _shared_data() -> Path:
    root = Path(os.environ.get("EVALGEMMA_DATA", REPO.parent / "shared" / "data"))
    if not (root / "mteb_reference" / "task_scores.csv").is_file():
        msg = f"{root}/mteb_reference missing (set $EVALGEMMA_DATA)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return root


def _row(lb, label: str):  # type: ignore[no-untyped-def]
    (row,) = [r for r in lb.rows if r.variant == label]
    return row


@pytest.fixture(scope="module")
def mteb_ref():  # type: ignore[no-untyped-def]
    return load_reference("mteb")


@pytest.mark.parametrize(
    ("suite", "mean_task", "mean_type"),
    # published: [P] Tables 1/5 and the model card (docs/embeddinggemma.md §10.1)
    [("mteb-multilingual-v2", "61.15", "54.31"), ("mteb-eng-v2", "69.67", "65.11"), ("mteb-code-v1", "68.76", "68.76")],
)
def test_mteb_rows_reproduce_published_means(mteb_ref, suite: str, mean_task: str, mean_type: str) -> None:  # type: ignore[no-untyped-def]
    row = _row(build_leaderboard(None, suite, reference=mteb_ref), GEMMA_MTEB)
    assert (row.mean_task.text(), row.mean_tasktype.text()) == (mean_task, mean_type)
    # the same numbers as the paper-aggregates data file (two decimals)
    agg = paper_aggregates()
    agg = agg[(agg.variant == GEMMA_PAPER) & (agg.suite == suite)].set_index("statistic")["value"]
    assert round(100 * row.mean_task.value, 2) == round(100 * agg["mean_task"], 2)


def test_flores_is_substituted_from_the_paper(mteb_ref) -> None:  # type: ignore[no-untyped-def]
    rows = mteb_ref.rows
    flores = rows[(rows.variant == GEMMA_MTEB) & (rows.task == "FloresBitextMining")]
    assert list(flores.main_score) == [pytest.approx(0.5535)]  # [P] Table 10
    assert "substituted" in flores.source.iloc[0]
    # without it the suite is incomplete: 130/131, exactly as the results repo stands
    lb = build_leaderboard(
        None, "mteb-multilingual-v2", reference=load_reference("mteb").__class__(rows[rows.task != "FloresBitextMining"], mteb_ref.aggregates)
    )
    assert _row(lb, GEMMA_MTEB).mean_task.text() == "incomplete (130/131)"


def test_paper_per_task_rows_reproduce_per_type_means() -> None:
    ref = load_reference("paper")
    lb = build_leaderboard(None, "mteb-multilingual-v2", reference=ref)
    row = _row(lb, GEMMA_PAPER)
    assert (row.mean_task.text(), row.mean_tasktype.text()) == ("61.15", "54.31")
    agg = paper_aggregates()
    types = agg[(agg.variant == GEMMA_PAPER) & (agg.suite == "mteb-multilingual-v2") & (agg.statistic == "type_mean")]
    assert len(types) == 9
    for tt, v in zip(types.task_type, types.value, strict=True):  # [P] Table 5, e.g. BitextMining 64.40, STS 74.73
        assert row.columns[tt].text() == f"{100 * v:.2f}", tt


def test_xtreme_up_mean_of_20_languages() -> None:
    lb = build_subset_table(None, "xtreme-up", reference=load_reference("paper"))
    assert len(lb.column_names) == 20
    row = _row(lb, GEMMA_PAPER)
    assert row.mean_task.text() == "47.72"  # [P] Table 5; 47.7205 from Table 12's 20 values
    assert row.columns["hi"].text() == "63.19"
    # peers' per-language one-decimal rows give their Table 5 means, e.g. bge-m3 26.91
    assert _row(lb, "bge-m3 (paper)").mean_task.text() == "26.91"


def test_mteb_means_match_source_data_for_every_complete_named_model(mteb_ref) -> None:  # type: ignore[no-untyped-def]
    # benchmark_means.csv was computed independently by the data builder (over scored tasks, ×100)
    means = pd.read_csv(reference_dir() / "mteb_benchmark_means.csv")
    means = means[(means.model_group == "named") & (means.n_tasks_scored == means.n_tasks_benchmark)]
    checked = 0
    for suite, g in means.groupby("suite"):
        lb = build_leaderboard(None, suite, reference=mteb_ref)
        by_model = {r.model: r for r in lb.rows}
        for m in g.itertuples():
            r = by_model[m.model]
            assert 100 * r.mean_task.value == pytest.approx(m.mean_task_x100, abs=1e-4), (suite, m.model)
            assert 100 * r.mean_tasktype.value == pytest.approx(m.mean_tasktype_x100, abs=1e-4), (suite, m.model)
            checked += 1
    assert checked == 13  # eng v2: 9 complete named models; Code v1: 4 (Multilingual v2 lacks Flores for all)


def test_earliest_revisions_give_qwen3_paper_values() -> None:
    # README caveat 3: Qwen3-0.6B eng v2 is 70.47 at HEAD, 70.70 / 64.88 ([P] Table 5) with the earliest versions
    head = build_leaderboard(None, "mteb-eng-v2", reference=load_reference("mteb"))
    early = build_leaderboard(None, "mteb-eng-v2", reference=load_reference("mteb", revisions="earliest"))
    label = "Qwen3-Embedding-0.6B · 1024d (MTEB)"
    assert _row(head, label).mean_task.text() == "70.47"
    assert (_row(early, label).mean_task.text(), _row(early, label).mean_tasktype.text()) == ("70.70", "64.88")


def test_reference_rows_carry_source_and_kind() -> None:
    rows = pd.concat([paper_rows(), load_reference("mteb").rows])
    assert set(rows.kind) == {"paper", "mteb"}
    assert (rows.source.str.len() > 0).all()
    assert rows.main_score.between(-1, 1).all()  # 0-1 scale (InstructionReranking p-MRR can be negative)


def test_build_reference_is_reproducible(tmp_path: Path) -> None:
    data = _shared_data()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "build_reference.py"), "--data", str(data), "--docs", str(data.parent / "docs"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    for name in ("suite_tasks.csv", "paper_task_scores.csv", "paper_aggregates.csv", "mteb_benchmark_means.csv", "inputs.json"):
        assert (tmp_path / name).read_bytes() == (reference_dir() / name).read_bytes(), name
    new = pd.read_parquet(tmp_path / "mteb_task_scores.parquet")
    old = pd.read_parquet(reference_dir() / "mteb_task_scores.parquet")
    pd.testing.assert_frame_equal(new, old)


def test_every_reference_label_ends_with_its_kind_suffix() -> None:
    """``--baseline`` finds a published row by its label without this suffix (``LABEL_SUFFIXES``)."""
    from evalgemma.catalog.reference import LABEL_SUFFIXES

    ref = load_reference("both")
    labels = pd.concat([ref.rows[["variant", "kind"]], ref.aggregates[["variant", "kind"]]]).drop_duplicates()
    assert set(labels["kind"]) == set(LABEL_SUFFIXES)
    wrong = [(v, k) for v, k in zip(labels["variant"], labels["kind"], strict=True) if not v.endswith(LABEL_SUFFIXES[k])]
    assert wrong == []
    assert len(labels) > 40  # every paper and MTEB model, not an empty frame
