"""Terminal presentation of a run: the plan, progress per unit, and the summary table."""

from __future__ import annotations

from typing import Any

from evalgemma.run.plan import Plan, RunConfig, RunSummary, execute, plan_run


def print_plan(plan: Plan, console: Any) -> None:
    """Variants × tasks, and what is already stored."""
    from rich.table import Table

    table = Table(title=f"plan: {plan.suite_name} · {plan.model.model_id}@{plan.model.revision[:20]}", show_lines=False)
    table.add_column("variant")
    table.add_column("key")
    table.add_column("tasks to run", justify="right")
    table.add_column("already stored", justify="right")
    for variant in plan.variants:
        todo = sum(1 for u in plan.units if variant in u.variants)
        stored = sum(1 for u in plan.units if variant in u.stored)
        table.add_row(variant.label, variant.key, str(todo), str(stored))
    console.print(table)
    console.print(f"{len(plan.variants)} variant(s) × {len(plan.tasks)} task(s) = {plan.n_total} unit(s); {plan.n_missing} to run, {plan.n_total - plan.n_missing} stored")


def print_summary(plan: Plan, console: Any) -> None:
    """Main score (×100) of each (variant, task) of the plan, read back from the store."""
    from rich.table import Table

    from evalgemma.store.parquet import load_results

    frame = load_results(plan.config.store, warn=False)
    keys = {v.key for v in plan.variants}
    names = {t.name for t in plan.tasks}
    frame = frame[frame["variant_key"].isin(keys) & frame["task"].isin(names)]
    table = Table(title="summary (main score × 100)")
    table.add_column("task")
    table.add_column("type")
    labels = [v.label for v in plan.variants]
    for label in labels:
        table.add_column(label, justify="right")
    scores = frame.drop_duplicates(["variant", "task"]).set_index(["variant", "task"])["main_score"].to_dict()
    means: dict[str, list[float]] = {label: [] for label in labels}
    for t in plan.tasks:
        cells = []
        for label in labels:
            s = scores.get((label, t.name))
            cells.append("—" if s is None else f"{100 * s:.2f}")
            if s is not None:
                means[label].append(s)
        table.add_row(t.name, t.task_type, *cells)
    n = len(plan.tasks)
    if n == 0:
        console.print("no tasks in this plan (an empty shard?)")
        return
    table.add_row(
        "Mean(Task)", "", *[(f"{100 * sum(m) / n:.2f}" if len(m) == n else f"incomplete ({len(m)}/{n})") for m in means.values()], style="bold"
    )
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
        console.print("[green]nothing to do: every unit is already stored[/green]")
        print_summary(plan, console)
        return RunSummary("", [], [], plan.n_total, 0.0)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console, disable=not config.show_progress)

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
                progress.console.print(f"  stored {data['variant']} · {data['task']}: {100 * data['main_score']:.2f} ({data['wall_s']:.1f} s{rate})")
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
    console.print(f"run {summary.run_id}: {len(summary.written)} unit(s) stored in {config.store} in {summary.wall_s:.1f} s")
    return summary
