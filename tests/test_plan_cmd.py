"""`evalgemma plan` / `run --dry-run`: cells, texts to encode and time, offline, with no model loaded.

Expected text counts are recomputed here from independent sources: mteb's descriptive-statistics
JSON files read with ``json`` (not through the task object), the smoke suite's ``sts.jsonl`` and
the XQuAD-format ``counts.json``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from evalgemma.io import PROJECT_ROOT

CLI = [sys.executable, "-c", "from evalgemma.cli.app import main; main()"]
SMOKE = PROJECT_ROOT / "tasks" / "smoke"
MTEB_STATS = Path(str(importlib.util.find_spec("mteb").origin)).parent / "descriptive_stats"  # type: ignore[union-attr]


def evalgemma(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "250", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run([*CLI, *args], check=False, capture_output=True, text=True, timeout=timeout, env=env)


def plan_json(*args: str) -> dict[str, Any]:
    proc = evalgemma("plan", "--model", "minilm", "--offline", "--format", "json", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def tree(path: Path) -> dict[str, str]:
    """Every file under ``path`` → sha256 of its bytes."""
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.rglob("*")) if p.is_file()}


def sts_texts(langs: list[str]) -> int:
    """mteb's STS statistics per subset: unique text1 + unique text2 (a sentence in both counts twice)."""
    rows = [json.loads(line) for line in (SMOKE / "sts.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    return sum(len({r["text1"][lang] for r in rows}) + len({r["text2"][lang] for r in rows}) for lang in langs)


def stats_file(task_type: str, name: str) -> dict[str, Any]:
    return json.loads((MTEB_STATS / task_type / f"{name}.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def unique_texts(entry: dict[str, Any]) -> int:
    return sum(v["unique_texts"] for k, v in entry.items() if k.endswith("_statistics") and isinstance(v, dict) and v.get("unique_texts") is not None)


@pytest.fixture(scope="module")
def multilingual(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return plan_json("--suite", "mteb-multilingual-v2", "--texts-per-s", "100", "--store", str(tmp_path_factory.mktemp("empty")), "--no-cache")


def test_multilingual_suite_planned_offline(multilingual: dict[str, Any]) -> None:
    from evalgemma.benchmarks.suites import expected_cells

    d = multilingual
    expected = expected_cells("mteb-multilingual-v2")
    assert expected is not None and len(d["tasks"]) == 131 == len(expected)
    by = {t["task"]: t for t in d["tasks"]}
    assert set(by) == set(expected)
    for name, e in expected.items():  # one variant, empty store: every expected cell is missing
        assert (by[name]["cells_expected"], by[name]["cells_stored"], by[name]["cells_missing"]) == (len(e.cells), 0, len(e.cells)), name
        assert by[name]["type"] == e.task_type
    assert d["totals"]["cells_expected"] == sum(len(e.cells) for e in expected.values()) == 46933
    assert d["totals"]["texts"] == sum(t["texts"] for t in d["tasks"]) and d["totals"]["texts"] > 0
    assert d["totals"]["seconds"] == d["totals"]["texts"] / 100  # --texts-per-s 100
    # STS12 (one subset, test split): unique sentence1 + unique sentence2 of mteb's statistics file.
    sts12 = stats_file("STS", "STS12")["test"]
    assert by["STS12"]["texts"] == unique_texts(sts12) and by["STS12"]["unknown_cells"] == 0
    # a Classification task also encodes its train split: test + train of the statistics file.
    poem = stats_file("Classification", "PoemSentimentClassification")
    splits = [c.split for c in expected["PoemSentimentClassification"].cells]
    assert splits == ["validation", "test"]
    assert by["PoemSentimentClassification"]["texts"] == sum(unique_texts(poem[s]) for s in [*splits, "train"]) == 105 + 104 + 892
    # MLQARetrieval: mteb's file has per-subset statistics for 7 of its 49 subsets per split; the others are unknown.
    assert by["MLQARetrieval"]["unknown_cells"] == 2 * (49 - 7) and d["totals"]["unknown_cells"] == 84
    # no --data-dir: hub datasets are reported missing (offline), the plan itself succeeds.
    assert by["STS12"]["data"].startswith("missing (offline): mteb/sts12-sts@")


def test_multilingual_table_head(tmp_path: Path) -> None:
    """The table form: one row per task, the total row and the data report; exit 0 despite missing data."""
    proc = evalgemma(
        "plan",
        "--suite",
        "mteb-multilingual-v2",
        "--model",
        "minilm",
        "--offline",
        "--texts-per-s",
        "100",
        "--store",
        str(tmp_path / "store"),
        "--data-dir",
        str(Path(os.environ.get("EVALGEMMA_DATA", PROJECT_ROOT.parent / "shared" / "data")) / "hf"),
        "--no-cache",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "plan: mteb-multilingual-v2 · sentence-transformers/all-MiniLM-L6-v2 · 1 variant(s)" in out
    assert "total (131 tasks)" in out and "46933" in out
    assert "data missing for 128 of 131 task(s) (a run would stop, exit 3)" in out  # 3 tasks have mirrors under hf/
    assert not (tmp_path / "store").exists()  # planning writes nothing
    print("\n".join(out.splitlines()[:8]))


@pytest.mark.parametrize(("suite", "n_tasks", "n_cells"), [("mteb-eng-v2", 41, 41), ("mteb-code-v1", 12, 39)])
def test_other_mteb_suites(suite: str, n_tasks: int, n_cells: int, tmp_path: Path) -> None:
    d = plan_json("--suite", suite, "--texts-per-s", "100", "--store", str(tmp_path), "--no-cache")
    assert len(d["tasks"]) == n_tasks and d["totals"]["cells_missing"] == n_cells
    assert d["totals"]["unknown_cells"] == 0 and d["totals"]["texts"] > 0  # mteb has statistics for every cell
    if suite == "mteb-eng-v2":
        stsb = stats_file("STS", "STSBenchmark")["test"]
        assert {t["task"]: t["texts"] for t in d["tasks"]}["STSBenchmark"] == unique_texts(stsb) == 1256 + 1337


def test_xtreme_up_counts_index_and_selected_queries(tmp_path: Path) -> None:
    data = Path(os.environ.get("EVALGEMMA_DATA", PROJECT_ROOT.parent / "shared" / "data")) / "xtreme_up_format_xquad"
    counts = json.loads((data / "counts.json").read_text())["retrieval_cross_lang"]
    d = plan_json("--suite", "xtreme-up", "--data-dir", str(data), "--langs", "de", "--texts-per-s", "10", "--store", str(tmp_path), "--no-cache")
    (t,) = d["tasks"]
    assert (t["task"], t["cells_expected"], t["cells_missing"]) == ("xtreme-up-cross-lang", 20, 1)
    assert t["texts"] == counts["index_passages"] + counts["test_queries"]["de"] == 240 + 1190
    assert t["seconds"] == t["texts"] / 10
    # a run with --langs de reads de only, which the XQuAD-format stand-in has
    assert t["data"] == str(data)
    # the whole suite reads its 20 languages; the stand-in has hi (and de, not in the suite) only
    (whole,) = plan_json("--suite", "xtreme-up", "--data-dir", str(data), "--store", str(tmp_path), "--no-cache")["tasks"]
    assert whole["cells_missing"] == 20
    assert whole["data"].startswith("missing:") and "19 of 20 languages" in whole["data"] and ",gu," in whole["data"] and ",hi," not in whole["data"]


def test_types_suite_every_cell_counted(tmp_path: Path) -> None:
    d = plan_json("--suite", "types", "--store", str(tmp_path), "--no-cache")
    assert d["tasks"] and d["totals"]["unknown_cells"] == 0 and all(t["texts"] > 0 and t["data"] == "built-in" for t in d["tasks"])
    assert d["throughput_source"] == "unknown" and d["totals"]["seconds"] is None  # empty store, no --texts-per-s


def test_bad_flags_are_usage_errors(tmp_path: Path) -> None:
    bad = evalgemma("plan", "--suite", "smoke", "--model", "minilm", "--format", "xml", "--store", str(tmp_path))
    assert bad.returncode == 2 and "--format" in bad.stderr and "table" in bad.stderr
    zero = evalgemma("plan", "--suite", "smoke", "--model", "minilm", "--texts-per-s", "0", "--store", str(tmp_path))
    assert zero.returncode == 2 and "--texts-per-s 0" in zero.stderr


# ---------------------------------------------------------------- a store and a cache with SmokeSTS/eng


@pytest.fixture(scope="module")
def sts_eng(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A real minilm run of SmokeSTS, English only, into a fresh store and embedding cache."""
    root = tmp_path_factory.mktemp("sts_eng")
    store, cache = root / "store", root / "cache"
    proc = evalgemma(
        "run",
        "--suite",
        "smoke",
        "--tasks",
        "SmokeSTS",
        "--langs",
        "eng",
        "--model",
        "minilm",
        "--offline",
        "--store",
        str(store),
        "--cache-dir",
        str(cache),
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return store, cache


def test_stored_cells_reduce_texts(sts_eng: tuple[Path, Path]) -> None:
    store, _ = sts_eng
    d = plan_json("--suite", "smoke", "--tasks", "SmokeSTS", "--store", str(store), "--no-cache", "--texts-per-s", "100")
    (t,) = d["tasks"]
    assert (t["cells_expected"], t["cells_stored"], t["cells_missing"]) == (5, 1, 4)
    assert t["texts"] == sts_texts(["deu", "fra", "spa", "ita"]) == 160  # 20 pairs, all sentences distinct per side
    assert d["totals"]["seconds"] == 1.6


def test_throughput_measured_in_the_store(sts_eng: tuple[Path, Path]) -> None:
    import pandas as pd

    store, _ = sts_eng
    d = plan_json("--suite", "smoke", "--tasks", "SmokeSTS", "--store", str(store), "--no-cache")
    frame = pd.concat([pd.read_parquet(p) for p in store.rglob("*.parquet") if "_samples" not in p.relative_to(store).parts])
    assert frame["unit_id"].nunique() == 1 and frame["wall_s"].nunique() == 1
    rate = sts_texts(["eng"]) / float(frame["wall_s"].iloc[0])  # one unit: its 40 texts ÷ its wall time
    assert d["texts_per_s"] == pytest.approx(rate, rel=1e-12) and d["throughput_source"].startswith("store: 40 texts in")
    assert d["totals"]["seconds"] == pytest.approx(160 / rate, rel=1e-12)


def test_cache_marker_reduces_texts(sts_eng: tuple[Path, Path], tmp_path: Path) -> None:
    from evalgemma.encode.cache import encoded_cells

    _, cache = sts_eng
    markers = list((cache / "encoded").rglob("*.json"))
    assert len(markers) == 1 and json.loads(markers[0].read_text())["cells"] == [["test", "eng"]]
    weight_key = markers[0].parent.name
    task_name, version = markers[0].stem.split("@")
    assert encoded_cells(cache, weight_key, task_name, version) == {("test", "eng")}
    # a fresh store (nothing stored), the same cache: eng's texts are cache hits
    d = plan_json("--suite", "smoke", "--tasks", "SmokeSTS", "--store", str(tmp_path / "fresh"), "--cache-dir", str(cache))
    (t,) = d["tasks"]
    assert (t["cells_missing"], t["cached_cells"], t["texts"]) == (5, 1, sts_texts(["deu", "fra", "spa", "ita"]))
    assert any("optimistic" in n for n in d["notes"])
    nocache = plan_json("--suite", "smoke", "--tasks", "SmokeSTS", "--store", str(tmp_path / "fresh"), "--no-cache")
    assert nocache["tasks"][0]["texts"] == sts_texts(["eng", "deu", "fra", "spa", "ita"]) == 200


def test_run_dry_run_writes_nothing(sts_eng: tuple[Path, Path]) -> None:
    store, cache = sts_eng
    before = (tree(store), tree(cache))
    proc = evalgemma(
        "run", "--dry-run", "--suite", "smoke", "--model", "minilm", "--offline", "--store", str(store), "--cache-dir", str(cache), "--texts-per-s", "100"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tree(store), tree(cache)) == before  # byte for byte
    total = next(line for line in proc.stdout.splitlines() if "total (7 tasks)" in line)
    assert "plan: smoke" in proc.stdout and [c.strip() for c in total.split("│")][3:6] == ["34", "1", "33"]
    csv_out = evalgemma(
        "run",
        "--dry-run",
        "--format",
        "csv",
        "--suite",
        "smoke",
        "--tasks",
        "SmokeSTS",
        "--model",
        "minilm",
        "--offline",
        "--store",
        str(store),
        "--no-cache",
        "--texts-per-s",
        "100",
    )
    lines = csv_out.stdout.splitlines()
    assert lines[0].startswith("suite,task,type,cells_expected,cells_stored,cells_missing,texts")
    assert lines[1] == "smoke,SmokeSTS,STS,5,1,4,160,0,0,1.600,built-in" and lines[2].startswith("smoke,total,,5,1,4,160,")
    assert (tree(store), tree(cache)) == before
