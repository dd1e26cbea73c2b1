"""Derived views of full-precision embeddings: Matryoshka truncation and re-normalisation.

Every view is computed from the cached full-dimension float32 vectors, so a variant that
differs only in ``dim`` (or embedding dtype) never re-encodes.
"""

from __future__ import annotations

import numpy as np

#: Norms are clipped below at this value before dividing (XTREME-UP's official rule too).
NORM_EPS = 1e-9


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation with the norm clipped below at 1e-9; returns float32."""
    v = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return (v / np.maximum(norms, NORM_EPS)).astype(np.float32, copy=False)


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
