"""Runtime parity: does a backend's artifact compute the reference model's vectors?

``parity(reference, candidate, texts)`` encodes the same texts (same prompt) with two encoders —
the torch float32 reference and a backend (ONNX, GGUF) — and reports what a silently broken
conversion changes: per-text cosine of the full vectors (a lost pooling or Dense head drags it
down), the top-10 neighbours of each text among the others (what retrieval sees), and the norms
(a lost Normalize). It is the core of ``evalgemma parity``; thresholds live with the caller.

Neighbour order is score descending, then the lower text index (a stated total order, P4).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from evalgemma.errors import ConfigError


class TextEncoder(Protocol):
    """What parity needs of an encoder: ``Encoder`` of any backend."""

    def encode(self, texts: Sequence[str], prompt: str | None) -> np.ndarray: ...


@dataclass(frozen=True)
class ParityThresholds:
    """Bounds a candidate must meet (per backend and quantization, from a TOML file later)."""

    min_cosine: float = 0.9999
    min_mean_cosine: float = 0.9999
    min_top10_overlap: float = 0.9
    max_norm_delta: float = 1e-3


@dataclass(frozen=True)
class ParityReport:
    """Reference vs candidate on one probe set."""

    n_texts: int
    dim: int
    cosine_min: float
    cosine_mean: float
    worst_text: int  # index of the text with the lowest cosine
    top10_overlap_mean: float  # mean over texts of |top-k(ref) ∩ top-k(cand)| / k
    top10_overlap_min: float
    k: int  # neighbours compared (10, or n-1 for a smaller probe set)
    max_norm_delta: float  # max over texts of | ||ref|| - ||cand|| |
    cosines: tuple[float, ...]

    def failures(self, limits: ParityThresholds) -> list[str]:
        """One line per bound the candidate misses (empty = within every bound)."""
        out = []
        if self.cosine_min < limits.min_cosine:
            out.append(f"cosine min {self.cosine_min:.6f} < {limits.min_cosine} (text {self.worst_text})")
        if self.cosine_mean < limits.min_mean_cosine:
            out.append(f"cosine mean {self.cosine_mean:.6f} < {limits.min_mean_cosine}")
        if self.top10_overlap_mean < limits.min_top10_overlap:
            out.append(f"top-{self.k} overlap {self.top10_overlap_mean:.4f} < {limits.min_top10_overlap}")
        if self.max_norm_delta > limits.max_norm_delta:
            out.append(f"max |Δ norm| {self.max_norm_delta:.3g} > {limits.max_norm_delta}")
        return out


def top_k_neighbours(vectors: np.ndarray, k: int) -> np.ndarray:
    """For each row, the indices of its ``k`` most cosine-similar other rows (itself excluded),
    score descending, ties to the lower index."""
    unit = vectors.astype(np.float64) / np.maximum(np.linalg.norm(vectors.astype(np.float64), axis=1, keepdims=True), 1e-12)
    scores = unit @ unit.T
    np.fill_diagonal(scores, -np.inf)
    n = len(vectors)
    # lexsort sorts by the last key first: -score, then the index.
    idx = np.broadcast_to(np.arange(n), (n, n))
    order = np.lexsort((idx, -scores), axis=1)
    return order[:, :k]


def parity(reference: TextEncoder, candidate: TextEncoder, texts: Sequence[str], *, prompt: str | None = None, k: int = 10) -> ParityReport:
    """Compare two encoders on ``texts`` (each with ``prompt`` prepended, as every backend renders it).

    Raises:
        ConfigError: fewer than 2 texts, or the two encoders share a weight key (they would share
            cached vectors, and the comparison would compare a backend with itself).
        ValueError: the encoders return different shapes.
    """
    if len(texts) < 2:
        raise ConfigError(f"parity: needs at least 2 probe texts (got {len(texts)})")
    ref_key, cand_key = getattr(reference, "weight_key", None), getattr(candidate, "weight_key", None)
    if ref_key is not None and ref_key == cand_key:
        raise ConfigError(f"parity: reference and candidate have the same weight key {ref_key!r}; each backend/artifact needs its own")
    a = np.asarray(reference.encode(texts, prompt), dtype=np.float64)
    b = np.asarray(candidate.encode(texts, prompt), dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"parity: reference vectors {a.shape} vs candidate {b.shape}")
    norm_a, norm_b = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    cos = np.sum(a * b, axis=1) / np.maximum(norm_a * norm_b, 1e-12)
    kk = min(k, len(texts) - 1)
    top_a, top_b = top_k_neighbours(a, kk), top_k_neighbours(b, kk)
    overlap = np.array([len(set(x.tolist()) & set(y.tolist())) / kk for x, y in zip(top_a, top_b, strict=True)])
    return ParityReport(
        n_texts=len(texts),
        dim=int(a.shape[1]),
        cosine_min=float(cos.min()),
        cosine_mean=float(cos.mean()),
        worst_text=int(np.argmin(cos)),
        top10_overlap_mean=float(overlap.mean()),
        top10_overlap_min=float(overlap.min()),
        k=kk,
        max_norm_delta=float(np.max(np.abs(norm_a - norm_b))),
        cosines=tuple(float(c) for c in cos),
    )
