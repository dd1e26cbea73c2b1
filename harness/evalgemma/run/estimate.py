"""What a plan will cost before it runs: cells, texts to encode and wall time, per task and per suite.

Nothing here loads a model or a task's dataset (the built-in smoke/types files excepted: they are a
few KB and have no published statistics). Texts come from mteb's descriptive statistics
(``task.metadata.descriptive_stats``, shipped with mteb): for each cell (split, subset) the sum of
``unique_texts`` over its ``*_statistics`` entries (text1/text2, sentence1/sentence2,
documents_text/queries_text, text, …), else its ``num_samples``; classification tasks also encode
the train split of each subset (an upper bound: mteb undersamples it). XTREME-UP: index passages +
the queries of the languages to evaluate, counted from the data files when present.

Texts are counted for the missing cells only, once per *weight* variant (dims and embedding dtypes
derive from the same vectors), minus the cells whose texts the embedding cache already holds (the
markers ``run/local.py`` writes after each unit; eviction can have dropped vectors since, so this
is optimistic). Time = texts ÷ throughput: ``texts_per_s`` when given, else the rate measured in
the store (texts ÷ ``wall_s`` of earlier units of this plan's tasks with the same weights, or
model), else unknown.
"""

from __future__ import annotations

import gzip
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalgemma.benchmarks.base import BenchTask, Cell, has_builtin_data
from evalgemma.run.plan import ExecUnit, Plan

__all__ = ["PlanEstimate", "TaskEstimate", "Throughput", "VariantCells", "cell_texts", "estimate"]


@dataclass(frozen=True)
class VariantCells:
    """One variant's cells of a task: expected by the suite, selected by this run, stored, to evaluate."""

    variant_key: str
    label: str
    expected: int
    selected: int
    stored: int
    missing: int


@dataclass(frozen=True)
class TaskEstimate:
    """One task of a plan: its cells per variant, the texts to encode and the estimated time."""

    task: str
    task_type: str
    kind: str
    variants: tuple[VariantCells, ...]
    texts: int  # texts to encode, summed over weight variants (known cells only)
    unknown_cells: int  # cells to encode whose text count is unknown (texts is then a lower bound)
    cached_cells: int  # cells to encode whose texts a cache marker says are cached (not counted)
    data: str  # where the data comes from, or "missing: ..."
    seconds: float | None

    @property
    def expected(self) -> int:
        return sum(v.expected for v in self.variants)

    @property
    def stored(self) -> int:
        return sum(v.stored for v in self.variants)

    @property
    def missing(self) -> int:
        return sum(v.missing for v in self.variants)

    @property
    def data_missing(self) -> bool:
        return self.data.startswith("missing")


@dataclass(frozen=True)
class Throughput:
    """Texts per second used for the time estimate, and where it came from."""

    texts_per_s: float | None
    source: str  # "--texts-per-s", "store: ...", or "unknown"


@dataclass(frozen=True)
class PlanEstimate:
    """The estimate of a whole plan (one suite)."""

    suite: str
    model: str
    variants: tuple[str, ...]  # labels
    tasks: tuple[TaskEstimate, ...]
    throughput: Throughput
    notes: tuple[str, ...]

    @property
    def texts(self) -> int:
        return sum(t.texts for t in self.tasks)

    @property
    def unknown_cells(self) -> int:
        return sum(t.unknown_cells for t in self.tasks)

    @property
    def seconds(self) -> float | None:
        rate = self.throughput.texts_per_s
        return self.texts / rate if rate else None

    @property
    def expected(self) -> int:
        return sum(t.expected for t in self.tasks)

    @property
    def stored(self) -> int:
        return sum(t.stored for t in self.tasks)

    @property
    def missing(self) -> int:
        return sum(t.missing for t in self.tasks)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (``--format json``)."""
        return {
            "suite": self.suite, "model": self.model, "variants": list(self.variants),
            "texts_per_s": self.throughput.texts_per_s, "throughput_source": self.throughput.source,
            "totals": {"tasks": len(self.tasks), "cells_expected": self.expected, "cells_stored": self.stored,
                       "cells_missing": self.missing, "texts": self.texts, "unknown_cells": self.unknown_cells, "seconds": self.seconds},
            "tasks": [
                {"task": t.task, "type": t.task_type, "kind": t.kind, "cells_expected": t.expected, "cells_stored": t.stored,
                 "cells_missing": t.missing, "texts": t.texts, "unknown_cells": t.unknown_cells, "cached_cells": t.cached_cells,
                 "data": t.data, "seconds": t.seconds,
                 "variants": [v.__dict__ for v in t.variants]}
                for t in self.tasks
            ],
            "notes": list(self.notes),
        }


def estimate(plan: Plan, texts_per_s: float | None = None) -> PlanEstimate:
    """Cells, texts to encode and time of ``plan`` (from ``plan_run(config, check_data=False)``).

    Args:
        plan: the plan; its store is read again for the stored cells and the measured throughput.
        texts_per_s: encode throughput to assume; None: measured in the store, else unknown.

    Raises:
        ConfigError: ``texts_per_s`` not positive.
    """
    from evalgemma.errors import ConfigError
    from evalgemma.store.parquet import scan_store, stored_cells

    if texts_per_s is not None and not texts_per_s > 0:
        raise ConfigError(f"--texts-per-s {texts_per_s}: must be positive")
    runtime = plan.config.runtime
    frame, _ = scan_store(runtime.store)
    done = stored_cells(frame)
    rate = Throughput(texts_per_s, "--texts-per-s") if texts_per_s is not None else _measured(frame, plan)
    notes = list(plan.warnings)
    out = []
    for task in plan.tasks:
        units = [u for u in plan.units if u.task is task]
        counts = tuple(
            VariantCells(
                v.key, v.label, len(task.cells), len(task.selected),
                sum((v.key, task.name, task.version, c.split, c.subset) in done for c in task.cells),
                len(u.cells_for(v)),
            )
            for u in units for v in [*u.variants, *u.stored]
        )
        data = _data_status(task, runtime.data_dir, runtime.offline, busy=any(u.variants for u in units))
        texts = unknown = cached = 0
        for u in units:
            n, k, c = _unit_texts(u, runtime.cache_dir, runtime.data_dir)
            texts, unknown, cached = texts + n, unknown + k, cached + c
        seconds = texts / rate.texts_per_s if rate.texts_per_s else None
        out.append(TaskEstimate(task.name, task.task_type, task.kind, counts, texts, unknown, cached, data, seconds))
    if any(t.cached_cells for t in out):
        notes.append("texts exclude cells the embedding cache has encoded before (its markers); eviction may have dropped some since, so this is optimistic")
    if any(t.unknown_cells for t in out):
        notes.append("some cells have no text count (no statistics or no data): their texts are not in the totals")
    return PlanEstimate(plan.suite_name, plan.model.model_id, tuple(v.label for v in plan.variants), tuple(out), rate, tuple(notes))


# ---------------------------------------------------------------- texts


def _entry_texts(entry: Mapping[str, Any] | None) -> int | None:
    """Texts of one statistics entry: the sum of ``unique_texts`` of its ``*_statistics``, else ``num_samples``."""
    if not isinstance(entry, Mapping):
        return None
    counts = [int(v["unique_texts"]) for k, v in entry.items() if k.endswith("_statistics") and isinstance(v, Mapping) and v.get("unique_texts") is not None]
    if counts:
        return sum(counts)
    n = entry.get("num_samples")
    return int(n) if n is not None else None


def cell_texts(stats: Mapping[str, Any] | None, split: str, subset: str, subsets: Sequence[str]) -> int | None:
    """Texts of one (split, subset) in mteb's descriptive statistics, or None when they do not say.

    Args:
        stats: ``task.metadata.descriptive_stats`` (or the same form computed for a built-in task).
        split, subset: the cell.
        subsets: every subset the task has (a single-subset task's split entry is its cell's).
    """
    if not stats or split not in stats:
        return None
    entry = stats[split]
    per_subset = entry.get("hf_subset_descriptive_stats") or {}
    if subset in per_subset:
        return _entry_texts(per_subset[subset])
    if len(subsets) <= 1:
        return _entry_texts(entry)
    return None


def _unit_texts(unit: ExecUnit, cache_dir: Path | None, data_dir: Path | None) -> tuple[int, int, int]:
    """(texts, cells with unknown count, cells skipped as cached) of one (weight variant, task)."""
    task = unit.task
    wanted = {c for v in unit.variants for c in unit.cells_for(v)}
    todo = [c for c in dict.fromkeys([*task.cells, *task.selected]) if c in wanted]
    if not todo:
        return 0, 0, 0
    cached: set[tuple[str, str]] = set()
    if cache_dir is not None and task.version:
        from evalgemma.encode.cache import encoded_cells

        cached = encoded_cells(cache_dir, unit.weight.key, task.name, task.version)
    left = [c for c in todo if (c.split, c.subset) not in cached]
    n, unknown = _texts_of(task, left, index=not cached, data_dir=data_dir)
    return n, unknown, len(todo) - len(left)


def _texts_of(task: BenchTask, cells: Sequence[Cell], *, index: bool, data_dir: Path | None) -> tuple[int, int]:
    """(texts to encode for ``cells`` of ``task``, cells whose count is unknown); ``index``: XTREME-UP's index too."""
    if not cells:
        return 0, 0
    if task.kind == "xtreme-up":
        return _xtreme_texts(task, cells, index=index, data_dir=data_dir)
    stats = _mteb_stats(task)
    subsets = list(dict.fromkeys(c.subset for c in task.cells))
    texts = unknown = 0
    for c in cells:
        n = cell_texts(stats, c.split, c.subset, subsets)
        if n is None:
            unknown += 1
        else:
            texts += n
    train = getattr(task.obj, "train_split", None) if task.obj is not None else None
    if train is not None:  # classification trains a classifier on each subset's train split
        for subset in dict.fromkeys(c.subset for c in cells):
            n = cell_texts(stats, str(train), subset, subsets)
            if n is None:
                unknown += 1
            else:
                texts += n
    return texts, unknown


def _mteb_stats(task: BenchTask) -> Mapping[str, Any] | None:
    obj = task.obj
    if obj is None:
        return None
    stats = obj.metadata.descriptive_stats
    if stats is None and has_builtin_data(obj):
        stats = getattr(obj, "_evalgemma_stats", None)
        if stats is None:
            stats = _local_stats(obj)
            obj._evalgemma_stats = stats  # computed once per task object
    return stats  # type: ignore[no-any-return]


def _local_stats(obj: Any) -> dict[str, Any]:
    """mteb's own statistics of a built-in task, computed from its files (mteb's
    ``calculate_descriptive_statistics`` would also write them into the mteb package)."""
    import contextlib
    import io

    loaded = obj.data_loaded
    # mteb and datasets draw progress bars on stderr for these few-KB files: keep the plan's output clean.
    with contextlib.redirect_stderr(io.StringIO()):
        if not loaded:
            obj.load_data()
        try:
            return _split_stats(obj)
        finally:
            if not loaded:
                obj.unload_data()


def _split_stats(obj: Any) -> dict[str, Any]:
    """Statistics per split (per subset when multilingual), the train split included, as mteb lays them out."""
    splits = list(dict.fromkeys([*obj.eval_splits, *([obj.train_split] if getattr(obj, "train_split", None) else [])]))
    out: dict[str, Any] = {}
    for split in splits:
        if obj.metadata.is_multilingual:
            out[split] = {"hf_subset_descriptive_stats": {s: obj._calculate_descriptive_statistics_from_split(split, hf_subset=s) for s in obj.hf_subsets}}
        else:
            out[split] = obj._calculate_descriptive_statistics_from_split(split)
    return out


def _xtreme_texts(task: BenchTask, cells: Sequence[Cell], *, index: bool, data_dir: Path | None) -> tuple[int, int]:
    """(index passages + queries of ``cells``' languages, cells whose language file is absent)."""
    root = _xtreme_root(data_dir)
    if root is None:
        return 0, len(cells)
    texts = unknown = 0
    if index:
        path = _find(root / task.xtreme_task / "index")
        if path is None:
            return 0, len(cells)
        texts += _count_lines(path)
    for c in cells:
        path = _find(root / task.xtreme_task / c.split / c.subset)
        if path is None:
            unknown += 1
        else:
            texts += _count_lines(path)
    return texts, unknown


def _xtreme_root(data_dir: Path | None) -> Path | None:
    from evalgemma.benchmarks.xtreme_up.unit import find_root
    from evalgemma.errors import DataError

    try:
        return find_root(data_dir, offline=False, download=False)
    except DataError:
        return None


def _count_lines(path: Path) -> int:
    """Non-empty lines of a (gzipped) JSONL file: one query or passage each."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return sum(1 for line in fh if line.strip())


# ---------------------------------------------------------------- data presence


def _data_status(task: BenchTask, data_dir: Path | None, offline: bool, *, busy: bool) -> str:
    """Where the data of a task with cells to evaluate comes from, or ``missing: why`` (never raises)."""
    if not busy:
        return "—"  # nothing to evaluate: data not needed
    if task.kind == "xtreme-up":
        from evalgemma.benchmarks.xtreme_up.unit import find_root
        from evalgemma.errors import DataError

        try:
            root = find_root(data_dir, offline=offline, download=False)
        except DataError as exc:
            return f"missing: {exc}"
        if root is None:
            return "download (XTREME-UP tarball, first online run)"
        split = task.selected[0].split
        absent = [lang for lang in task.languages if not _exists(root / task.xtreme_task / split / lang)]
        if absent:  # a run reads every language of the task (the suite's and --langs)
            return f"missing: {root}/{task.xtreme_task}/{split}/ has no file for {len(absent)} of {len(task.languages)} languages ({','.join(absent)})"
        return str(root)
    obj = task.obj
    if obj is None:
        return "—"
    if has_builtin_data(obj):
        return "built-in"
    ds = obj.metadata.dataset
    if data_dir is not None:
        from evalgemma.benchmarks.mteb.adapter import mirror_dir

        local = mirror_dir(data_dir, obj)
        if local is not None:
            return str(local)
    repo = f"{ds.get('path')}@{str(ds.get('revision'))[:12]}"
    return f"missing (offline): {repo}" if offline else f"hub: {repo}"


def _exists(base: Path) -> bool:
    return _find(base) is not None


def _find(base: Path) -> Path | None:
    """``base.jsonl`` or ``base.jsonl.gz`` (as the XTREME-UP reader looks for them), or None."""
    from evalgemma.benchmarks.xtreme_up.retrieval import _locate
    from evalgemma.errors import DataError

    try:
        return _locate(base)
    except DataError:
        return None


# ---------------------------------------------------------------- throughput


def _measured(frame: Any, plan: Plan) -> Throughput:
    """Texts per second of earlier units in the store, for the tasks of this plan: the same weights,
    else the same model.

    A stored unit's texts are counted exactly as an estimate counts them (its cells, from the same
    statistics), divided by its recorded ``wall_s`` (encoding and scoring). Per (run, weights, task)
    only the unit that took longest counts: the other variants of a unit reuse its vectors. A unit
    served from the embedding cache makes the rate optimistic.
    """
    if frame.empty:
        return Throughput(None, "unknown")
    by_name = {t.name: t for t in plan.tasks if t.version}
    data_dir = plan.config.runtime.data_dir
    weights = {u.weight.key for u in plan.units}
    for column, wanted, what in (("weight_key", weights, "same weights"), ("model", {plan.model.model_id}, "same model")):
        rows = frame[frame[column].isin(wanted) & frame["task"].isin(list(by_name))]
        rows = rows[rows["task_version"] == rows["task"].map(lambda n: by_name[n].version)]
        if rows.empty:
            continue
        cells = rows.drop_duplicates(["unit_id", "split", "hf_subset"])
        longest: dict[tuple[str, str, str], tuple[float, str]] = {}
        for unit_id, group in cells.groupby("unit_id"):
            first = group.iloc[0]
            key = (str(first["run_id"]), str(first["weight_key"]), str(first["task"]))
            wall = float(first["wall_s"])
            if wall > 0 and wall > longest.get(key, (0.0, ""))[0]:
                longest[key] = (wall, str(unit_id))
        n_texts, seconds, n_units = 0, 0.0, 0
        for (_, _, name), (wall, unit_id) in longest.items():
            unit_cells = cells[cells["unit_id"] == unit_id]
            cells = [Cell(str(a), str(b)) for a, b in zip(unit_cells["split"], unit_cells["hf_subset"], strict=True)]
            n, unknown = _texts_of(by_name[name], cells, index=True, data_dir=data_dir)
            if unknown or not n:
                continue
            n_texts, seconds, n_units = n_texts + n, seconds + wall, n_units + 1
        if n_units:
            return Throughput(n_texts / seconds, f"store: {n_texts} texts in {seconds:.1f} s over {n_units} unit(s), {what}")
    return Throughput(None, "unknown")
