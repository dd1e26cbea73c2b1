"""The pure evaluation step: some cells of one (variant, task) → a ``UnitResult``. No store I/O.

Executors (local, shard, Ray) only schedule this and persist what it returns.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from evalgemma.benchmarks import EVALUATORS
from evalgemma.benchmarks.base import BenchTask, Cell, EvalContext, UnitResult
from evalgemma.errors import unknown_name
from evalgemma.variants.spec import VariantSpec


def evaluate_unit(task: BenchTask, cells: Sequence[Cell], encoder: Any, variant: VariantSpec, ctx: EvalContext) -> UnitResult:
    """Evaluate ``cells`` of ``task`` for ``variant`` with ``encoder`` (its benchmark's own scorer).

    Raises:
        ConfigError: a task of an unknown benchmark kind.
        EvalgemmaError / any exception of the scorer: the unit failed (nothing was written).
    """
    if task.kind not in EVALUATORS:
        raise unknown_name("benchmark kind", task.kind, EVALUATORS)
    if not cells:
        raise ValueError(f"{task.name}: evaluate_unit needs at least one cell")
    module = importlib.import_module(EVALUATORS[task.kind])
    result: UnitResult = module.evaluate(task, cells, encoder, variant, ctx)
    return result
