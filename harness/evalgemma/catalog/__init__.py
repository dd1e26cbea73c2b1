"""Layer 1 — the catalog: every TOML schema of ``tasks/`` (suites, models, XTREME-UP language sets,
QAT checkpoints), the one TOML loader, and the published reference scores in ``results/reference/``."""

from __future__ import annotations

from evalgemma.io import PROJECT_ROOT

__all__ = ["PROJECT_ROOT", "TASKS_DIR"]

#: Suites, models and task data as TOML/JSONL (``tasks/``).
TASKS_DIR = PROJECT_ROOT / "tasks"
