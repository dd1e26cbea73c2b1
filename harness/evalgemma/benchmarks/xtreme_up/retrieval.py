"""XTREME-UP retrieval, scored exactly as the official scorer (``docs/xtreme_up.md``).

What this module does, in order:

1. **Read** the official layout (v1.1)::

       <root>/<task>/index.jsonl                      # one candidate pool per task
       <root>/<task>/{train,validation,test}/{lang}.jsonl

   Every file may instead be gzip-compressed (``.jsonl.gz``); the plain file is preferred
   when both exist. Blank lines are skipped. Queries need the keys ``id, title, context,
   question``; index rows ``id, title, context`` (extra keys are allowed). Ids are
   compared as strings (``str(id)``). The sha256 of the bytes on disk of every file read
   is recorded, plus one combined hash.

   **Duplicate index ids are rejected** (``DataError`` naming the id and both line
   numbers). The official code keeps them, but a repeated id makes MRR ambiguous (which
   copy is "the" gold passage?), and v1.1 is documented to have removed the duplicates.
   A query whose gold id is not in the index is *kept*, counted in ``n_missing_gold``,
   logged, and scores 0 (every query counts, as in the official metric).

2. **Render texts.** Query = ``query_prompt + question``. Passage, by ``passage_style``:
   ``"official"`` = ``title + " " + context`` (the official baseline's raw text) or
   ``"embeddinggemma"`` = ``"title: " + (title or "none") + " | text: " + context`` (the
   model card's document prompt). ``use_title=False`` drops the real title (official:
   ``context`` only; embeddinggemma: ``title: none``); title use is a recorded parameter.

3. **Search** (``search_top_k``): both sides L2-normalised with the norm clipped at 1e-9,
   cosine = dot in float32, exact top 10, ties resolved to the **lower index** (the order
   of ``jax.lax.top_k`` and of ``numpy.argsort(-s, kind="stable")``). The index is scanned
   ``search_chunk`` rows at a time and queries ``query_chunk`` rows at a time; a running
   top-k of (score, index) pairs is merged with a lexicographic sort, so the tie rule is
   exact across chunk borders and memory is O(query_chunk x search_chunk). ``device`` may
   be ``"cuda"`` (torch, imported lazily; TF32 disabled). ``similarity="hamming"`` takes
   bit-packed ``uint8`` vectors and scores ``-hamming distance`` (computed exactly through
   a ±1 float matmul).

   Float note: BLAS may round a dot product differently for different matrix shapes, so
   chunking can move a score by one ulp; the ranking is then identical unless two
   candidates are within an ulp of each other. Exactly representable inputs (and binary
   vectors) give bit-identical results for every chunk size.

4. **Metric**: MRR@10 per query (``1/rank`` of the first top-10 candidate whose id equals
   the gold id, else 0); per-language mean over *all* queries; suite score = unweighted
   mean over languages, ``None`` if any language is missing. Exact score ties inside a
   query's top 10 are counted as a diagnostic.

5. **Download** (``download_xtreme_up``): streams the tarball, records its sha256 and
   extracts it with ``tarfile``'s ``"data"`` filter plus an explicit member check.

Library only: nothing here writes results; the runner stores rows.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import math
import shutil
import tarfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, NamedTuple

import numpy as np

from evalgemma.catalog.xtreme_up import Split, Task, load_xtreme_up_config
from evalgemma.errors import Choice, ConfigError, DataError
from evalgemma.io import atomic_write
from evalgemma.variants.views import NORM_EPS, Similarity, l2_normalize

log = logging.getLogger(__name__)


class Role(Choice):
    """Text role."""

    QUERY = "query"
    DOCUMENT = "document"


class PassageStyle(Choice):
    """Passage style."""

    OFFICIAL = "official"  # title + " " + context, the official baseline's raw text
    EMBEDDINGGEMMA = "embeddinggemma"  # "title: {title or none} | text: {context}", the model card's document prompt


#: The official cut-off: ``jax.lax.top_k(scores, 10)``.
TOP_K = 10
QUERY_KEYS: tuple[str, ...] = ("id", "title", "context", "question")
INDEX_KEYS: tuple[str, ...] = ("id", "title", "context")
#: EmbeddingGemma's retrieval query prompt (model card); pass it as ``query_prompt``.
EMBEDDINGGEMMA_QUERY_PROMPT = "task: search result | query: "
DOWNLOAD_MANIFEST = "download.json"

Encode = Callable[[list[str], Role], Any]
"""``encode(texts, role) -> float32[n, d]`` (anything ``np.asarray`` accepts)."""


# --------------------------------------------------------------------------- config


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class XtremeUpData:
    """One task's index and the queries of the chosen languages, as read from disk.

    Attributes:
        task: ``retrieval_cross_lang`` or ``retrieval_in_lang``.
        split: the query split read (``test`` for official scores).
        index_ids: ``str(id)`` of every index row, in file order (row i = candidate i).
        index_rows: the index rows themselves (dicts as parsed), in file order.
        queries: language -> query rows in file order.
        file_sha256: path relative to ``root`` (posix) -> sha256 of the bytes on disk.
        data_sha256: sha256 over task, split and the sorted (path, sha256) pairs.
        data_version: the data release (e.g. ``"v1.1"``) as given by the caller, or
            read from the download manifest; ``None`` if unknown.
        root: the data root the files were read from.
        diagnostics: counts the spec asks to log (repeated index texts, texts containing
            a tab or newline, queries whose gold id is absent from the index).
    """

    task: str
    split: str
    index_ids: list[str]
    index_rows: list[dict[str, Any]]
    queries: dict[str, list[dict[str, Any]]]
    file_sha256: dict[str, str]
    data_sha256: str
    data_version: str | None = None
    root: Path | None = None
    diagnostics: dict[str, int] = field(default_factory=dict)

    @property
    def languages(self) -> list[str]:
        """The languages read, in the order requested."""
        return list(self.queries)


def _locate(base: Path) -> Path:
    """``base`` is a path without extension: return ``base.jsonl`` or ``base.jsonl.gz``."""
    plain = base.with_name(base.name + ".jsonl")
    gz = base.with_name(base.name + ".jsonl.gz")
    if plain.is_file():
        return plain
    if gz.is_file():
        return gz
    raise DataError(f"{plain}: file not found (nor {gz.name})")


def _read_jsonl(path: Path, required: Sequence[str]) -> tuple[list[tuple[int, dict[str, Any]]], str]:
    """Parse one JSONL(.gz) file; returns ((line number, row) pairs, sha256 of the bytes)."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e}") from e
    digest = hashlib.sha256(raw).hexdigest()
    if path.name.endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path}: not a valid gzip file: {e}") from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not valid UTF-8: {e}") from e
    rows: list[tuple[int, dict[str, Any]]] = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError, ValueError) as e:  # ValueError: int over 4300 digits
            raise DataError(f"{path}: line {lineno}: invalid JSON: {getattr(e, 'msg', None) or type(e).__name__}") from e
        if not isinstance(row, dict):
            raise DataError(f"{path}: line {lineno}: expected a JSON object, got {type(row).__name__}")
        missing = [k for k in required if k not in row]
        if missing:
            raise DataError(f"{path}: line {lineno}: missing key(s) {missing} (required: {list(required)})")
        rows.append((lineno, row))
    return rows, digest


def _has_tab_or_newline(*texts: Any) -> bool:
    return any(isinstance(t, str) and ("\t" in t or "\n" in t or "\r" in t) for t in texts)


def load_xtreme_up(
    root: Path,
    task: str,
    split: str,
    languages: Sequence[str],
    *,
    data_version: str | None = None,
) -> XtremeUpData:
    """Read ``<root>/<task>/index.jsonl`` and ``<root>/<task>/<split>/<lang>.jsonl``.

    Args:
        root: the extracted data root (the folder holding ``retrieval_cross_lang/``).
        task: ``retrieval_cross_lang`` or ``retrieval_in_lang``.
        split: ``train``, ``validation`` or ``test`` (official scores use ``test``).
        languages: language codes, in the order results should be reported.
        data_version: the release to record; when ``None``, the version in
            ``download.json`` in ``root`` or up to two folders above it (written by
            ``download_xtreme_up``) is used if present.

    Returns:
        The parsed data with per-file sha256 hashes.

    Raises:
        ConfigError: unknown task or split, no languages, or a language given twice.
        DataError: missing index or language file, an empty file, a malformed line (the
            message names the file and line number), a missing key, or a duplicate index id.
    """
    root = Path(root)
    task = Task.parse(task)
    split = Split.parse(split)
    if not languages:
        raise ConfigError(f"XTREME-UP {task}: no languages given")
    if len(set(languages)) != len(languages):
        raise ConfigError(f"XTREME-UP {task}: a language is listed twice: {list(languages)}")
    task_dir = root / task
    if not task_dir.is_dir():
        raise DataError(f"{task_dir}: task folder not found under the XTREME-UP data root {root}")

    file_sha: dict[str, str] = {}
    index_path = _locate(task_dir / "index")
    index_lines, file_sha[index_path.relative_to(root).as_posix()] = _read_jsonl(index_path, INDEX_KEYS)
    if not index_lines:
        raise DataError(f"{index_path}: the retrieval index is empty")
    first_line: dict[str, int] = {}
    index_ids: list[str] = []
    index_rows: list[dict[str, Any]] = []
    seen_texts: set[tuple[str, str]] = set()
    n_dup_texts = 0
    n_tab_newline = 0
    for lineno, row in index_lines:
        rid = str(row["id"])
        if rid in first_line:
            raise DataError(
                f"{index_path}: duplicate index id {rid!r} on lines {first_line[rid]} and {lineno}; "
                "a repeated id makes MRR@10 ambiguous (XTREME-UP v1.1 removed the duplicates: "
                "check the data version)"
            )
        first_line[rid] = lineno
        index_ids.append(rid)
        index_rows.append(row)
        text_key = (str(row["title"]), str(row["context"]))
        if text_key in seen_texts:
            n_dup_texts += 1
        seen_texts.add(text_key)
        n_tab_newline += _has_tab_or_newline(row["title"], row["context"])

    queries: dict[str, list[dict[str, Any]]] = {}
    n_missing = 0
    for lang in languages:
        qpath = _locate(task_dir / split / lang)
        qlines, file_sha[qpath.relative_to(root).as_posix()] = _read_jsonl(qpath, QUERY_KEYS)
        if not qlines:
            raise DataError(f"{qpath}: no queries (empty language file for {task}/{split}/{lang})")
        rows = [r for _, r in qlines]
        missing = sum(str(r["id"]) not in first_line for r in rows)
        if missing:
            log.warning("%s: %d of %d gold ids are not in %s (they score 0)", qpath, missing, len(rows), index_path)
        n_missing += missing
        n_tab_newline += sum(_has_tab_or_newline(r["question"]) for r in rows)
        queries[lang] = rows
        log.info("%s/%s/%s: %d queries", task, split, lang, len(rows))

    log.info("%s: index of %d passages (%d repeated texts)", task, len(index_ids), n_dup_texts)
    if n_tab_newline:
        log.info("%s: %d texts contain a tab or newline (kept as they are)", task, n_tab_newline)

    if data_version is None:
        data_version = manifest_version(root)

    return XtremeUpData(
        task=task,
        split=split,
        index_ids=index_ids,
        index_rows=index_rows,
        queries=queries,
        file_sha256=file_sha,
        data_sha256=combined_sha256(task, split, file_sha),
        data_version=data_version,
        root=root,
        diagnostics={
            "index_repeated_texts": n_dup_texts,
            "texts_with_tab_or_newline": n_tab_newline,
            "queries_missing_gold": n_missing,
        },
    )


def manifest_version(root: Path) -> str | None:
    """The data release named by ``download.json`` in ``root`` or up to two folders above it, if any."""
    for cand in (root / DOWNLOAD_MANIFEST, root.parent / DOWNLOAD_MANIFEST, root.parent.parent / DOWNLOAD_MANIFEST):
        if cand.is_file():
            try:
                return str(json.loads(cand.read_text(encoding="utf-8"))["version"])
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise DataError(f"{cand}: unreadable download manifest: {e}") from e
    return None


def task_version(root: Path, task: str) -> str:
    """The version of a task's cells: the data release and the sha256 of its index file's bytes.

    Two copies with the same index are the same data; a changed index is a new version, so its
    cells are evaluated again instead of being mixed with the old ones.

    Raises:
        DataError: the index file is missing or unreadable.
    """
    index_path = _locate(Path(root) / task / "index")
    try:
        digest = hashlib.sha256(index_path.read_bytes()).hexdigest()
    except OSError as e:
        raise DataError(f"{index_path}: cannot read: {e}") from e
    return f"{manifest_version(Path(root)) or 'unversioned'}+index:{digest[:16]}"


def combined_sha256(task: str, split: str, file_sha256: Mapping[str, str]) -> str:
    """One hash for a task's data: sha256 of canonical JSON of task, split and file hashes."""
    payload = json.dumps(
        {"task": task, "split": split, "files": sorted(file_sha256.items())},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- texts


def passage_text(row: Mapping[str, Any], style: str = PassageStyle.OFFICIAL, *, use_title: bool = True) -> str:
    """The text encoded for one index row.

    Args:
        row: an index (or query) row with ``title`` and ``context``.
        style: ``"official"`` -> ``title + " " + context`` (the official baseline);
            ``"embeddinggemma"`` -> ``"title: " + (title or "none") + " | text: " + context``.
        use_title: ``False`` ignores the real title (official: ``context`` alone;
            embeddinggemma: ``title: none``).

    Raises:
        ConfigError: unknown style.
    """
    title = str(row["title"]) if use_title else ""
    context = str(row["context"])
    if PassageStyle.parse(style) is PassageStyle.OFFICIAL:
        return f"{title} {context}" if use_title else context
    return f"title: {title or 'none'} | text: {context}"


def query_text(row: Mapping[str, Any], prompt: str = "") -> str:
    """The text encoded for one query row: ``prompt + question``."""
    return f"{prompt}{row['question']}"


# --------------------------------------------------------------------------- search


class TopK(NamedTuple):
    """Top-k result of a search: ``scores[q, r]`` and ``indices[q, r]`` (rank r, 0-based)."""

    scores: np.ndarray
    indices: np.ndarray


def _merge(run_s: np.ndarray, run_i: np.ndarray, new_s: np.ndarray, new_i: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge two candidate lists per row; order = score desc, then index asc; keep k."""
    s = np.concatenate([run_s, new_s], axis=1)
    i = np.concatenate([run_i, new_i], axis=1)
    order = np.lexsort((i, -s), axis=1)[:, :k]  # last key is primary
    return np.take_along_axis(s, order, 1), np.take_along_axis(i, order, 1)


def _chunk_top_k_numpy(s: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best columns per row of ``s`` with ties to the lower column (unordered).

    ``argpartition`` finds the k-th largest value t per row but picks arbitrary columns
    among those equal to t; rows where that choice matters (more columns equal to t than
    were picked) are redone exactly: every column > t, then the lowest columns == t.
    """
    n = s.shape[1]
    if n <= k:
        cols = np.broadcast_to(np.arange(n), s.shape)
        return s.copy(), cols.astype(np.int64)
    part = np.argpartition(s, n - k, axis=1)[:, n - k :]
    vals = np.take_along_axis(s, part, 1)
    t = vals.min(axis=1, keepdims=True)
    n_eq_picked = (vals == t).sum(axis=1)
    n_eq_all = (s == t).sum(axis=1)
    for r in np.flatnonzero(n_eq_all > n_eq_picked):
        row = s[r]
        above = np.flatnonzero(row > t[r, 0])
        equal = np.flatnonzero(row == t[r, 0])[: k - above.size]
        part[r] = np.concatenate([above, equal])
        vals[r] = row[part[r]]
    return vals, part.astype(np.int64)


def _unpack_pm1(packed: np.ndarray) -> np.ndarray:
    """Bit-packed uint8 [n, b] -> float32 [n, 8b] of ±1 (bit 1 -> +1, bit 0 -> -1)."""
    bits = np.unpackbits(packed, axis=1)
    return bits.astype(np.float32) * 2.0 - 1.0


def _prepare(vectors: Any, similarity: Similarity, what: str) -> np.ndarray:
    v = np.asarray(vectors)
    if v.ndim != 2:
        raise ValueError(f"{what}: expected a 2-d array, got shape {v.shape}")
    if similarity == Similarity.HAMMING:
        if v.dtype != np.uint8:
            raise ValueError(f"{what}: similarity='hamming' needs bit-packed uint8 vectors, got {v.dtype}")
        return v
    return v.astype(np.float32, copy=False)


def _check_finite(v: np.ndarray, what: str) -> None:
    # Called per chunk so that the check never allocates a mask of the whole index.
    if v.dtype != np.uint8 and not np.isfinite(v).all():
        raise DataError(f"{what}: the embeddings contain NaN or infinite values")


def search_top_k(
    query_vecs: Any,
    index_vecs: Any,
    k: int = TOP_K,
    *,
    search_chunk: int = 8192,
    query_chunk: int = 1024,
    device: str = "cpu",
    similarity: str = Similarity.COSINE,
) -> TopK:
    """Exact top-k search with ties to the lower index, chunked over index and queries.

    Args:
        query_vecs: ``float32[nq, d]`` (cosine) or bit-packed ``uint8[nq, d/8]`` (hamming).
        index_vecs: ``float32[nd, d]`` or ``uint8[nd, d/8]``, in index-file order.
        k: how many candidates to keep (``min(k, nd)`` are returned).
        search_chunk: index rows scored at a time (memory ~ query_chunk x search_chunk).
        query_chunk: query rows scored at a time.
        device: ``"cpu"`` (numpy) or a torch device such as ``"cuda"``.
        similarity: ``"cosine"`` (L2-normalise with the norm clipped at 1e-9, then dot)
            or ``"hamming"`` (score = ``-hamming distance`` of the packed bits).

    Returns:
        ``TopK`` with ``scores`` float32 ``[nq, min(k, nd)]`` sorted descending (ties by
        ascending index) and ``indices`` int64 rows into ``index_vecs``.

    Raises:
        ValueError: bad shapes, dtypes or chunk sizes.
        DataError: non-finite embeddings.
    """
    if k < 1 or search_chunk < 1 or query_chunk < 1:
        raise ValueError(f"k, search_chunk and query_chunk must be >= 1 (got {k}, {search_chunk}, {query_chunk})")
    sim = Similarity.parse(similarity)
    q = _prepare(query_vecs, sim, "query vectors")
    d = _prepare(index_vecs, sim, "index vectors")
    if q.shape[1] != d.shape[1]:
        raise ValueError(f"query dim {q.shape[1]} != index dim {d.shape[1]}")
    if d.shape[0] == 0:
        raise ValueError("the index is empty")
    _check_finite(q, "query vectors")
    if sim == Similarity.COSINE:
        q = l2_normalize(q)
    nbits = 8 * q.shape[1]
    if device != "cpu":
        return _search_torch(q, d, k, search_chunk, query_chunk, device, sim, nbits)

    nq, nd = q.shape[0], d.shape[0]
    kk = min(k, nd)
    run_s = np.empty((nq, 0), np.float32)
    run_i = np.empty((nq, 0), np.int64)
    q_blocks = [_unpack_pm1(q[a : a + query_chunk]) if sim == Similarity.HAMMING else q[a : a + query_chunk] for a in range(0, nq, query_chunk)] if nq else []
    for start in range(0, nd, search_chunk):
        dc = d[start : start + search_chunk]
        _check_finite(dc, f"index vectors (rows {start}..{start + len(dc) - 1})")
        dc = _unpack_pm1(dc) if sim == Similarity.HAMMING else l2_normalize(dc)
        new_s: list[np.ndarray] = []
        new_i: list[np.ndarray] = []
        for qb in q_blocks:
            s = qb @ dc.T
            if sim == Similarity.HAMMING:
                # ±1 dot = nbits - 2 * hamming, exact in float32 for nbits < 2**24.
                s = (s - nbits) * np.float32(0.5)
            vs, cs = _chunk_top_k_numpy(s, kk)
            new_s.append(vs)
            new_i.append(cs + start)
        if nq:
            run_s, run_i = _merge(run_s, run_i, np.concatenate(new_s), np.concatenate(new_i), kk)
    return TopK(run_s.astype(np.float32, copy=False), run_i)


def _search_torch(
    q: np.ndarray, d: np.ndarray, k: int, search_chunk: int, query_chunk: int, device: str, similarity: Similarity, nbits: int
) -> TopK:
    """The same search on a torch device; selection with the exact lower-index tie rule."""
    import torch  # heavy; only for GPU search

    dev = torch.device(device)
    nq, nd = q.shape[0], d.shape[0]
    kk = min(k, nd)
    prev = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")  # no TF32: scores must be float32
    try:
        qt = torch.from_numpy(_unpack_pm1(q) if similarity == Similarity.HAMMING else q).to(dev)
        run_s = torch.empty((nq, 0), dtype=torch.float32, device=dev)
        run_i = torch.empty((nq, 0), dtype=torch.int64, device=dev)
        for start in range(0, nd, search_chunk):
            dn = d[start : start + search_chunk]
            _check_finite(dn, f"index vectors (rows {start}..{start + len(dn) - 1})")
            if similarity == Similarity.HAMMING:
                dt = torch.from_numpy(_unpack_pm1(dn)).to(dev)
            else:
                dt = torch.from_numpy(dn).to(dev)
                dt = dt / torch.clamp(torch.linalg.vector_norm(dt, dim=1, keepdim=True), min=NORM_EPS)
            ncols = dt.shape[0]
            ks = min(kk, ncols)
            outs_s, outs_i = [], []
            for a in range(0, nq, query_chunk):
                s = qt[a : a + query_chunk] @ dt.T
                if similarity == Similarity.HAMMING:
                    s = (s - nbits) * 0.5
                t = torch.topk(s, ks, dim=1).values[:, -1:]  # k-th largest value: exact
                gt = s > t
                eq = s == t
                need = ks - gt.sum(dim=1, keepdim=True)
                take = gt | (eq & (torch.cumsum(eq.to(torch.int32), dim=1) <= need))
                cols = torch.nonzero(take)[:, 1].reshape(s.shape[0], ks)  # ascending columns
                outs_s.append(torch.gather(s, 1, cols))
                outs_i.append(cols + start)
            new_s = torch.cat(outs_s)
            new_i = torch.cat(outs_i)
            cat_s = torch.cat([run_s, new_s], dim=1)
            cat_i = torch.cat([run_i, new_i], dim=1)
            # Lexicographic (score desc, index asc): stable sort by index, then stable by -score.
            o1 = torch.argsort(cat_i, dim=1, stable=True)
            cat_s, cat_i = torch.gather(cat_s, 1, o1), torch.gather(cat_i, 1, o1)
            o2 = torch.argsort(-cat_s, dim=1, stable=True)[:, :kk]
            run_s, run_i = torch.gather(cat_s, 1, o2), torch.gather(cat_i, 1, o2)
        return TopK(run_s.cpu().numpy().astype(np.float32), run_i.cpu().numpy().astype(np.int64))
    finally:
        torch.set_float32_matmul_precision(prev)


# --------------------------------------------------------------------------- metric


def reciprocal_ranks(gold_ids: Sequence[str], ranked_ids: Sequence[Sequence[str]], k: int = TOP_K) -> np.ndarray:
    """Per-query reciprocal rank at ``k`` (the official ``compute_mrr`` with an explicit cut).

    Args:
        gold_ids: the gold passage id of each query (compared as ``str``).
        ranked_ids: each query's candidate ids, best first (only the first ``k`` count).
        k: the cut-off.

    Returns:
        float64 ``[nq]``: ``1/rank`` of the first candidate equal to the gold id, else 0.

    Raises:
        ValueError: the two lists differ in length (the official ``zip(strict=True)``).
    """
    if len(gold_ids) != len(ranked_ids):
        raise ValueError(f"{len(gold_ids)} gold ids but {len(ranked_ids)} rankings")
    rr = np.zeros(len(gold_ids), dtype=np.float64)
    for qi, (gold, ranked) in enumerate(zip(gold_ids, ranked_ids, strict=True)):
        g = str(gold)
        for pos, cand in enumerate(list(ranked)[:k]):
            if str(cand) == g:
                rr[qi] = 1.0 / (pos + 1)
                break
    return rr


def official_mean(rr: np.ndarray) -> float:
    """Mean of per-query reciprocal ranks summed left to right, as the official
    ``compute_mrr`` does (``mrr_total += 1 / rank``), so the float result is bit-identical
    (numpy's pairwise ``mean`` can differ in the last bit). NaN for no queries."""
    if len(rr) == 0:
        return math.nan
    total = 0.0
    for x in rr.tolist():
        total += x
    return total / len(rr)


def count_tied_queries(scores: np.ndarray) -> int:
    """Number of queries whose returned top-k scores contain an exact tie."""
    s = np.asarray(scores)
    if s.shape[1] < 2:
        return 0
    return int((s[:, 1:] == s[:, :-1]).any(axis=1).sum())


@dataclass(frozen=True)
class LanguageResult:
    """MRR@10 of one language (0-1 scale) with its counts and diagnostics."""

    lang: str
    mrr_at_10: float
    n_queries: int
    n_index: int
    n_missing_gold: int
    n_top10_ties: int


def _language_result(lang: str, top: TopK, gold_ids: Sequence[str], index_ids: Sequence[str]) -> tuple[LanguageResult, np.ndarray]:
    ids = np.asarray(index_ids, dtype=object)
    ranked = ids[top.indices] if top.indices.size else np.empty((len(gold_ids), 0), dtype=object)
    rr = reciprocal_ranks([str(g) for g in gold_ids], ranked.tolist())
    known = set(index_ids)
    res = LanguageResult(
        lang=lang,
        mrr_at_10=official_mean(rr),
        n_queries=len(gold_ids),
        n_index=len(index_ids),
        n_missing_gold=sum(str(g) not in known for g in gold_ids),
        n_top10_ties=count_tied_queries(top.scores),
    )
    return res, rr


def score_language(
    query_vecs: Any,
    index_vecs: Any,
    gold_ids: Sequence[str],
    index_ids: Sequence[str],
    *,
    lang: str = "",
    search_chunk: int = 8192,
    query_chunk: int = 1024,
    device: str = "cpu",
    similarity: str = Similarity.COSINE,
) -> LanguageResult:
    """Search one language's queries against the whole index and compute MRR@10.

    Args:
        query_vecs: one vector per query, in query-file order.
        index_vecs: one vector per index row, in index-file order.
        gold_ids: the ``id`` of each query (its gold passage), compared as strings.
        index_ids: the id of each index row.
        lang: the language code to put in the result.
        search_chunk, query_chunk, device, similarity: see ``search_top_k``.

    Raises:
        ValueError: counts do not match, or there are no queries.
    """
    nq = np.asarray(query_vecs).shape[0]
    if nq != len(gold_ids) or nq == 0:
        raise ValueError(f"{lang or 'language'}: {nq} query vectors for {len(gold_ids)} gold ids")
    if np.asarray(index_vecs).shape[0] != len(index_ids):
        raise ValueError(f"{np.asarray(index_vecs).shape[0]} index vectors for {len(index_ids)} index ids")
    top = search_top_k(
        query_vecs, index_vecs, TOP_K, search_chunk=search_chunk, query_chunk=query_chunk, device=device, similarity=similarity
    )
    return _language_result(lang, top, [str(g) for g in gold_ids], [str(i) for i in index_ids])[0]


def mean_mrr(results: Mapping[str, LanguageResult], languages: Sequence[str]) -> float | None:
    """Unweighted mean MRR@10 over ``languages``; ``None`` if any of them has no result."""
    if not languages or any(lang not in results for lang in languages):
        return None
    return float(np.mean([results[lang].mrr_at_10 for lang in languages]))


# --------------------------------------------------------------------------- evaluate


@dataclass(frozen=True)
class View:
    """A derived view of the full-precision vectors, scored separately.

    Attributes:
        name: unique label of the view (e.g. ``"768d"``, ``"128d"``, ``"binary"``).
        transform: applied to the full query and index vectors (e.g.
            ``functools.partial(evalgemma.variants.views.truncate, dim=128)``); ``None`` = identity.
        similarity: ``"cosine"`` for float views, ``"hamming"`` for bit-packed views.
    """

    name: str
    transform: Callable[[np.ndarray], Any] | None = None
    similarity: str = Similarity.COSINE

    def __post_init__(self) -> None:
        object.__setattr__(self, "similarity", Similarity.parse(self.similarity))


@dataclass(frozen=True)
class ViewResult:
    """Per-language results of one view, plus their unweighted mean."""

    view: str
    similarity: str
    languages: dict[str, LanguageResult]
    mean_mrr_at_10: float | None
    per_query_rr: dict[str, np.ndarray] = field(repr=False, default_factory=dict)


@dataclass(frozen=True)
class EvaluationResult:
    """Everything ``evaluate`` measured, with the parameters that produced it.

    ``query_example`` / ``passage_example`` are the rendered texts of the first query and
    first passage, so a stored result records the exact prompt format used.
    """

    task: str
    split: str
    data_sha256: str
    data_version: str | None
    n_index: int
    passage_style: str
    use_title: bool
    query_prompt: str
    query_example: str
    passage_example: str
    views: dict[str, ViewResult]


def _encode(encode: Encode, texts: list[str], role: Role) -> np.ndarray:
    v = np.asarray(encode(texts, role), dtype=np.float32)
    if v.ndim != 2 or v.shape[0] != len(texts):
        raise ValueError(f"encode(..., {role!r}) returned shape {v.shape} for {len(texts)} texts")
    return v


def evaluate(
    data: XtremeUpData,
    encode: Encode,
    *,
    views: Sequence[View] = (View("full"),),
    query_prompt: str = "",
    passage_style: str = PassageStyle.OFFICIAL,
    use_title: bool = True,
    search_chunk: int = 8192,
    query_chunk: int = 1024,
    device: str = "cpu",
) -> EvaluationResult:
    """Encode the index once and every language's queries once, then score every view.

    The index is encoded in one ``encode(texts, "document")`` call and all queries (every
    language, concatenated in language order) in one ``encode(texts, "query")`` call;
    each view transforms those full vectors and runs one search for all languages
    (queries are independent, so per-language results equal separate searches).

    Args:
        data: from ``load_xtreme_up``.
        encode: ``encode(texts, role) -> float32[n, d]``; roles ``"query"``/``"document"``.
        views: the views to score (unique names); default: the full vectors, cosine.
        query_prompt: prefix of every query (EmbeddingGemma: ``EMBEDDINGGEMMA_QUERY_PROMPT``).
        passage_style: ``"official"`` or ``"embeddinggemma"`` (see ``passage_text``).
        use_title: use the real title (recorded; see ``passage_text``).
        search_chunk, query_chunk, device: see ``search_top_k``.

    Returns:
        ``EvaluationResult`` with one ``ViewResult`` per view.

    Raises:
        ValueError: duplicate view names or wrongly shaped encoder output.
    """
    names = [v.name for v in views]
    if not names or len(set(names)) != len(names):
        raise ValueError(f"view names must be non-empty and unique, got {names}")
    langs = data.languages
    passages = [passage_text(r, passage_style, use_title=use_title) for r in data.index_rows]
    qtexts: list[str] = []
    bounds: dict[str, tuple[int, int]] = {}
    for lang in langs:
        a = len(qtexts)
        qtexts.extend(query_text(r, query_prompt) for r in data.queries[lang])
        bounds[lang] = (a, len(qtexts))
    gold = {lang: [str(r["id"]) for r in data.queries[lang]] for lang in langs}

    doc_full = _encode(encode, passages, Role.DOCUMENT)
    q_full = _encode(encode, qtexts, Role.QUERY)

    out: dict[str, ViewResult] = {}
    for view in views:
        dv = doc_full if view.transform is None else view.transform(doc_full)
        qv = q_full if view.transform is None else view.transform(q_full)
        top = search_top_k(
            qv, dv, TOP_K, search_chunk=search_chunk, query_chunk=query_chunk, device=device, similarity=view.similarity
        )
        per_lang: dict[str, LanguageResult] = {}
        per_rr: dict[str, np.ndarray] = {}
        for lang in langs:
            a, b = bounds[lang]
            res, rr = _language_result(lang, TopK(top.scores[a:b], top.indices[a:b]), gold[lang], data.index_ids)
            per_lang[lang] = res
            per_rr[lang] = rr
            log.info("%s %s [%s] %s: MRR@10 %.4f (%d queries)", data.task, data.split, view.name, lang, res.mrr_at_10, res.n_queries)
        out[view.name] = ViewResult(view.name, view.similarity, per_lang, mean_mrr(per_lang, langs), per_rr)

    return EvaluationResult(
        task=data.task,
        split=data.split,
        data_sha256=data.data_sha256,
        data_version=data.data_version,
        n_index=len(data.index_ids),
        passage_style=passage_style,
        use_title=use_title,
        query_prompt=query_prompt,
        query_example=qtexts[0] if qtexts else "",
        passage_example=passages[0],
        views=out,
    )


# --------------------------------------------------------------------------- download


def _check_member(member: tarfile.TarInfo, archive: Path) -> None:
    """Reject anything that could write outside the destination or is not a plain file/dir."""
    name = member.name
    parts = PurePosixPath(name).parts
    if name.startswith(("/", "\\")) or PurePosixPath(name).is_absolute() or (len(name) > 1 and name[1] == ":"):
        raise DataError(f"{archive}: refusing to extract member with an absolute path: {name!r}")
    if ".." in parts or ".." in name.replace("\\", "/").split("/"):
        raise DataError(f"{archive}: refusing to extract member with a '..' component: {name!r}")
    if member.issym() or member.islnk():
        raise DataError(f"{archive}: refusing to extract link member {name!r} -> {member.linkname!r}")
    if not (member.isfile() or member.isdir()):
        raise DataError(f"{archive}: refusing to extract special member {name!r} (device, fifo or other)")


def safe_extract(archive: Path, dest: Path) -> None:
    """Extract a tar(.gz) archive under ``dest``, rejecting unsafe members first.

    Every member is checked before anything is written (absolute paths, ``..``, symbolic
    and hard links, devices and fifos are refused); extraction then also uses ``tarfile``'s
    ``filter="data"``.

    Raises:
        DataError: an unsafe member (named in the message) or an unreadable archive.
    """
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for m in members:
                _check_member(m, archive)
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, members=members, filter="data")
            else:  # Python < 3.11.4 has no extraction filters; every member was checked above
                tar.extractall(dest, members=members)
    except tarfile.TarError as e:
        raise DataError(f"{archive}: cannot extract: {e}") from e


def find_data_root(base: Path) -> Path | None:
    """The folder at or under ``base`` (depth <= 3) that holds a retrieval task folder.

    Breadth-first, sub-folders in name order; ``None`` if there is none (or ``base`` is
    not a folder). Used on an extracted tarball, whose top folder name is not fixed.
    """
    if not Path(base).is_dir():
        return None
    frontier = [Path(base)]
    for _ in range(4):
        nxt: list[Path] = []
        for p in frontier:
            if any((p / t).is_dir() for t in Task):
                return p
            nxt.extend(sorted(c for c in p.iterdir() if c.is_dir()))
        frontier = nxt
    return None


def download_xtreme_up(
    dest: Path,
    url: str | None = None,
    expected_sha256: str | None = None,
    *,
    version: str | None = None,
    progress: bool = True,
    chunk_bytes: int = 1 << 20,
) -> Path:
    """Download the XTREME-UP tarball into ``dest``, verify it, extract it safely.

    Writes ``dest/<tarball>``, ``dest/SHA256SUMS`` (``<sha256>  <tarball>``) and
    ``dest/download.json`` (url, version, sha256, bytes, time), and extracts under
    ``dest/data/``. A second call with a finished download of the same URL (and the same
    expected sha256, if given) returns the existing root without downloading.

    Args:
        dest: destination folder (created).
        url: tarball URL (``https``, ``http`` or ``file``); default from
            ``tasks/xtreme_up.toml``.
        expected_sha256: if given, the download must match it.
        version: the release label to record (default: the config's version when
            ``url`` is the configured one, else ``None``).
        progress: show a progress bar (rich) on stderr.
        chunk_bytes: read size while streaming.

    Returns:
        The extracted data root (the folder holding ``retrieval_cross_lang/``).

    Raises:
        DataError: network/IO failure, sha256 mismatch, unsafe archive member, or no
            retrieval task folder in the archive.
    """
    import urllib.error
    import urllib.request

    if url is None or version is None:
        cfg = load_xtreme_up_config()
        if url is None:
            url = cfg.download.url
            expected_sha256 = expected_sha256 or cfg.download.sha256
        if version is None and url == cfg.download.url:
            version = cfg.download.version
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    manifest_path = dest / DOWNLOAD_MANIFEST
    extract_dir = dest / "data"

    if manifest_path.is_file():
        try:
            old = json.loads(manifest_path.read_text(encoding="utf-8"))
        except ValueError:
            old = {}
        root = find_data_root(extract_dir)
        if (
            root is not None
            and old.get("url") == url
            and (expected_sha256 is None or old.get("sha256") == expected_sha256)
        ):
            log.info("XTREME-UP already downloaded in %s (sha256 %s)", dest, old.get("sha256"))
            return root

    fname = PurePosixPath(url.split("?", 1)[0]).name or "xtreme-up.tgz"
    if fname in ("..", ".") or "/" in fname:
        fname = "xtreme-up.tgz"
    archive = dest / fname
    source: str = url
    h = hashlib.sha256()
    n = 0

    def stream(fh: BinaryIO) -> None:
        """Copy the response into the temp file, hashing it; a sha256 mismatch aborts before the rename."""
        nonlocal n
        with urllib.request.urlopen(source, timeout=60) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            bar_ctx = None
            tid = None
            if progress:
                from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

                bar_ctx = Progress(
                    "[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(), transient=True
                )
                bar_ctx.start()
                tid = bar_ctx.add_task(f"XTREME-UP {fname}", total=total)
            try:
                while chunk := resp.read(chunk_bytes):
                    fh.write(chunk)
                    h.update(chunk)
                    n += len(chunk)
                    if bar_ctx is not None and tid is not None:
                        bar_ctx.update(tid, advance=len(chunk))
            finally:
                if bar_ctx is not None:
                    bar_ctx.stop()
        if expected_sha256 is not None and h.hexdigest() != expected_sha256.lower():
            raise DataError(f"{source}: sha256 {h.hexdigest()} does not match the expected {expected_sha256}; nothing was extracted")

    try:
        atomic_write(archive, stream)
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise DataError(f"cannot download XTREME-UP from {url}: {e}") from e
    digest = h.hexdigest()

    staging = dest / ".extract-tmp"
    if staging.exists():
        shutil.rmtree(staging)
    try:
        safe_extract(archive, staging)
    except DataError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if extract_dir.exists():
        shutil.rmtree(extract_dir)
    staging.replace(extract_dir)
    root = find_data_root(extract_dir)
    if root is None:
        raise DataError(f"{archive}: no {' or '.join(Task)} folder found in the archive")

    atomic_write(dest / "SHA256SUMS", f"{digest}  {fname}\n")
    manifest = {
        "url": url,
        "version": version,
        "sha256": digest,
        "bytes": n,
        "archive": fname,
        "root": root.relative_to(dest).as_posix(),
        "downloaded_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    atomic_write(manifest_path, json.dumps(manifest, indent=1) + "\n")  # last: it marks the download finished
    log.info("XTREME-UP %s: %d bytes, sha256 %s, root %s", version, n, digest, root)
    return root

