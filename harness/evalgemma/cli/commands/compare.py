"""``evalgemma compare``: variants against a baseline per task, with paired CIs, p-values and verdicts.

Exit codes (``cli.main`` maps the errors): 0 on success; 2 a usage error (unknown baseline, variant,
task or suite; ``--suite`` with ``--tasks``; too few ``--resamples``; no task complete for both
sides); 3 the store cannot be read or has no per-sample scores for any compared task.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from evalgemma.cli.params import one_of

if TYPE_CHECKING:
    import pandas as pd

_VERDICT_STYLE = {"better": "green", "worse": "bold red", "indistinguishable": "dim", "n/a": "yellow"}


def _formats() -> tuple[str, ...]:
    from evalgemma.views.compare import CompareFormat

    return CompareFormat.values()


def _print_table(frame: pd.DataFrame) -> None:
    from rich.console import Console
    from rich.table import Table

    from evalgemma.views.compare import display_frame, footer

    df = display_frame(frame)
    table = Table(title="evalgemma compare (points, 0-100)", show_lines=False)
    for i, col in enumerate(df.columns):
        table.add_column(str(col), justify="left" if i < 4 or col in ("verdict", "reason") else "right", overflow="fold")
    for level, rec in zip(frame["level"], df.itertuples(index=False), strict=True):
        cells = [str(v) for v in rec]
        verdict_at = list(df.columns).index("verdict")
        style = _VERDICT_STYLE.get(cells[verdict_at], "")
        cells[verdict_at] = f"[{style}]{cells[verdict_at]}[/{style}]" if style else cells[verdict_at]
        table.add_row(*cells, style="bold" if level == "suite" else None)
    console = Console(width=max(Console().width, 160))
    console.print(table)
    console.print(footer(frame), highlight=False, soft_wrap=True)


def compare(
    baseline: Annotated[str, typer.Option("--baseline", help="Baseline variant: label or key.")],
    store: Annotated[Path, typer.Option("--store", help="Results store (with per-sample scores in _samples/).")] = Path("results/store"),
    variants: Annotated[list[str] | None, typer.Option("--variants", help="Variant(s) to compare (label or key); repeatable; default every other.")] = None,
    suite: Annotated[list[str] | None, typer.Option("--suite", help="Only this suite; repeatable.")] = None,
    tasks: Annotated[list[str] | None, typer.Option("--tasks", help="Only this task; repeatable.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table | markdown | csv | json", callback=one_of("format", _formats))] = "table",
    resamples: Annotated[int, typer.Option("--resamples", help="Bootstrap resamples and random permutations (>= 1000).")] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap and the permutation test (recorded).")] = 0,
    alpha: Annotated[float, typer.Option("--alpha", help="Significance level; the CI is at 1 - alpha.")] = 0.05,
    cost: Annotated[bool, typer.Option("--cost", help="Add each variant's measured cost from `evalgemma bench` (– where none).")] = False,
) -> None:
    """Compare variants with a baseline per task: Δ, paired bootstrap CI, randomization p-value, verdict."""
    from evalgemma.errors import ConfigError
    from evalgemma.gate.regression import load_current
    from evalgemma.store.samples import load_samples
    from evalgemma.views.compare import check_settings, comparison_table, to_csv, to_json, to_markdown

    if suite and tasks:
        raise ConfigError("give --suite or --tasks, not both")
    check_settings(resamples, alpha)
    results = load_current(store)
    samples = load_samples(store, results)
    frame = comparison_table(results, samples, baseline, variants=variants, tasks=tasks, suites=suite,
                             n_resamples=resamples, seed=seed, alpha=alpha)
    if cost:
        from evalgemma.views.compare import with_cost
        from evalgemma.views.cost import cost_table

        frame = with_cost(frame, cost_table(store, warn=False))
    if fmt == "table":
        _print_table(frame)
    elif fmt == "markdown":
        typer.echo(to_markdown(frame), nl=False)
    elif fmt == "csv":
        typer.echo(to_csv(frame), nl=False)
    else:
        typer.echo(to_json(frame), nl=False)


def register(app: typer.Typer) -> None:
    """Add ``compare`` to the CLI."""
    app.command("compare")(compare)
