"""Turn a ``UnitResult`` into store rows (with the variant's identity and the run's provenance) and write them.

The only place a run writes results; every executor calls it (the Ray driver for its workers' results).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from evalgemma.benchmarks.base import BenchTask, UnitResult
from evalgemma.store.samples import CellSamples
from evalgemma.variants.spec import VariantSpec

#: Identity columns copied from ``VariantSpec.identity()`` into every row.
IDENTITY_COLUMNS = ("model", "revision", "variant_key", "variant", "weight_key", "dim", "dtype", "max_seq_length", "prompt_set",
             "prompt_hash", "quant", "quant_source", "quant_checkpoint", "embed_dtype", "backend", "artifact_sha256")


def with_calibration(result: UnitResult, variant: VariantSpec, calibration_vectors: Any) -> UnitResult:
    """``result`` with the int8/uint8 calibration record of ``variant`` in its fields ('' for other dtypes)."""
    from evalgemma.variants.views import view_calibration

    cal = view_calibration(variant, calibration_vectors)
    record = "" if cal is None else json.dumps(
        {"name": variant.calibration, "n_vectors": cal.n_vectors, "vectors_sha256": cal.sha256, "dim": cal.dim,
         "texts": "evalgemma.benchmarks.smoke.tasks.calibration_texts()"},
    )
    return replace(result, fields={**result.fields, "calibration": record})


def unit_rows(result: UnitResult, variant: VariantSpec, task: BenchTask, provenance: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Store rows of one result: per-cell rows + the unit's fields + the variant's identity + provenance."""
    from evalgemma.variants.embedding_quant import embedding_bytes

    ident = variant.identity()
    common = {
        **provenance, **{k: ident[k] for k in IDENTITY_COLUMNS}, **result.fields,
        "task": result.task, "task_type": result.task_type, "status": "ok",
        "started_at": result.started_at, "finished_at": result.finished_at, "wall_s": result.wall_s,
        "embedding_bytes": embedding_bytes(variant.dim, variant.embed_dtype),
        "main_score": math.nan if result.main_score is None else float(result.main_score),
        "suite_cells_n": len(task.cells), "suite_cells_sha256": task.cells_sha256,
    }
    return [{**common, **r} for r in result.rows]


def write_result(store: Path, rows: list[dict[str, Any]], samples: Sequence[CellSamples] = ()) -> Path:
    """Append one unit's rows to the store atomically (see ``evalgemma.store.parquet.write_unit``).

    The unit's per-sample scores (``evalgemma.store.samples``) are written first, under the unit's
    id: a unit file on disk always has its samples beside it; a crash in between leaves only an
    orphan samples file, which no results row points to.
    """
    from evalgemma.store.parquet import new_unit_id, write_unit
    from evalgemma.store.samples import write_samples

    if rows and samples:
        first = rows[0]
        unit_id = first.get("unit_id") or new_unit_id(str(first["task"]), str(first.get("finished_at", "")))
        rows = [{**r, "unit_id": unit_id} for r in rows]
        write_samples(store, unit_id=unit_id, variant_key=str(first["variant_key"]), task=str(first["task"]),
                      task_version=str(first.get("task_version", "")), cells=samples)
    return write_unit(store, rows)
