"""Derived views of full-precision embeddings: Matryoshka truncation and re-normalisation.

Every view is computed from the cached full-dimension float32 vectors, so a variant that
differs only in ``dim`` (or embedding dtype) never re-encodes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from evalgemma.errors import Choice

if TYPE_CHECKING:
    from evalgemma.variants.embedding_quant import Calibration
    from evalgemma.variants.spec import VariantSpec

#: Norms are clipped below at this value before dividing (XTREME-UP's official rule too).
NORM_EPS = 1e-9


class Similarity(Choice):
    """Similarity."""

    COSINE = "cosine"
    HAMMING = "hamming"  # binary views: -hamming distance (bit-packed uint8), or cosine on their ±1 codes


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation with the norm clipped below at 1e-9; returns float32."""
    v = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    out: np.ndarray = (v / np.maximum(norms, NORM_EPS)).astype(np.float32, copy=False)
    return out


def full_dimension(vectors: np.ndarray) -> np.ndarray:
    """The view at the model's own dimension: its output vectors unchanged, as float32.

    Not re-normalised: the pipeline's Normalize module (if any) already did, and dividing
    again by a norm of 1 ± 1 ulp moves the last bits of about a third of the vectors, so
    scores would no longer equal mteb's on the same model.
    """
    return np.asarray(vectors, dtype=np.float32)


def truncate(vectors: np.ndarray, dim: int) -> np.ndarray:
    """Matryoshka view: keep the first ``dim`` components, then L2 re-normalise.

    This is the model card's rule ("truncate … and then re-normalize"); it differs from
    sentence-transformers' ``truncate_dim``, which cuts after the Normalize module and so
    leaves vectors that are not unit-norm (cosine scores agree, dot products do not).

    Raises:
        ValueError: ``dim`` is not in 1..vectors.shape[1].
    """
    v = np.asarray(vectors, dtype=np.float32)
    if v.ndim != 2:
        raise ValueError(f"expected a 2-d array, got shape {v.shape}")
    if not 1 <= dim <= v.shape[1]:
        raise ValueError(f"dim {dim} is outside 1..{v.shape[1]}")
    return l2_normalize(v[:, :dim])


View = Callable[[np.ndarray], np.ndarray]


def make_view(variant: VariantSpec, full_dim: int, calibration_vectors: np.ndarray | None) -> tuple[View, Similarity]:
    """The derived view of a variant (truncate + re-normalise, then embedding quantization) and its similarity.

    Returns:
        ``(view, similarity)``: ``view`` maps full float32 vectors to what the variant scores;
        ``similarity`` is ``"cosine"``, or ``"hamming"`` for binary views, which are returned as
        ±1 codes on which cosine is ``1 - 2·hamming/dim`` (so every evaluator ranks by Hamming distance).
    """
    from evalgemma.variants.embedding_quant import as_pm1, quantize_embeddings_view

    dim = variant.dim
    kind = variant.embed_dtype
    if kind == "float32":
        if dim == full_dim:
            return full_dimension, Similarity.COSINE  # the model's own output, as mteb's wrapper scores it
        return (lambda v: truncate(v, dim)), Similarity.COSINE
    if kind in ("binary", "ubinary"):
        return (lambda v: as_pm1(quantize_embeddings_view(truncate(v, dim), kind, None), kind)), Similarity.HAMMING
    calibration = view_calibration(variant, calibration_vectors)

    def view(v: np.ndarray) -> np.ndarray:
        return quantize_embeddings_view(truncate(v, dim), kind, calibration)

    return view, Similarity.COSINE


def view_calibration(variant: VariantSpec, calibration_vectors: np.ndarray | None) -> Calibration | None:
    """int8/uint8 ranges of a variant: its own truncated view of the calibration vectors (else None)."""
    if variant.embed_dtype not in ("int8", "uint8"):
        return None
    from evalgemma.variants.embedding_quant import calibration_from

    if calibration_vectors is None:
        raise ValueError(f"{variant.label}: int8/uint8 views need calibration vectors")
    return calibration_from(truncate(calibration_vectors, variant.dim), variant.calibration)
