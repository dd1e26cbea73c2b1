"""The bench side table: measured cost of a variant on the device and backend it ran (``evalgemma bench``).

Layout: ``<store>/_bench/<safe variant_key>/<bench_id>.parquet``, one file (one row) per measurement,
written atomically; the results scan skips ``_bench`` (``SIDE_TABLES``). A row carries the same identity
columns as the variant's result rows (so every view joins on ``variant_key``), the runtime it ran with
(device, batch size, threads) and provenance, and the figures. The table only grows: a rerun adds a file;
:func:`load_bench` keeps the newest measurement per (variant_key, device, backend) by recorded
``finished_at`` (never mtime). Unreadable files are skipped and reported, never deleted.

Figures (see the README section "Cost per variant"):

* ``weight_bytes``: the weights as stored in their format (the value the result rows carry);
  ``embedding_bytes``: one stored vector; ``index_bytes_per_million``: a flat (exhaustive) index of one
  million documents, ``embedding_bytes × 1_000_000`` (no ids, no graph, no compression);
* ``texts_per_s_long`` / ``texts_per_s_short``: texts over wall seconds of encode + embedding view at
  ``batch_size``, after ``warmup`` untimed batches, the median of ``repetitions`` (``throughput_stat``);
* ``latency_p50_ms`` / ``latency_p95_ms``: one text per call over ``latency_n`` calls;
* ``load_s``: building the encoder (model load, and weight quantization for the simulated formats);
  the libraries are imported before (preloaded in the fork server) and an exported artifact is built
  while planning, so neither is part of it;
* ``peak_rss_bytes``: the measuring process's peak resident set (one fresh process per variant);
  ``peak_gpu_bytes``: ``torch.cuda.max_memory_allocated`` on CUDA, NaN elsewhere (not measured).
"""

from __future__ import annotations

import math
import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalgemma.errors import StoreError
from evalgemma.io import TMP_PREFIX
from evalgemma.store.parquet import StoreProblem, safe_component

if TYPE_CHECKING:
    import pandas as pd

BENCH_SCHEMA_VERSION = 1
BENCH_DIR = "_bench"

#: (column, pyarrow type name), in on-disk order.
BENCH_COLUMNS: tuple[tuple[str, str], ...] = (
    ("schema_version", "int32"),
    ("bench_id", "string"),
    ("started_at", "string"),
    ("finished_at", "string"),
    # variant identity: the values the result rows of this variant carry
    ("model", "string"),
    ("revision", "string"),
    ("variant_key", "string"),
    ("variant", "string"),
    ("weight_key", "string"),
    ("dim", "int32"),
    ("dtype", "string"),
    ("max_seq_length", "int32"),
    ("prompt_set", "string"),
    ("prompt_hash", "string"),
    ("quant", "string"),
    ("quant_source", "string"),
    ("quant_checkpoint", "string"),
    ("quant_tensors", "string"),
    ("embed_dtype", "string"),
    ("calibration", "string"),
    ("backend", "string"),
    ("artifact_sha256", "string"),
    # runtime
    ("device", "string"),
    ("batch_size", "int32"),
    ("torch_threads", "int32"),
    ("prompt", "string"),  # the prompt the bench texts were encoded with ("" = none)
    # figures
    ("weight_bytes", "int64"),
    ("embedding_bytes", "int64"),
    ("index_bytes_per_million", "int64"),
    ("texts_per_s_long", "double"),
    ("texts_per_s_short", "double"),
    ("throughput_stat", "string"),  # how repetitions combine: "median"
    ("latency_p50_ms", "double"),
    ("latency_p95_ms", "double"),
    ("latency_n", "int32"),
    ("load_s", "double"),
    ("peak_rss_bytes", "int64"),
    ("peak_gpu_bytes", "double"),  # NaN off CUDA
    ("repetitions", "int32"),
    ("warmup", "int32"),  # untimed batches before each timed set
    ("long_texts_n", "int32"),
    ("long_texts_sha256", "string"),
    ("long_tokens_mean", "double"),  # tokens per long text as encoded (after max_seq_length truncation)
    ("short_texts_n", "int32"),
    ("short_texts_sha256", "string"),
    ("short_tokens_mean", "double"),
    # provenance
    ("evalgemma_version", "string"),
    ("mteb_version", "string"),
    ("torch_version", "string"),
    ("transformers_version", "string"),
    ("sentence_transformers_version", "string"),
    ("git_commit", "string"),
)

BENCH_COLUMN_NAMES: tuple[str, ...] = tuple(name for name, _ in BENCH_COLUMNS)

#: The figures a measurement must have; ``peak_gpu_bytes`` may be NaN (off CUDA).
FIGURES: tuple[str, ...] = (
    "weight_bytes", "embedding_bytes", "index_bytes_per_million", "texts_per_s_long", "texts_per_s_short",
    "latency_p50_ms", "latency_p95_ms", "load_s", "peak_rss_bytes",
)

#: A measurement's identity in the table: the newest row per these columns is the one shown.
BENCH_KEY: tuple[str, ...] = ("variant_key", "device", "backend")

__all__ = ["BENCH_COLUMNS", "BENCH_KEY", "FIGURES", "bench_path", "load_bench", "new_bench_id", "scan_bench", "write_bench"]


def _arrow_schema() -> Any:
    import pyarrow as pa

    types = {"string": pa.string(), "int32": pa.int32(), "int64": pa.int64(), "double": pa.float64()}
    return pa.schema([(n, types[t]) for n, t in BENCH_COLUMNS], metadata={b"evalgemma_bench_schema_version": str(BENCH_SCHEMA_VERSION).encode()})


def new_bench_id(finished_at: str) -> str:
    """A unique, sortable measurement id."""
    return re.sub(r"[^0-9]", "", finished_at)[:20] + "-" + uuid.uuid4().hex[:12]


def bench_path(store: Path, variant_key: str, bench_id: str) -> Path:
    """Where one measurement's file lives (every component sanitised)."""
    return store / BENCH_DIR / safe_component(variant_key) / f"{safe_component(bench_id)}.parquet"


def write_bench(store: Path | str, row: dict[str, Any]) -> Path:
    """Write one measurement atomically; returns its path.

    ``row`` must hold every column but ``schema_version`` (and ``bench_id``, assigned if absent).

    Raises:
        StoreError: the file cannot be written.
        KeyError: a column is missing or unknown (a bug in the caller).
        ValueError: a figure is missing or not positive (a bug in the measurement).
    """
    import pyarrow as pa

    full = {**row, "schema_version": BENCH_SCHEMA_VERSION}
    full.setdefault("bench_id", new_bench_id(str(row.get("finished_at", ""))))
    unknown = sorted(set(full) - set(BENCH_COLUMN_NAMES))
    missing = sorted(set(BENCH_COLUMN_NAMES) - set(full))
    if unknown or missing:
        raise KeyError(f"bench row: unknown columns {unknown}, missing columns {missing}")
    bad = [f for f in FIGURES if not (isinstance(full[f], int | float) and math.isfinite(full[f]) and full[f] > 0)]
    if bad:
        raise ValueError(f"bench row of {full['variant']}: figures not positive: {', '.join(f'{f}={full[f]!r}' for f in bad)}")
    table = pa.Table.from_pylist([{n: full[n] for n in BENCH_COLUMN_NAMES}], schema=_arrow_schema())
    target = bench_path(Path(store), str(full["variant_key"]), str(full["bench_id"]))
    from evalgemma.store.parquet import write_table

    return write_table(target, table, "the bench row", "earlier measurements are intact")


def _read(path: Path) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several unrelated types for corrupt files
        raise StoreError(f"{path}: unreadable Parquet ({type(exc).__name__}: {exc})") from exc
    if "schema_version" not in table.column_names or not pa.types.is_integer(table.schema.field("schema_version").type):
        raise StoreError(f"{path}: not an evalgemma bench file (no integer schema_version column)")
    versions = set(table.column("schema_version").to_pylist())
    if versions != {BENCH_SCHEMA_VERSION}:
        raise StoreError(f"{path}: bench schema_version {sorted(v for v in versions if v is not None)}: this evalgemma reads {BENCH_SCHEMA_VERSION}")
    expected = _arrow_schema()
    missing = set(expected.names) - set(table.column_names)
    if missing:
        raise StoreError(f"{path}: not an evalgemma bench file (missing columns {sorted(missing)[:5]})")
    wrong = [f.name for f in expected if table.schema.field(f.name).type != f.type]
    if wrong:
        raise StoreError(f"{path}: not an evalgemma bench file (column types differ: {', '.join(wrong[:3])})")
    return table.select(list(expected.names)).to_pandas()


def scan_bench(store: Path | str) -> tuple[pd.DataFrame, list[StoreProblem]]:
    """Every readable bench row of the store, plus the files skipped and why (never raises for a bad file)."""
    import pandas as pd

    root = Path(store) / BENCH_DIR
    frames: list[pd.DataFrame] = []
    problems: list[StoreProblem] = []
    paths = sorted(p for p in root.rglob("*.parquet") if not p.name.startswith(TMP_PREFIX) and p.is_file() and not p.is_symlink()) if root.is_dir() else []
    for path in paths:
        try:
            frames.append(_read(path))
        except StoreError as exc:
            problems.append(StoreProblem(path, str(exc)))
    if not frames:
        return _arrow_schema().empty_table().to_pandas(), problems
    return pd.concat(frames, ignore_index=True), problems


def load_bench(store: Path | str, *, warn: bool = True) -> pd.DataFrame:
    """The newest measurement per (variant_key, device, backend), by recorded ``finished_at`` (then ``bench_id``).

    Unreadable files are skipped with a ``UserWarning`` naming them (``warn``), never deleted.
    """
    import warnings

    frame, problems = scan_bench(store)
    if warn:
        for p in problems:
            warnings.warn(f"skipped bench file: {p.reason}", UserWarning, stacklevel=2)
    if frame.empty:
        return frame
    newest = frame.sort_values(["finished_at", "bench_id"]).groupby(list(BENCH_KEY), sort=False).tail(1)
    return newest.sort_values(["variant_key", "device", "backend"]).reset_index(drop=True)
