"""``notebooks/explore.ipynb`` runs end to end against a store (any cell error fails the test)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from test_report import make_store  # the same realistic store the report test uses

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def results_store(tmp_path: Path) -> Path:
    """The store the notebook reads; swap this for a real smoke run's store when one exists."""
    return make_store(tmp_path / "store")


def run_notebook(store: Path, monkeypatch: pytest.MonkeyPatch, *extra: str) -> tuple[Any, str]:
    """Execute the notebook against ``store`` (then ``extra`` code cells, to inspect its state); return it and the text of all outputs."""
    monkeypatch.setenv("EVALGEMMA_STORE", str(store))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    nb = nbformat.read(REPO / "notebooks" / "explore.ipynb", as_version=4)
    nb.cells.extend(nbformat.v4.new_code_cell(code) for code in extra)
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}).execute()
    outputs = {i: "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) + str(o.get("data", {}).get("text/markdown", ""))
                          for o in c.get("outputs", [])) for i, c in enumerate(nb.cells) if c.cell_type == "code"}
    return nb, "\n".join(outputs.values())


def test_explore_notebook_runs(results_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nb, text = run_notebook(results_store, monkeypatch)
    # the store made by make_store: 3 variants, 5 tasks
    assert f"{results_store}: " in text and "3 variants, 5 tasks" in text
    # leaderboard cell: XTREME-UP 768d run mean = 0.30 + 0.01·mean(0..19) = 0.395 → 39.50; MiniLM has 3 of 20 languages
    assert "| embeddinggemma-300m · 768d | run | 39.50 |" in text
    assert "| all-MiniLM-L6-v2 · 384d | run | incomplete (3/20) |" in text
    # decision cell: the only task all 3 variants have complete is demo/STSBenchmark; the default baseline is the
    # largest-dim float32 torch unquantized variant (768d)
    assert "baseline: embeddinggemma-300m · 768d (default: the largest-dim float32 torch variant" in text
    assert "mean over 1 task(s) of demo: STSBenchmark" in text
    # this store has no _samples/ and no bench rows: the decision cell says so, as the report does
    assert "note: the store has no per-sample scores" in text
    # all five charts drawn (none skipped) and listed by the last cell
    assert "skipped" not in text
    assert "['dim', 'pareto', 'quant', 'vs-reference', 'xtreme-up']" in text
    assert any(o.get("data", {}).get("image/png") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
