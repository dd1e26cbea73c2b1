"""Suites as cells: the tasks a run plans (with their expected and selected cells), and the cells
a suite expects for each task, which every view needs to tell a complete task from a partial one.

Expected cells come from the benchmark's own definition: for the three MTEB suites the cells mteb's
benchmark filters give (``results/reference/suite_cells.parquet``, generated from mteb by
``scripts/build_suite_cells.py`` and checked against it by the tests, so views need not import
mteb); for ``smoke`` its manifest; for XTREME-UP suites their language set × split.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from evalgemma.benchmarks.base import BenchTask, Cell
from evalgemma.errors import ConfigError, DataError, unknown_name

SUITE_CELLS_FILE = "suite_cells.parquet"


@dataclass(frozen=True)
class ExpectedTask:
    """What a suite expects of one task: its type, version ('' = any) and cells in mteb's order."""

    task_type: str
    version: str
    cells: tuple[Cell, ...]


# ---------------------------------------------------------------- planning


def plan_tasks(
    suite: str | None, tasks: Sequence[str], langs: Sequence[str], *, split: str | None = None, data_dir: Path | None, offline: bool,
) -> tuple[str, list[BenchTask]]:
    """The suite's name and its tasks, each with the cells the suite expects and those this run selects.

    Args:
        suite: a suite name or file (None: ``tasks`` are mteb task names, the pseudo-suite ``tasks``).
        tasks: restrict the suite to these tasks (or, without a suite, the tasks to run).
        langs: restrict subsets (ISO 639-3 codes or subset names; XTREME-UP language codes).
        split: XTREME-UP query split (None: the suite's own).
        data_dir, offline: where XTREME-UP data is (its version is part of each cell's identity).

    Raises:
        ConfigError: no suite and no tasks, unknown task names, ``--langs`` matching nothing.
        DataError: XTREME-UP data named by ``--data-dir`` is missing.
    """
    from evalgemma.catalog.suites import resolve_suite

    if suite is None and not tasks:
        raise ConfigError("give --suite NAME (see `evalgemma list suites`) or --tasks NAME[,NAME]")
    if suite is None:
        from evalgemma.benchmarks.mteb.adapter import named_tasks

        return "tasks", _mteb_tasks(named_tasks(tasks), langs)
    spec = resolve_suite(suite)
    if spec.kind == "xtreme-up":
        if split is not None:
            spec = spec.model_copy(update={"split": split})
        return spec.name, [_xtreme_task(spec, tasks, langs, data_dir, offline)]
    if spec.kind == "smoke":
        from evalgemma.benchmarks.base import mark_builtin_data
        from evalgemma.benchmarks.smoke.tasks import smoke_tasks

        objs = smoke_tasks(suite=spec.data)
        for obj in objs:
            mark_builtin_data(obj)
    elif spec.kind == "mteb":
        from evalgemma.benchmarks.mteb.adapter import benchmark_tasks

        objs = benchmark_tasks(str(spec.benchmark))
    else:
        from evalgemma.benchmarks.mteb.adapter import named_tasks

        objs = named_tasks(spec.tasks)
    if tasks:
        by_name = {t.metadata.name: t for t in objs}
        missing = [n for n in tasks if n not in by_name]
        if missing:
            raise unknown_name(f"task of suite {spec.name}", missing[0], by_name, where="--tasks")
        objs = [by_name[n] for n in tasks]
    return spec.name, _mteb_tasks(objs, langs)


def supported_task_types() -> frozenset[str]:
    """The mteb task types evalgemma has proven end to end: those the built-in ``smoke`` and ``types``
    suites exercise through mteb's evaluators (``tests/test_task_types.py`` checks they cover every
    type and evaluation path of the three MTEB suites)."""
    from evalgemma.benchmarks.smoke.tasks import suite_task_types

    return frozenset(t for suite in ("smoke", "types") for t in suite_task_types(suite).values())


def _mteb_tasks(objs: Sequence[Any], langs: Sequence[str]) -> list[BenchTask]:
    from evalgemma.benchmarks.mteb.adapter import matching_subsets
    from evalgemma.benchmarks.mteb.unit import bench_task

    supported = supported_task_types()
    unsupported = [f"{t.metadata.name} ({t.metadata.type})" for t in objs if str(t.metadata.type) not in supported]
    if unsupported:
        raise ConfigError(
            f"task type not supported for {len(unsupported)} task(s): {', '.join(unsupported[:8])}; "
            f"supported types: {', '.join(sorted(supported))}"
        )

    if not langs:
        return [bench_task(t) for t in objs]
    out = []
    for t in objs:
        keep = matching_subsets(t, list(langs))
        if keep:
            out.append(bench_task(t, keep))
    if not out:
        raise ConfigError(f"--langs {','.join(langs)}: no task of the suite has these languages or subsets")
    return out


def _xtreme_task(spec: Any, tasks: Sequence[str], langs: Sequence[str], data_dir: Path | None, offline: bool) -> BenchTask:
    from evalgemma.benchmarks.xtreme_up.unit import TASK_NAMES, bench_task, find_root

    name = TASK_NAMES[spec.xtreme_task]
    if tasks and list(tasks) != [name]:
        raise unknown_name(f"task of suite {spec.name}", next(t for t in tasks if t != name), [name], where="--tasks")
    # Absent data is not an error while planning (the executor downloads it, or fails offline).
    task = bench_task(spec.xtreme_task, spec.languages, spec.split, find_root(data_dir, offline=False, download=False))
    if langs:
        unknown = [lang for lang in langs if lang not in spec.languages]
        if unknown:
            warnings.warn(f"--langs {','.join(unknown)}: not in suite {spec.name}'s language set; evaluated anyway", stacklevel=3)
        task.selected = tuple(Cell(spec.split, lang) for lang in langs)
        task.languages = tuple(dict.fromkeys(langs))  # the data read: only the selected languages
    return task


# ---------------------------------------------------------------- expectations


def expected_cells(suite: str) -> dict[str, ExpectedTask] | None:
    """task → what ``suite`` (a name or a suite file) expects of it, or None when only the runs' own
    records can tell (a suite file listing mteb tasks, the ``tasks`` pseudo-suite, an unknown name)."""
    from evalgemma.catalog.suites import resolve_suite

    try:
        spec = resolve_suite(suite)
    except ConfigError:
        return None
    if spec.kind == "xtreme-up":
        from evalgemma.benchmarks.xtreme_up.unit import TASK_NAMES

        return {TASK_NAMES[str(spec.xtreme_task)]: ExpectedTask("Retrieval", "", tuple(Cell(spec.split, lang) for lang in spec.languages))}
    if spec.kind == "smoke":
        from evalgemma.benchmarks.smoke.tasks import smoke_expected

        return {name: ExpectedTask(t, v, cells) for name, (t, v, cells) in smoke_expected(spec.data).items()}
    if spec.kind == "mteb":
        table = _mteb_cells_table()
        if table is not None and spec.name in table:
            return table[spec.name]
    return None


@lru_cache(maxsize=1)
def _mteb_cells_table() -> dict[str, dict[str, ExpectedTask]] | None:
    from evalgemma.catalog.reference import reference_dir

    path = reference_dir() / SUITE_CELLS_FILE
    if not path.is_file():
        return None
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as exc:  # pyarrow raises several unrelated types for corrupt files
        raise DataError(f"{path}: unreadable ({type(exc).__name__}: {exc}); rebuild it with scripts/build_suite_cells.py") from exc
    out: dict[str, dict[str, list[Any]]] = {}
    for r in sorted(rows, key=lambda r: (r["suite"], r["task"], r["position"])):
        entry = out.setdefault(r["suite"], {}).setdefault(r["task"], [r["task_type"], r["task_version"], []])
        entry[2].append(Cell(r["split"], r["hf_subset"]))
    return {s: {t: ExpectedTask(e[0], e[1], tuple(e[2])) for t, e in tasks.items()} for s, tasks in out.items()}


def mteb_suite_cells() -> list[dict[str, Any]]:
    """Every cell of the built-in MTEB suites as mteb defines them (imports mteb; for the generator script)."""
    from evalgemma.benchmarks.mteb.adapter import benchmark_tasks
    from evalgemma.benchmarks.mteb.unit import bench_task
    from evalgemma.catalog.suites import builtin_suites

    rows = []
    for name, spec in builtin_suites().items():
        if spec.kind != "mteb":
            continue
        for obj in benchmark_tasks(str(spec.benchmark)):
            task = bench_task(obj)
            for position, cell in enumerate(task.cells):
                rows.append({"suite": name, "task": task.name, "task_type": task.task_type, "task_version": task.version,
                             "split": cell.split, "hf_subset": cell.subset, "position": position, "order_dependent": task.order_dependent})
    return rows
