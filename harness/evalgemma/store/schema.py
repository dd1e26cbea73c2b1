"""Parquet columns of the results store, ``SCHEMA_VERSION`` and upgrades of older versions.

One row per (unit, hf_subset, split, metric). A *unit* is one (variant, task) evaluation;
all its rows are written together in one Parquet file. Values are float64 and never rounded.
"""

from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 1

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
    ("main_score", "double"),  # the task's aggregated main score (flat mean over cells), 0-1
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

#: Public, stable columns of ``load_results``.
PUBLIC_COLUMNS: tuple[str, ...] = (
    "model", "revision", "variant", "variant_key", "dim", "dtype", "task", "task_type",
    "hf_subset", "split", "metric", "value", "is_main", "main_score", "run_id",
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


def upgrade(table_version: int) -> None:
    """Check that a file's schema version is readable.

    Version 1 is the first version, so there is nothing to upgrade yet; a newer
    version than this code knows is rejected by the caller.
    """
    if table_version > SCHEMA_VERSION:
        raise ValueError(f"schema_version {table_version} is newer than this evalgemma ({SCHEMA_VERSION}); upgrade evalgemma")
