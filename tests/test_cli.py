"""`evalgemma list`, start-up cost and the warm rerun path of the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

CLI = [sys.executable, "-c", "from evalgemma.cli.app import main; main()"]


def evalgemma(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "250"})


def test_list_suites_and_models() -> None:
    suites = evalgemma("list", "suites")
    assert suites.returncode == 0
    for name in ("mteb-multilingual-v2", "mteb-eng-v2", "mteb-code-v1", "xtreme-up", "xtreme-up-official", "xtreme-up-in-lang", "smoke"):
        assert name in suites.stdout
    models = evalgemma("list", "models")
    assert "minilm" in models.stdout and "google/embeddinggemma-300m" in models.stdout


def test_list_tasks_of_a_suite() -> None:
    proc = evalgemma("list", "tasks", "--suite", "smoke")
    assert proc.returncode == 0
    for name in ("SmokeRetrieval", "SmokeSTS", "SmokeBitextMining", "SmokeClassification", "SmokeClustering", "SmokePairClassification", "SmokeReranking"):
        assert name in proc.stdout
    assert "deu-eng" in proc.stdout  # bitext subsets


def test_list_unknown_target() -> None:
    proc = evalgemma("list", "suits")
    assert proc.returncode == 2 and "Did you mean 'suites'" in proc.stderr


def test_warm_rerun_skips_without_importing_mteb(smoke_store: Path) -> None:
    """Everything stored: the plan is decided from the store alone (no mteb import, no model)."""
    code = (
        "import sys; from evalgemma.run import RunConfig, plan_run\n"
        f"plan = plan_run(RunConfig.build(model='minilm', suite='smoke', dims=(384, 32), store={str(smoke_store)!r}))\n"
        "print('MISSING', plan.n_missing, 'TOTAL', plan.n_total, 'MTEB', 'mteb' in sys.modules, 'TORCH', 'torch' in sys.modules)"
    )
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert "MISSING 0 TOTAL 14 MTEB False TORCH False" in out, out
    print(f"warm plan in a fresh process: {time.perf_counter() - start:.2f} s")
    proc = evalgemma("run", "--suite", "smoke", "--model", "minilm", "--dim", "384,32", "--store", str(smoke_store))
    assert proc.returncode == 0 and "nothing to do: every cell is already stored" in proc.stdout
