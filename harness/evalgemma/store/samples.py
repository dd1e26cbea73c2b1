"""Per-sample scores of a unit: the side table ``<store>/_samples/<variant_key>/<task>/<unit_id>.parquet``.

Where a task type defines a score per sample (a query, a pair, a sentence, an experiment), the
evaluation keeps what mteb computed on the way to the cell's main score, and the executor writes
it here *before* the unit file (a unit on disk always has its samples; a crash between the two
leaves an orphan samples file that no results row points to, and readers never see it).

Long format, one row per (cell, sample, field); ``value`` is float64 (as in the results store, so
re-aggregating gives the stored score exactly); string columns are dictionary-encoded, so ids and
field names are stored once per file. How a cell's main score is recomputed from its fields is the
cell's ``statistic`` (:data:`STATISTICS`, :func:`cell_statistic`):

- ``mean``: field ``score`` (retrieval and reranking: per-query main metric from pytrec_eval or
  mteb's ``mrr``; XTREME-UP: per-query reciprocal rank@10; classification: per-experiment main
  score; clustering: per-level v-measures, flattened). mteb rounds retrieval means to 5 decimals.
- ``spearman`` (STS): fields ``gold`` (normalized) and ``score`` (the similarity of the main metric);
  ``scipy.stats.spearmanr(gold, score)``.
- ``max_ap`` (pair classification): ``gold`` and any of ``similarity, cosine, manhattan, euclidean,
  dot``; the largest ``average_precision_score(gold, ±x)`` (distances negated), as mteb's ``max_ap``.
- ``weighted_f1`` (bitext mining): ``gold`` and ``pred``; ``f1_score(average="weighted", zero_division=0)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalgemma.errors import StoreError
from evalgemma.io import TMP_PREFIX

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

#: Version of the samples file layout (independent of the results schema).
SAMPLES_SCHEMA_VERSION = 1

#: How a cell's main score is recomputed from its per-sample fields (see the module docstring).
STATISTICS: tuple[str, ...] = ("mean", "spearman", "max_ap", "weighted_f1")

#: Columns of a samples file, in order.
COLUMNS: tuple[str, ...] = (
    "schema_version", "unit_id", "variant_key", "task", "task_version", "split", "hf_subset", "metric", "statistic",
    "sample_id", "field", "value",
)

#: The pair-classification similarity fields and the sign that turns each into "higher = more similar".
AP_FIELDS: dict[str, int] = {"similarity": 1, "cosine": 1, "manhattan": -1, "euclidean": -1, "dot": 1}


@dataclass(frozen=True)
class CellSamples:
    """The per-sample fields of one evaluated cell (split, subset), aligned to ``ids``."""

    split: str
    subset: str
    metric: str  # the cell's main metric, e.g. ndcg_at_10
    statistic: str  # one of STATISTICS
    ids: tuple[str, ...]
    fields: Mapping[str, Any]  # field -> float64 array, len(ids)

    def __post_init__(self) -> None:
        if self.statistic not in STATISTICS:
            raise ValueError(f"unknown statistic {self.statistic!r}; one of {STATISTICS}")
        for name, values in self.fields.items():
            if len(values) != len(self.ids):
                raise ValueError(f"cell {self.split}/{self.subset}: field {name} has {len(values)} values for {len(self.ids)} ids")


def samples_path(store: Path, variant_key: str, task: str, unit_id: str) -> Path:
    """Where the samples of a unit live (the unit file's path, under ``_samples/``)."""
    from evalgemma.store.parquet import safe_component

    return store / "_samples" / safe_component(variant_key) / safe_component(task) / f"{safe_component(unit_id)}.parquet"


def _arrow_schema() -> Any:
    import pyarrow as pa

    text = pa.dictionary(pa.int32(), pa.string())
    types = {"schema_version": pa.int32(), "value": pa.float64()}
    return pa.schema([(c, types.get(c, text)) for c in COLUMNS], metadata={b"evalgemma_samples_version": str(SAMPLES_SCHEMA_VERSION).encode()})


def write_samples(store: Path, *, unit_id: str, variant_key: str, task: str, task_version: str, cells: Sequence[CellSamples]) -> Path | None:
    """Write the samples of one unit atomically; None (nothing written) when ``cells`` is empty.

    Raises:
        StoreError: the file cannot be written.
    """
    import numpy as np
    import pyarrow as pa

    if not cells:
        return None
    cols: dict[str, list[Any]] = {c: [] for c in COLUMNS if c != "value"}
    values: list[Any] = []
    for cell in cells:
        for name in sorted(cell.fields):
            n = len(cell.ids)
            fixed = {"unit_id": unit_id, "variant_key": variant_key, "task": task, "task_version": task_version, "split": cell.split,
                     "hf_subset": cell.subset, "metric": cell.metric, "statistic": cell.statistic, "field": name}
            for key, v in fixed.items():
                cols[key].extend([v] * n)
            cols["schema_version"].extend([SAMPLES_SCHEMA_VERSION] * n)
            cols["sample_id"].extend(cell.ids)
            values.append(np.asarray(cell.fields[name], dtype=np.float64))
    schema = _arrow_schema()
    arrays = [pa.array(cols[c], type=pa.int32()) if c == "schema_version" else pa.array(cols[c], type=pa.string()).dictionary_encode()
              for c in COLUMNS if c != "value"]
    arrays.append(pa.array(np.concatenate(values), type=pa.float64()))
    table = pa.Table.from_arrays(arrays, schema=schema)
    target = samples_path(store, variant_key, task, unit_id)
    from evalgemma.store.parquet import write_table

    return write_table(target, table, "per-sample scores", "no unit was written")


def read_samples_file(path: Path) -> pd.DataFrame:
    """Read and validate one samples file (string columns as plain strings).

    Raises:
        StoreError: unreadable, foreign or from a newer layout.
    """
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several unrelated types for corrupt files
        raise StoreError(f"{path}: unreadable Parquet ({type(exc).__name__}: {exc})") from exc
    missing = set(COLUMNS) - set(table.column_names)
    if missing:
        raise StoreError(f"{path}: not an evalgemma samples file (missing columns {sorted(missing)[:5]})")
    versions = set(table.column("schema_version").to_pylist())
    if versions != {SAMPLES_SCHEMA_VERSION}:
        raise StoreError(f"{path}: samples schema_version {sorted(v for v in versions if v is not None)}; this evalgemma reads {SAMPLES_SCHEMA_VERSION}")
    frame = table.select(list(COLUMNS)).to_pandas()
    for c in COLUMNS:
        if c not in ("schema_version", "value"):
            frame[c] = frame[c].astype(str)
    return frame


def empty_samples() -> pd.DataFrame:
    """A samples frame with no rows and the columns of :data:`COLUMNS`."""
    import pandas as pd

    frame = pd.DataFrame({c: pd.Series(dtype="object") for c in COLUMNS})
    return frame.astype({"schema_version": "int32", "value": "float64"})


def load_samples(store: Path | str, results: pd.DataFrame, *, warn: bool = True) -> pd.DataFrame:
    """The per-sample scores of the cells in ``results`` (a newest-run frame of ``load_results``).

    Only the samples of the unit each cell's row comes from are read, so a cell re-evaluated later
    is paired with the samples of the run its stored score comes from. Cells without samples
    (older stores, task types without a per-sample score) are simply absent. Unreadable files are
    skipped with a warning (never deleted).
    """
    import pandas as pd

    store = Path(store)
    if results.empty:
        return empty_samples()
    keys = results[["variant_key", "task", "unit_id", "split", "hf_subset"]].drop_duplicates()
    frames: list[pd.DataFrame] = []
    for (variant_key, task, unit_id), cells in keys.groupby(["variant_key", "task", "unit_id"], sort=True):
        path = samples_path(store, str(variant_key), str(task), str(unit_id))
        if not path.is_file() or path.name.startswith(TMP_PREFIX):
            continue
        try:
            frame = read_samples_file(path)
        except StoreError as exc:
            if warn:
                warnings.warn(f"skipped samples file: {exc}", UserWarning, stacklevel=2)
            continue
        wanted = cells[["split", "hf_subset"]].astype(str)
        frames.append(frame.merge(wanted, on=["split", "hf_subset"], how="inner"))
    if not frames:
        return empty_samples()
    return pd.concat(frames, ignore_index=True)


def cell_fields(cell: pd.DataFrame) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The sorted sample ids of ONE cell's samples and ``{field: float64 array}`` aligned to them.

    Raises:
        ValueError: ``cell`` mixes cells, or a field lacks some samples (a bug in the writer).
    """
    import numpy as np

    key = cell[["variant_key", "task", "split", "hf_subset"]].drop_duplicates()
    if len(key) != 1:
        raise ValueError(f"cell_fields takes the samples of one cell, got {len(key)}")
    wide = cell.pivot(index="sample_id", columns="field", values="value").sort_index()
    if wide.isna().to_numpy().any():
        raise ValueError(f"cell {key.iloc[0].to_dict()}: fields do not cover the same samples")
    ids = np.asarray(wide.index.astype(str))
    return ids, {str(f): wide[f].to_numpy(dtype=np.float64) for f in wide.columns}


def cell_statistic(statistic: str, fields: Mapping[str, np.ndarray]) -> float:
    """A cell's main score from its per-sample fields, with the formula mteb uses (module docstring).

    Raises:
        ValueError: unknown statistic or a field it needs is missing.
    """
    import numpy as np

    def need(*names: str) -> None:
        missing = [n for n in names if n not in fields]
        if missing:
            raise ValueError(f"statistic {statistic}: fields {missing} missing (have {sorted(fields)})")

    if statistic == "mean":
        need("score")
        return float(np.mean(fields["score"]))
    if statistic == "spearman":
        from scipy.stats import spearmanr

        need("gold", "score")
        return float(spearmanr(fields["gold"], fields["score"])[0])
    if statistic == "max_ap":
        from sklearn.metrics import average_precision_score

        need("gold")
        present = [f for f in AP_FIELDS if f in fields]
        if not present:
            raise ValueError(f"statistic max_ap: none of {list(AP_FIELDS)} among the fields {sorted(fields)}")
        gold = fields["gold"].astype(np.int64)
        return float(max(average_precision_score(gold, fields[f] * AP_FIELDS[f]) for f in present))
    if statistic == "weighted_f1":
        from sklearn.metrics import f1_score

        need("gold", "pred")
        return float(f1_score(fields["gold"].astype(np.int64), fields["pred"].astype(np.int64), average="weighted", zero_division=0))
    raise ValueError(f"unknown statistic {statistic!r}; one of {STATISTICS}")
