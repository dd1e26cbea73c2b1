"""`evalgemma run --suite xtreme-up` end to end on the XQuAD-derived set in XTREME-UP's layout."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evalgemma.benchmarks.xtreme_up.retrieval import load_xtreme_up, passage_text, reciprocal_ranks
from evalgemma.errors import DataError
from evalgemma.run import RunConfig, execute, plan_run
from evalgemma.store.parquet import load_results


@pytest.fixture(scope="module")
def xquad_root(shared_data: Path) -> Path:
    from conftest import require

    return require(shared_data / "xtreme_up_format_xquad", "XTREME-UP-format XQuAD data")


@pytest.fixture(scope="module")
def xtreme_store(xquad_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("xtreme")
    with pytest.warns(UserWarning):  # de is not one of the suite's 20 Indic languages
        plan = plan_run(
            RunConfig.build(
                model="minilm", suite="xtreme-up", data_dir=xquad_root, langs=("de",), dims=(384, 128), store=store, device="cpu", show_progress=False
            )
        )
    summary = execute(plan)
    assert len(summary.written) == 2
    # Index and queries are encoded once for both dims: each distinct passage and question once.
    data = load_xtreme_up(xquad_root, "retrieval_cross_lang", "test", ["de"])
    distinct = len({passage_text(r) for r in data.index_rows}) + len({r["question"] for r in data.queries["de"]})
    assert distinct < 240 + 1190  # the set repeats a few texts
    assert summary.encode_stats["texts_encoded"] == distinct
    return store


@pytest.mark.slow  # the module's xtreme_store run plus an independent re-encode (about 50 s)
def test_rows_and_scores(xtreme_store: Path, xquad_root: Path, minilm_path: Path) -> None:
    frame = load_results(xtreme_store)
    full = frame[frame["dim"] == 384]
    main = full[full["is_main"]]
    assert main["task"].tolist() == ["xtreme-up-cross-lang"] and main["metric"].tolist() == ["mrr_at_10"]
    assert main["hf_subset"].tolist() == ["de"] and main["split"].tolist() == ["test"]
    # The data README lists all-MiniLM-L6-v2's de MRR@10 as 0.456 (official texts, no prompts).
    assert main["value"].iloc[0] == pytest.approx(0.456, abs=0.0006)
    counts = full.set_index("metric")["value"]
    assert counts["n_queries"] == 1190 and counts["n_index"] == 240 and counts["n_missing_gold"] == 0
    # de is not one of the suite's 20 languages: the task is incomplete, so no task score is stored
    assert full["main_score"].isna().all()
    assert json.loads(full["extra"].iloc[0])["file_sha256"]
    assert full["data_sha256"].iloc[0]
    # Independent check of the stored value: numpy, per query, the official formula.
    from sentence_transformers import SentenceTransformer

    data = load_xtreme_up(xquad_root, "retrieval_cross_lang", "test", ["de"])
    model = SentenceTransformer(str(minilm_path), device="cpu")
    docs = model.encode([passage_text(r) for r in data.index_rows], convert_to_numpy=True)
    queries = model.encode([r["question"] for r in data.queries["de"]], convert_to_numpy=True)
    docs /= np.maximum(np.linalg.norm(docs, axis=1, keepdims=True), 1e-9)
    queries /= np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-9)
    total = 0.0
    for q, row in zip(queries, data.queries["de"], strict=True):
        order = np.argsort(-(docs @ q), kind="stable")[:10]
        ranked = [data.index_ids[i] for i in order]
        total += 1 / (ranked.index(str(row["id"])) + 1) if str(row["id"]) in ranked else 0.0
    assert main["value"].iloc[0] == pytest.approx(total / len(queries), abs=1e-6)
    assert reciprocal_ranks(["a"], [["b", "a"]]).tolist() == [0.5]


@pytest.mark.slow  # the module's xtreme_store run plus an independent re-encode (about 50 s)
def test_truncated_dim_scores_lower(xtreme_store: Path) -> None:
    frame = load_results(xtreme_store)
    mrr = frame[frame["is_main"]].set_index("dim")["value"]
    assert mrr[128] < mrr[384]


@pytest.mark.slow  # the module's xtreme_store run plus an independent re-encode (about 50 s)
def test_leaderboard_shows_the_language(xtreme_store: Path) -> None:
    import pandas as pd

    from evalgemma.views.leaderboard import build_subset_table, expected_subsets

    frame = load_results(xtreme_store)
    stored = frame[frame["is_main"]].set_index("variant")["value"]
    # the library's per-language table for the evaluated language: the stored MRR@10, unrounded
    lb = build_subset_table(frame, "xtreme-up", subsets=("de",))
    table = lb.to_frame().set_index("variant")
    assert sorted(table.index) == ["all-MiniLM-L6-v2 · 128d", "all-MiniLM-L6-v2 · 384d"]
    for label in table.index:
        assert table.loc[label, "de"] == stored[label] and table.loc[label, "mean_task"] == stored[label]
    # the CLI shows the suite's 20 languages: de is not one of them, so every mean is incomplete (0/20)
    env = {**os.environ, "COLUMNS": "250"}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from evalgemma.cli.app import main; main()",
            "leaderboard",
            "--suite",
            "xtreme-up",
            "--store",
            str(xtreme_store),
            "--reference",
            "none",
            "--format",
            "csv",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    shown = pd.read_csv(pd.io.common.StringIO(proc.stdout)).set_index("variant")
    languages = expected_subsets("xtreme-up")
    assert len(languages) == 20 and "de" not in languages
    assert sorted(shown.index) == sorted(table.index)
    assert [c for c in shown.columns if c in languages] == list(languages) and "de" not in shown.columns
    assert (shown["n_tasks"] == 0).all() and (shown["n_expected"] == 20).all() and shown["mean_task"].isna().all()


def test_bad_data_fails_before_loading_the_model(tmp_path: Path, xquad_root: Path) -> None:
    root = tmp_path / "xup" / "retrieval_cross_lang"
    (root / "test").mkdir(parents=True)
    (root / "index.jsonl").write_text('{"id": "1", "title": "t", "context": "c"}\n{"id": 2, "title": "t", broken\n')
    (root / "test" / "de.jsonl").write_bytes(gzip.decompress((xquad_root / "retrieval_cross_lang" / "test" / "de.jsonl.gz").read_bytes()))
    store = tmp_path / "store"
    # planning reads the data (to count what to encode), so the bad line is found before any model loads
    loaded = []
    with pytest.warns(UserWarning), pytest.raises(DataError, match=r"index.jsonl: line 2: invalid JSON"):
        plan = plan_run(
            RunConfig.build(model="minilm", suite="xtreme-up", data_dir=tmp_path / "xup", langs=("de",), store=store, device="cpu", show_progress=False)
        )
        execute(plan, on_event=lambda kind, data: loaded.append(kind))
    assert loaded == []
    assert not store.exists() or not any(store.rglob("*.parquet"))


@pytest.mark.slow  # the module's xtreme_store run
def test_per_query_reciprocal_ranks_give_back_mrr(xtreme_store: Path) -> None:
    from conftest import samples_reaggregate

    cells = samples_reaggregate(xtreme_store)
    assert len(cells) == 2 and {c[1] for c in cells} == {"de"}  # two dims, one language
    assert all(c[4] == c[5] for c in cells), cells
