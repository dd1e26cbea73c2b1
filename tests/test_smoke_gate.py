"""End to end on a real smoke run: the CI gate catches a real regression; the notebook runs."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from evalgemma.store.parquet import load_results

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "from evalgemma.cli.app import main; main()"]
FULL = "all-MiniLM-L6-v2 · 384d"
SMALL = "all-MiniLM-L6-v2 · 32d"


def evalgemma(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300, env=env)


def test_smoke_run_is_complete(smoke_store: Path) -> None:
    frame = load_results(smoke_store)
    assert set(frame["variant"]) == {FULL, SMALL}
    assert frame.groupby("variant")["task"].nunique().to_dict() == {FULL: 7, SMALL: 7}
    assert set(frame["suite"]) == {"smoke"}
    # Truncating MiniLM to 32 of its 384 dims costs quality on average.
    means = frame.drop_duplicates(["variant", "task"]).groupby("variant")["main_score"].mean()
    assert means[SMALL] < means[FULL] - 0.02


def test_gate_passes_against_itself_and_catches_truncation(smoke_store: Path, tmp_path: Path) -> None:
    baseline = tmp_path / "smoke.parquet"
    accepted = evalgemma("baseline", "accept", "--store", str(smoke_store), "--out", str(baseline), "--variant", FULL)
    assert accepted.returncode == 0, accepted.stderr
    same = evalgemma("check", "--store", str(smoke_store), "--baseline", str(baseline), "--tolerance", "0.01")
    assert same.returncode == 0, same.stdout + same.stderr
    # FULL's 7 tasks and its suite mean equal the baseline exactly; SMALL (not in the baseline) is new
    assert same.stdout.splitlines()[-1] == "PASS: 15 rows, 8 ok, 7 new"
    junit = tmp_path / "junit.xml"
    worse = evalgemma("check", "--store", str(smoke_store), "--baseline", str(baseline), "--pair", f"{SMALL}={FULL}", "--junit", str(junit))
    assert worse.returncode == 4, worse.stdout + worse.stderr
    assert "regression" in worse.stdout and "dropped" in worse.stderr
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    failing = sorted(tc.get("name") or "" for tc in suite.iter("testcase") if tc.find("failure") is not None)
    # 32 of 384 dims: five tasks and the suite mean drop by more than the 0.5-point tolerance
    # (Clustering and PairClassification improve; the README's CI-gate transcript shows the numbers)
    assert failing == ["SmokeBitextMining", "SmokeClassification", "SmokeReranking", "SmokeRetrieval", "SmokeSTS", "mean(smoke)"]
    assert suite.get("failures") == "6"


def test_notebook_runs_on_a_real_smoke_store(smoke_store: Path, monkeypatch: object) -> None:
    env_before = os.environ.get("EVALGEMMA_STORE")
    os.environ["EVALGEMMA_STORE"] = str(smoke_store)
    os.environ["MPLBACKEND"] = "Agg"
    try:
        nb = nbformat.read(REPO / "notebooks" / "explore.ipynb", as_version=4)
        NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}).execute()
    finally:
        if env_before is None:
            os.environ.pop("EVALGEMMA_STORE", None)
        else:
            os.environ["EVALGEMMA_STORE"] = env_before
    text = "\n".join(
        "".join(
            o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) + str(o.get("data", {}).get("text/markdown", "")) for o in c.get("outputs", [])
        )
        for c in nb.cells
        if c.cell_type == "code"
    )
    assert "2 variants, 7 tasks" in text
    frame = load_results(smoke_store)
    mean = 100 * frame[frame["variant"] == FULL].drop_duplicates("task")["main_score"].mean()
    assert f"{mean:.2f}" in text
