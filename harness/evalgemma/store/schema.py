"""Parquet columns of the results store, ``SCHEMA_VERSION`` and the upgrade of older versions.

One row per (cell, metric). A *cell* is (variant, task, task version, split, subset): the unit of
resume and of identity. A *unit* is one evaluation of some cells of one (variant, task); all its
rows are written together in one Parquet file. Values are float64 and never rounded.

Version 2 (this code writes it): adds ``backend``, ``artifact_sha256``, ``suite_cells_n`` and
``suite_cells_sha256``; ``task_version`` is always set (mteb: the dataset revision the task pins;
smoke: the sha256 of its files; XTREME-UP: data version and index sha256); ``main_score`` is the
task's score only when the unit evaluated every cell the run's suite expects for the task, else NaN.
Version 1 files are read as they are and upgraded in memory by :func:`upgrade_v1` (never rewritten).
"""

from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 2

#: Versions this code reads (older ones are upgraded in memory).
READABLE_VERSIONS = (1, 2)

#: (column, pyarrow type name). Order is the on-disk order.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("schema_version", "int32"),
    ("run_id", "string"),
    ("unit_id", "string"),
    ("started_at", "string"),  # ISO-8601 UTC, microseconds
    ("finished_at", "string"),
    ("status", "string"),  # "ok" (failed units are not stored as rows)
    # model and variant identity
    ("model", "string"),
    ("revision", "string"),
    ("variant_key", "string"),
    ("variant", "string"),  # readable label
    ("weight_key", "string"),  # identity of the encoder (everything that changes a full vector)
    ("dim", "int32"),
    ("dtype", "string"),
    ("max_seq_length", "int32"),
    ("prompt_set", "string"),
    ("prompt_hash", "string"),
    ("prompts", "string"),  # JSON: exact prompt strings used, per (task type, side)
    ("quant", "string"),
    ("quant_source", "string"),
    ("quant_checkpoint", "string"),
    ("quant_tensors", "string"),  # JSON list of quantized tensor names
    ("embed_dtype", "string"),
    ("calibration", "string"),  # JSON describing the calibration set of int8/uint8 ranges
    ("weight_bytes", "int64"),
    ("backend", "string"),  # the runtime that computed the vectors: "torch" (v1 files: torch)
    ("artifact_sha256", "string"),  # sha256 of the deployed artifact (.onnx/.gguf) when the backend is not torch
    ("embedding_bytes", "int64"),
    # task
    ("suite", "string"),
    ("task", "string"),
    ("task_type", "string"),
    ("task_version", "string"),
    ("data_revision", "string"),
    ("data_sha256", "string"),
    ("hf_subset", "string"),
    ("split", "string"),
    ("languages", "string"),  # comma-joined ISO codes as mteb stores them
    ("metric", "string"),
    ("value", "double"),
    ("is_main", "bool"),
    ("main_score", "double"),  # the task's score (mteb's flat mean over its cells) if this unit holds them all, else NaN
    ("suite_cells_n", "int64"),  # cells the run's suite expects for this task (0: unknown, v1)
    ("suite_cells_sha256", "string"),  # sha256 of that sorted cell list
    ("n_samples", "int64"),
    ("wall_s", "double"),
    # provenance
    ("evalgemma_version", "string"),
    ("mteb_version", "string"),
    ("torch_version", "string"),
    ("transformers_version", "string"),
    ("sentence_transformers_version", "string"),
    ("device", "string"),
    ("batch_size", "int32"),
    ("git_commit", "string"),
    ("extra", "string"),  # JSON of anything task-specific (e.g. XTREME-UP data version)
)

COLUMN_NAMES: tuple[str, ...] = tuple(name for name, _ in COLUMNS)

#: Columns that every row must set (the others default to "" / 0 / NaN).
REQUIRED: frozenset[str] = frozenset(
    {"run_id", "model", "variant_key", "variant", "dim", "task", "hf_subset", "split", "metric", "value", "is_main"}
)

_DEFAULTS: dict[str, Any] = {"string": "", "int32": 0, "int64": 0, "double": float("nan"), "bool": False}


def arrow_schema() -> Any:
    """The pyarrow schema of a store file (pyarrow imported lazily)."""
    import pyarrow as pa

    types = {"string": pa.string(), "int32": pa.int32(), "int64": pa.int64(), "double": pa.float64(), "bool": pa.bool_()}
    return pa.schema([(name, types[t]) for name, t in COLUMNS], metadata={b"evalgemma_schema_version": str(SCHEMA_VERSION).encode()})


def complete_row(row: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of ``row`` with every column present (defaults for the optional ones).

    Raises:
        KeyError: a required column is missing or an unknown column is given (a bug in the caller).
    """
    unknown = set(row) - set(COLUMN_NAMES)
    if unknown:
        raise KeyError(f"unknown store columns: {sorted(unknown)}")
    missing = REQUIRED - set(row)
    if missing:
        raise KeyError(f"missing required store columns: {sorted(missing)}")
    out = {name: row.get(name, _DEFAULTS[t]) for name, t in COLUMNS}
    out["schema_version"] = SCHEMA_VERSION
    return out


#: Columns version 2 added, with the value a version-1 row implies.
V2_ADDED: dict[str, Any] = {"backend": "torch", "artifact_sha256": "", "suite_cells_n": 0, "suite_cells_sha256": ""}


def v1_arrow_schema() -> Any:
    """The schema of a version-1 file (the v2 columns without those v2 added)."""
    import pyarrow as pa

    schema = arrow_schema()
    return pa.schema([f for f in schema if f.name not in V2_ADDED])


def upgrade_v1(frame: Any) -> Any:
    """A version-1 frame as version-2 rows, in memory (the file is never rewritten).

    v1 stored an empty ``task_version``: the cell identity of a v1 MTEB or smoke row is its dataset
    revision (``data_revision``), which is exactly what v2 records. v1's ``main_score`` was the mean
    over the cells of its unit, even when those were a subset of the task: it is kept as it was
    stored, and views never read it (task scores are computed from cells). Tasks evaluated whole
    from one random generator (clustering, multilabel) have a v2 version naming their cell set
    (``<revision>+cells:<sha12>``), so their v1 rows (drawn from a generator v1 shared across
    variants) never match an expected cell: they count as missing, never as a score.
    """
    out = frame.copy()
    for name, value in V2_ADDED.items():
        out[name] = value
    empty = out["task_version"].fillna("") == ""
    out.loc[empty, "task_version"] = out.loc[empty, "data_revision"]
    return out[list(COLUMN_NAMES)]
