"""Layer 5 — running: plan = cells(suite × variants) − stored cells (``plan.py``); the pure evaluation
of one unit (``evaluate.py``); executors that only schedule it and persist its result (``local.py``,
``executors.py`` for shards and Ray, ``persist.py`` the one writer of results).

Public API (imported lazily): ``RunConfig``, ``plan_run``, ``execute``, ``RunSummary``, ``Plan``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evalgemma.run.config import RunConfig
    from evalgemma.run.local import RunSummary, execute
    from evalgemma.run.plan import Plan, plan_run

__all__ = ["Plan", "RunConfig", "RunSummary", "execute", "plan_run"]

_WHERE = {"RunConfig": "config", "plan_run": "plan", "Plan": "plan", "execute": "local", "RunSummary": "local"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"evalgemma.run.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'evalgemma.run' has no attribute {name!r}")
