"""Views of the store: ``leaderboard``, ``report`` (one self-contained HTML file) and ``plot``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from evalgemma.cli.params import one_of

if TYPE_CHECKING:
    import pandas as pd

    from evalgemma.catalog.reference import Reference
    from evalgemma.views.decision import DecisionInputs
    from evalgemma.views.leaderboard import Leaderboard


def _reference_kinds() -> tuple[str, ...]:
    from evalgemma.catalog.reference import ReferenceKind

    return ReferenceKind.values()


def _formats() -> tuple[str, ...]:
    from evalgemma.views.report import LeaderboardFormat

    return LeaderboardFormat.values()


def _plot_kinds() -> tuple[str, ...]:
    from evalgemma.views.plots import PLOTS

    return tuple(PLOTS)


_check_reference = one_of("reference", _reference_kinds)


def _load(store: Path, reference: str) -> tuple[pd.DataFrame, Reference, list[str]]:
    from evalgemma.catalog.reference import load_reference
    from evalgemma.store.parquet import newest_runs, scan_store

    frame, problems = scan_store(store)
    for p in problems:
        typer.secho(f"warning: skipped store file: {p.reason}", err=True, fg=typer.colors.YELLOW)
    return newest_runs(frame), load_reference(reference), [p.reason for p in problems]


def _decision_inputs(store: Path, frame: pd.DataFrame, baseline: str | None, resamples: int, seed: int) -> DecisionInputs:
    """The decision's comparison and cost from the store (empty when the store has no runs)."""
    from evalgemma.views.decision import DecisionInputs, store_inputs

    if frame.empty:
        return DecisionInputs(None, None, ())
    return store_inputs(store, frame, baseline=baseline, n_resamples=resamples, seed=seed)


def _print_table(lb: Leaderboard) -> None:
    from rich.console import Console
    from rich.table import Table

    df = lb.display_frame()
    title = f"{lb.suite} — " + ("MRR@10 per language (×100)" if lb.kind == "subsets" else "MTEB means (×100)")
    table = Table(title=title, show_lines=False)
    for i, col in enumerate(df.columns):
        table.add_column(str(col), justify="left" if i < 2 else "right", overflow="fold")
    for r, rec in zip(lb.rows, df.itertuples(index=False), strict=True):
        table.add_row(*[str(v) for v in rec], style="bold cyan" if r.kind == "run" else None)
    console = Console(width=max(120, min(400, 14 * len(df.columns) + 60)))
    console.print(table)
    for note in lb.notes:
        console.print(f"[dim]{note}[/dim]")


def register(app: typer.Typer) -> None:
    """Add ``leaderboard``, ``report`` and ``plot`` to the CLI."""

    @app.command("leaderboard")
    def leaderboard(
        suite: list[str] = typer.Option(None, "--suite", help="suite(s) to show (default: every suite in the store)"),
        store: Path = typer.Option(Path("results/store"), "--store", help="results store directory"),
        reference: str = typer.Option(
            "paper", "--reference", help="published scores to show: paper | mteb | mteb-all | both | none", callback=_check_reference
        ),
        baseline: str = typer.Option(None, "--baseline", help="variant label or key; adds Δ columns (row − baseline)"),
        shared_tasks: bool = typer.Option(False, "--shared-tasks", help="compare only on tasks every shown variant has"),
        fmt: str = typer.Option("table", "--format", help="table | markdown | csv | html", callback=one_of("format", _formats)),
        cost: bool = typer.Option(False, "--cost", help="add the measured cost columns of `evalgemma bench` (– where a variant has none)"),
    ) -> None:
        """Show MTEB-style leaderboards (Mean(Task), Mean(TaskType), per type) and XTREME-UP per language."""
        from evalgemma.views.report import leaderboards, to_csv, to_html_table, to_markdown

        frame, ref, _ = _load(store, reference)
        boards = leaderboards(frame, ref, suite or None, shared_tasks=shared_tasks, baseline=baseline)
        if cost:
            from evalgemma.store.bench import scan_bench
            from evalgemma.views.cost import cost_table, with_cost

            for p in scan_bench(store)[1]:
                typer.secho(f"warning: skipped bench file: {p.reason}", err=True, fg=typer.colors.YELLOW)
            costs = cost_table(store, warn=False)
            boards = [with_cost(lb, costs) for lb in boards]
        if baseline is not None and all(lb.baseline is None for lb in boards):
            from evalgemma.views.leaderboard import find_row

            find_row(tuple(r for lb in boards for r in lb.rows), baseline)  # raises the close-match error
        for i, lb in enumerate(boards):
            if fmt == "table":
                _print_table(lb)
            elif fmt == "markdown":
                typer.echo(to_markdown(lb))
            elif fmt == "csv":
                text = to_csv(lb)
                typer.echo(text if i == 0 else text.split("\n", 1)[1], nl=False)
            else:
                typer.echo(f"<h3>{lb.suite}</h3>\n" + to_html_table(lb))

    @app.command("report")
    def report(
        store: Path = typer.Option(Path("results/store"), "--store", help="results store directory"),
        out: Path = typer.Option(Path("report.html"), "--out", help="HTML file to write"),
        suite: list[str] = typer.Option(None, "--suite", help="suite(s) to include (default: store suites + reference suites)"),
        reference: str = typer.Option("both", "--reference", help="paper | mteb | mteb-all | both | none", callback=_check_reference),
        baseline: str = typer.Option(None, "--baseline", help="variant label or key for Δ columns"),
        title: str = typer.Option("evalgemma report", "--title"),
        resamples: int = typer.Option(2000, "--resamples", help="paired bootstrap resamples and permutations of the decision's CIs (>= 1000)"),
        seed: int = typer.Option(0, "--seed", help="seed of the decision's paired tests (recorded in the report)"),
    ) -> None:
        """Write ONE self-contained HTML report (tables + charts, no external assets).

        The decision table joins, when the store has them, `evalgemma compare` against the baseline
        (per-sample scores in _samples/) and `evalgemma bench`'s measured cost (_bench/).
        """
        from evalgemma.views.report import render_html, write_report

        frame, ref, problems = _load(store, reference)
        inputs = _decision_inputs(store, frame, baseline, resamples, seed)
        text = render_html(frame, ref, title=title, store=str(store), suites=suite or None, baseline=baseline, problems=problems,
                           comparison=inputs.comparison, cost=inputs.cost, notes=inputs.notes)
        write_report(text, out)
        typer.echo(f"wrote {out} ({len(text) // 1024} KiB)")

    @app.command("plot")
    def plot(
        kind: str = typer.Argument(..., metavar="KIND", help="dim | quant | xtreme-up | vs-reference | pareto", callback=one_of("plot kind", _plot_kinds)),
        store: Path = typer.Option(Path("results/store"), "--store", help="results store directory"),
        out: Path = typer.Option(Path("figure.png"), "--out", help="image file (.png, .svg, .pdf)"),
        reference: str = typer.Option("both", "--reference", help="paper | mteb | mteb-all | both | none", callback=_check_reference),
        baseline: str = typer.Option(None, "--baseline", help="pareto: the baseline variant (label or key) of the Δ tests"),
        resamples: int = typer.Option(2000, "--resamples", help="pareto: paired bootstrap resamples (>= 1000)"),
    ) -> None:
        """Draw one chart to a file (pareto: with the store's measured cost and paired tests, as in the report)."""
        from evalgemma.views.plots import PlotKind, make_plot, plot_pareto, save_figure

        frame, ref, _ = _load(store, reference)
        if PlotKind.parse(kind) is PlotKind.PARETO:
            from evalgemma.views.decision import decision_table

            inputs = _decision_inputs(store, frame, baseline, resamples, 0)
            fig = plot_pareto(frame, decision=decision_table(frame, baseline=baseline, comparison=inputs.comparison, cost=inputs.cost))
        else:
            fig = make_plot(kind, frame, ref)
        save_figure(fig, out)
        typer.echo(f"wrote {out}")
