"""Per-sample scores (``<store>/_samples``): stored beside every unit, and they give back its score exactly.

The smoke suite covers every task type with a per-sample score (retrieval, reranking, STS, pair
classification, bitext mining, classification experiments, clustering levels); the real mteb
tasks (STSBenchmark, MBPPRetrieval, Tatoeba, PoemSentimentClassification) are checked in
test_run_mteb.py and XTREME-UP in test_xtreme_runner.py, on their module stores.
"""

from __future__ import annotations

import shutil
import stat
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import samples_reaggregate
from evalgemma.store.parquet import load_results, scan_store
from evalgemma.store.samples import STATISTICS, CellSamples, cell_fields, cell_statistic, load_samples, samples_path, write_samples


def test_every_smoke_type_reaggregates_exactly(smoke_store: Path) -> None:
    cells = samples_reaggregate(smoke_store)
    results = load_results(smoke_store)
    # every cell of every unit has samples: 7 types x 5 languages (bitext: 4 pairs) x 2 dims
    n_cells = results[results["is_main"]].groupby(["variant_key", "task", "split", "hf_subset"]).ngroups
    assert len(cells) == n_cells == 2 * (6 * 5 + 4)
    assert {c[2] for c in cells} == set(STATISTICS)
    bad = [c for c in cells if c[4] != c[5]]
    assert not bad, bad


def test_cell_statistic_equals_the_stored_score(smoke_store: Path) -> None:
    results = load_results(smoke_store)
    samples = load_samples(smoke_store, results)
    main = results[results["is_main"]].set_index(["variant_key", "task", "split", "hf_subset"])["value"]
    for key, cell in samples.groupby(["variant_key", "task", "split", "hf_subset"]):
        ids, fields = cell_fields(cell)
        assert list(ids) == sorted(ids) and all(len(v) == len(ids) for v in fields.values())
        value = cell_statistic(str(cell["statistic"].iloc[0]), fields)
        stored = float(main.loc[key])
        if cell["task"].iloc[0] in ("SmokeRetrieval", "SmokeReranking"):  # mteb rounds pytrec means to 5 decimals
            assert round(value, 5) == stored and abs(value - stored) <= 5e-6, key
        else:
            assert value == stored, key


def test_samples_are_a_side_table_with_interned_ids(smoke_store: Path) -> None:
    files = sorted((smoke_store / "_samples").rglob("*.parquet"))
    assert files and all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in files)
    schema = pq.read_schema(files[0])
    assert schema.field("value").type == pa.float64()
    assert pa.types.is_dictionary(schema.field("sample_id").type) and pa.types.is_dictionary(schema.field("field").type)
    results = load_results(smoke_store)
    assert not results["unit_id"].isna().any()
    # every unit file has its samples file under the same id, and the results scan never reads them
    units = results[["variant_key", "task", "unit_id"]].drop_duplicates()
    assert all(samples_path(smoke_store, *u).is_file() for u in units.itertuples(index=False))
    _, problems = scan_store(smoke_store)  # the scan skips _samples/ (its files would be foreign to it)
    assert problems == []


def test_only_the_samples_of_the_newest_run_are_loaded(smoke_store: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(smoke_store, store)
    results = load_results(store)
    unit = results[results["task"] == "SmokeSTS"].iloc[0]
    rows = results[results["unit_id"] == unit["unit_id"]]
    # an orphan samples file (a crash after the samples, before the unit) is never paired with anything
    fake = CellSamples("test", "eng", "cosine_spearman", "spearman", ("0", "1"), {"gold": np.zeros(2), "score": np.ones(2)})
    write_samples(store, unit_id="orphan", variant_key=str(unit["variant_key"]), task="SmokeSTS", task_version="x", cells=[fake])
    before = load_samples(store, results)
    assert "orphan" not in set(before["unit_id"]) and set(before["unit_id"]) == set(results["unit_id"])
    # a corrupt samples file is skipped with a warning naming it, and left in place
    path = samples_path(store, str(unit["variant_key"]), "SmokeSTS", str(unit["unit_id"]))
    path.write_bytes(b"not parquet")
    with pytest.warns(UserWarning, match="skipped samples file"):
        after = load_samples(store, results)
    assert path.read_bytes() == b"not parquet"
    assert set(after["unit_id"]) == set(before["unit_id"]) - {unit["unit_id"]}
    assert len(after) == len(before) - len(before[before["unit_id"] == unit["unit_id"]]) and len(rows) > 0


def test_cell_statistic_formulas_match_scipy_and_sklearn() -> None:
    from scipy.stats import spearmanr
    from sklearn.metrics import average_precision_score, f1_score

    rng = np.random.default_rng(0)
    gold, score = rng.normal(size=50), rng.normal(size=50)
    assert cell_statistic("spearman", {"gold": gold, "score": score}) == float(spearmanr(gold, score)[0])
    labels = (rng.random(50) > 0.5).astype(float)
    dist = rng.random(50)
    assert cell_statistic("max_ap", {"gold": labels, "manhattan": dist}) == float(average_precision_score(labels.astype(int), -dist))
    pred = rng.integers(0, 5, 50).astype(float)
    ids = rng.integers(0, 5, 50).astype(float)
    assert cell_statistic("weighted_f1", {"gold": ids, "pred": pred}) == float(f1_score(ids, pred, average="weighted", zero_division=0))
    with pytest.raises(ValueError, match="unknown statistic"):
        cell_statistic("median", {"score": score})
    with pytest.raises(ValueError, match="missing"):
        cell_statistic("spearman", {"score": score})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="values for"):
            CellSamples("test", "x", "m", "mean", ("0",), {"score": np.zeros(2)})
