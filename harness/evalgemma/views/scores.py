"""Task scores from cells: the one place every view (run summary, leaderboard, report, plots, check,
notebook) gets a task's score from.

A task's score in a suite is mteb's: the flat mean (``np.mean``, in mteb's cell order) of the main
metric over the cells the suite expects for it. It exists only when every expected cell is stored
(of one task version); otherwise the task is ``incomplete (k/n cells)`` and has no score, whatever
``main_score`` a stored row carries. Reference rows (published scores) are task-level and complete.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from evalgemma.benchmarks.suites import ExpectedTask

#: Columns of :func:`task_scores`.
SCORE_COLUMNS: tuple[str, ...] = (
    "model", "variant", "variant_key", "dim", "quant", "kind", "suite", "task", "task_type",
    "main_score", "n_cells", "n_expected", "complete", "missing",
)
_LEAD = ("model", "variant", "dim", "quant", "kind")


def _defaults(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame
    for col, val in {"kind": "run", "quant": "none", "suite": "", "hf_subset": "", "split": "", "model": "", "dim": 0,
                     "task_version": "", "finished_at": "", "suite_cells_n": 0}.items():
        if col not in out.columns:
            out = out.assign(**{col: val})
    return out


def task_scores(frame: pd.DataFrame, suite: str, *, expected: Mapping[str, ExpectedTask] | None = None) -> pd.DataFrame:
    """One row per (variant, task) of ``suite``: its score when complete, else NaN and the coverage.

    Args:
        frame: store rows (``load_results``: newest run per cell) and/or reference rows (``kind`` not ``run``).
        suite: the suite the scores are for.
        expected: task → expectation; default ``evalgemma.benchmarks.suites.expected_cells(suite)``.
            Without one (a custom suite), the cells stored by runs of ``suite`` and the count they
            recorded (``suite_cells_n``) are used.

    Returns:
        Columns :data:`SCORE_COLUMNS`; ``main_score`` is 0-1 or NaN, ``missing`` a few missing cells as text.
    """
    import math

    import numpy as np
    import pandas as pd

    if expected is None:
        from evalgemma.benchmarks.suites import expected_cells

        expected = expected_cells(suite)
    frame = _defaults(frame)
    records: list[dict[str, Any]] = []
    runs = frame[frame["kind"] == "run"]
    refs = frame[(frame["kind"] != "run") & (frame["suite"] == suite)]
    main = runs[runs["is_main"].astype(bool)]
    # the suite's tasks from any run, and tasks runs of this suite added (scored by their own cells)
    in_suite = main["suite"] == suite
    main = main[in_suite] if expected is None else main[main["task"].isin(list(expected)) | in_suite]
    for (vkey, task), g in main.groupby(["variant_key", "task"], sort=False):
        e = expected.get(str(task)) if expected is not None else None
        if e is None:
            g = g[g["suite"] == suite]
        g = g.sort_values("finished_at")
        newest = g.iloc[-1]
        if e is not None:
            version = e.version or str(newest["task_version"])
            cells = list(e.cells)
            task_type = e.task_type
        else:
            version = str(newest["task_version"])
            cells = None
            task_type = str(newest["task_type"])
        mine = g[g["task_version"].astype(str) == version].drop_duplicates(["split", "hf_subset"], keep="last")
        values = {(str(s), str(h)): float(v) for s, h, v in zip(mine["split"], mine["hf_subset"], mine["value"], strict=True)}
        if cells is None:
            n = int(newest["suite_cells_n"] or 0) or len(values)
            present = list(values)
            order = present
            missing: list[str] = []
        else:
            order = [(c.split, c.subset) for c in cells]
            present = [c for c in order if c in values]
            n = len(order)
            missing = [f"{s}/{h}" for s, h in order if (s, h) not in values][:5]
        complete = len(present) == n and n > 0
        score = float(np.mean([values[c] for c in order])) if complete else math.nan
        records.append({**{c: newest[c] for c in _LEAD}, "variant_key": vkey, "suite": suite, "task": task, "task_type": task_type,
                        "main_score": score, "n_cells": len(present), "n_expected": n, "complete": complete, "missing": ", ".join(missing)})
    for (vkey, task), g in refs.groupby(["variant_key", "task"], sort=False):
        first = g.iloc[0]
        scores = g["main_score"].dropna()
        score = float(scores.iloc[0]) if len(scores) else math.nan
        task_type = expected[str(task)].task_type if expected is not None and task in expected else str(first["task_type"])
        records.append({**{c: first[c] for c in _LEAD}, "variant_key": vkey, "suite": suite, "task": task, "task_type": task_type,
                        "main_score": score, "n_cells": 1, "n_expected": 1, "complete": not math.isnan(score), "missing": ""})
    return pd.DataFrame(records, columns=list(SCORE_COLUMNS))
