"""Leaderboards rendered as Markdown, CSV and one self-contained HTML report.

The HTML report has no external assets: inline CSS, charts as base64 PNG data URIs.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from evalgemma.errors import Choice, DataError, StoreError
from evalgemma.io import atomic_write
from evalgemma.views.leaderboard import (
    MTEB_SUITES,
    Leaderboard,
    VariantName,
    build_leaderboard,
    build_subset_table,
    is_subset_suite,
    match_variant,
    suites_in,
)
from evalgemma.views.plots import PLOTS, NoPlotData, PlotKind, figure_png

if TYPE_CHECKING:
    import pandas as pd

    from evalgemma.catalog.reference import Reference



class LeaderboardFormat(Choice):
    """Leaderboard format."""

    TABLE = "table"  # a rich table on the terminal (drawn by the CLI)
    MARKDOWN = "markdown"
    CSV = "csv"
    HTML = "html"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1400px;color:#222;padding:0 1em}
h1{font-size:1.6em}h2{font-size:1.3em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:.8em;margin:.5em 0 1em;display:block;overflow-x:auto}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:right;white-space:nowrap}
th{background:#f3f3f3;position:sticky;top:0}td:first-child,th:first-child,td:nth-child(2),th:nth-child(2){text-align:left}
tr.run td{background:#eef6ff;font-weight:600}td.inc{color:#a33}td.neg{color:#b00}td.pos{color:#070}
.note{color:#555;font-size:.85em}.skip{color:#a60;font-style:italic}figure{margin:1em 0}img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.85em;color:#555}
"""


def to_markdown(lb: Leaderboard) -> str:
    """A GitHub-flavoured Markdown table of a leaderboard, with its notes below."""
    df = lb.display_frame()
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" if i < 2 else "---:" for i in range(len(cols))) + "|"]
    for rec in df.itertuples(index=False):
        lines.append("| " + " | ".join(str(v).replace("|", "\\|") for v in rec) + " |")
    lines += [f"\n_{n}_" for n in lb.notes]
    return f"**{lb.suite}**\n\n" + "\n".join(lines) + "\n"


def to_csv(lb: Leaderboard) -> str:
    """The numeric leaderboard (0-1, unrounded; NaN where incomplete) as CSV."""
    return str(lb.to_frame().assign(suite=lb.suite).to_csv(index=False))


def to_html_table(lb: Leaderboard) -> str:
    """An HTML ``<table>`` of a leaderboard (store rows highlighted, incomplete cells marked)."""
    df = lb.display_frame()
    kinds = [r.kind for r in lb.rows]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for kind, rec in zip(kinds, df.itertuples(index=False), strict=True):
        cells = []
        for col, v in zip(df.columns, rec, strict=True):
            text = str(v)
            cls = "inc" if text.startswith("incomplete") else ""
            if str(col).startswith("Δ") and text not in ("–", ""):
                cls = "neg" if text.startswith("-") else "pos"
            cells.append(f'<td class="{cls}">{html.escape(text)}</td>' if cls else f"<td>{html.escape(text)}</td>")
        body.append(f'<tr class="{"run" if kind == "run" else "ref"}">' + "".join(cells) + "</tr>")
    notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in lb.notes)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{notes}"


def leaderboards(
    frame: pd.DataFrame | None,
    reference: Reference | None,
    suites: Sequence[str] | None = None,
    *,
    shared_tasks: bool = False,
    baseline: str | None = None,
) -> list[Leaderboard]:
    """The leaderboard of each suite (store suites, else the reference's MTEB and XTREME-UP suites).

    Raises:
        DataError: nothing to show at all.
    """
    if suites is None:
        names = list(suites_in(frame)) if frame is not None else []
        if reference is not None and not reference.empty:
            names += [s for s in (*MTEB_SUITES, "xtreme-up") if s not in names]
        suites = names
    if not suites:
        raise DataError("no results: the store is empty and no reference was requested (use --reference paper|mteb)")
    out = []
    for suite in suites:
        if is_subset_suite(suite, frame):
            out.append(build_subset_table(frame, suite, reference=reference, baseline=_baseline_for(baseline, frame, reference, suite)))
        else:
            out.append(build_leaderboard(frame, suite, reference=reference, shared_tasks=shared_tasks,
                                         baseline=_baseline_for(baseline, frame, reference, suite)))
    return out


def _baseline_for(baseline: str | None, frame: pd.DataFrame | None, reference: Reference | None, suite: str) -> str | None:
    """Apply ``--baseline`` only to suites where that variant has rows (an unknown one still errors for a single suite).

    Returns the selected variant's full label (its key where another variant shares the label),
    found by ``match_variant`` (a label, a key, or a reference label without its suffix), or None
    when the variant has no rows in ``suite``.
    """
    if baseline is None:
        return None
    sources = [frame, reference.rows if reference is not None else None, reference.aggregates if reference is not None else None]
    names: list[VariantName] = []
    for source in sources:
        if source is not None and not source.empty:
            sub = source[source["suite"] == suite]
            kinds = sub["kind"] if "kind" in sub.columns else ["run"] * len(sub)
            names += [VariantName(str(v), str(k), str(kind)) for v, k, kind in zip(sub["variant"], sub["variant_key"], kinds, strict=True)]
    hit = match_variant(baseline, names, where="--baseline")
    if hit is None:
        return None
    shared = {n.key for n in names if n.label == hit.label}
    return hit.label if shared == {hit.key} and baseline != hit.key else hit.key


_CHART_TITLES: dict[PlotKind, str] = {
    PlotKind.DIM: "Score vs embedding dimension",
    PlotKind.QUANT: "Score vs weight quantization",
    PlotKind.XTREME_UP: "XTREME-UP MRR@10 per language",
    PlotKind.VS_REFERENCE: "This run vs published reference",
}


def _chart(kind: PlotKind, frame: pd.DataFrame | None, reference: Reference | None) -> str:
    title = html.escape(_CHART_TITLES[kind])
    try:
        fig = PLOTS[kind](frame, reference)
    except NoPlotData as exc:
        return f'<h3>{title}</h3><p class="skip">Chart skipped: {html.escape(str(exc))}</p>'
    data = base64.b64encode(figure_png(fig)).decode("ascii")
    return f'<figure><img alt="{title}" src="data:image/png;base64,{data}"><figcaption>{title}</figcaption></figure>'


def render_html(
    frame: pd.DataFrame | None,
    reference: Reference | None,
    *,
    title: str = "evalgemma report",
    store: str = "",
    suites: Sequence[str] | None = None,
    baseline: str | None = None,
    problems: Sequence[str] = (),
) -> str:
    """The whole report as one self-contained HTML string."""
    boards = leaderboards(frame, reference, suites, baseline=baseline)
    n_variants = 0 if frame is None or frame.empty else frame["variant_key"].nunique()
    now = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="note">Store: <code>{html.escape(store or "(none)")}</code> · {n_variants} stored variant(s) · generated {now}. '
        "Scores ×100, two decimals (stored unrounded). Highlighted rows are this store's runs; the others are published references. "
        "A variant missing any task of a suite shows <i>incomplete (k/n)</i> instead of a mean.</p>",
    ]
    for p in problems:
        parts.append(f'<p class="skip">Skipped store file: {html.escape(p)}</p>')
    parts.append("<h2>Leaderboards</h2>")
    for lb in boards:
        what = "MRR@10 per language" if lb.kind == "subsets" else "Mean(Task), Mean(TaskType), per task type"
        parts.append(f"<h3>{html.escape(lb.suite)} <small class=\"note\">({what}; {len(lb.expected)} expected)</small></h3>")
        parts.append(to_html_table(lb))
    parts.append("<h2>Charts</h2>")
    for kind in PlotKind:
        parts.append(_chart(kind, frame, reference))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(text: str, out: Path) -> Path:
    """Write the report atomically (``evalgemma.io.atomic_write``: complete or absent, mode 0644).

    Raises:
        StoreError: the file cannot be written.
    """
    try:
        atomic_write(out, text)
    except OSError as exc:
        raise StoreError(f"--out {out}: cannot write report ({exc.strerror or exc})") from exc
    return out
