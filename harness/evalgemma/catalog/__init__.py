"""Layer 1 — the catalog: every TOML schema of ``tasks/`` (suites, models, XTREME-UP language sets,
QAT checkpoints), the one TOML loader, and the published reference scores in ``results/reference/``."""

from __future__ import annotations

from pathlib import Path

#: The checkout this package runs from (``harness/evalgemma/catalog`` → the repository root).
PROJECT_ROOT = Path(__file__).resolve().parents[3]
#: Suites, models and task data as TOML/JSONL (``tasks/``).
TASKS_DIR = PROJECT_ROOT / "tasks"
