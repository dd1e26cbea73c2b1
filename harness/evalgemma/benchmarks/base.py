"""What every benchmark shares: cells, the task handle a plan holds, and the result of one unit.

A *cell* is one (split, subset) of a task; with the variant and the task version it is the unit
of identity and of resume: a stored cell is never evaluated again (unless ``--force``), a missing
one is. A benchmark (``benchmarks/mteb``, ``benchmarks/xtreme_up``; ``smoke`` is mteb-kind) plans
the expected cells of its tasks and evaluates a set of cells with an encoder and a variant into a
:class:`UnitResult` — a pure value, written to the store only by the executors in ``run/``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evalgemma.store.samples import CellSamples


@dataclass(frozen=True, order=True)
class Cell:
    """One (split, subset) of a task; ``subset`` is mteb's ``hf_subset`` or an XTREME-UP language."""

    split: str
    subset: str

    def __str__(self) -> str:
        return f"{self.split}/{self.subset}"


def cells_sha256(cells: Sequence[Cell]) -> str:
    """sha256 of the sorted cell list: the identity of a suite's expectation for one task."""
    payload = json.dumps(sorted([c.split, c.subset] for c in cells), separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass
class BenchTask:
    """A task of a plan: its expected cells in the suite, in mteb's order (splits, then subsets).

    ``order_dependent`` tasks draw random samples from one task-level generator across subsets
    (mteb's ``AbsTaskClustering`` downsampling, ``AbsTaskMultilabelClassification``), so a cell's
    value depends on the cells evaluated before it: they are always evaluated whole, from a fresh
    seed, exactly as one plain ``mteb.evaluate`` of the task would.
    """

    name: str
    task_type: str
    kind: str  # a key of evalgemma.benchmarks.BENCHMARKS
    version: str  # task version of every cell (mteb: dataset revision; smoke: files sha256; XTREME-UP: data version + index sha256)
    cells: tuple[Cell, ...]  # what the suite expects: a task score needs all of them
    selected: tuple[Cell, ...] = ()  # what this run may evaluate (``--langs``); default: ``cells``
    order_dependent: bool = False
    obj: Any = None  # the mteb task object (mteb kind)
    languages: tuple[str, ...] = ()  # XTREME-UP
    xtreme_task: str = ""  # XTREME-UP: retrieval_cross_lang | retrieval_in_lang
    data_source: str = ""
    mirror: Path | None = None  # local dataset snapshot the mteb task is pointed at
    data: Any = None  # benchmark data loaded by ``prepare`` (XTREME-UP)

    def __post_init__(self) -> None:
        if not self.selected:
            self.selected = self.cells

    @property
    def cells_sha256(self) -> str:
        return cells_sha256(self.cells)


#: Attribute that marks an mteb task object whose data is built in (smoke, types): nothing to fetch, fine offline.
_BUILTIN_DATA = "_evalgemma_builtin_data"


def mark_builtin_data(task_obj: Any) -> None:
    """Flag an mteb task object as holding built-in data (see :func:`has_builtin_data`)."""
    setattr(task_obj, _BUILTIN_DATA, True)


def has_builtin_data(task_obj: Any) -> bool:
    """Whether an mteb task object's data is built in (nothing to download or mirror)."""
    return bool(getattr(task_obj, _BUILTIN_DATA, False))


@dataclass(frozen=True)
class EvalContext:
    """What an evaluation needs besides the encoder and the variant (runtime, not identity)."""

    model_id: str
    revision: str
    device: str
    search_chunk: int = 8192
    calibration_vectors: Any = None  # full vectors of the int8/uint8 calibration texts, or None
    suite: str = ""


@dataclass(frozen=True)
class UnitResult:
    """The outcome of evaluating some cells of one (variant, task): rows for the store, nothing written.

    ``rows`` hold the per-cell columns (``hf_subset, split, languages, metric, value, is_main`` and
    optionally ``n_samples``); ``fields`` the per-unit columns (``task_version``, ``data_revision``,
    ``data_sha256``, ``prompts``, ``extra``, ``n_samples``); ``samples`` the per-sample scores of the
    cells whose type defines them (``evalgemma.store.samples``). ``main_score`` is the task's score
    (mteb's flat mean over cells) only when ``cells`` are all the cells the suite expects.
    """

    task: str
    task_type: str
    variant_key: str
    cells: tuple[Cell, ...]
    rows: tuple[Mapping[str, Any], ...]
    fields: Mapping[str, Any]
    main_score: float | None
    started_at: str
    finished_at: str
    wall_s: float
    texts_encoded: int = 0
    encode_seconds: float = 0.0
    extra: Mapping[str, Any] = field(default_factory=dict)
    samples: tuple[CellSamples, ...] = ()
