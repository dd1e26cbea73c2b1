"""Cost per variant from the bench side table (``evalgemma bench``): a table, and cost columns for the leaderboard.

Pure functions of the store: :func:`cost_table` reads ``<store>/_bench`` (newest measurement per
variant, see ``evalgemma.store.bench``); :func:`with_cost` adds its figures to a leaderboard's rows,
joined on ``variant_key`` (``–`` where a variant has no measurement).
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from evalgemma.views.leaderboard import Leaderboard

#: The columns of :func:`cost_table`, in order.
COST_COLUMNS: tuple[str, ...] = (
    "variant_key", "variant", "device", "backend", "batch_size", "weight_bytes", "embedding_bytes", "index_bytes_per_million",
    "texts_per_s_long", "texts_per_s_short", "latency_p50_ms", "latency_p95_ms", "load_s", "peak_rss_bytes", "peak_gpu_bytes",
    "long_tokens_mean", "repetitions", "warmup", "finished_at",
)

#: Leaderboard cost columns: (shown name, bench column, scale, format).
SHOWN: tuple[tuple[str, str, float, str], ...] = (
    ("weights MB", "weight_bytes", 1e-6, "{:.1f}"),
    ("B/vector", "embedding_bytes", 1.0, "{:.0f}"),
    ("index GB/1M docs", "index_bytes_per_million", 1e-9, "{:.3f}"),
    ("texts/s long", "texts_per_s_long", 1.0, "{:.1f}"),
    ("texts/s short", "texts_per_s_short", 1.0, "{:.1f}"),
    ("p50 ms", "latency_p50_ms", 1.0, "{:.1f}"),
    ("p95 ms", "latency_p95_ms", 1.0, "{:.1f}"),
    ("load s", "load_s", 1.0, "{:.2f}"),
    ("peak RSS MB", "peak_rss_bytes", 1e-6, "{:.0f}"),
    ("device", "device", 1.0, "{}"),
)


def cost_table(store: Path | str, *, warn: bool = True) -> pd.DataFrame:
    """One row per variant_key: its newest measurement (by ``finished_at``, over devices and backends).

    Columns: ``COST_COLUMNS`` (unrounded; ``peak_gpu_bytes`` NaN off CUDA). Empty when nothing was measured.
    """
    from evalgemma.store.bench import load_bench

    frame = load_bench(store, warn=warn)
    if frame.empty:
        return frame.reindex(columns=list(COST_COLUMNS))
    newest = frame.sort_values(["finished_at", "bench_id"]).groupby("variant_key", sort=False).tail(1)
    return newest[list(COST_COLUMNS)].sort_values("variant").reset_index(drop=True)


def cost_text(value: Any, scale: float, fmt: str) -> str:
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return fmt.format(float(value) * scale)


def with_cost(lb: Leaderboard, costs: pd.DataFrame) -> Leaderboard:
    """``lb`` with the cost columns of ``SHOWN`` on every row (``–`` where the variant has no bench row)."""
    by_key = {str(r["variant_key"]): r for r in costs.to_dict("records")} if not costs.empty else {}
    rows = []
    for row in lb.rows:
        bench = by_key.get(row.variant_key) if row.kind == "run" else None
        cost = {name: ("–" if bench is None else cost_text(bench[col], scale, fmt)) for name, col, scale, fmt in SHOWN}
        values = {col: (None if bench is None else bench[col]) for _, col, _, _ in SHOWN}
        rows.append(replace(row, cost=cost, cost_values=values))
    return replace(lb, rows=tuple(rows), cost_columns=tuple(name for name, *_ in SHOWN))
