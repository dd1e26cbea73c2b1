"""Matplotlib charts of results and reference scores (Agg backend; no display needed).

Each ``plot_*`` function returns a ``matplotlib.figure.Figure`` or raises ``NoPlotData``
(a ``DataError``) saying why there is nothing to draw. Scores are drawn ×100.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from evalgemma.errors import Choice, ConfigError, DataError, StoreError, unknown_name
from evalgemma.io import atomic_write
from evalgemma.variants.spec import Quant
from evalgemma.views.decision import PARETO_AXES, Decision, decision_table, pareto_front, shared_task_text
from evalgemma.views.leaderboard import MTEB_SUITES, build_leaderboard, build_subset_table, task_scores

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from evalgemma.catalog.reference import Reference

__all__ = ["PLOTS", "NoPlotData", "PlotKind", "figure_png", "make_plot", "pareto_front", "save_figure"]

#: Bars of the quantization chart, from most to fewest bits per weight (``Quant`` declares them so).
QUANT_ORDER: tuple[Quant, ...] = tuple(Quant)


class PlotKind(Choice):
    """Plot kind."""

    DIM = "dim"
    QUANT = "quant"
    XTREME_UP = "xtreme-up"
    VS_REFERENCE = "vs-reference"
    PARETO = "pareto"


class NoPlotData(DataError):
    """There is no data for the requested chart (the report skips it with this message)."""


def _figure(width: float = 8.0, height: float = 4.5) -> Figure:
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _series_key(model: str, quant: str, kind: str) -> str:
    name = model.rsplit("/", 1)[-1]
    q = "" if quant in ("none", "") else f" · {quant}"
    return f"{name}{q} ({kind})"


def _complete_means(frame: pd.DataFrame | None, reference: Reference | None, suites: tuple[str, ...]) -> list[dict[str, object]]:
    """(suite, variant, model, dim, quant, kind, mean) for every complete leaderboard row."""
    out: list[dict[str, object]] = []
    for suite in suites:
        try:
            lb = build_leaderboard(frame, suite, reference=reference)
        except DataError:
            continue
        for r in lb.rows:
            if r.mean_task.value is not None:
                out.append({"suite": suite, "variant": r.variant, "model": r.model, "dim": r.dim, "quant": r.quant,
                            "kind": r.kind, "mean": r.mean_task.value})
    return out


def plot_score_vs_dim(frame: pd.DataFrame | None, reference: Reference | None = None, suites: tuple[str, ...] | None = None) -> Figure:
    """Mean(Task) ×100 against embedding dimension, one panel per suite, one line per model/quant/source."""
    suites = suites or _suites(frame, reference)
    points = [p for p in _complete_means(frame, reference, suites) if int(p["dim"]) > 0]  # type: ignore[call-overload]
    by_suite: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for p in points:
        key = _series_key(str(p["model"]), str(p["quant"]), str(p["kind"]))
        by_suite.setdefault(str(p["suite"]), {}).setdefault(key, []).append((int(p["dim"]), float(p["mean"])))  # type: ignore[call-overload, arg-type]
    # a line needs two dims of one model; suites where no series has two points are skipped
    by_suite = {s: {k: v for k, v in ser.items() if len({d for d, _ in v}) >= 2} for s, ser in by_suite.items()}
    by_suite = {s: ser for s, ser in by_suite.items() if ser}
    if not by_suite:
        raise NoPlotData("score vs dim: no model has complete suite means at two or more dimensions")
    fig = _figure(5.0 * len(by_suite) + 1, 4.5)
    axes = fig.subplots(1, len(by_suite), squeeze=False)[0]
    for ax, (suite, series) in zip(axes, sorted(by_suite.items()), strict=True):
        for key, pts in sorted(series.items()):
            pts = sorted(pts)
            ax.plot([d for d, _ in pts], [100 * v for _, v in pts], marker="o", label=key)
        ax.set_xscale("log", base=2)
        dims = sorted({d for pts in series.values() for d, _ in pts})
        ax.set_xticks(dims, [str(d) for d in dims])
        ax.set_title(suite)
        ax.set_xlabel("embedding dimension (Matryoshka truncation)")
        ax.set_ylabel("Mean(Task) (score ×100)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Score vs embedding dimension")
    return fig


def plot_score_vs_quant(frame: pd.DataFrame | None, reference: Reference | None = None, suites: tuple[str, ...] | None = None) -> Figure:
    """Mean(Task) ×100 per weight quantization (none, q8_0, mixed, q4_0), grouped by suite."""
    suites = suites or _suites(frame, reference)
    points = [p for p in _complete_means(frame, reference, suites)]
    groups: dict[tuple[str, str], dict[str, float]] = {}
    for p in points:
        series = f"{str(p['model']).rsplit('/', 1)[-1]} · {p['dim']}d ({p['kind']})"
        groups.setdefault((str(p["suite"]), series), {})[str(p["quant"])] = float(p["mean"])  # type: ignore[arg-type]
    groups = {k: v for k, v in groups.items() if len(v) >= 2}
    if not groups:
        raise NoPlotData("score vs quantization: no model has complete suite means under two or more quantizations")
    import numpy as np

    quants: list[str] = [q for q in QUANT_ORDER if any(q in v for v in groups.values())]
    quants += sorted({q for v in groups.values() for q in v} - set(quants))
    fig = _figure(max(7.0, 1.6 * len(groups) + 3), 4.5)
    ax = fig.subplots()
    x = np.arange(len(groups))
    width = 0.8 / len(quants)
    labels = [f"{s}\n{series}" for s, series in groups]
    for i, q in enumerate(quants):
        ys = [100 * v.get(q, np.nan) for v in groups.values()]
        bars = ax.bar(x + i * width - 0.4 + width / 2, ys, width, label=q)
        ax.bar_label(bars, fmt="%.2f", fontsize=6)
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylabel("Mean(Task) (score ×100)")
    ax.set_xlabel("suite / model")
    ax.set_title("Score vs weight quantization")
    lo = min(100 * v for g in groups.values() for v in g.values())
    ax.set_ylim(max(0.0, lo - 5), None)
    ax.legend(title="quantization", fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    return fig


def plot_xtreme_up(frame: pd.DataFrame | None, reference: Reference | None = None, suite: str = "xtreme-up", max_series: int = 6) -> Figure:
    """MRR@10 ×100 per language (grouped bars), store variants first, then reference models."""
    import numpy as np

    try:
        lb = build_subset_table(frame, suite, reference=reference)
    except DataError as exc:
        raise NoPlotData(f"XTREME-UP per language: {exc}") from exc
    rows = sorted(lb.rows, key=lambda r: (r.kind != "run", lb.rows.index(r)))[:max_series]
    langs = lb.column_names
    fig = _figure(max(9.0, 0.6 * len(langs) + 3), 4.8)
    ax = fig.subplots()
    x = np.arange(len(langs))
    width = 0.8 / len(rows)
    for i, r in enumerate(rows):
        values = [r.columns[lang].value for lang in langs]
        ys = [np.nan if v is None else 100 * v for v in values]
        ax.bar(x + i * width - 0.4 + width / 2, ys, width, label=f"{r.variant} — mean {r.mean_task.text()}")
    ax.set_xticks(x, list(langs))
    ax.set_xlabel("query language (ISO 639)")
    ax.set_ylabel("MRR@10 (×100)")
    ax.set_title(f"XTREME-UP cross-language retrieval per language ({suite})")
    # outside the axes, right of the bars, so no bar is hidden behind it
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    ax.grid(axis="y", alpha=0.3)
    return fig


def plot_vs_reference(frame: pd.DataFrame | None, reference: Reference | None = None) -> Figure:
    """Per-task scores of each stored variant against the reference for the same model and dim (y = x line)."""
    if frame is None or frame.empty or reference is None or reference.rows.empty:
        raise NoPlotData("variant vs reference: needs both stored results and reference rows")
    mine = task_scores(frame)
    ref = task_scores(reference.rows)
    pairs = []
    for (model, dim, _key), g in mine.groupby(["model", "dim", "variant_key"], sort=False):
        cand = ref[(ref["model"] == model) & (ref["dim"] == dim) & (ref["quant"] == "none")]
        if cand.empty:
            continue
        kind = "mteb" if (cand["kind"] == "mteb").any() else "paper"
        cand = cand[cand["kind"] == kind]
        joined = g.merge(cand[["suite", "task", "main_score", "variant"]], on=["suite", "task"], suffixes=("", "_ref"))
        if not joined.empty:
            pairs.append((g["variant"].iloc[0], joined["variant_ref"].iloc[0], joined))
    if not pairs:
        raise NoPlotData("variant vs reference: no stored variant shares a model, dim and task with the reference")
    fig = _figure(6.5, 6.0)
    ax = fig.subplots()
    for mine_label, ref_label, j in pairs:
        ax.scatter(100 * j["main_score_ref"], 100 * j["main_score"], label=f"{mine_label} vs {ref_label} ({len(j)} tasks)", s=18)
    lo = 0.0
    ax.plot([lo, 100], [lo, 100], color="grey", linewidth=1, linestyle="--", label="y = x")
    ax.set_xlabel("reference main score (×100)")
    ax.set_ylabel("this run's main score (×100)")
    ax.set_title("Per-task score: this run vs published reference")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def _size(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} B"


def plot_pareto(
    frame: pd.DataFrame | None,
    reference: Reference | None = None,
    *,
    baseline: str | None = None,
    comparison: pd.DataFrame | None = None,
    cost: pd.DataFrame | None = None,
    decision: Decision | None = None,
) -> Figure:
    """Quality (Mean over the shared tasks, ×100) against bytes per vector, weight size and throughput,
    one panel each, the Pareto-optimal variants joined by a step line and labelled.

    The store's variants only (``reference`` is accepted for the ``PLOTS`` signature and unused). A panel
    without data (throughput needs ``cost``, from ``evalgemma bench``) says why inside it.
    """
    import numpy as np

    if decision is None:
        if frame is None or frame.empty:
            raise NoPlotData("Pareto: the store has no results")
        decision = decision_table(frame, baseline=baseline, comparison=comparison, cost=cost)
    t = decision.table[decision.table["mean"].notna()]
    if t.empty:
        raise NoPlotData(f"Pareto: no variant has a mean over shared tasks ({shared_task_text(decision.tasks)})")
    fig = _figure(15.0, 4.8)
    axes = fig.subplots(1, len(PARETO_AXES), squeeze=False)[0]
    fronts = {"bytes_per_vector": "pareto_bytes", "weight_bytes": "pareto_weight", "texts_per_s": "pareto_speed"}
    for ax, (col, what, lower) in zip(axes, PARETO_AXES, strict=True):
        pts = t[t[col].notna() & (t[col] > 0)]
        if pts.empty:
            why = "no throughput measured:\nrun `evalgemma bench`" if col == "texts_per_s" else f"no variant records {what}"
            ax.text(0.5, 0.5, f"panel skipped\n{why}", ha="center", va="center", transform=ax.transAxes, fontsize=10, color="#a60")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"quality vs {what}")
            continue
        on = pts[pts[fronts[col]].astype(bool)]
        off = pts[~pts[fronts[col]].astype(bool)]
        ax.scatter(off[col], off["mean"], s=30, color="#999", label="dominated", zorder=2)
        ax.scatter(on[col], on["mean"], s=60, color="#d62728", marker="*", label="Pareto-optimal", zorder=3)
        front = on.sort_values(col, ascending=lower)
        ax.step(front[col], front["mean"], where="post", color="#d62728", linewidth=1, alpha=0.6, zorder=1)
        for _, r in pts.iterrows():
            ax.annotate(str(r["variant"]) + (" (baseline)" if r["is_baseline"] else ""), (r[col], r["mean"]), fontsize=7,
                        xytext=(4, 4), textcoords="offset points", fontweight="bold" if r[fronts[col]] else "normal")
        xs = pts[col].to_numpy(dtype=float)
        if xs.max() / xs.min() >= 4:
            ax.set_xscale("log")
        if col != "texts_per_s":
            ticks = np.unique(xs)
            if len(ticks) <= 8:
                ax.set_xticks(ticks, [_size(v) for v in ticks], fontsize=7)
                ax.minorticks_off()
        ax.margins(x=0.25, y=0.15)
        ax.set_xlabel(what + (" (lower is better)" if lower else " (higher is better)"))
        ax.set_ylabel("Mean over shared tasks (×100)")
        ax.set_title(f"quality vs {what}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"Pareto fronts of this store's variants — mean over {shared_task_text(decision.tasks, limit=4)}", fontsize=9)
    return fig


def _suites(frame: pd.DataFrame | None, reference: Reference | None) -> tuple[str, ...]:
    present: set[str] = set()
    if frame is not None and not frame.empty:
        present |= set(frame["suite"])
    if reference is not None and not reference.rows.empty:
        present |= set(reference.rows["suite"]) | set(reference.aggregates.get("suite", []))
    ordered = [s for s in MTEB_SUITES if s in present]
    return tuple(ordered + sorted(s for s in present - set(ordered) if s and not s.startswith("xtreme-up") and s != "xor-retrieve"))


#: The function drawing each plot kind of ``evalgemma plot KIND`` (plain dict; ``PlotKind.parse`` is the loud lookup).
PLOTS: dict[PlotKind, Callable[..., Figure]] = {
    PlotKind.DIM: plot_score_vs_dim,
    PlotKind.QUANT: plot_score_vs_quant,
    PlotKind.XTREME_UP: plot_xtreme_up,
    PlotKind.VS_REFERENCE: plot_vs_reference,
    PlotKind.PARETO: plot_pareto,
}


def make_plot(kind: str, frame: pd.DataFrame | None, reference: Reference | None = None) -> Figure:
    """The figure of one plot kind (``dim``, ``quant``, ``xtreme-up``, ``vs-reference``, ``pareto``).

    Raises:
        ConfigError: unknown kind.
        NoPlotData: nothing to draw.
    """
    return PLOTS[PlotKind.parse(kind)](frame, reference)


def figure_png(fig: Figure) -> bytes:
    """The figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def save_figure(fig: Figure, out: Path) -> Path:
    """Write a figure atomically (``evalgemma.io.atomic_write``), in the format its suffix names (``.png``, ``.svg``, ``.pdf``, ...).

    Raises:
        ConfigError: no suffix, or one matplotlib cannot write (with close matches).
        StoreError: the file cannot be written.
    """
    fmt = out.suffix.lstrip(".").lower()
    formats = fig.canvas.get_supported_filetypes()
    if not fmt:
        raise ConfigError(f"--out {out}: no file suffix to tell the image format; use one of .{', .'.join(sorted(formats))}")
    if fmt not in formats:
        raise unknown_name("image format", fmt, formats, where=f"--out {out}")
    try:
        atomic_write(out, lambda fh: fig.savefig(fh, format=fmt))
    except OSError as exc:
        raise StoreError(f"--out {out}: cannot write figure ({exc.strerror or exc})") from exc
    return out
