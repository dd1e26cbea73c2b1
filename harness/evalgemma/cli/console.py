"""Terminal presentation of a run: the plan, progress per unit, and the summary table."""

from __future__ import annotations

from typing import Any

from evalgemma.run.config import RunConfig
from evalgemma.run.local import RunSummary, execute
from evalgemma.run.plan import Plan, plan_run


def print_plan(plan: Plan, console: Any) -> None:
    """Variants × tasks: what is to run and what is already stored, in tasks and in cells."""
    from rich.table import Table

    table = Table(title=f"plan: {plan.suite_name} · {plan.model.model_id}@{plan.model.revision[:20]}", show_lines=False)
    for col, justify in (("variant", "left"), ("key", "left"), ("tasks to run", "right"), ("cells to run", "right"), ("cells stored", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for variant in plan.variants:
        todo = sum(1 for u in plan.units if variant in u.variants)
        cells = sum(len(u.cells_for(variant)) for u in plan.units)
        selected = sum(len(u.task.selected) for u in plan.units if u.weight == variant.weight)
        table.add_row(variant.label, variant.key, str(todo), str(cells), str(max(0, selected - cells)))
    console.print(table)
    console.print(
        f"{len(plan.variants)} variant(s) × {len(plan.tasks)} task(s): {plan.n_missing} of {plan.n_total} (variant, task) unit(s) to run, "
        f"{plan.n_missing_cells} of {plan.n_cells} cell(s)"
    )
    for note in plan.warnings:
        console.print(f"[yellow]note:[/yellow] {note}")


def print_summary(plan: Plan, console: Any) -> None:
    """Each (variant, task) of the plan read back from the store: its score (×100) when every cell the
    suite expects is stored, else ``incomplete (k/n cells)``; Mean(Task) over complete tasks only."""
    from rich.table import Table

    from evalgemma.benchmarks.suites import ExpectedTask
    from evalgemma.store.parquet import load_results
    from evalgemma.views.scores import task_scores

    frame = load_results(plan.config.runtime.store, warn=False)
    keys = {v.key for v in plan.variants}
    frame = frame[frame["variant_key"].isin(keys)]
    expected = {t.name: ExpectedTask(t.task_type, t.version, t.cells) for t in plan.tasks}
    scores = task_scores(frame, plan.suite_name, expected=expected)
    by = {(k, t): r for k, t, r in zip(scores["variant_key"], scores["task"], scores.to_dict("records"), strict=True)}
    means: dict[str, list[float]] = {v.key: [] for v in plan.variants}
    n = len(plan.tasks)
    if n == 0:
        console.print("no tasks in this plan (an empty shard?)")
        return
    grid: dict[tuple[str, str], str] = {}
    for t in plan.tasks:
        for v in plan.variants:
            r = by.get((v.key, t.name))
            if r is None:
                grid[(t.name, v.key)] = "—"
            elif r["complete"]:
                grid[(t.name, v.key)] = f"{100 * r['main_score']:.2f}"
                means[v.key].append(r["main_score"])
            else:
                grid[(t.name, v.key)] = f"incomplete ({r['n_cells']}/{r['n_expected']} cells)"
    mean = {k: (f"{100 * sum(m) / n:.2f}" if len(m) == n else f"incomplete ({len(m)}/{n})") for k, m in means.items()}
    table = Table(title="summary (main score × 100)")
    if len(plan.variants) > max(3, n):  # a sweep: one row per variant, so the table stays as wide as the task list
        table.add_column("variant", no_wrap=True)
        for t in plan.tasks:
            table.add_column(t.name, justify="right", no_wrap=True)
        table.add_column("Mean(Task)", justify="right", style="bold", no_wrap=True)
        for v in plan.variants:
            table.add_row(v.label, *[grid[(t.name, v.key)] for t in plan.tasks], mean[v.key])
        # a log or a narrow terminal gets the whole table rather than squeezed, unreadable columns
        width = max(len(v.label) for v in plan.variants) + sum(max(len(t.name), 8) + 3 for t in plan.tasks) + 20
        if width > console.width:
            from rich.console import Console

            console = Console(file=console.file, width=width, no_color=console.no_color)
        console.print(table)
        return
    else:
        table.add_column("task")
        table.add_column("type")
        for v in plan.variants:
            table.add_column(v.label, justify="right")
        for t in plan.tasks:
            table.add_row(t.name, t.task_type, *[grid[(t.name, v.key)] for v in plan.variants])
        table.add_row("Mean(Task)", "", *[mean[v.key] for v in plan.variants], style="bold")
    console.print(table)


def run_with_console(config: RunConfig) -> RunSummary:
    """Plan, print the plan, execute with progress, print the summary."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=False)
    with console.status("planning (resolving model, suite and store)…"):
        plan = plan_run(config)
    print_plan(plan, console)
    if plan.n_missing == 0:
        console.print("[green]nothing to do: every cell is already stored[/green]")
        print_summary(plan, console)
        return RunSummary("", [], [], plan.n_total, 0.0)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    progress = Progress(*columns, console=console, disable=not config.runtime.show_progress)

    with progress:
        bar = progress.add_task("units", total=plan.n_missing)

        def on_event(kind: str, data: dict[str, Any]) -> None:
            if kind == "load":
                progress.update(bar, description=f"loading {data['weight'].model} ({data['weight'].dtype}, quant={data['weight'].quant})")
            elif kind == "unit-start":
                progress.update(bar, description=f"{data['variant']} · {data['task']}")
            elif kind == "unit-done":
                progress.advance(bar)
                rate = f", encoded {data['texts_encoded']} texts at {data['texts_per_s']:.0f}/s" if data.get("texts_per_s") else ""
                score = f"{100 * data['main_score']:.2f}" if data.get("main_score") is not None else f"{data['cells']}/{data['expected_cells']} cells"
                progress.console.print(f"  stored {data['variant']} · {data['task']}: {score} ({data['wall_s']:.1f} s{rate})")
            elif kind == "unit-retry":
                progress.console.print(f"  [yellow]retrying[/yellow] {data.get('task')} (attempt {data.get('attempt')} failed: {data.get('error')})")
            elif kind == "unit-failed":
                progress.advance(bar)
                progress.console.print(f"  [red]failed[/red] {data['variant']} · {data['task']}: {data['error']}")

        try:
            summary = execute(plan, on_event=on_event)
        finally:
            progress.stop()
            print_summary(plan, console)
    console.print(f"run {summary.run_id}: {len(summary.written)} unit(s) stored in {config.runtime.store} in {summary.wall_s:.1f} s")
    return summary
