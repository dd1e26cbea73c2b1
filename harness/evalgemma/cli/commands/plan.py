"""``evalgemma plan`` (= ``evalgemma run --dry-run``): what a run would evaluate and encode, and how long.

It takes every option of ``run`` (the same function, with ``--dry-run`` set), plans without loading
a model or a dataset, and prints per task the cells expected / stored / missing, the texts to
encode and the estimated time, then the suite's totals. Missing data is reported per task, not an
error (exit 0); bad names and unsupported task types are config errors (exit 2) as for ``run``.
"""

from __future__ import annotations

import csv
import functools
import inspect
import io
import json
from typing import Any

import typer

from evalgemma.errors import ConfigError

FORMATS = ("table", "csv", "json")


def show_plan(config: Any, texts_per_s: float | None, output_format: str) -> None:
    """Plan ``config`` (no model, no data loaded, nothing written) and print its estimate."""
    from evalgemma.run.estimate import estimate
    from evalgemma.run.plan import plan_run

    if output_format not in FORMATS:
        from evalgemma.errors import unknown_name

        raise unknown_name("format", output_format, FORMATS, where="--format")
    if texts_per_s is not None and not texts_per_s > 0:
        raise ConfigError(f"--texts-per-s {texts_per_s}: must be positive")
    est = estimate(plan_run(config, check_data=False), texts_per_s)
    if output_format == "json":
        typer.echo(json.dumps(est.to_dict(), indent=1))
    elif output_format == "csv":
        typer.echo(_csv(est), nl=False)
    else:
        _table(est)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _texts(n: int, unknown: int) -> str:
    return f"{n:,}" + (f" + ? ({unknown} cells)" if unknown else "")


def _table(est: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"plan: {est.suite} · {est.model} · {len(est.variants)} variant(s)")
    for col, justify in (("task", "left"), ("type", "left"), ("cells expected", "right"), ("stored", "right"), ("missing", "right"),
                         ("texts to encode", "right"), ("est. time", "right"), ("data", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for t in est.tasks:
        data = f"[red]{t.data}[/red]" if t.data_missing else t.data
        table.add_row(t.task, t.task_type, str(t.expected), str(t.stored), str(t.missing), _texts(t.texts, t.unknown_cells), _duration(t.seconds), data)
    table.add_row(f"total ({len(est.tasks)} tasks)", "", str(est.expected), str(est.stored), str(est.missing),
                  _texts(est.texts, est.unknown_cells), _duration(est.seconds), "", style="bold")
    console.print(table)
    rate = est.throughput
    console.print(f"throughput: {f'{rate.texts_per_s:.1f} texts/s' if rate.texts_per_s else 'unknown (pass --texts-per-s)'} ({rate.source})")
    missing = [t.task for t in est.tasks if t.data_missing]
    if missing:
        more = f" … (+{len(missing) - 10})" if len(missing) > 10 else ""
        console.print(f"[red]data missing for {len(missing)} of {len(est.tasks)} task(s)[/red] (a run would stop, exit 3): {', '.join(missing[:10])}{more}")
    for note in est.notes:
        console.print(f"[yellow]note:[/yellow] {note}")


def _csv(est: Any) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["suite", "task", "type", "cells_expected", "cells_stored", "cells_missing", "texts", "unknown_cells", "cached_cells", "seconds", "data"])
    for t in est.tasks:
        writer.writerow([est.suite, t.task, t.task_type, t.expected, t.stored, t.missing, t.texts, t.unknown_cells, t.cached_cells,
                         "" if t.seconds is None else f"{t.seconds:.3f}", t.data])
    writer.writerow([est.suite, "total", "", est.expected, est.stored, est.missing, est.texts, est.unknown_cells,
                     sum(t.cached_cells for t in est.tasks), "" if est.seconds is None else f"{est.seconds:.3f}", ""])
    return buf.getvalue()


def register(app: typer.Typer) -> None:
    from evalgemma.cli.commands.run import run

    @functools.wraps(run)
    def plan(**kwargs: Any) -> None:
        run(**kwargs, dry_run=True)

    signature = inspect.signature(run, eval_str=True)
    plan.__signature__ = signature.replace(parameters=[p for p in signature.parameters.values() if p.name != "dry_run"])  # type: ignore[attr-defined]
    plan.__doc__ = "Show what `run` would evaluate and encode, and an estimated time; loads no model or data, writes nothing."
    app.command("plan")(plan)
