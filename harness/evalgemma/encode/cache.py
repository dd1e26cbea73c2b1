"""A content-addressed on-disk store of full-precision embedding vectors.

Layout (one folder per namespace = weight-variant key; nothing outside ``root`` is touched)::

    root/CACHEDIR.TAG                      # marks the folder as a cache for backup tools
    root/<namespace>/<shard>.npy           # float32 [rows, dim], written with allow_pickle=False
    root/<namespace>/<shard>.json          # the shard's index: keys, per-row checksums, shape

Why shards and not one file per vector: a 100k-text corpus would be 100k files (slow to
write, list, fsync and evict); a shard is one ``put_many`` call (at most ``shard_rows``
rows), so a run writes a handful of files, a read memory-maps only the shards it needs,
and the JSON index (~100 bytes a row) loads in milliseconds and is cached per process —
shards are immutable, so a parsed index never goes stale.

Safety rules:

* **Atomic, index last.** Each file is written with ``evalgemma.io.atomic_write`` (a temp
  file in the same folder, fsynced, mode 0644, ``os.replace``d); the ``.npy`` goes first and the ``.json`` index last, so a shard is
  visible only once both are complete. A process killed mid-write leaves at most an
  invisible temp file or an ``.npy`` without index, swept after an hour.
* **Concurrent runs.** Shard names are a hash of their content (namespace, keys, bytes),
  so two processes writing the same vectors replace one file with identical bytes and two
  processes writing different vectors write different files; nothing is ever appended to
  or rewritten in place. Readers re-list the folder on every call, so they see shards
  written by others.
* **Never serve garbage.** Every row carries a checksum (CRC-32 of its float32 bytes,
  seeded with its key) in the index; the ``.npy`` header must match the index's shape and
  dtype and its size the recorded size. A shard that fails any check (unparseable index,
  truncated or garbage ``.npy``, wrong shape/dtype, checksum or key mismatch) is reported
  with ``warnings.warn(CacheCorruptionWarning)`` naming its path, none of its rows is
  served (they are recomputed by the caller), and it is deleted.
* **Bounded size; eviction rule.** After every write, if the total size of all shards under
  ``root`` (every namespace) exceeds ``max_bytes``, whole shards are deleted in order of
  least recent use — the index file's mtime, set when the shard is written and each time
  it serves a hit — until the total is at most ``max_bytes``. Shards written by the call
  that triggered eviction are kept, so one oversized run still caches its last write.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
import warnings
import zlib
from collections.abc import Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from evalgemma.io import TMP_PREFIX, atomic_write

log = logging.getLogger(__name__)

SCHEMA = "evalgemma-embedding-cache/1"
DEFAULT_MAX_BYTES = 2 * 1024**3
DEFAULT_SHARD_ROWS = 8192
#: Temp files and index-less ``.npy`` files older than this are leftovers of killed writers.
ORPHAN_AGE_S = 3600.0

_NAMESPACE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_KEY_RE = re.compile(r"^[0-9a-f]{64}$")
_SHARD_RE = re.compile(r"^[0-9a-f]{32}$")
_CACHEDIR_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by evalgemma (embedding cache).\n"
    "# For information about cache directory tags, see https://bford.info/cachedir/\n"
)


class CacheCorruptionWarning(UserWarning):
    """A cache shard failed a check; its rows were not served and it was removed."""


@dataclass
class CacheStats:
    """Counters of one ``EmbeddingCache`` object (this process only)."""

    hits: int = 0
    misses: int = 0
    rows_written: int = 0
    shards_written: int = 0
    corrupt_shards: int = 0
    evicted_shards: int = 0
    evicted_bytes: int = 0


@dataclass(frozen=True)
class _ShardIndex:
    shard: str
    keys: tuple[str, ...]
    checksums: tuple[int, ...]
    dim: int
    npy_bytes: int


def row_checksum(key: str, row: np.ndarray) -> int:
    """CRC-32 of the row's little-endian float32 bytes, seeded with the CRC-32 of its key.

    The threat is accidental damage (a torn or bit-rotted file), not forgery — whoever can
    write the shard can rewrite its index — so a CRC is enough and 2-3x cheaper than sha256
    on 100k rows. Seeding with the key catches an index whose keys and rows got out of step.
    """
    return zlib.crc32(np.ascontiguousarray(row, dtype="<f4").data, zlib.crc32(key.encode("ascii")))


def check_namespace(namespace: str) -> str:
    """The namespace, if it is a safe folder name (letters, digits, ``._-``; no leading dot).

    Raises:
        ValueError: anything that could name a path outside the cache root.
    """
    if not isinstance(namespace, str) or not _NAMESPACE_RE.fullmatch(namespace):
        raise ValueError(f"embedding cache: invalid namespace {namespace!r} (expected [A-Za-z0-9][A-Za-z0-9._-]{{0,127}})")
    return namespace


def check_key(key: str) -> str:
    """The key, if it is 64 lowercase hex digits (an ``encoder.input_key``).

    Raises:
        ValueError: any other string.
    """
    if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
        raise ValueError(f"embedding cache: invalid key {key!r} (expected 64 lowercase hex digits, a sha256)")
    return key


class _Corrupt(Exception):
    """Internal: a shard failed a check (message = the reason)."""


@dataclass
class EmbeddingCache:
    """Full-dimension float32 vectors by (namespace, key), shared safely between runs.

    Implements ``encoder.VectorCache``. Creating the object touches nothing; the root
    folder is created by the first write.

    Args:
        root: the cache folder (``evalgemma run --cache-dir``).
        max_bytes: size bound for everything under ``root``; least recently used shards
            are evicted after a write that exceeds it (default 2 GiB).
        shard_rows: at most this many rows per shard file.
    """

    root: Path
    max_bytes: int = DEFAULT_MAX_BYTES
    shard_rows: int = DEFAULT_SHARD_ROWS
    stats: CacheStats = field(default_factory=CacheStats)
    _indexes: dict[str, dict[str, _ShardIndex]] = field(default_factory=dict, repr=False)
    _where: dict[str, dict[str, tuple[str, int]]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        if self.max_bytes < 0:
            raise ValueError(f"embedding cache: max_bytes must be >= 0 (got {self.max_bytes})")
        if self.shard_rows < 1:
            raise ValueError(f"embedding cache: shard_rows must be positive (got {self.shard_rows})")

    # ------------------------------------------------------------ reading

    def get_many(self, namespace: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored vectors of those ``keys`` that are present and pass every check."""
        ns_dir = self.root / check_namespace(namespace)
        for k in keys:
            check_key(k)
        self._refresh(namespace, ns_dir)
        where = self._where.get(namespace, {})
        by_shard: dict[str, list[tuple[str, int]]] = {}
        for k in dict.fromkeys(keys):
            loc = where.get(k)
            if loc is not None:
                by_shard.setdefault(loc[0], []).append((k, loc[1]))
        found: dict[str, np.ndarray] = {}
        for shard, wanted in by_shard.items():
            index = self._indexes[namespace][shard]
            try:
                block = self._read_rows(ns_dir, index, [r for _, r in wanted])
            except FileNotFoundError:
                # Evicted by another process since we listed it: a plain miss.
                self._forget(namespace, shard)
                continue
            except _Corrupt as exc:
                self._report_corrupt(namespace, ns_dir / f"{shard}.npy", str(exc))
                continue
            bad = [k for (k, r), row in zip(wanted, block, strict=True) if row_checksum(k, row) != index.checksums[r]]
            if bad:
                reason = f"checksum mismatch on {len(bad)} of {len(wanted)} rows read (e.g. key {bad[0][:12]}…)"
                self._report_corrupt(namespace, ns_dir / f"{shard}.npy", reason)
                continue
            for (k, _), row in zip(wanted, block, strict=True):
                found[k] = row
            with suppress(OSError):
                os.utime(ns_dir / f"{shard}.json")  # the LRU access record
        self.stats.hits += len(found)
        self.stats.misses += len(dict.fromkeys(keys)) - len(found)
        return found

    def _read_rows(self, ns_dir: Path, index: _ShardIndex, rows: list[int]) -> np.ndarray:
        path = ns_dir / f"{index.shard}.npy"
        size = path.stat().st_size
        if size != index.npy_bytes:
            raise _Corrupt(f"file is {size} bytes, its index records {index.npy_bytes}")
        # Most of a shard wanted: one sequential read beats page-faulting a memory map.
        mmap_mode: Literal["r"] | None = None if 2 * len(rows) >= len(index.keys) else "r"
        try:
            arr = np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
        except FileNotFoundError:
            raise
        except (ValueError, OSError, EOFError) as exc:
            raise _Corrupt(f"unreadable .npy ({exc})") from exc
        if not isinstance(arr, np.ndarray) or arr.dtype != np.dtype("<f4"):
            raise _Corrupt(f"dtype {getattr(arr, 'dtype', type(arr).__name__)}, expected float32")
        if arr.shape != (len(index.keys), index.dim):
            raise _Corrupt(f"shape {arr.shape}, its index records {(len(index.keys), index.dim)}")
        if mmap_mode is None and rows == list(range(len(index.keys))):
            return np.asarray(arr, dtype=np.float32)
        block = np.array(arr[np.asarray(rows, dtype=np.int64)], dtype=np.float32)
        del arr
        return block

    def _refresh(self, namespace: str, ns_dir: Path) -> None:
        """Bring this process's view of a namespace up to date with the folder."""
        known = self._indexes.setdefault(namespace, {})
        where = self._where.setdefault(namespace, {})
        try:
            names = {e.name[:-5] for e in os.scandir(ns_dir) if e.name.endswith(".json") and _SHARD_RE.fullmatch(e.name[:-5])}
        except OSError:  # no folder yet, or root is not a folder: nothing cached
            names = set()
        for gone in set(known) - names:
            self._forget(namespace, gone)
        for shard in sorted(names - set(known)):
            path = ns_dir / f"{shard}.json"
            try:
                index = self._load_index(namespace, shard, path)
            except FileNotFoundError:
                continue
            except _Corrupt as exc:
                self._report_corrupt(namespace, path, str(exc))
                continue
            known[shard] = index
            for row, k in enumerate(index.keys):
                where.setdefault(k, (shard, row))

    @staticmethod
    def _load_index(namespace: str, shard: str, path: Path) -> _ShardIndex:
        try:
            raw = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise
        except (OSError, ValueError) as exc:
            raise _Corrupt(f"unreadable index ({exc})") from exc
        if not isinstance(raw, dict):
            raise _Corrupt("index is not a JSON object")
        if raw.get("schema") != SCHEMA:
            raise _Corrupt(f"unknown schema {raw.get('schema')!r} (expected {SCHEMA!r})")
        keys, sums = raw.get("keys"), raw.get("row_crc32")
        dim, npy_bytes = raw.get("dim"), raw.get("npy_bytes")
        if raw.get("namespace") != namespace or raw.get("shard") != shard:
            raise _Corrupt(f"index names namespace/shard {raw.get('namespace')!r}/{raw.get('shard')!r}, found under {namespace}/{shard}")
        if not (isinstance(keys, list) and isinstance(sums, list) and len(keys) == len(sums) == raw.get("rows")):
            raise _Corrupt("keys, checksums and row count disagree")
        if not (isinstance(dim, int) and dim > 0 and isinstance(npy_bytes, int)):
            raise _Corrupt("bad dim or npy_bytes")
        if not all(isinstance(k, str) and _KEY_RE.fullmatch(k) for k in keys):
            raise _Corrupt("a key is not 64 hex digits")
        if not all(type(c) is int for c in sums):
            raise _Corrupt("a checksum is not an integer")
        return _ShardIndex(shard, tuple(keys), tuple(sums), dim, npy_bytes)

    def _forget(self, namespace: str, shard: str) -> None:
        index = self._indexes.get(namespace, {}).pop(shard, None)
        if index is None:
            return
        where = self._where.get(namespace, {})
        for k in index.keys:
            if where.get(k, ("",))[0] == shard:
                del where[k]
        # Another shard may hold the same key (two runs wrote it): point at it again.
        for other in self._indexes[namespace].values():
            for row, k in enumerate(other.keys):
                where.setdefault(k, (other.shard, row))

    def _report_corrupt(self, namespace: str, path: Path, reason: str) -> None:
        shard = path.stem
        msg = f"{path}: corrupt embedding-cache shard ({reason}); not served, removed, its vectors will be recomputed"
        warnings.warn(msg, CacheCorruptionWarning, stacklevel=3)
        log.debug(msg)
        self.stats.corrupt_shards += 1
        self._forget(namespace, shard)
        # Index first, so no reader can see a shard whose data is gone.
        for suffix in (".json", ".npy"):
            with suppress(OSError):
                (path.parent / f"{shard}{suffix}").unlink()

    # ------------------------------------------------------------ writing

    def put_many(self, namespace: str, items: Mapping[str, np.ndarray]) -> None:
        """Store vectors (1-d, all the same length) under ``namespace``; never raises on I/O.

        Keys already present are skipped. A failed write (disk full, read-only folder) is
        reported with a warning and leaves the cache as it was: the cache only saves time.
        """
        ns_dir = self.root / check_namespace(namespace)
        for k in items:
            check_key(k)
        self._refresh(namespace, ns_dir)
        present = self._where.get(namespace, {})
        todo = [k for k in items if k not in present]
        if not todo:
            return
        rows = [np.asarray(items[k], dtype=np.float32) for k in todo]
        dims = {r.shape for r in rows}
        if len(dims) != 1 or len(next(iter(dims))) != 1:
            raise ValueError(f"embedding cache: put_many needs 1-d vectors of one length (got shapes {sorted(dims)})")
        written: set[str] = set()
        try:
            self._ensure_root()
            ns_dir.mkdir(exist_ok=True)
            for start in range(0, len(todo), self.shard_rows):
                keys = todo[start : start + self.shard_rows]
                matrix = np.ascontiguousarray(np.stack(rows[start : start + self.shard_rows]), dtype="<f4")
                written.add(self._write_shard(namespace, ns_dir, keys, matrix))
        except OSError as exc:
            msg = f"{ns_dir}: could not write to the embedding cache ({exc}); continuing without caching these vectors"
            warnings.warn(msg, RuntimeWarning, stacklevel=2)
            log.warning(msg)
            return
        self._enforce_limit(keep=written)

    def _ensure_root(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tag = self.root / "CACHEDIR.TAG"
        if not tag.exists():
            atomic_write(tag, _CACHEDIR_TAG)

    def _write_shard(self, namespace: str, ns_dir: Path, keys: list[str], matrix: np.ndarray) -> str:
        crcs = [row_checksum(k, row) for k, row in zip(keys, matrix, strict=True)]
        # Content address: same keys and rows → same name, so concurrent writers of the same
        # vectors replace a file with identical bytes instead of duplicating it.
        shard = hashlib.sha256(json.dumps([namespace, list(matrix.shape), keys, crcs]).encode()).hexdigest()[:32]
        npy = ns_dir / f"{shard}.npy"
        atomic_write(npy, lambda fh: np.save(fh, matrix, allow_pickle=False))
        npy_bytes = npy.stat().st_size
        index = {
            "schema": SCHEMA,
            "namespace": namespace,
            "shard": shard,
            "rows": len(keys),
            "dim": int(matrix.shape[1]),
            "dtype": "float32",
            "npy_bytes": npy_bytes,
            "written_at": time.time(),
            "keys": keys,
            "row_crc32": crcs,
        }
        data = json.dumps(index, separators=(",", ":")).encode()
        atomic_write(ns_dir / f"{shard}.json", data)
        parsed = _ShardIndex(shard, tuple(keys), tuple(crcs), int(matrix.shape[1]), npy_bytes)
        self._indexes.setdefault(namespace, {})[shard] = parsed
        where = self._where.setdefault(namespace, {})
        for row, k in enumerate(keys):
            where.setdefault(k, (shard, row))
        self.stats.rows_written += len(keys)
        self.stats.shards_written += 1
        return shard

    # ------------------------------------------------------------ size and eviction

    def _shards(self) -> Iterable[tuple[float, int, Path, Path]]:
        """(last use, bytes, index path, npy path) of every visible shard under root."""
        try:
            namespaces = [e for e in os.scandir(self.root) if e.is_dir(follow_symlinks=False) and _NAMESPACE_RE.fullmatch(e.name)]
        except FileNotFoundError:
            return
        now = time.time()
        for ns in namespaces:
            entries = {e.name: e for e in os.scandir(ns.path)}
            for name, entry in entries.items():
                with suppress(FileNotFoundError):
                    if name.endswith(".json") and _SHARD_RE.fullmatch(name[:-5]):
                        st = entry.stat()
                        npy = Path(ns.path) / f"{name[:-5]}.npy"
                        npy_size = npy.stat().st_size if f"{name[:-5]}.npy" in entries else 0
                        yield st.st_mtime, st.st_size + npy_size, Path(entry.path), npy
                        continue
                    orphan = name.startswith(TMP_PREFIX) or (name.endswith(".npy") and f"{name[:-4]}.json" not in entries)
                    if orphan and now - entry.stat().st_mtime > ORPHAN_AGE_S:
                        # Leftover of a killed writer: invisible to readers, only takes space.
                        os.unlink(entry.path)

    def total_bytes(self) -> int:
        """Bytes of every shard (all namespaces) under root."""
        return sum(size for _, size, _, _ in self._shards())

    def _enforce_limit(self, keep: set[str]) -> None:
        shards = sorted(self._shards(), key=lambda s: s[0])
        total = sum(s[1] for s in shards)
        for _, size, index_path, npy_path in shards:
            if total <= self.max_bytes:
                break
            if index_path.stem in keep:
                continue
            for path in (index_path, npy_path):  # index first: the shard disappears atomically for readers
                with suppress(FileNotFoundError):
                    path.unlink()
            total -= size
            self.stats.evicted_shards += 1
            self.stats.evicted_bytes += size
            log.info("embedding cache: evicted %s (%d bytes, least recently used)", npy_path, size)

# ---------------------------------------------------------------- encoded-cell markers

#: Folder under a cache root holding, per weight variant, which cells' texts were encoded.
MARKER_DIR = "encoded"
MARKER_SCHEMA = "evalgemma-encoded-cells/1"
_MARKER_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def marker_path(cache_dir: Path, weight_key: str, task: str, task_version: str) -> Path:
    """``<cache_dir>/encoded/<weight_key>/<task>@<task_version>.json`` (names made path-safe)."""
    def safe(name: str) -> str:
        return _MARKER_UNSAFE.sub("_", name).strip("._") or "_"

    return Path(cache_dir) / MARKER_DIR / safe(check_namespace(weight_key)) / f"{safe(task)}@{safe(task_version)[:100]}.json"


def encoded_cells(cache_dir: Path, weight_key: str, task: str, task_version: str) -> set[tuple[str, str]]:
    """The (split, subset) cells of a task version whose texts a finished unit encoded into this cache.

    A marker says the vectors were written, not that they are still there: eviction (``max_bytes``)
    may have dropped some since, so an estimate built on it is optimistic. An unreadable marker
    or one naming another task version counts as absent.
    """
    path = marker_path(cache_dir, weight_key, task, task_version)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return set()
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable encoded-cells marker (%s); ignored", path, exc)
        return set()
    if not isinstance(data, dict) or data.get("schema") != MARKER_SCHEMA or data.get("task") != task or data.get("task_version") != task_version:
        return set()
    return {(str(s), str(b)) for s, b in data.get("cells", [])}


def mark_encoded(cache_dir: Path, weight_key: str, task: str, task_version: str, cells: Iterable[tuple[str, str]]) -> Path:
    """Record that the texts of ``cells`` (split, subset) were encoded with ``weight_key`` (merged with
    the cells already recorded), atomically. Read by ``evalgemma plan`` to subtract cache hits."""
    from evalgemma.io import atomic_write

    merged = sorted(encoded_cells(cache_dir, weight_key, task, task_version) | {(str(s), str(b)) for s, b in cells})
    payload = {"schema": MARKER_SCHEMA, "weight_key": weight_key, "task": task, "task_version": task_version, "cells": [list(c) for c in merged]}
    return atomic_write(marker_path(cache_dir, weight_key, task, task_version), json.dumps(payload, ensure_ascii=False, indent=1))
