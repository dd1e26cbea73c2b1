"""`evalgemma compare`: paired bootstrap CIs and randomization p-values equal scipy's, and real MiniLM runs compare as expected."""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import bootstrap, permutation_test, rankdata, spearmanr

from evalgemma.store.samples import STATISTICS, cell_statistic
from evalgemma.views.significance import (
    BATCH_STATISTICS,
    PairedCell,
    batch_size,
    batch_statistic,
    paired_bootstrap,
    paired_permutation,
    paired_test,
)

CLI = [sys.executable, "-c", "from evalgemma.cli.app import main; main()"]
FULL = "all-MiniLM-L6-v2 · 384d"
SMALL = "all-MiniLM-L6-v2 · 32d"


def evalgemma(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"})


def sts_cell(n: int = 200, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gold scores on 0-5 with ties, and two noisy similarity columns (the second noisier)."""
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, 6, n).astype(np.float64)
    return gold, gold + rng.normal(0, 2.0, n), gold + rng.normal(0, 2.6, n)


def reference_delta(gold: np.ndarray, a: np.ndarray, b: np.ndarray, i: np.ndarray) -> float:
    return float(100 * (spearmanr(gold[i], a[i]).statistic - spearmanr(gold[i], b[i]).statistic))


def test_batch_statistics_are_the_stored_statistics_and_equal_them() -> None:
    assert tuple(BATCH_STATISTICS) == STATISTICS
    rng = np.random.default_rng(7)
    n = 301
    y = rng.integers(0, 2, n).astype(np.float64)
    s = np.round(y + rng.normal(0, 1, n), 1)  # rounded: many tied scores, the hard case for AP
    gold_ids = np.arange(n, dtype=np.float64)
    cases = {
        "mean": {"score": rng.random(n)},
        "spearman": {"gold": np.round(rng.random(n) * 5), "score": rng.random(n)},
        "max_ap": {"gold": y, "cosine": s, "euclidean": np.round(-s + 0.3 * rng.normal(size=n), 1), "dot": 2 * s},
        "weighted_f1": {"gold": gold_ids, "pred": np.where(rng.random(n) < 0.6, gold_ids, rng.integers(0, n, n)).astype(np.float64)},
    }
    for stat, fields in cases.items():
        np.testing.assert_allclose(batch_statistic(stat, fields), cell_statistic(stat, fields), rtol=1e-13, err_msg=stat)
        # rows of a batch are independent: row 1 (a resample) equals the statistic of that resample
        idx = rng.integers(0, n, n)
        batch = batch_statistic(stat, {f: np.stack([v, v[idx]]) for f, v in fields.items()})
        np.testing.assert_allclose(batch[1], cell_statistic(stat, {f: v[idx] for f, v in fields.items()}), rtol=1e-13, err_msg=stat)


def test_single_cell_bootstrap_equals_scipy_and_is_reproducible() -> None:
    gold, a, b = sts_cell()
    cell = PairedCell("spearman", {"gold": gold, "score": a}, {"gold": gold, "score": b})
    ours = paired_bootstrap([cell], n_resamples=1000, seed=3)
    # scipy, the plain way: one index sample, Spearman recomputed per resample with scipy.stats.spearmanr
    ref = bootstrap((np.arange(len(gold)),), lambda i: reference_delta(gold, a, b, i), vectorized=False, method="percentile",
                    n_resamples=1000, batch=batch_size(len(gold), 1000), rng=np.random.default_rng(3))
    np.testing.assert_allclose(ours.distribution, ref.bootstrap_distribution, rtol=0, atol=1e-11)
    np.testing.assert_allclose([ours.low, ours.high], [ref.confidence_interval.low, ref.confidence_interval.high], rtol=0, atol=1e-11)
    again = paired_bootstrap([cell], n_resamples=1000, seed=3)
    np.testing.assert_array_equal(again.distribution, ours.distribution)
    assert (again.low, again.high) == (ours.low, ours.high)
    other = paired_bootstrap([cell], n_resamples=1000, seed=4)
    assert other.low != ours.low  # the seed matters


def test_single_cell_permutation_p_equals_scipy() -> None:
    gold, a, b = sts_cell()
    n = len(gold)
    cell = PairedCell("spearman", {"gold": gold, "score": a}, {"gold": gold, "score": b})
    ours = paired_permutation([cell], n_resamples=1000, seed=5)

    ra, rb = rankdata(a), rankdata(b)  # a swap exchanges each side's own rank of the pair (Spearman sees only order)

    def ref(x: np.ndarray, y: np.ndarray) -> float:  # x[i] < n: sample i's variant value, else its baseline value
        va = np.where(x < n, ra[x % n], rb[x % n])
        vb = np.where(y < n, ra[y % n], rb[y % n])
        return float(100 * (spearmanr(gold, va).statistic - spearmanr(gold, vb).statistic))

    expected = permutation_test((np.arange(n), np.arange(n) + n), ref, permutation_type="samples", vectorized=False,
                                n_resamples=1000, batch=batch_size(n, 1000), rng=np.random.default_rng(5))
    assert ours.p_value == expected.pvalue
    np.testing.assert_allclose(ours.null_distribution, expected.null_distribution, rtol=0, atol=1e-11)
    assert ours.observed == pytest.approx(reference_delta(gold, a, b, np.arange(n)), abs=1e-11)
    assert paired_permutation([cell], n_resamples=1000, seed=5).p_value == ours.p_value


def test_order_only_statistics_ignore_each_sides_score_scale() -> None:
    """A variant whose similarities run on another scale (int8 cosines run higher) is tested on its ordering alone."""
    rng = np.random.default_rng(2)
    n = 400
    gold = rng.integers(0, 6, n).astype(np.float64)
    a = gold + rng.normal(0, 2.0, n)
    b = a + rng.normal(0, 0.6, n)  # the baseline: the variant's similarities plus a little noise (a small, real Δ)
    shifted = 0.2 * a + 3.0  # the variant on a shifted, squeezed scale: the same ranks as ``a``
    raw = PairedCell("spearman", {"gold": gold, "score": a}, {"gold": gold, "score": b})
    moved = PairedCell("spearman", {"gold": gold, "score": shifted}, {"gold": gold, "score": b})
    for test in (paired_bootstrap, paired_permutation):
        assert np.array_equal(test([moved], n_resamples=1000, seed=1)[2], test([raw], n_resamples=1000, seed=1)[2]), test
    found = paired_test([moved], n_resamples=1000, seed=1)
    assert found.verdict == "better" and found.p_value < 0.05 and found.ci_low > 0, found
    # swapping the raw values instead mixes the two scales: the null widens and the difference disappears

    def raw_swap(x: np.ndarray, y: np.ndarray) -> float:
        va = np.where(x < n, shifted[x % n], b[x % n])
        vb = np.where(y < n, shifted[y % n], b[y % n])
        return float(100 * (spearmanr(gold, va).statistic - spearmanr(gold, vb).statistic))

    mixed = permutation_test((np.arange(n), np.arange(n) + n), raw_swap, permutation_type="samples", vectorized=False,
                             n_resamples=1000, rng=np.random.default_rng(1))
    assert mixed.pvalue > 0.2
    # a monotone map of the baseline's scores is the baseline: Δ = 0, p = 1
    same = paired_test([PairedCell("spearman", {"gold": gold, "score": np.exp(b)}, {"gold": gold, "score": b})], n_resamples=1000)
    assert (same.delta, same.ci_low, same.ci_high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    # AP too: each similarity field enters as the side's own ranks (euclidean keeps its "lower = closer" sign)
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, n).astype(np.float64)
    sim = y + rng.normal(0, 1, n)
    cell = PairedCell("max_ap", {"gold": y, "cosine": sim, "euclidean": -sim}, {"gold": y, "cosine": 5 * sim - 2, "euclidean": 7 - 3 * sim})
    st = cell.stacked()
    assert np.array_equal(st["cosine"][:n], st["cosine"][n:]) and np.array_equal(st["cosine"][:n], rankdata(sim))
    ap = paired_test([cell], n_resamples=1000)
    assert (ap.delta, ap.p_value, ap.verdict) == (0.0, 1.0, "indistinguishable")


def test_multi_cell_bootstrap_is_stratified_like_a_loop_reference() -> None:
    rng = np.random.default_rng(11)
    y = rng.integers(0, 2, 40).astype(np.float64)
    ids = np.arange(30, dtype=np.float64)
    cells = [
        PairedCell("mean", {"score": rng.random(25)}, {"score": rng.random(25)}),
        PairedCell("max_ap", {"gold": y, "cosine": y + rng.normal(0, 1, 40)}, {"gold": y, "cosine": y + rng.normal(0, 1.5, 40)}),
        PairedCell("weighted_f1", {"gold": ids, "pred": np.where(rng.random(30) < 0.8, ids, 0.0)},
                   {"gold": ids, "pred": np.where(rng.random(30) < 0.5, ids, 0.0)}),
    ]
    n_res = 200
    ours = paired_bootstrap(cells, n_resamples=n_res, seed=2)
    # scipy's protocol, written out: per batch, each cell draws its own indices in turn; the same indices pick both sides
    gen = np.random.default_rng(2)
    step = batch_size(sum(c.n for c in cells), n_res)
    expected: list[float] = []
    for start in range(0, n_res, step):
        draws = [gen.integers(0, c.n, (min(step, n_res - start), c.n)) for c in cells]
        for r in range(draws[0].shape[0]):
            parts = [cell_statistic(c.statistic, {f: v[d[r]] for f, v in c.variant.items()})
                     - cell_statistic(c.statistic, {f: v[d[r]] for f, v in c.baseline.items()}) for c, d in zip(cells, draws, strict=True)]
            expected.append(100 * float(np.mean(parts)))
    np.testing.assert_allclose(ours.distribution, expected, rtol=0, atol=1e-11)
    assert ours.low == pytest.approx(float(np.quantile(expected, 0.025)), abs=1e-11)
    assert ours.high == pytest.approx(float(np.quantile(expected, 0.975)), abs=1e-11)


def test_a_variant_against_itself_is_indistinguishable_with_zero_width() -> None:
    gold, a, _ = sts_cell()
    y = (gold > 2).astype(np.float64)
    cells = [PairedCell("spearman", {"gold": gold, "score": a}, {"gold": gold, "score": a}),
             PairedCell("max_ap", {"gold": y, "cosine": a}, {"gold": y, "cosine": a})]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # zero variance must give neither NaN nor a warning
        res = paired_test(cells, n_resamples=1000, seed=0)
    assert (res.delta, res.ci_low, res.ci_high, res.p_value, res.verdict) == (0.0, 0.0, 0.0, 1.0, "indistinguishable")
    assert (res.n_samples, res.n_resamples, res.seed, res.reason) == (2 * len(gold), 1000, 0, "")


# ---------------------------------------------------------------- real data: MiniLM on STSBenchmark, 384 vs 32 dims


@pytest.fixture(scope="module")
def sts_store(tmp_path_factory: pytest.TempPathFactory, hf_mirrors: Path) -> Path:
    from evalgemma.run import RunConfig, execute, plan_run

    store = tmp_path_factory.mktemp("compare-store")
    config = RunConfig.build(model="minilm", tasks=("STSBenchmark",), dims=(384, 32), store=store, data_dir=hf_mirrors,
                             offline=True, device="cpu", show_progress=False)
    execute(plan_run(config))
    return store


@pytest.mark.slow  # the module-scoped STSBenchmark run of two dims takes ~85 s on 2 shared cores
def test_truncated_minilm_is_worse_on_stsbenchmark(sts_store: Path) -> None:
    from evalgemma.gate.regression import load_current
    from evalgemma.store.samples import load_samples
    from evalgemma.views.compare import COLUMNS, comparison_table

    results = load_current(sts_store)
    frame = comparison_table(results, load_samples(sts_store, results), FULL, variants=[SMALL, FULL], n_resamples=1000, seed=0)
    assert tuple(frame.columns) == COLUMNS
    rows = frame[frame["level"] == "task"].set_index("variant")
    small, same = rows.loc[SMALL], rows.loc[FULL]
    # 32 of 384 dims: STSBenchmark's Spearman drops (82.03 → 76.67); all 1,379 test pairs are resampled
    assert small["verdict"] == "worse" and small["ci_high"] < 0 and small["ci_low"] < small["delta"] < small["ci_high"]
    assert small["p_value"] < 0.05 and small["n_samples"] == 1379
    assert small["delta"] == pytest.approx(small["score"] - small["baseline_score"])
    assert (same["delta"], same["ci_low"], same["ci_high"], same["p_value"], same["verdict"]) == (0.0, 0.0, 0.0, 1.0, "indistinguishable")
    suite = frame[frame["level"] == "suite"]
    # one task: the suite's Mean(Task) row is that task's paired test
    assert set(suite["task"]) == {"Mean(Task)"}
    cols = ["delta", "ci_low", "ci_high", "p_value", "verdict"]
    assert suite.set_index("variant")[cols].loc[[SMALL, FULL]].values.tolist() == rows[cols].loc[[SMALL, FULL]].values.tolist()


@pytest.mark.slow  # shares the ~85 s STSBenchmark store; ~26 s of CLI calls
def test_cli_formats_and_bad_input(sts_store: Path, tmp_path: Path) -> None:
    out = evalgemma("compare", "--store", str(sts_store), "--baseline", FULL, "--format", "csv", "--resamples", "1000", "--seed", "7")
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert {"variant", "task", "delta", "ci_low", "ci_high", "p_value", "verdict", "seed"} <= set(rows[0])
    task = next(r for r in rows if r["level"] == "task")
    assert (task["variant"], task["task"], task["verdict"], task["seed"], task["n_resamples"]) == (SMALL, "STSBenchmark", "worse", "7", "1000")
    js = evalgemma("compare", "--store", str(sts_store), "--baseline", FULL, "--format", "json", "--resamples", "1000", "--seed", "7")
    import json

    assert json.loads(js.stdout)[0]["ci_low"] == pytest.approx(float(task["ci_low"]), abs=1e-12)  # same seed, same interval
    md = evalgemma("compare", "--store", str(sts_store), "--baseline", FULL, "--format", "markdown", "--tasks", "STSBenchmark")
    assert md.returncode == 0 and "| worse |" in md.stdout and "seed 0" in md.stdout
    cases = [
        (("--baseline", "all-MiniLM-L6-v2 · 348d"), 2, "Did you mean"),
        (("--baseline", FULL, "--tasks", "STSBenchmarc"), 2, "unknown task"),
        (("--baseline", FULL, "--tasks", "STSBenchmark", "--suite", "tasks"), 2, "not both"),
        (("--baseline", FULL, "--resamples", "100"), 2, "at least 1000"),
        (("--baseline", FULL, "--format", "tabel"), 2, "format"),
    ]
    for args, code, needle in cases:
        proc = evalgemma("compare", "--store", str(sts_store), *args)
        assert proc.returncode == code and needle in proc.stderr and "Traceback" not in proc.stderr, (args, proc.stderr)
    bare = tmp_path / "no-samples"
    shutil.copytree(sts_store, bare, ignore=shutil.ignore_patterns("_samples"))
    proc = evalgemma("compare", "--store", str(bare), "--baseline", FULL)
    assert proc.returncode == 3 and "no compared task has per-sample scores" in proc.stderr, proc.stderr


# ---------------------------------------------------------------- check --significance


@pytest.mark.slow  # shares the ~85 s STSBenchmark store
def test_check_significance_fails_a_significant_drop_and_needs_the_samples(sts_store: Path, tmp_path: Path) -> None:
    baseline = tmp_path / "base.parquet"
    accepted = evalgemma("baseline", "accept", "--store", str(sts_store), "--out", str(baseline), "--variant", FULL)
    assert accepted.returncode == 0, accepted.stderr
    assert (tmp_path / "base.samples.parquet").is_file()
    args = ("check", "--store", str(sts_store), "--baseline", str(baseline), "--pair", f"{SMALL}={FULL}", "--significance", "--resamples", "1000")
    worse = evalgemma(*args)
    # 32d vs 384d: -5.36 points, far beyond 0.5 and significant (CI below 0, p = 1/1001)
    assert worse.returncode == 4, worse.stdout + worse.stderr
    assert "STSBenchmark: dropped 5.36 points" in worse.stderr and "significant (paired test" in worse.stderr
    (tmp_path / "base.samples.parquet").unlink()
    missing = evalgemma(*args)
    assert missing.returncode == 3 and "base.samples.parquet is missing" in missing.stderr, missing.stderr


@pytest.mark.slow  # shares the ~85 s STSBenchmark store
def test_check_significance_passes_a_drop_the_samples_do_not_support(sts_store: Path) -> None:
    from evalgemma.gate.regression import Significance, Tolerances, compare, load_current
    from evalgemma.store.samples import load_samples

    results = load_current(sts_store)
    base = results[results["variant"] == FULL].reset_index(drop=True)
    samples = load_samples(sts_store, base)
    # the same per-pair scores, but a stored score 0.1 points lower: beyond a 0.01 tolerance, yet the
    # paired test sees Δ = 0 (CI [0, 0], p = 1), so the drop is a warning and the gate passes
    lower = base.assign(value=base["value"] - 0.001, main_score=base["main_score"] - 0.001)
    plain = compare(lower, base, Tolerances(default=0.01))
    assert not plain.passed and [r.verdict for r in plain.rows] == ["regression", "regression"]
    sig = compare(lower, base, Tolerances(default=0.01), significance=Significance(samples, samples, 1000, 0, 0.05))
    assert sig.passed and [r.verdict for r in sig.rows] == ["warning", "warning"]
    assert "not significant (paired test: 95 % CI [+0.00, +0.00], p = 1.0000)" in sig.rows[0].message
