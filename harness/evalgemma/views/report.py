"""Leaderboards rendered as Markdown, CSV and one self-contained HTML report.

The HTML report has no external assets: inline CSS, charts as base64 PNG data URIs.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from evalgemma.errors import Choice, DataError, StoreError
from evalgemma.io import atomic_write
from evalgemma.views.decision import Decision, decision_table, shared_task_text
from evalgemma.views.leaderboard import (
    MTEB_SUITES,
    Leaderboard,
    VariantName,
    build_leaderboard,
    build_subset_table,
    is_subset_suite,
    match_variant,
    suites_in,
    task_scores,
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
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.2em 2em;color:#222}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.25em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
.wrap{overflow-x:auto;max-width:100%;margin:.5em 0 1em}
table{border-collapse:collapse;font-size:.82em}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:right;white-space:nowrap}
th{background:#f3f3f3}td:first-child,th:first-child,td:nth-child(2),th:nth-child(2){text-align:left}
table.decision{font-size:.88em}table.decision th,table.decision td{padding:.2em .35em}table.decision th{white-space:normal;vertical-align:bottom;max-width:9em}
table.decision td.txt,table.decision th.txt{text-align:left}
table.decision td.txt{white-space:normal;min-width:5em;max-width:15em}table.decision td:first-child{min-width:11em}
tr.run td{background:#eef6ff;font-weight:600}tr.base td{background:#fff7e0}td.inc{color:#a33}td.neg{color:#b00}td.pos{color:#070}
td.better{color:#070;font-weight:600}td.worse{color:#b00;font-weight:600}.star{color:#d62728}
.lede{font-size:.95em;margin:.2em 0 .6em}.note{color:#555;font-size:.85em;margin:.3em 0}.skip{color:#a60;font-style:italic}
figure{margin:1em 0}img{max-width:100%;border:1px solid #eee}figcaption{font-size:.85em;color:#555}
details{margin:1em 0}summary{cursor:pointer;font-weight:600}
@media print{body{margin:0;font-size:9pt}.wrap{overflow:visible}table{font-size:7.5pt}th,td{white-space:normal}
h2{break-after:avoid}figure,tr{break-inside:avoid}img{border:0}summary{display:none}}
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
    PlotKind.PARETO: "Pareto charts",
}

#: What to read off each chart (its caption; the title is drawn in the image itself).
_CHART_NOTES: dict[PlotKind, str] = {
    PlotKind.DIM: "One line per model and source; each point is a complete suite mean at one Matryoshka dimension.",
    PlotKind.QUANT: "Bars group one model and dimension; each bar is a complete suite mean under one weight format.",
    PlotKind.XTREME_UP: "Grouped bars per query language; the legend gives each variant's mean over the languages.",
    PlotKind.VS_REFERENCE: "Points on the dashed line reproduce the published score; above it, this run scores higher.",
    PlotKind.PARETO: "Stars are Pareto-optimal (no other variant is at least as good on both axes and better on one); "
                     "the step line joins them. Grey points are dominated.",
}


def _chart(kind: PlotKind, frame: pd.DataFrame | None, reference: Reference | None, **kwargs: object) -> str:
    title = html.escape(_CHART_TITLES[kind])
    try:
        fig = PLOTS[kind](frame, reference, **kwargs)
    except NoPlotData as exc:
        return f'<h3>{title}</h3><p class="skip">Chart skipped: {html.escape(str(exc))}</p>'
    data = base64.b64encode(figure_png(fig)).decode("ascii")
    return f'<figure><img alt="{title}" src="data:image/png;base64,{data}"><figcaption>{html.escape(_CHART_NOTES[kind])}</figcaption></figure>'


def _wrap(table: str) -> str:
    """A table inside a horizontally scrolling wrapper (a wide table scrolls instead of being cut)."""
    return f'<div class="wrap">{table}</div>'


def _fmt(x: object, spec: str = ".2f", empty: str = "–") -> str:
    try:
        v = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return empty
    return empty if math.isnan(v) else format(v, spec)


def _size(x: object) -> str:
    v = float(x)  # type: ignore[arg-type]
    if math.isnan(v) or v <= 0:
        return "–"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if v >= scale:
            return f"{v / scale:.3g} {unit}"
    return f"{v:.0f} B"


def decision_html(decision: Decision) -> str:
    """The decision table (one row per stored variant) and the notes on what it is computed over."""
    t = decision.table
    has_ci = decision.has_comparison
    has_speed = bool(t["texts_per_s"].notna().any())
    head = ["Variant", "Pareto-optimal on", "dim", "weights", "embed dtype", "backend", f"Mean ({len(decision.tasks)} shared tasks)",
            "Δ vs baseline", "95% CI", "verdict", "bytes/vector", "weight size", "texts/s"]
    body = []
    backends = sorted({str(b) for b in t["backend"]})
    dropped = {head.index("backend")} if len(backends) == 1 else set()  # one backend for all: said in a note, not a column
    fronts = (("pareto_bytes", "bytes"), ("pareto_weight", "weights"), ("pareto_speed", "speed"))
    for r in t.to_dict("records"):
        on = [name for col, name in fronts if bool(r[col])]
        star = f'<span class="star">★</span> {", ".join(on)}' if on else ""
        delta = "baseline" if r["is_baseline"] else _fmt(r["delta"], "+.2f")
        ci = "–" if math.isnan(r["ci_low"]) else f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]"
        verdicts = decision.verdicts.get(str(r["variant_key"]), ())
        verdict = str(r["verdict"]) or "–"
        if len(verdicts) > 1:  # one line per suite, so the column stays narrow
            ci = "<br>".join(html.escape(f"{v.suite}: {v.delta:+.2f} [{v.ci_low:+.2f}, {v.ci_high:+.2f}]") for v in verdicts)
            verdict_html = "<br>".join(html.escape(v.verdict) for v in verdicts)  # line by line with the CI column
        else:
            ci, verdict_html = html.escape(ci), html.escape(verdict)
        speed = _fmt(r["texts_per_s"], ".1f") + ("" if math.isnan(r["texts_per_s_short"]) else f" / {r['texts_per_s_short']:.1f}")
        cells = [
            (html.escape(str(r["variant"])), "txt"), (star, "txt"), (str(r["dim"]), ""), (html.escape(str(r["weight_format"])), "txt"),
            (html.escape(str(r["embed_dtype"])), "txt"), (html.escape(str(r["backend"])), "txt"), (_fmt(r["mean"]), ""),
            (delta, "" if r["is_baseline"] or math.isnan(r["delta"]) else ("neg" if r["delta"] < 0 else "pos")),
            (ci, ""), (verdict_html, verdict if verdict in ("better", "worse") else ""),
            (_size(r["bytes_per_vector"]), ""), (_size(r["weight_bytes"]), ""), (speed, ""),
        ]
        row_cls = "run base" if r["is_baseline"] else "run"
        body.append(f'<tr class="{row_cls}">' + "".join(f'<td class="{c}">{v}</td>' if c else f"<td>{v}</td>" for i, (v, c) in enumerate(cells)
                                                       if i not in dropped) + "</tr>")
    th = "".join(f'<th class="{"txt" if i in (0, 1, 3, 4, 5) else ""}">{html.escape(h)}</th>' for i, h in enumerate(head) if i not in dropped)
    notes = [
        f"Mean: main score ×100 averaged over the {html.escape(shared_task_text(decision.tasks, limit=12))} — "
        "the tasks every scored variant has complete, so the means compare like with like.",
        f"Baseline: <b>{html.escape(decision.baseline_label or '(none)')}</b> ({html.escape(decision.baseline_reason)}; "
        "choose another with <code>--baseline</code>). Δ = variant − baseline, in points.",
    ]
    if dropped:
        notes.append(f"Backend: {html.escape(backends[0])} for every variant.")
    if not has_ci:
        notes.append("95% CI and verdict: none here — they need per-sample scores of the baseline and another variant "
                     "(<code>evalgemma compare</code>).")
    if not has_speed:
        notes.append("texts/s: not measured — run <code>evalgemma bench</code>. bytes/vector and weight size come from the stored rows.")
    else:
        notes.append("texts/s: long / short inputs, from <code>evalgemma bench</code>.")
    notes += [html.escape(n) for n in decision.notes]
    table = f'<table class="decision"><thead><tr>{th}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    return _wrap(table) + "".join(f'<p class="note">{n}</p>' for n in notes)


def _short(v: object, n: int = 12) -> str:
    text = str(v or "")
    return text[:n] if len(text) > n and all(c in "0123456789abcdef" for c in text.lower()) else text


def detail_html(frame: pd.DataFrame) -> str:
    """Per variant: each task's type, cells stored / expected, main score, samples, task version and data revision."""
    ts = task_scores(frame)
    main = frame[frame["is_main"].astype(bool)]
    parts = []
    for key, g in ts.groupby("variant_key", sort=False):
        label = html.escape(str(g["variant"].iloc[0]))
        rows = []
        for r in g.sort_values(["suite", "task"]).to_dict("records"):
            cells = main[(main["variant_key"] == key) & (main["task"] == r["task"])]
            n = int(cells["n_samples"].sum()) if "n_samples" in cells.columns else 0
            score = _fmt(100 * r["main_score"]) if r["complete"] else f"incomplete ({r['n_cells']}/{r['n_expected']} cells)"
            vals = [r["suite"], r["task"], r["task_type"], f"{r['n_cells']}/{r['n_expected']}", score, str(n) if n else "–",
                    ", ".join(sorted({_short(v) for v in cells.get("task_version", [])})),
                    ", ".join(sorted({_short(v) for v in cells.get("data_revision", [])}))]
            cls = ["", "", "", "", "" if r["complete"] else "inc", "", "", ""]
            rows.append("<tr>" + "".join(f'<td class="{c}">{html.escape(str(v))}</td>' if c else f"<td>{html.escape(str(v))}</td>"
                                         for v, c in zip(vals, cls, strict=True)) + "</tr>")
        head = "".join(f"<th>{h}</th>" for h in ("suite", "task", "type", "cells", "main score ×100", "n_samples", "task version", "data revision"))
        parts.append(f"<h3>{label} <small class=\"note\">({html.escape(str(key))}, {len(g)} tasks)</small></h3>"
                     + _wrap(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"))
    return "".join(parts)


_PROVENANCE: tuple[tuple[str, str], ...] = (
    ("model", "model"), ("revision", "revision"), ("evalgemma_version", "evalgemma"), ("mteb_version", "mteb"),
    ("torch_version", "torch"), ("transformers_version", "transformers"), ("sentence_transformers_version", "sentence-transformers"),
    ("device", "device"), ("batch_size", "batch size"), ("git_commit", "git commit"), ("run_id", "run ids"),
)


def provenance_html(frame: pd.DataFrame) -> str:
    """One row per variant: library versions, device, git commit, run ids and the run dates."""
    head = ["variant", *(name for _, name in _PROVENANCE), "started", "finished"]
    rows = []
    for _key, g in frame.groupby("variant_key", sort=False):
        vals = [str(g["variant"].iloc[0])]
        for col, _ in _PROVENANCE:
            got = sorted({_short(v) for v in g[col].dropna().astype(str) if v != ""}) if col in g.columns else []
            vals.append(", ".join(got[:4]) + (f" … ({len(got)})" if len(got) > 4 else "") if got else "–")
        started = sorted(v for v in g.get("started_at", []) if v)
        finished = sorted(v for v in g.get("finished_at", []) if v)
        vals += [started[0][:19] if started else "–", finished[-1][:19] if finished else "–"]
        rows.append("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in vals) + "</tr>")
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    return _wrap(f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def _lede(frame: pd.DataFrame, store: str) -> str:
    suites = sorted({s for s in frame["suite"].dropna() if s})
    models = sorted({str(m).rsplit("/", 1)[-1] for m in frame["model"].dropna()})
    devices = sorted({str(d) for d in frame.get("device", []) if d}) or ["unknown"]
    finished = sorted(v for v in frame.get("finished_at", []) if v)
    if finished and finished[0][:10] != finished[-1][:10]:
        when = f"{finished[0][:10]} – {finished[-1][:10]}"
    else:
        when = finished[-1][:16].replace("T", " ") if finished else "?"
    return (f"{frame['variant_key'].nunique()} variant(s) of {html.escape(', '.join(models))} on {html.escape(', '.join(suites))} · "
            f"store <code>{html.escape(store or '(none)')}</code> · runs {html.escape(when)} · device {html.escape(', '.join(devices))}")


def render_html(
    frame: pd.DataFrame | None,
    reference: Reference | None,
    *,
    title: str = "evalgemma report",
    store: str = "",
    suites: Sequence[str] | None = None,
    baseline: str | None = None,
    problems: Sequence[str] = (),
    comparison: pd.DataFrame | None = None,
    cost: pd.DataFrame | None = None,
    notes: Sequence[str] = (),
) -> str:
    """The whole report as one self-contained HTML string, decision first.

    Order: title and what/where; the decision table of the store's variants; Pareto charts;
    leaderboards and charts of the store's runs; per-task detail; provenance; then the published
    reference scores, collapsed in ``<details>``.

    Args:
        frame: the store's newest runs (``load_results``), or None.
        reference: published scores to show in the collapsed reference section, or None.
        baseline: a stored variant's label or key (default: see ``evalgemma.views.decision``).
        comparison: ``evalgemma compare``'s table (Δ with CI and verdict); optional.
        cost: ``evalgemma bench``'s cost table (bytes, texts/s); optional.
        notes: more notes under the decision table (``evalgemma.views.decision.store_inputs`` gives them).

    Raises:
        DataError: nothing to show (empty store and no reference).
        ConfigError: unknown ``baseline``.
    """
    has_runs = frame is not None and not frame.empty
    now = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    ref_boards = leaderboards(frame, reference, suites, baseline=baseline) if reference is not None and not reference.empty else []
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if not has_runs:
        if not ref_boards:
            leaderboards(frame, None, suites)  # raises the "no results" DataError
        parts.append(f'<p class="lede">Store <code>{html.escape(store or "(none)")}</code> has no results: run <code>evalgemma run</code>, '
                     f"then report again. Published reference scores below. Generated {now}.</p>")
    else:
        assert frame is not None
        parts.append(f'<p class="lede">{_lede(frame, store)} · generated {now}</p>')
    for p in problems:
        parts.append(f'<p class="skip">Skipped store file: {html.escape(p)}</p>')
    if has_runs:
        assert frame is not None
        decision = decision_table(frame, baseline=baseline, comparison=comparison, cost=cost, notes=notes)
        parts += ['<h2 id="decision">Decision</h2>', decision_html(decision)]
        parts += ['<h2 id="pareto">Pareto charts</h2>', _chart(PlotKind.PARETO, frame, None, decision=decision)]
        mine = leaderboards(frame, None, suites, baseline=decision.baseline_key)
        parts.append('<h2 id="leaderboards">Leaderboards of this store</h2>')
        parts.append('<p class="note">Scores ×100, two decimals (stored unrounded). A variant missing any task of a suite shows '
                     "<i>incomplete (k/n)</i> instead of a mean.</p>")
        for lb in mine:
            what = "MRR@10 per language" if lb.kind == "subsets" else "Mean(Task), Mean(TaskType), per task type"
            parts.append(f"<h3>{html.escape(lb.suite)} <small class=\"note\">({what}; {len(lb.expected)} expected)</small></h3>")
            parts.append(_wrap(to_html_table(lb)))
        parts.append('<h2 id="charts">Charts of this store\'s variants</h2>')
        for kind in (PlotKind.DIM, PlotKind.QUANT, PlotKind.XTREME_UP):
            parts.append(_chart(kind, frame, None))
        parts += ['<h2 id="detail">Per-task detail</h2>', detail_html(frame)]
        parts += ['<h2 id="provenance">Provenance</h2>', provenance_html(frame)]
    if ref_boards:
        parts.append(f'<details id="reference"{"" if has_runs else " open"}><summary>Published reference scores '
                     f"({len(ref_boards)} suite(s); store rows highlighted for comparison)</summary>")
        for lb in ref_boards:
            what = "MRR@10 per language" if lb.kind == "subsets" else "Mean(Task), Mean(TaskType), per task type"
            parts.append(f"<h3>{html.escape(lb.suite)} <small class=\"note\">({what}; {len(lb.expected)} expected)</small></h3>")
            parts.append(_wrap(to_html_table(lb)))
        for kind in (PlotKind.DIM, PlotKind.QUANT, PlotKind.XTREME_UP, PlotKind.VS_REFERENCE):
            parts.append(_chart(kind, frame, reference))
        parts.append("</details>")
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
