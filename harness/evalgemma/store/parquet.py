"""The Parquet results store: atomic append of finished units, integrity-checked reads.

Layout: ``<store>/<variant_key>/<task>/<unit_id>.parquet``, one file per finished unit (some or
all cells of one (variant, task)). Side tables live in folders that start with ``_`` (variant keys
never do): ``_samples/`` (per-sample scores of a unit, ``evalgemma.store.samples``) and ``_bench/``
(measured cost of a variant, ``evalgemma.store.bench``); the results scan skips them. The store only grows: nothing here deletes or rewrites a file.
Readers take, for every *cell* (variant, task, task version, split, subset), the rows of its newest
finished run by the recorded ``finished_at`` (never mtime).

Files that cannot be read (truncated, foreign, future schema version) are *skipped and
reported* with their path (``StoreProblem``); they are never deleted or moved.
"""

from __future__ import annotations

import os
import re
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalgemma.errors import StoreError
from evalgemma.io import TMP_PREFIX, atomic_write
from evalgemma.store.schema import READABLE_VERSIONS, SCHEMA_VERSION, arrow_schema, complete_row, upgrade_v1, v1_arrow_schema

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")

#: Top-level folders of a store that hold side tables, not result units (see the module docstring).
SIDE_TABLES: tuple[str, ...] = ("_samples", "_bench")

#: The columns that identify a cell (with ``variant_key``); ``newest_runs`` keeps one run per cell.
CELL_COLUMNS: tuple[str, ...] = ("variant_key", "task", "task_version", "split", "hf_subset")

__all__ = [
    "CELL_COLUMNS", "TMP_PREFIX", "StoreProblem", "ensure_writable", "load_results", "newest_runs", "read_file", "scan_store", "stored_cells", "write_unit",
]


def safe_component(name: str) -> str:
    """Map any user- or model-supplied name to one safe path component.

    The result never contains a path separator, never starts with a dot (so it can be
    neither ``..`` nor a hidden temp file) and is never empty.
    """
    cleaned = _SAFE.sub("_", name).strip("._") or "_"
    return cleaned[:120]


@dataclass(frozen=True)
class StoreProblem:
    """A store file that was skipped, with the reason."""

    path: Path
    reason: str


def ensure_writable(store: Path) -> None:
    """Create the store directory if needed and prove it is writable, before any work starts.

    Raises:
        StoreError: the directory cannot be created or written (read-only, not a directory, disk full).
    """
    try:
        store.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=TMP_PREFIX + "probe-", dir=store)
        try:
            os.write(fd, b"probe")
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        raise StoreError(f"--store {store}: not writable ({exc.strerror or exc}). Choose another --store or fix its permissions.") from exc


def unit_path(store: Path, variant_key: str, task: str, unit_id: str) -> Path:
    """Where a unit's file lives; every component is sanitised so nothing escapes ``store``."""
    return store / safe_component(variant_key) / safe_component(task) / f"{safe_component(unit_id)}.parquet"


def new_unit_id(task: str, finished_at: str) -> str:
    """A unique, sortable unit id."""
    stamp = re.sub(r"[^0-9]", "", finished_at)[:20]
    return f"{safe_component(task)}-{stamp}-{uuid.uuid4().hex[:12]}"


def write_unit(store: Path, rows: list[dict[str, Any]]) -> Path:
    """Write one finished unit atomically (temp file in the same folder, fsync, rename).

    Every row must belong to the same (variant_key, task) and carry the same ``unit_id``
    (one is assigned if absent). A crash at any point leaves either no file or the whole
    file; temp files start with ``.tmp-`` and are ignored by readers.

    Returns:
        The path of the new file.

    Raises:
        StoreError: the file cannot be written.
        ValueError: rows are empty or mix units (a bug in the caller).
    """
    import pyarrow as pa

    if not rows:
        raise ValueError("write_unit needs at least one row")
    full = [complete_row(r) for r in rows]
    keys = {(r["variant_key"], r["task"]) for r in full}
    if len(keys) != 1:
        raise ValueError(f"rows of one unit must share variant_key and task, got {sorted(keys)}")
    variant_key, task = next(iter(keys))
    unit_id = full[0]["unit_id"] or new_unit_id(task, full[0]["finished_at"])
    for r in full:
        r["unit_id"] = unit_id
    table = pa.Table.from_pylist(full, schema=arrow_schema())
    target = unit_path(store, variant_key, task, unit_id)
    return write_table(target, table, "unit", "earlier units are intact")


def write_table(target: Path, table: pa.Table, what: str, after: str) -> Path:
    """Write one Parquet table atomically (complete or absent): the store's one Parquet writer.

    Raises:
        StoreError: ``"{target}: cannot write {what} (...); {after}"``.
    """
    import pyarrow.parquet as pq

    try:
        atomic_write(target, lambda fh: pq.write_table(table, fh))
    except OSError as exc:
        raise StoreError(f"{target}: cannot write {what} ({exc.strerror or exc}); {after}") from exc
    return target


def _store_files(store: Path) -> list[Path]:
    if not store.exists():
        return []
    if not store.is_dir():
        raise StoreError(f"--store {store}: not a directory")
    out = []
    side = {store / name for name in SIDE_TABLES}
    for path in store.rglob("*.parquet"):
        if side.intersection(path.parents):
            continue
        # is_file: a *folder* named "*.parquet" (e.g. a task called "X.parquet") would otherwise be
        # read by pyarrow as a dataset of every unit inside it, duplicating their rows.
        if path.name.startswith(TMP_PREFIX) or path.is_symlink() or not path.is_file():
            continue
        out.append(path)
    return sorted(out)


def read_file(path: Path) -> pd.DataFrame:
    """Read and validate one store file.

    Raises:
        StoreError: unreadable, foreign (columns differ) or from a newer schema version.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several unrelated types for corrupt files
        raise StoreError(f"{path}: unreadable Parquet ({type(exc).__name__}: {exc})") from exc
    names = set(table.column_names)
    if "schema_version" not in names:
        raise StoreError(f"{path}: not an evalgemma store file (no schema_version column)")
    # A foreign file may carry a schema_version column of another type; compare only integers.
    if not pa.types.is_integer(table.schema.field("schema_version").type):
        raise StoreError(f"{path}: not an evalgemma store file (schema_version is {table.schema.field('schema_version').type}, expected an integer)")
    versions = set(table.column("schema_version").to_pylist())
    if any(v is None or v > SCHEMA_VERSION for v in versions):
        newer = sorted(v for v in versions if v is not None)
        raise StoreError(f"{path}: schema_version {newer} is newer than this evalgemma ({SCHEMA_VERSION}); upgrade evalgemma")
    if len(versions) != 1 or next(iter(versions)) not in READABLE_VERSIONS:
        raise StoreError(f"{path}: schema_version {sorted(versions)}: one of {list(READABLE_VERSIONS)} expected per file")
    version = next(iter(versions))
    expected = arrow_schema() if version == SCHEMA_VERSION else v1_arrow_schema()
    missing = set(expected.names) - names
    if missing:
        raise StoreError(f"{path}: not an evalgemma store file (missing columns {sorted(missing)[:5]})")
    # Column types must match the schema, or one odd file turns e.g. ``value`` into strings for all.
    wrong = [f"{f.name} is {table.schema.field(f.name).type}, expected {f.type}" for f in expected if table.schema.field(f.name).type != f.type]
    if wrong:
        raise StoreError(f"{path}: not an evalgemma store file (column types differ: {'; '.join(wrong[:3])})")
    frame = table.select(list(expected.names)).to_pandas()
    return frame if version == SCHEMA_VERSION else upgrade_v1(frame)


def scan_store(store: Path | str) -> tuple[pd.DataFrame, list[StoreProblem]]:
    """Every readable row of the store, plus the files that were skipped and why.

    Never raises for a bad file: bad files are reported, not fatal, so one corrupt
    file cannot hide every other result.
    """
    import pandas as pd

    store = Path(store)
    frames: list[pd.DataFrame] = []
    problems: list[StoreProblem] = []
    for path in _store_files(store):
        try:
            frames.append(read_file(path))
        except StoreError as exc:
            problems.append(StoreProblem(path, str(exc)))
    if not frames:
        return _empty_frame(), problems
    return pd.concat(frames, ignore_index=True), problems


def _empty_frame() -> pd.DataFrame:
    return arrow_schema().empty_table().to_pandas()


def newest_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """Keep, for each cell (variant, task, task version, split, subset), the rows of its newest finished run.

    Runs are ordered by the recorded ``finished_at`` (then ``unit_id``), never by file time. A cell
    evaluated again (``--force``, or a task whose evaluation order matters re-run whole) is taken
    from the newest unit that holds it; other cells of older units stay.
    """
    if frame.empty:
        return frame
    cells = frame[[*CELL_COLUMNS, "finished_at", "unit_id"]].drop_duplicates()
    last = cells.sort_values(["finished_at", "unit_id"]).groupby(list(CELL_COLUMNS), sort=False).tail(1)
    keep = frame[[*CELL_COLUMNS, "unit_id"]].merge(last[[*CELL_COLUMNS, "unit_id"]], how="left", on=list(CELL_COLUMNS), suffixes=("", "_newest"))
    mask = (keep["unit_id"] == keep["unit_id_newest"]).to_numpy()
    return frame[mask].reset_index(drop=True)


def stored_cells(frame: pd.DataFrame) -> set[tuple[str, str, str, str, str]]:
    """The cells (variant_key, task, task_version, split, hf_subset) that have a finished run in ``frame``."""
    if frame.empty:
        return set()
    cols = [frame[c].astype(str) for c in CELL_COLUMNS]
    return set(zip(*cols, strict=True))


def load_results(store: Path | str = "results/store", *, all_runs: bool = False, warn: bool = True) -> pd.DataFrame:
    """Load the store as a tidy DataFrame: the newest finished run of each cell.

    Columns include at least ``model, revision, variant, variant_key, dim, dtype, task,
    task_type, hf_subset, split, metric, value, is_main, main_score, run_id`` (see
    ``evalgemma.store.schema.COLUMNS`` for all). Unreadable files are skipped with a warning.

    Args:
        store: the store directory.
        all_runs: keep every run instead of the newest per unit.
        warn: emit a ``UserWarning`` per skipped file.
    """
    import warnings

    frame, problems = scan_store(Path(store))
    if warn:
        for p in problems:
            warnings.warn(f"skipped store file: {p.reason}", UserWarning, stacklevel=2)
    return frame if all_runs else newest_runs(frame)
