"""MTEB tasks as cells: expected cells of a task in a suite, and the evaluation of some of them by mteb.

mteb evaluates a task over ``task.eval_splits`` × ``task.hf_subsets``; evalgemma restricts both to
the missing cells of a variant (``--langs deu`` then ``--langs deu,fra`` evaluates fra only), and
re-seeds the task's random generators before every evaluation, as a fresh ``mteb.get_task`` object
would be, so every variant is evaluated exactly as one plain ``mteb.evaluate`` call evaluates it.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Sequence
from typing import Any

from evalgemma.benchmarks.base import BenchTask, Cell, EvalContext, UnitResult, cells_sha256
from evalgemma.errors import ConfigError
from evalgemma.store.samples import CellSamples


def task_cells(task: Any) -> tuple[Cell, ...]:
    """The cells mteb evaluates for a task object (after a benchmark's filters), in mteb's order."""
    subsets = list(getattr(task, "hf_subsets", None) or ["default"])
    return tuple(Cell(str(split), str(subset)) for split in task.eval_splits for subset in subsets)


def is_order_dependent(task: Any) -> bool:
    """Whether a task's cell values depend on the cells evaluated before them (shared task RNG).

    mteb's ``AbsTaskClustering`` downsamples with ``self.rng_state`` and
    ``AbsTaskMultilabelClassification`` shuffles with ``self.np_rng``, both drawn across subsets.
    """
    from mteb.abstasks.clustering import AbsTaskClustering
    from mteb.abstasks.multilabel_classification import AbsTaskMultilabelClassification

    return isinstance(task, (AbsTaskClustering, AbsTaskMultilabelClassification))


def task_version(task: Any, cells: Sequence[Cell], order_dependent: bool) -> str:
    """The version of a task's cells: the dataset revision the task pins.

    For an order-dependent task a cell's value also depends on the cells evaluated with it, so
    its version names that cell set too: the same subset evaluated within different suites (other
    subsets around it) is a different cell and never shadows the other.
    """
    revision = str(task.metadata.dataset.get("revision", "") or "")
    return f"{revision}+cells:{cells_sha256(cells)[:12]}" if order_dependent else revision


def bench_task(task: Any, selected: Sequence[str] | None = None) -> BenchTask:
    """The plan's handle of an mteb task object: type, version, expected and selected cells.

    Args:
        task: the task object, with a benchmark's subset/split filters applied.
        selected: the subsets ``--langs`` keeps (None: all). An order-dependent task is always
            evaluated whole, so its selection is all its cells.
    """
    check_text_task(task)
    meta = task.metadata
    cells = task_cells(task)
    dependent = is_order_dependent(task)
    chosen = cells if selected is None or dependent else tuple(c for c in cells if c.subset in set(selected))
    return BenchTask(
        name=meta.name, task_type=str(meta.type), kind="mteb", version=task_version(task, cells, dependent),
        cells=cells, selected=chosen, order_dependent=dependent, obj=task,
    )


def check_text_task(task: Any) -> None:
    """Refuse image/audio tasks early with a clear message."""
    modalities = set(getattr(task.metadata, "modalities", ["text"]) or ["text"])
    if modalities - {"text"}:
        raise ConfigError(f"task {task.metadata.name}: modalities {sorted(modalities)} are not supported (text only)")


def _groups(cells: Sequence[Cell]) -> list[tuple[list[str], list[str]]]:
    """Cells as mteb calls: ``(splits, subsets)`` products covering exactly ``cells``, in order."""
    by_split: dict[str, list[str]] = {}
    for c in cells:
        by_split.setdefault(c.split, []).append(c.subset)
    distinct = {tuple(v) for v in by_split.values()}
    if len(distinct) == 1:
        return [(list(by_split), list(next(iter(distinct))))]
    return [([split], subsets) for split, subsets in by_split.items()]


def _reseed(task: Any) -> None:
    """Reset the task's generators (and the global seeds) exactly as ``AbsTask.__init__`` does."""
    from mteb._set_seed import _set_seed

    task.rng_state, task.np_rng = _set_seed(task.seed)


def evaluate(task: BenchTask, cells: Sequence[Cell], encoder: Any, variant: Any, ctx: EvalContext) -> UnitResult:
    """Evaluate ``cells`` of an mteb task with mteb's own evaluators; no I/O to the store.

    The task's data must be loaded (the executor loads it once for all variants of a unit).
    """
    import mteb

    from evalgemma.benchmarks.mteb.adapter import MtebView, describe_prompts, task_result_rows
    from evalgemma.benchmarks.mteb.samples import SampleCapture, from_task_result
    from evalgemma.provenance import utc_now
    from evalgemma.variants.views import make_view

    obj = task.obj
    view, sim = make_view(variant, encoder.full_dim, ctx.calibration_vectors)
    adapter = MtebView(encoder, ctx.model_id, ctx.revision, dict(variant.prompts), view, sim, variant.dim)
    wanted = set(cells)
    started, t0 = utc_now(), time.perf_counter()
    encoded0, seconds0 = encoder.stats.texts_encoded, encoder.stats.encode_seconds
    saved_subsets, saved_splits = obj.hf_subsets, obj._eval_splits
    rows: list[dict[str, Any]] = []
    evaluation_time = 0.0
    results = []
    capture = SampleCapture(obj)
    from_results: list[CellSamples] = []
    capture.install()
    try:
        for splits, subsets in _groups([c for c in task.cells if c in wanted]):
            obj.hf_subsets = list(subsets)
            obj.filter_eval_splits(list(splits))
            _reseed(obj)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                result = mteb.evaluate(
                    adapter, obj, cache=None, show_progress_bar=False,
                    encode_kwargs={"batch_size": encoder.batch_size, "show_progress_bar": False},
                )
            task_result = result.task_results[0]
            results.append(task_result)
            rows.extend(task_result_rows(obj, task_result))
            from_results.extend(from_task_result(obj, task_result))
            evaluation_time += float(task_result.evaluation_time or 0.0)
    finally:
        capture.remove()
        obj.hf_subsets, obj._eval_splits = saved_subsets, saved_splits
    samples = {(c.split, c.subset): c for c in from_results} | capture.cells
    complete = wanted == set(task.cells)
    main_score = float(results[0].get_score()) if complete and len(results) == 1 else None
    if complete and len(results) > 1:
        main_score = _flat_mean(rows, task.cells)
    ds = obj.metadata.dataset
    fields = {
        "task_version": task.version, "data_revision": str(ds.get("revision", "")), "prompts": describe_prompts(adapter.used_prompts),
        "n_samples": _n_samples(obj),
        "extra": json.dumps({"data_source": task.data_source, "mteb_evaluation_time": evaluation_time}, default=str),
    }
    return UnitResult(
        task=task.name, task_type=task.task_type, variant_key=variant.key, cells=tuple(c for c in task.cells if c in wanted),
        rows=tuple(rows), fields=fields, main_score=main_score, started_at=started, finished_at=utc_now(),
        wall_s=time.perf_counter() - t0, texts_encoded=encoder.stats.texts_encoded - encoded0,
        encode_seconds=encoder.stats.encode_seconds - seconds0,
        samples=tuple(samples[(c.split, c.subset)] for c in task.cells if c in wanted and (c.split, c.subset) in samples),
    )


def _flat_mean(rows: Sequence[dict[str, Any]], cells: Sequence[Cell]) -> float:
    """mteb's task score over ``cells`` (np.mean of the cells' main scores, in the task's cell order)."""
    import numpy as np

    main = {Cell(r["split"], r["hf_subset"]): r["value"] for r in rows if r["is_main"]}
    return float(np.mean([main[c] for c in cells]))


def _n_samples(task: Any) -> int:
    stats = getattr(task.metadata, "descriptive_stats", None) or {}
    try:
        return int(stats.get("num_samples", 0) or 0)
    except (TypeError, AttributeError, ValueError):
        return 0
