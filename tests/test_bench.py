"""``evalgemma bench``: measured cost per variant, stored beside the results with the same identity.

One real bench of the offline all-MiniLM-L6-v2 at 384d/128d × float32/int8/binary (tiny counts), then a
real ``run`` of the same grid (plus 64d, which has no bench row) on SmokeSTS into the same store.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

CLI = [sys.executable, "-c", "from evalgemma.cli.app import main; main()"]
DIMS = (384, 128)
DTYPES = ("float32", "int8", "binary")
TINY = ("--repeat", "1", "--warmup", "1", "--latency-n", "4", "--long-n", "4", "--short-n", "16")


def evalgemma(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "COLUMNS": "250"}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=600, env=env, check=False)


@pytest.fixture(scope="module")
def benched(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, subprocess.CompletedProcess[str]]:
    """(store, bench rows, the bench command's process): bench first, then run, into one store."""
    from evalgemma.run import RunConfig, execute, plan_run
    from evalgemma.store.bench import load_bench

    store = tmp_path_factory.mktemp("bench") / "store"
    proc = evalgemma("bench", "--model", "minilm", "--offline", "--device", "cpu", "--store", str(store), "--dim", "384,128",
                     "--embed-dtype", ",".join(DTYPES), *TINY, "--no-progress")
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # 128 and 64 are not dims MiniLM declares
        plan = plan_run(RunConfig.build(model="minilm", suite="smoke", tasks=("SmokeSTS",), dims=(*DIMS, 64), embed_dtypes=DTYPES,
                                        store=store, device="cpu", show_progress=False, offline=True))
    execute(plan)
    return store, load_bench(store), proc


def _stored_tensor_bytes(folder: Path) -> int:
    """Bytes of the weight tensors in the model's safetensors files, read from their headers (8-byte length, JSON):
    the floating-point ones (an integer tensor such as BERT's ``position_ids`` is an index buffer, not a weight)."""
    total = 0
    for path in folder.rglob("*.safetensors"):
        with path.open("rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        total += sum(t["data_offsets"][1] - t["data_offsets"][0] for name, t in header.items()
                     if name != "__metadata__" and t["dtype"] in ("F32", "F16", "BF16"))
    return total


def test_every_figure_is_present_and_positive(benched: tuple[Path, Any, Any]) -> None:
    from evalgemma.store.bench import FIGURES

    _, rows, proc = benched
    assert sorted(zip(rows["dim"], rows["embed_dtype"], strict=True)) == sorted((d, e) for d in DIMS for e in DTYPES)
    for rec in rows.to_dict("records"):
        for figure in FIGURES:
            assert math.isfinite(rec[figure]) and rec[figure] > 0, (rec["variant"], figure, rec[figure])
        assert math.isnan(rec["peak_gpu_bytes"])  # off CUDA: not measured
        assert rec["latency_p95_ms"] >= rec["latency_p50_ms"]
        assert (rec["device"], rec["backend"], rec["batch_size"]) == ("cpu", "torch", 32)  # run's CPU default batch
        assert (rec["repetitions"], rec["warmup"], rec["latency_n"], rec["long_texts_n"], rec["short_texts_n"]) == (1, 1, 4, 4, 16)
        assert rec["throughput_stat"] == "median"
        # every long text is over 512 tokens, so each is cut at MiniLM's max_seq_length (256), [CLS] and [SEP] included
        assert rec["long_tokens_mean"] == 256.0
        assert rec["variant"] in proc.stdout  # the printed table


def test_bytes_follow_the_formulas(benched: tuple[Path, Any, Any], minilm_path: Path) -> None:
    _, rows, _ = benched
    # float32: 4 bytes per component; int8: 1; binary: 1 bit, packed in bytes (384/8 = 48, 128/8 = 16)
    per_vector = {"float32": lambda d: 4 * d, "int8": lambda d: d, "binary": lambda d: d // 8}
    weights = _stored_tensor_bytes(minilm_path)
    assert weights == 90_852_864  # model.safetensors: 22,713,216 float32 values × 4
    for rec in rows.to_dict("records"):
        expected = per_vector[rec["embed_dtype"]](rec["dim"])
        assert rec["embedding_bytes"] == expected, rec["variant"]
        assert rec["index_bytes_per_million"] == expected * 1_000_000
        assert rec["weight_bytes"] == weights


def test_identity_equals_the_run_rows(benched: tuple[Path, Any, Any]) -> None:
    from evalgemma.run.persist import IDENTITY_COLUMNS
    from evalgemma.store.parquet import load_results

    store, rows, _ = benched
    results = load_results(store)
    assert set(results["task"]) == {"SmokeSTS"}  # bench files are not result units
    assert "texts_per_s_long" not in results.columns
    assert len(set(results["variant_key"])) == 9  # 3 dims × 3 dtypes
    columns = [*IDENTITY_COLUMNS, "weight_bytes", "embedding_bytes", "quant_tensors"]
    for rec in rows.to_dict("records"):
        stored = results[results["variant_key"] == rec["variant_key"]]
        assert not stored.empty, rec["variant"]
        first = stored.iloc[0]
        assert {c: rec[c] for c in columns} == {c: first[c] for c in columns}, rec["variant"]


def test_texts_are_fixed_and_long_enough(minilm_path: Path) -> None:
    import hashlib

    from transformers import AutoTokenizer

    from evalgemma.benchmarks.smoke.tasks import calibration_texts
    from evalgemma.run.bench import bench_texts

    long, short = bench_texts(8, 16)
    assert short.texts == tuple(calibration_texts()[:16])
    assert len(set(long.texts)) == 8 and all(len(t) > 4096 for t in long.texts)
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_path))
    assert min(len(tokenizer(t)["input_ids"]) for t in long.texts) > 512
    assert long.sha256 == hashlib.sha256(json.dumps(list(long.texts), ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()
    assert bench_texts(8, 16) == (long, short)  # fixed: the same texts every time


def test_leaderboard_cost_columns(benched: tuple[Path, Any, Any]) -> None:
    from evalgemma.views.cost import COST_COLUMNS, cost_table

    store, rows, _ = benched
    costs = cost_table(store)
    assert list(costs.columns) == list(COST_COLUMNS) and len(costs) == 6
    proc = evalgemma("leaderboard", "--store", str(store), "--reference", "none", "--cost", "--format", "markdown")
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = {line.split(" | ")[0].strip("| "): line for line in proc.stdout.splitlines() if line.startswith("| all-MiniLM")}
    header = next(line for line in proc.stdout.splitlines() if line.startswith("| Variant"))
    names = [c.strip() for c in header.strip("|").split("|")]
    assert {"weights MB", "B/vector", "index GB/1M docs", "texts/s long", "texts/s short", "p50 ms", "p95 ms", "load s", "peak RSS MB"} <= set(names)
    for rec in rows.to_dict("records"):
        cells = dict(zip(names, [c.strip() for c in lines[rec["variant"]].strip("|").split("|")], strict=True))
        assert cells["B/vector"] == str(rec["embedding_bytes"])
        assert cells["texts/s long"] == f"{rec['texts_per_s_long']:.1f}"
        assert cells["weights MB"] == "90.9"
    no_bench = dict(zip(names, [c.strip() for c in lines["all-MiniLM-L6-v2 · 64d"].strip("|").split("|")], strict=True))
    assert no_bench["texts/s long"] == "–" and no_bench["weights MB"] == "–"
    csv = evalgemma("leaderboard", "--store", str(store), "--reference", "none", "--cost", "--format", "csv")
    assert "texts_per_s_long" in csv.stdout.splitlines()[0]


def test_compare_cost_joins_the_bench_on_variant_key(benched: tuple[Path, Any, Any]) -> None:
    import csv
    import io

    store, rows, _ = benched
    proc = evalgemma("compare", "--store", str(store), "--baseline", "all-MiniLM-L6-v2 · 384d", "--cost", "--format", "csv",
                     "--resamples", "1000")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = list(csv.DictReader(io.StringIO(proc.stdout)))
    from evalgemma.gate.regression import load_current

    by_key = {r["variant_key"]: r for r in rows.to_dict("records")}
    runs = load_current(store).drop_duplicates("variant_key")
    base_key = str(runs.loc[runs["variant"] == "all-MiniLM-L6-v2 · 384d", "variant_key"].iloc[0])
    assert {r["variant_key"] for r in out} == set(runs["variant_key"]) - {base_key}
    assert sum(r["variant_key"] not in by_key for r in out) > 0  # the 64d variants: run, never benched
    for r in out:
        bench = by_key.get(r["variant_key"])
        if bench is None:
            assert r["texts_per_s_long"] == "" and r["weight_bytes"] == "" and r["bench_device"] == ""
        else:
            assert float(r["texts_per_s_long"]) == bench["texts_per_s_long"] and int(float(r["embedding_bytes"])) == bench["embedding_bytes"]
            assert r["bench_device"] == "cpu"
    table = evalgemma("compare", "--store", str(store), "--baseline", "all-MiniLM-L6-v2 · 384d", "--cost", "--format", "markdown",
                      "--resamples", "1000")
    assert table.returncode == 0 and "| weights MB | B/vector | texts/s |" in table.stdout, table.stdout[:2000]


def test_report_and_pareto_plot_join_cost_and_paired_tests(benched: tuple[Path, Any, Any], tmp_path: Path) -> None:
    from evalgemma.gate.regression import load_current
    from evalgemma.store.samples import load_samples
    from evalgemma.views.compare import comparison_table
    from evalgemma.views.decision import decision_table, store_inputs

    store, rows, _ = benched
    frame = load_current(store)
    inputs = store_inputs(store, frame, n_resamples=1000)
    assert inputs.cost is not None and inputs.comparison is not None and inputs.notes == ()
    # the same comparison `evalgemma compare` gives against the default baseline (largest-dim float32 torch)
    direct = comparison_table(frame, load_samples(store, frame), "all-MiniLM-L6-v2 · 384d", n_resamples=1000)
    assert inputs.comparison.equals(direct)
    dec = decision_table(frame, comparison=inputs.comparison, cost=inputs.cost).table.set_index("variant")
    suite = direct[direct["level"] == "suite"].set_index("variant")
    for label in suite.index:
        assert dec.loc[label, ["ci_low", "ci_high", "p_value", "verdict"]].tolist() == suite.loc[label, ["ci_low", "ci_high", "p_value", "verdict"]].tolist()
    for rec in rows.to_dict("records"):
        assert dec.loc[rec["variant"], "texts_per_s"] == rec["texts_per_s_long"]
    assert math.isnan(dec.loc["all-MiniLM-L6-v2 · 64d", "texts_per_s"])  # run, never benched
    out = tmp_path / "report.html"
    proc = evalgemma("report", "--store", str(store), "--out", str(out), "--reference", "none", "--resamples", "1000")
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = out.read_text(encoding="utf-8")
    assert "95% CI, p and verdict: `evalgemma compare`" in text and "1000 resamples and permutations, seed 0" in text
    assert "texts/s: long / short inputs" in text and "none here" not in text
    png = tmp_path / "pareto.png"
    plotted = evalgemma("plot", "pareto", "--store", str(store), "--out", str(png), "--resamples", "1000")
    assert plotted.returncode == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", plotted.stderr[-2000:]


def test_report_without_samples_says_why_there_is_no_ci(benched: tuple[Path, Any, Any], tmp_path: Path) -> None:
    import shutil

    store, _, _ = benched
    bare = tmp_path / "bare"
    shutil.copytree(store, bare, ignore=shutil.ignore_patterns("_samples"))
    out = tmp_path / "report.html"
    proc = evalgemma("report", "--store", str(bare), "--out", str(out), "--reference", "none")
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = out.read_text(encoding="utf-8")
    assert "the store has no per-sample scores" in text and "texts/s: long / short inputs" in text


def test_notebook_decision_joins_compare_and_bench(benched: tuple[Path, Any, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import pandas as pd

    from evalgemma.gate.regression import load_current
    from evalgemma.views.decision import decision_table, store_inputs
    from test_notebook import run_notebook

    store, rows, _ = benched
    shown = tmp_path / "decision.pkl"
    _, text = run_notebook(store, monkeypatch, f"dec.table.to_pickle({str(shown)!r})")
    # samples are there: the note says how the CIs were computed, not why there are none
    assert "note: 95% CI, p and verdict: `evalgemma compare`" in text and "no per-sample scores" not in text
    # the notebook's decision table is the report's: compare against the same baseline (1000 resamples, seed 0) and bench
    frame = load_current(store)
    inputs = store_inputs(store, frame, n_resamples=1000, seed=0)
    want = decision_table(frame, comparison=inputs.comparison, cost=inputs.cost, notes=inputs.notes).table
    got = pd.read_pickle(shown)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert (want["verdict"] != "").sum() == len(want) - 1  # every variant but the baseline has a verdict
    assert want["texts_per_s"].notna().sum() == len(rows) < len(want)  # the benched variants; 64d was only run


def test_newest_bench_wins_and_bad_files_are_reported(benched: tuple[Path, Any, Any], tmp_path: Path) -> None:
    from evalgemma.store.bench import load_bench, scan_bench, write_bench

    _, rows, _ = benched
    rec = {k: v for k, v in rows.iloc[0].to_dict().items() if k != "schema_version"}
    older = {**rec, "bench_id": "b-old", "finished_at": "2026-01-01T00:00:00.000000Z", "texts_per_s_long": 1.0}
    newer = {**rec, "bench_id": "b-new", "finished_at": "2026-01-02T00:00:00.000000Z", "texts_per_s_long": 2.0}
    write_bench(tmp_path, newer)
    write_bench(tmp_path, older)  # written last, finished first: recorded time decides, not the file
    bad = tmp_path / "_bench" / "x" / "bad.parquet"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not parquet")
    with pytest.warns(UserWarning, match="bad.parquet: unreadable Parquet"):
        got = load_bench(tmp_path)
    assert got["bench_id"].tolist() == ["b-new"] and got["texts_per_s_long"].tolist() == [2.0]
    assert bad.exists() and [p.path for p in scan_bench(tmp_path)[1]] == [bad]
    assert oct((tmp_path / "_bench").rglob("b-new.parquet").__next__().stat().st_mode & 0o777) == "0o644"
    with pytest.raises(ValueError, match=re.escape("figures not positive: latency_p50_ms=0.0")):
        write_bench(tmp_path, {**rec, "bench_id": "b-zero", "latency_p50_ms": 0.0})


@pytest.mark.parametrize(("args", "needle"), [
    (("--dim", "512"), "--dim 512: larger than all-MiniLM-L6-v2's output dimension 384"),
    (("--dim", "12", "--embed-dtype", "binary"), "--embed-dtype binary: needs dims divisible by 8"),
    (("--embed-dtype", "int4"), "--embed-dtype"),
    (("--repeat", "0"), "--repeat 0: must be at least 1"),
    (("--quant", "q5"), "--quant: unknown weight quantization format 'q5'"),
])
def test_bad_input_exits_2(args: tuple[str, ...], needle: str, tmp_path: Path) -> None:
    proc = evalgemma("bench", "--model", "minilm", "--offline", "--device", "cpu", "--store", str(tmp_path / "s"), *args)
    assert proc.returncode == 2, (proc.stdout[-2000:], proc.stderr[-2000:])
    assert needle in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "s" / "_bench").exists()


def test_unwritable_store_exits_3(tmp_path: Path) -> None:
    store = tmp_path / "file"
    store.write_text("a file, not a folder")
    proc = evalgemma("bench", "--model", "minilm", "--offline", "--device", "cpu", "--store", str(store))
    assert proc.returncode == 3 and f"--store {store}: not writable" in proc.stderr, proc.stderr[-2000:]
