"""Resume identity per cell (variant, task, task version, split, subset), on real data.

Each sequence runs the real CLI-equivalent library path (``plan_run`` + ``execute``) into one store
and checks what was evaluated (the texts the encoder saw), what is stored, and what the views say.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from evalgemma.benchmarks.suites import expected_cells
from evalgemma.run import RunConfig, execute, plan_run
from evalgemma.store.parquet import load_results
from evalgemma.views.leaderboard import build_leaderboard, build_subset_table
from evalgemma.views.scores import task_scores


def run(encoded: list[int] | None = None, **kw: Any) -> Any:
    """plan + execute; appends the number of texts the encoder encoded to ``encoded``."""
    kw.setdefault("device", "cpu")
    kw.setdefault("show_progress", False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        plan = plan_run(RunConfig.build(**kw))
        seen: list[Any] = []
        summary = execute(plan, encoder_hook=seen.append)
    if encoded is not None:
        encoded.append(sum(e.stats.texts_encoded for e in seen))
    return plan, summary


def test_tatoeba_subsets_resume_cell_by_cell(tmp_path: Path, hf_mirrors: Path, tiny_gemma: Path) -> None:
    store = tmp_path / "store"
    common = dict(model=str(tiny_gemma), tasks=("Tatoeba",), store=store, data_dir=hf_mirrors, offline=True)
    encoded: list[int] = []
    plan, _ = run(encoded, langs=("deu",), **common)
    assert [c.subset for c in plan.units[0].cells_for(plan.variants[0])] == ["deu-eng"]
    plan, _ = run(encoded, langs=("deu", "fra"), **common)
    # the second run evaluates fra only: deu-eng is a stored cell
    assert [c.subset for c in plan.units[0].cells_for(plan.variants[0])] == ["fra-eng"]
    frame = load_results(store)
    main = frame[frame["is_main"]]
    assert sorted(main["hf_subset"]) == ["deu-eng", "fra-eng"]
    # texts: deu-eng has 1,000 pairs (2,000 sentences, some repeated), fra-eng as many; the second
    # run encodes fra-eng's sentences only (the English side repeats across subsets only partly)
    fra = frame[(frame["hf_subset"] == "fra-eng") & frame["is_main"]]
    assert encoded[0] > 1000 and 1000 < encoded[1] < 2 * 1001
    assert fra["suite_cells_n"].iloc[0] == 112  # what the task expects, not what was asked for
    # neither unit holds the whole task: no unit stores a task score
    assert frame["main_score"].isna().all()
    # every view: incomplete, never a partial mean
    ts = task_scores(frame, "mteb-multilingual-v2")
    row = ts[ts["task"] == "Tatoeba"].iloc[0]
    assert not row["complete"] and (row["n_cells"], row["n_expected"]) == (2, 112) and np.isnan(row["main_score"])
    lb = build_leaderboard(frame, "mteb-multilingual-v2")
    assert lb.rows[0].mean_task.value is None
    assert any("Tatoeba (2/112 cells)" in n for n in lb.notes)
    # a rerun of the same selection finds everything stored and evaluates nothing
    plan, summary = run(encoded, langs=("deu", "fra"), **common)
    assert plan.n_missing == 0 and summary.written == [] and encoded[-1] == 0


def test_task_complete_only_when_every_cell_is_stored(tmp_path: Path, minilm_path: Path) -> None:
    """Smoke STS: eng, then the rest; the task score appears once all 5 cells are in, and equals a one-shot run exactly."""
    store, fresh = tmp_path / "store", tmp_path / "fresh"
    encoded: list[int] = []
    run(encoded, model="minilm", suite="smoke", tasks=("SmokeSTS",), langs=("eng",), store=store)
    ts = task_scores(load_results(store), "smoke")
    assert ts["n_cells"].tolist() == [1] and not ts["complete"].iloc[0]
    plan, _ = run(encoded, model="minilm", suite="smoke", tasks=("SmokeSTS",), store=store)
    assert sorted(c.subset for c in plan.units[0].cells_for(plan.variants[0])) == ["deu", "fra", "ita", "spa"]
    assert encoded == [40, 160]  # 20 pairs × 2 sentences per language; eng is never encoded again
    run(None, model="minilm", suite="smoke", tasks=("SmokeSTS",), store=fresh)
    resumed = task_scores(load_results(store), "smoke").iloc[0]
    oneshot = task_scores(load_results(fresh), "smoke").iloc[0]
    assert resumed["complete"] and resumed["main_score"] == oneshot["main_score"]  # bit for bit
    stored_once = load_results(fresh)["main_score"].dropna().unique()
    assert list(stored_once) == [oneshot["main_score"]]  # the one-shot unit stores mteb's get_score, equal to the cells' mean


def _suite_file(path: Path, name: str, langs: list[str]) -> Path:
    path.write_text(f'schema = 1\nname = "{name}"\nkind = "xtreme-up"\nxtreme_task = "retrieval_cross_lang"\nlanguages = {json.dumps(langs)}\n')
    return path


@pytest.mark.slow  # encodes the XQuAD-format index and 1,190 queries per language (about 30 s each)
def test_xtreme_language_sets_share_cells(tmp_path: Path, shared_data: Path, minilm_path: Path) -> None:
    data = shared_data / "xtreme_up_format_xquad"
    small = _suite_file(tmp_path / "small.toml", "xq-small", ["de", "es"])
    large = _suite_file(tmp_path / "large.toml", "xq-large", ["de", "es", "ru"])
    store = tmp_path / "store"
    encoded: list[int] = []
    run(encoded, model="minilm", suite=str(small), store=store, data_dir=data, offline=True)
    plan, _ = run(encoded, model="minilm", suite=str(large), store=store, data_dir=data, offline=True)
    assert [c.subset for c in plan.units[0].cells_for(plan.variants[0])] == ["ru"]
    from evalgemma.benchmarks.xtreme_up.retrieval import load_xtreme_up, passage_text, query_text

    xq = load_xtreme_up(data, "retrieval_cross_lang", "test", ["de", "es", "ru"])
    passages = len({passage_text(r) for r in xq.index_rows})  # the encoder encodes each distinct text once

    def queries(*langs: str) -> int:
        return len({query_text(r) for lang in langs for r in xq.queries[lang]})

    assert encoded == [passages + queries("de", "es"), passages + queries("ru")]  # the index once per run, then only ru's queries
    frame = load_results(store)
    assert sorted(frame[frame["metric"] == "mrr_at_10"]["hf_subset"]) == ["de", "es", "ru"]
    # both suites are complete from the shared cells, and neither shadows the other
    small_lb = build_subset_table(frame, str(small))
    large_lb = build_subset_table(frame, str(large))
    vals = frame[frame["metric"] == "mrr_at_10"].set_index("hf_subset")["value"]
    assert small_lb.rows[0].mean_task.value == pytest.approx((vals["de"] + vals["es"]) / 2, abs=1e-15)
    assert large_lb.rows[0].mean_task.value == pytest.approx((vals["de"] + vals["es"] + vals["ru"]) / 3, abs=1e-15)
    # the first unit held its whole suite, the second only ru: only the first stores a task score
    by_unit = frame[frame["metric"] == "mrr_at_10"].groupby("unit_id")["main_score"].first()
    assert by_unit.notna().sum() == 1


@pytest.mark.slow  # encodes the XQuAD-format index and 1,190 queries per language (about 30 s each)
def test_split_is_part_of_the_cell(tmp_path: Path, shared_data: Path, minilm_path: Path) -> None:
    """--split validation then test: different cells; the test-split suite is incomplete until test runs."""
    src = shared_data / "xtreme_up_format_xquad" / "retrieval_cross_lang"
    root = tmp_path / "data" / "retrieval_cross_lang"
    for split in ("test", "validation"):
        (root / split).mkdir(parents=True)
        (root / split / "de.jsonl.gz").symlink_to(src / "test" / "de.jsonl.gz")
    (root / "index.jsonl.gz").symlink_to(src / "index.jsonl.gz")
    suite = _suite_file(tmp_path / "de.toml", "xq-de", ["de"])
    store = tmp_path / "store"
    run(None, model="minilm", suite=str(suite), split="validation", store=store, data_dir=tmp_path / "data", offline=True)
    ts = task_scores(load_results(store), str(suite)).iloc[0]
    assert not ts["complete"] and (ts["n_cells"], ts["n_expected"]) == (0, 1)  # validation cells are not the suite's test cells
    plan, _ = run(None, model="minilm", suite=str(suite), store=store, data_dir=tmp_path / "data", offline=True)
    assert plan.n_missing == 1  # the test cell was not stored by the validation run
    frame = load_results(store)
    assert sorted(frame[frame["metric"] == "mrr_at_10"]["split"]) == ["test", "validation"]
    lb = build_subset_table(frame, str(suite))
    assert lb.rows[0].mean_task.value == frame[(frame["metric"] == "mrr_at_10") & (frame["split"] == "test")]["value"].iloc[0]


def test_a_task_in_two_suites_with_different_cells() -> None:
    """STS17: MTEB(eng, v2) expects en-en only, MTEB(Multilingual, v2) eleven pairs (mteb's own filters)."""
    eng, multi = expected_cells("mteb-eng-v2"), expected_cells("mteb-multilingual-v2")
    assert eng is not None and multi is not None
    assert [c.subset for c in eng["STS17"].cells] == ["en-en"]
    assert len(multi["STS17"].cells) == 11
    version = eng["STS17"].version
    rows = [
        {"variant_key": "v", "variant": "m · 768d", "model": "m", "dim": 768, "suite": "mteb-eng-v2", "task": "STS17", "task_type": "STS",
         "task_version": version, "split": "test", "hf_subset": "en-en", "metric": "cosine_spearman", "value": 0.8, "is_main": True,
         "main_score": 0.8, "finished_at": "2026-01-01T00:00:00Z"},
    ]
    frame = pd.DataFrame(rows)
    e = task_scores(frame, "mteb-eng-v2").iloc[0]
    m = task_scores(frame, "mteb-multilingual-v2").iloc[0]
    assert e["complete"] and e["main_score"] == 0.8
    assert not m["complete"] and (m["n_cells"], m["n_expected"]) == (1, 11)
    # a cell of another task version (data changed) does not count
    stale = frame.assign(task_version="0" * 40)
    assert not task_scores(stale, "mteb-eng-v2").iloc[0]["complete"]


@pytest.mark.parametrize("suite", ["smoke", "types"])
def test_static_expectations_equal_the_planned_tasks(suite: str) -> None:
    """The views' cell expectations (read without mteb) equal what the planner builds from mteb's task objects."""
    from evalgemma.benchmarks.suites import plan_tasks

    _, tasks = plan_tasks(suite, (), (), data_dir=None, offline=True)
    expected = expected_cells(suite)
    assert expected is not None
    assert {t.name: (t.task_type, t.version, t.cells) for t in tasks} == {n: (e.task_type, e.version, e.cells) for n, e in expected.items()}


def test_mteb_suite_cells_file_equals_mteb() -> None:
    """results/reference/suite_cells.parquet (what views read) is exactly mteb's benchmark definitions."""
    from evalgemma.benchmarks.suites import SUITE_CELLS_FILE, mteb_suite_cells
    from evalgemma.catalog.reference import reference_dir

    stored = pd.read_parquet(reference_dir() / SUITE_CELLS_FILE).to_dict("records")
    assert stored == mteb_suite_cells()
    assert {s: len({r["task"] for r in stored if r["suite"] == s}) for s in ("mteb-multilingual-v2", "mteb-eng-v2", "mteb-code-v1")} == {
        "mteb-multilingual-v2": 131, "mteb-eng-v2": 41, "mteb-code-v1": 12}
