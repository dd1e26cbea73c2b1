"""Quantized views of full-precision embeddings (``--embed-dtype``) and their similarities.

The views are computed by sentence-transformers' ``quantize_embeddings`` (its semantics,
not a re-implementation):

* ``int8`` / ``uint8``: per-dimension scalar quantization into 256 buckets,
  ``q = clip(floor((x - min_d) / step_d), 0, 255)`` with ``step_d = (max_d - min_d) / 255``
  (minus 128 for int8). The per-dimension ``(min, max)`` ranges come from a named
  calibration set (:class:`Calibration`) and are the same for queries and documents
  (STYLE P6); a view never calibrates on the vectors it quantizes.
* ``binary`` / ``ubinary``: one bit per dimension (``x > 0``), packed 8 per byte
  (``binary`` stores each byte minus 128 as int8, ``ubinary`` the byte as uint8).

Similarities (:func:`similarity_matrix`, :func:`pairwise_similarity`):

* ``float32``: cosine.
* ``int8`` / ``uint8``: cosine of the integer vectors cast to float, which is what
  mteb 2.26's ``CompressionWrapper`` scores (it hands the integer-valued vectors to the
  model's cosine similarity) and what sentence-transformers does for its int8 search.
* ``binary`` / ``ubinary``: ``1 - 2 * hamming / dim`` (the dot product of the ±1 vectors
  divided by ``dim``), a monotone transform of minus the Hamming distance, in [-1, 1].
  mteb's ``CompressionWrapper`` instead scores cosine of 0/1 vectors, which is not a
  function of the Hamming distance; we follow sentence-transformers' binary search
  (Hamming) here.

numpy only; sentence-transformers is imported lazily.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

import numpy as np

from evalgemma.errors import ConfigError
from evalgemma.variants.spec import EmbedDtype

_VIEW_DTYPE: dict[str, type[np.generic]] = {
    EmbedDtype.FLOAT32: np.float32,
    EmbedDtype.INT8: np.int8,
    EmbedDtype.UINT8: np.uint8,
    EmbedDtype.BINARY: np.int8,
    EmbedDtype.UBINARY: np.uint8,
}


def parse_precision(precision: str, where: str = "--embed-dtype") -> EmbedDtype:
    """Validate an embedding precision (dtype) name.

    Raises:
        ConfigError: unknown name (with close matches and the valid names).
    """
    return EmbedDtype.parse(precision, where)


@dataclass(frozen=True)
class Calibration:
    """Where int8/uint8 ranges come from, and the ranges themselves.

    Attributes:
        name: the calibration set's name (e.g. "stsbenchmark-validation"); recorded in results.
        n_vectors: number of vectors the ranges were computed from.
        sha256: sha256 of the calibration vectors (see :func:`vectors_sha256`).
        mins: per-dimension minimum.
        maxs: per-dimension maximum.
    """

    name: str
    n_vectors: int
    sha256: str
    mins: tuple[float, ...]
    maxs: tuple[float, ...]

    @property
    def dim(self) -> int:
        """Embedding dimension the ranges are for."""
        return len(self.mins)

    def ranges(self) -> np.ndarray:
        """The ranges as sentence-transformers takes them: float32 ``[2, dim]`` (min row, max row)."""
        return np.array([self.mins, self.maxs], dtype=np.float32)


def vectors_sha256(vectors: np.ndarray) -> str:
    """sha256 over ``"<n>x<d>:float32:"`` followed by the C-order float32 bytes of ``vectors``."""
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    h = hashlib.sha256(f"{v.shape[0]}x{v.shape[1]}:float32:".encode())
    h.update(v.tobytes())
    return h.hexdigest()


def _as_matrix(vectors: np.ndarray, what: str) -> np.ndarray:
    v = np.asarray(vectors)
    if v.ndim != 2:
        raise ConfigError(f"{what}: expected a 2-d array [n, dim], got shape {v.shape}")
    return v


def calibration_from(vectors: np.ndarray, name: str) -> Calibration:
    """Per-dimension min/max ranges of a calibration set.

    Compute them on the same view (same Matryoshka dimension, same normalisation) as the
    vectors they will quantize.

    Args:
        vectors: float ``[n, dim]`` calibration embeddings, n >= 2.
        name: the calibration set's name.

    Raises:
        ConfigError: not a float 2-d array, fewer than 2 vectors, or non-finite values.
    """
    v = _as_matrix(vectors, f"calibration set {name!r}")
    if not np.issubdtype(v.dtype, np.floating):
        raise ConfigError(f"calibration set {name!r}: vectors must be float, got {v.dtype}")
    if v.shape[0] < 2:
        raise ConfigError(f"calibration set {name!r}: needs at least 2 vectors to compute ranges, got {v.shape[0]}")
    v = v.astype(np.float32, copy=False)
    if not np.isfinite(v).all():
        raise ConfigError(f"calibration set {name!r}: contains NaN or infinite values")
    return Calibration(
        name=name,
        n_vectors=int(v.shape[0]),
        sha256=vectors_sha256(v),
        mins=tuple(float(x) for x in v.min(axis=0)),
        maxs=tuple(float(x) for x in v.max(axis=0)),
    )


def embedding_bytes(dim: int, precision: str) -> int:
    """Bytes to store one embedding of ``dim`` dimensions at ``precision``.

    Raises:
        ConfigError: unknown precision, dim < 1, or a binary precision with dim % 8 != 0.
    """
    precision = parse_precision(precision)
    if dim < 1:
        raise ConfigError(f"embedding dimension must be >= 1, got {dim}")
    if precision == "float32":
        return 4 * dim
    if precision in ("int8", "uint8"):
        return dim
    _check_binary_dim(dim, precision)
    return dim // 8


def _check_binary_dim(dim: int, precision: str) -> None:
    if dim % 8:
        raise ConfigError(
            f"--embed-dtype {precision}: embedding dimension {dim} is not a multiple of 8, so the bits "
            f"cannot be packed into whole bytes; pick a dimension divisible by 8 (768, 512, 256, 128)."
        )


def quantize_embeddings_view(
    vectors: np.ndarray,
    precision: str,
    calibration: Calibration | np.ndarray | None = None,
) -> np.ndarray:
    """The ``precision`` view of float embeddings, via sentence-transformers' ``quantize_embeddings``.

    Args:
        vectors: float ``[n, dim]`` embeddings (the full-precision, possibly truncated view).
        precision: "float32", "int8", "uint8", "binary" or "ubinary".
        calibration: for int8/uint8 (required): a :class:`Calibration`, or the float
            calibration vectors themselves (ranges = their per-dimension min/max, as
            sentence-transformers' ``calibration_embeddings``). Ignored by the other precisions.

    Returns:
        float32 ``[n, dim]``, int8/uint8 ``[n, dim]``, or packed int8/uint8 ``[n, dim/8]``.

    Raises:
        ConfigError: unknown precision; int8/uint8 without calibration or with ranges of
            another dimension; binary with ``dim % 8 != 0``; non-float input.
    """
    from sentence_transformers.util.quantization import quantize_embeddings

    precision = parse_precision(precision)
    v = _as_matrix(vectors, f"--embed-dtype {precision}")
    if not np.issubdtype(v.dtype, np.floating):
        raise ConfigError(f"--embed-dtype {precision}: embeddings to quantize must be float, got {v.dtype}")
    v = v.astype(np.float32, copy=False)
    dim = v.shape[1]
    if precision == "float32":
        return np.array(quantize_embeddings(v, precision="float32"), dtype=np.float32)
    if precision in ("binary", "ubinary"):
        _check_binary_dim(dim, precision)
        packed: Literal["binary", "ubinary"] = "binary" if precision == EmbedDtype.BINARY else "ubinary"  # sentence-transformers types these as Literals
        return np.asarray(quantize_embeddings(v, precision=packed))
    if calibration is None:
        raise ConfigError(
            f"--embed-dtype {precision}: needs a calibration set for its per-dimension ranges "
            f"(the same ranges apply to queries and documents); none was given."
        )
    cal = calibration if isinstance(calibration, Calibration) else calibration_from(calibration, "<unnamed>")
    if cal.dim != dim:
        raise ConfigError(
            f"--embed-dtype {precision}: calibration set {cal.name!r} has dimension {cal.dim} but the "
            f"embeddings have {dim}; calibrate on the same (truncated) view."
        )
    scaled: Literal["int8", "uint8"] = "int8" if precision == EmbedDtype.INT8 else "uint8"
    return np.asarray(quantize_embeddings(v, precision=scaled, ranges=cal.ranges()))


def _check_view(x: np.ndarray, precision: str, side: str) -> np.ndarray:
    m = _as_matrix(x, f"similarity ({side})")
    want = _VIEW_DTYPE[precision]
    if m.dtype != want:
        raise ConfigError(
            f"similarity for --embed-dtype {precision}: {side} has dtype {m.dtype}, expected {np.dtype(want)} "
            f"(pass the output of quantize_embeddings_view)"
        )
    return m


def _to_float(x: np.ndarray, precision: str) -> np.ndarray:
    """Integer views as float64 (exact); packed bits unpacked to ±1."""
    if precision in ("binary", "ubinary"):
        # binary stores byte - 128 as int8; flipping the top bit of the raw byte restores it.
        raw = x.view(np.uint8) ^ np.uint8(0x80) if precision == "binary" else x
        bits = np.unpackbits(raw, axis=-1).astype(np.float64)
        return 2.0 * bits - 1.0
    return x.astype(np.float64)


def as_pm1(packed: np.ndarray, precision: str) -> np.ndarray:
    """Packed binary/ubinary codes as float32 ±1 vectors (one column per bit).

    Every such vector has norm sqrt(dim), so cosine = dot / dim = 1 - 2 * hamming / dim: any
    evaluator that scores by cosine or dot product (mteb's STS, retrieval, clustering, ...)
    then scores by Hamming distance exactly, and float32 sums of ±1 are exact.
    """
    precision = parse_precision(precision)
    if precision not in ("binary", "ubinary"):
        raise ConfigError(f"as_pm1: --embed-dtype {precision} is not a binary precision")
    return _to_float(_check_view(packed, precision, "codes"), precision).astype(np.float32)


def _cosine_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    out: np.ndarray = x / np.maximum(norms, 1e-12)
    return out


def similarity_matrix(a: np.ndarray, b: np.ndarray, precision: str) -> np.ndarray:
    """All-pairs similarity ``[len(a), len(b)]`` (float32) of two views of one precision.

    Cosine for float32/int8/uint8 (integers cast to float); ``1 - 2 * hamming / dim`` for
    binary/ubinary (``dim`` = 8 x packed bytes).

    Raises:
        ConfigError: unknown precision, a dtype that is not the precision's view dtype, or
            different widths.
    """
    precision = parse_precision(precision)
    a = _check_view(a, precision, "a")
    b = _check_view(b, precision, "b")
    if a.shape[1] != b.shape[1]:
        raise ConfigError(f"similarity for --embed-dtype {precision}: widths differ ({a.shape[1]} vs {b.shape[1]})")
    fa, fb = _to_float(a, precision), _to_float(b, precision)
    if precision in ("binary", "ubinary"):
        sims: np.ndarray = (fa @ fb.T / fa.shape[1]).astype(np.float32)
    else:
        sims = (_cosine_rows(fa) @ _cosine_rows(fb).T).astype(np.float32)
    return sims


def pairwise_similarity(a: np.ndarray, b: np.ndarray, precision: str) -> np.ndarray:
    """Row-by-row similarity ``[n]`` (float32) of ``a[i]`` with ``b[i]``; same rules as
    :func:`similarity_matrix`.

    Raises:
        ConfigError: as :func:`similarity_matrix`, or different numbers of rows.
    """
    precision = parse_precision(precision)
    a = _check_view(a, precision, "a")
    b = _check_view(b, precision, "b")
    if a.shape != b.shape:
        raise ConfigError(f"pairwise similarity for --embed-dtype {precision}: shapes differ ({a.shape} vs {b.shape})")
    fa, fb = _to_float(a, precision), _to_float(b, precision)
    if precision in ("binary", "ubinary"):
        sims: np.ndarray = ((fa * fb).sum(axis=1) / fa.shape[1]).astype(np.float32)
    else:
        sims = (_cosine_rows(fa) * _cosine_rows(fb)).sum(axis=1).astype(np.float32)
    return sims
