"""Layer 1 — the Parquet results store: schema, atomic append of finished units, integrity-checked reads."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evalgemma.store.parquet import load_results, scan_store

__all__ = ["load_results", "scan_store"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from evalgemma.store import parquet

        return getattr(parquet, name)
    raise AttributeError(f"module 'evalgemma.store' has no attribute {name!r}")
