"""evalgemma: evaluation harness for EmbeddingGemma variants.

The public API is re-exported here lazily, so ``import evalgemma`` imports neither torch
nor mteb, creates no directories and touches no network.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["__version__", "load_results", "scan_store"]

if TYPE_CHECKING:
    from evalgemma.store.parquet import load_results, scan_store


def __getattr__(name: str) -> Any:
    if name in ("load_results", "scan_store"):
        from evalgemma import store

        return getattr(store, name)
    raise AttributeError(f"module 'evalgemma' has no attribute {name!r}")
