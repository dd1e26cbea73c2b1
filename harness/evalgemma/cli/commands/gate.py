"""CLI of the regression gate: ``evalgemma check`` and ``evalgemma baseline accept``.

Exit codes (``cli.main`` maps the errors): 0 within tolerance (with ``--significance`` also a drop
beyond tolerance the paired test does not find significant: a ``warning`` row); 4 a regression, a missing task
(without ``--allow-missing``) or, with ``--reference``, a deviation beyond the tolerance; 2 a
usage error (bad flag, invalid tolerances file, overwriting a baseline without ``--force``);
3 the store or the baseline cannot be read.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.table import Table

    from evalgemma.gate.regression import CheckReport

baseline_app = typer.Typer(help="Manage regression baselines (accepted on purpose, never overwritten silently).", no_args_is_help=True)

_VERDICT_STYLE = {"ok": "green", "regression": "bold red", "improvement": "cyan", "missing": "yellow", "new": "dim", "warning": "yellow"}


def _table(report: CheckReport) -> Table:
    from rich.table import Table

    against = "reference" if report.mode == "reference" else "baseline"
    table = Table(title=f"evalgemma check against the {against} (points, 0-100)", show_lines=False)
    for col, kw in (("variant", {}), ("task", {}), (against, {"justify": "right"}), ("current", {"justify": "right"}),
                    ("Δ", {"justify": "right"}), ("tol", {"justify": "right"}), ("verdict", {})):
        table.add_column(col, **kw)  # type: ignore[arg-type]
    for r in report.rows:
        verdict = r.verdict
        if report.mode == "reference" and verdict in ("regression", "improvement"):
            verdict = "below ref" if verdict == "regression" else "above ref"  # type: ignore[assignment]
        if report.is_failure(r) and r.verdict == "missing":
            verdict = "MISSING"  # type: ignore[assignment]
        style = "bold red" if report.is_failure(r) else _VERDICT_STYLE[r.verdict]
        table.add_row(
            r.variant,
            r.task if r.kind == "task" else f"[bold]{r.task}[/bold]",
            "-" if r.baseline is None else f"{r.baseline:.2f}",
            "-" if r.current is None else f"{r.current:.2f}",
            "-" if r.delta is None else f"{round(r.delta, 2) + 0.0:+.2f}",
            f"{r.tolerance:g}",
            f"[{style}]{verdict}[/{style}]",
        )
    return table


def _print_report(report: CheckReport, store: Path, baseline: Path | None) -> None:
    from rich.console import Console

    console = Console(width=max(Console().width, 110))
    console.print(_table(report))
    for note in report.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)
    improved = report.with_verdict("improvement")
    if improved and not report.two_sided:
        console.print(
            f"hint: {len(improved)} score(s) improved beyond tolerance; if intended, refresh the baseline with "
            f"`evalgemma baseline accept --store {store} --out {baseline} --force`",
            highlight=False,
            soft_wrap=True,
        )
    console.print(report.summary(), highlight=False)


def _failure_message(report: CheckReport) -> str:
    fails = report.failures
    shown = "; ".join(f"{r.variant} / {r.task}: {r.message}" for r in fails[:5])
    more = f" (+{len(fails) - 5} more)" if len(fails) > 5 else ""
    what = "deviation(s) from the reference" if report.mode == "reference" else "regression(s) or missing task(s)"
    return f"{len(fails)} {what}: {shown}{more}"


def check(
    store: Annotated[Path, typer.Option("--store", help="Results store to check.")] = Path("results/store"),
    baseline: Annotated[Path | None, typer.Option("--baseline", help="Baseline Parquet file (from `baseline accept`).")] = None,
    reference: Annotated[str | None, typer.Option("--reference", help="Compare with published scores instead: paper | mteb | mteb-all.")] = None,
    reference_model: Annotated[str | None, typer.Option("--reference-model", help="Published model id to compare every variant with.")] = None,
    reference_suite: Annotated[str | None, typer.Option("--reference-suite", help="Take published scores from this suite only, e.g. mteb-eng-v2.")] = None,
    tolerance: Annotated[float | None, typer.Option("--tolerance", help="Allowed drop in score points (default 0.5).")] = None,
    tolerances: Annotated[
        Path | None, typer.Option("--tolerances", help="TOML file of tolerances in points: default, and tables tasks, task_types, suites.")
    ] = None,
    junit: Annotated[Path | None, typer.Option("--junit", help="Also write JUnit XML here.")] = None,
    allow_missing: Annotated[bool, typer.Option("--allow-missing", help="Baseline tasks absent from the store are skipped, not failures.")] = False,
    suite: Annotated[str | None, typer.Option("--suite", help="Check only this suite.")] = None,
    pair: Annotated[
        list[str] | None, typer.Option("--pair", help="CURRENT=BASELINE: compare this store variant (label or key) with that baseline variant; repeatable.")
    ] = None,
    significance: Annotated[
        bool, typer.Option("--significance", help="Fail a drop beyond tolerance only when the paired test finds it significant.")
    ] = False,
    resamples: Annotated[int, typer.Option("--resamples", help="With --significance: bootstrap resamples and permutations (>= 1000).")] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="With --significance: seed of the paired test (recorded in the notes).")] = 0,
    alpha: Annotated[float, typer.Option("--alpha", help="With --significance: significance level.")] = 0.05,
) -> None:
    """Gate: compare the store's newest runs with a baseline (exit 4 on a regression)."""
    from evalgemma.errors import ConfigError, RegressionFound
    from evalgemma.gate.regression import (
        compare,
        compare_reference,
        load_baseline,
        load_current,
        load_reference_scores,
        load_tolerances,
        normalize_suite,
        select_rows,
        write_junit,
    )

    if (baseline is None) == (reference is None):
        raise ConfigError("give exactly one of --baseline FILE or --reference paper|mteb|mteb-all")
    if reference is None and (reference_model or reference_suite):
        raise ConfigError("--reference-model and --reference-suite need --reference paper|mteb|mteb-all")
    tols = load_tolerances(tolerances, tolerance)
    current = load_current(store)
    if baseline is not None:
        base = load_baseline(baseline)
        if suite is not None and suite not in set(base["suite"]) | set(current["suite"]):
            from evalgemma.errors import unknown_name

            raise unknown_name("suite", suite, set(base["suite"]) | set(current["suite"]), where="--suite")
        cur_sel = current[current["suite"] == suite] if suite is not None else current
        base_sel = base[base["suite"] == suite] if suite is not None else base
        pairs: dict[str, str] = {}
        for item in pair or []:
            if "=" not in item:
                raise ConfigError(f"--pair {item!r}: expected CURRENT=BASELINE (variant labels or keys)")
            cur_name, base_name = (x.strip() for x in item.split("=", 1))
            pairs[cur_name] = base_name
        sig = None
        if significance:
            from evalgemma.gate.regression import Significance, load_baseline_samples
            from evalgemma.store.samples import load_samples
            from evalgemma.views.compare import check_settings

            check_settings(resamples, alpha)
            sig = Significance(load_samples(store, cur_sel), load_baseline_samples(baseline), resamples, seed, alpha)
        report = compare(cur_sel, base_sel, tols, allow_missing=allow_missing, pairs=pairs, significance=sig)
    else:
        assert reference is not None
        if significance:
            raise ConfigError("--significance needs --baseline FILE (published scores have no per-sample scores)")
        refs = load_reference_scores(reference)
        if reference_suite is not None and normalize_suite(reference_suite) not in {normalize_suite(x) for x in refs["suite"]}:
            from evalgemma.errors import unknown_name

            raise unknown_name("suite", reference_suite, set(refs["suite"]), where="--reference-suite")
        cur_sel = select_rows(current, suite=suite, where=f"--store {store}") if suite is not None else current
        report = compare_reference(cur_sel, refs, tols, kind=reference, reference_model=reference_model, suite=reference_suite)
    _print_report(report, store, baseline)
    if junit is not None:
        write_junit(report, junit)
        typer.echo(f"wrote {junit}")
    if not report.passed:
        raise RegressionFound(_failure_message(report))


def accept(
    store: Annotated[Path, typer.Option("--store", help="Results store to take the baseline from.")] = Path("results/store"),
    out: Annotated[Path, typer.Option("--out", help="Baseline Parquet file to write.")] = Path("results/baselines/baseline.parquet"),
    suite: Annotated[str | None, typer.Option("--suite", help="Only this suite.")] = None,
    variant: Annotated[list[str] | None, typer.Option("--variant", help="Only this variant (label or key); repeatable.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing baseline file.")] = False,
) -> None:
    """Accept the store's newest runs as the baseline (refuses to overwrite without --force)."""
    from evalgemma.gate.regression import accept_baseline, load_baseline

    path = accept_baseline(store, out, suite=suite, variants=variant, force=force)
    frame = load_baseline(path)
    n_units = frame[["variant_key", "task"]].drop_duplicates().shape[0]
    typer.echo(f"accepted {n_units} units ({frame['variant_key'].nunique()} variant(s), {len(frame)} rows) from {store} → {path}")


def register(app: typer.Typer) -> None:
    """Add ``check`` and ``baseline accept`` to the CLI."""
    app.command("check")(check)
    baseline_app.command("accept")(accept)
    app.add_typer(baseline_app, name="baseline")
