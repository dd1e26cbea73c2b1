"""Paired significance of a score difference, from per-sample fields (``evalgemma.store.samples``).

One *task* is one or more cells; in each cell the variant (A) and the baseline (B) have fields
aligned on the same samples (queries, pairs, sentences, experiments). Rules, stated once here:

* **Δ** = score(A) − score(B) in points (×100); a task's score is the flat mean of its cell scores
  (mteb's), a cell's score its ``statistic`` (``mean``, ``spearman``, ``max_ap``, ``weighted_f1``:
  the formulas of ``evalgemma.store.samples.cell_statistic``, here vectorized over resamples).
* **Bootstrap CI.** ``scipy.stats.bootstrap`` with one index sample ``arange(n_c)`` per cell and
  ``paired=False``, so every cell is resampled on its own (stratified) and the *same* indices pick
  A's and B's samples; the statistic recomputes each cell's score per resample (Spearman ranks
  recomputed, AP re-sorted, F1 re-counted). Percentile interval at ``1 − alpha``.
* **p-value.** ``scipy.stats.permutation_test(permutation_type="samples")``, two-sided, on the index
  trick: ``x = arange(N)`` indexes A's samples and ``y = arange(N) + N`` B's, so a permutation swaps
  A and B *per sample* and the statistic looks the values up in the stacked [A; B] fields. With
  ``2**N <= n_resamples`` scipy enumerates every swap (an exact test).
* **Ranks, for order-only statistics.** Spearman and AP depend only on how each side orders its
  samples, so each side's similarity scores enter as their own ranks (``scipy.stats.rankdata``, ties
  averaged). That monotone map leaves Δ and every bootstrap resample exactly as on the raw scores,
  and makes a swap exchange like with like: swapping raw similarities of two variants on different
  scales (an int8-embedding variant's cosines run higher than float32's) would mix two scales, widen
  the null distribution and hide real differences (MiniLM 384d int8 vs float32 on STSBenchmark:
  Δ −0.27, CI [−0.45, −0.08], p 0.41 on raw scores).
* **Seed.** Both use ``numpy.random.default_rng(seed)`` (a fresh generator each) and a batch size
  that depends only on the number of samples (:func:`batch_size`), so the seed reproduces them.
* **Verdict.** ``better`` when the CI lies above 0 and ``p < alpha``, ``worse`` when it lies below
  0 and ``p < alpha``, else ``indistinguishable``; ``n/a`` when the statistic is undefined.
  A variant against itself: Δ = 0, CI [0, 0], p = 1, ``indistinguishable``.
* **Means over tasks** (a suite's Mean(Task)): ``scipy.stats.bootstrap`` over the task Δs and the
  one-sample sign-flip ``permutation_test`` (``permutation_type="samples"``) on them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, NamedTuple

if TYPE_CHECKING:
    import numpy as np

Verdict = Literal["better", "worse", "indistinguishable", "n/a"]

#: Default number of bootstrap resamples and of random permutations.
DEFAULT_RESAMPLES = 2000
#: Fewest resamples ``compare`` and ``check --significance`` accept.
MIN_RESAMPLES = 1000
#: Resampled values held in memory at once (samples × resamples in one batch).
BATCH_ELEMENTS = 1 << 21

#: Pair-classification similarity fields and the sign that makes "higher = more similar" (as samples.AP_FIELDS).
_AP_SIGNS: dict[str, int] = {"similarity": 1, "cosine": 1, "manhattan": -1, "euclidean": -1, "dot": 1}
#: Score fields of the statistics that depend only on each side's ordering of its samples (Spearman, AP):
#: :meth:`PairedCell.stacked` replaces them by the side's own ranks (see the module docstring).
_RANKED_FIELDS: dict[str, frozenset[str]] = {"spearman": frozenset({"score"}), "max_ap": frozenset(_AP_SIGNS)}


def batch_size(n_samples: int, n_resamples: int) -> int:
    """Resamples per batch: bounded memory, and a function of the data size only (so a seed reproduces)."""
    return max(1, min(n_resamples, BATCH_ELEMENTS // max(1, n_samples)))


# ---------------------------------------------------------------- vectorized cell statistics


def _mean(fields: Mapping[str, np.ndarray]) -> np.ndarray:
    import numpy as np

    return np.asarray(fields["score"].mean(axis=-1))


def _spearman(fields: Mapping[str, np.ndarray]) -> np.ndarray:
    import numpy as np
    from scipy.stats import rankdata

    a = rankdata(fields["gold"], axis=-1)
    b = rankdata(fields["score"], axis=-1)
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray((a * b).sum(axis=-1) / np.sqrt((a * a).sum(axis=-1) * (b * b).sum(axis=-1)))


def _average_precision(gold: np.ndarray, score: np.ndarray) -> np.ndarray:
    """sklearn's ``average_precision_score`` per row: tied scores form one threshold."""
    import numpy as np

    order = np.argsort(-score, axis=-1, kind="stable")
    s = np.take_along_axis(score, order, axis=-1)
    y = np.take_along_axis(gold, order, axis=-1)
    n = s.shape[-1]
    tp = np.cumsum(y, axis=-1)
    precision = tp / np.arange(1, n + 1)
    end = np.ones(s.shape, dtype=bool)
    end[..., :-1] = s[..., 1:] != s[..., :-1]
    # each sample takes the precision at the end of its group of ties (sklearn's threshold)
    pos = np.where(end, np.arange(n), n)
    group_end = np.flip(np.minimum.accumulate(np.flip(pos, axis=-1), axis=-1), axis=-1)
    at_end = np.take_along_axis(precision, group_end, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray((y * at_end).sum(axis=-1) / y.sum(axis=-1))


def _max_ap(fields: Mapping[str, np.ndarray]) -> np.ndarray:
    import numpy as np

    present = [f for f in _AP_SIGNS if f in fields]
    if not present:
        raise ValueError(f"statistic max_ap: none of {list(_AP_SIGNS)} among the fields {sorted(fields)}")
    return np.asarray(np.max(np.stack([_average_precision(fields["gold"], fields[f] * _AP_SIGNS[f]) for f in present]), axis=0))


def _weighted_f1(fields: Mapping[str, np.ndarray]) -> np.ndarray:
    """sklearn's ``f1_score(average="weighted", zero_division=0)`` per row; ``gold``/``pred`` hold codes 0..K-1."""
    import numpy as np

    gold = fields["gold"].astype(np.int64)
    pred = fields["pred"].astype(np.int64)
    shape = gold.shape[:-1]
    gold = gold.reshape(-1, gold.shape[-1])
    pred = pred.reshape(-1, pred.shape[-1])
    rows = gold.shape[0]
    k = int(max(gold.max(initial=0), pred.max(initial=0))) + 1
    off = (np.arange(rows) * k)[:, None]
    g = np.bincount((gold + off).ravel(), minlength=rows * k).reshape(rows, k).astype(np.float64)
    p = np.bincount((pred + off).ravel(), minlength=rows * k).reshape(rows, k).astype(np.float64)
    t = np.bincount((gold + off).ravel(), weights=(gold == pred).ravel().astype(np.float64), minlength=rows * k).reshape(rows, k)
    denom = g + p
    f1 = np.divide(2.0 * t, denom, out=np.zeros_like(t), where=denom > 0)
    return np.asarray(((g * f1).sum(axis=-1) / g.sum(axis=-1)).reshape(shape))


#: statistic name → vectorized function of ``{field: array (..., n)}`` → array (...). Keys are ``samples.STATISTICS``.
BATCH_STATISTICS: dict[str, Callable[[Mapping[str, np.ndarray]], np.ndarray]] = {
    "mean": _mean, "spearman": _spearman, "max_ap": _max_ap, "weighted_f1": _weighted_f1,
}


def batch_statistic(statistic: str, fields: Mapping[str, np.ndarray]) -> np.ndarray:
    """A cell's statistic for each row of ``fields`` (arrays of shape ``(..., n)``), vectorized.

    Raises:
        ValueError: unknown statistic.
    """
    try:
        fn = BATCH_STATISTICS[statistic]
    except KeyError:
        raise ValueError(f"unknown statistic {statistic!r}; one of {tuple(BATCH_STATISTICS)}") from None
    return fn(fields)


# ---------------------------------------------------------------- paired cells


@dataclass(frozen=True)
class PairedCell:
    """One cell of a task: the variant's and the baseline's fields, aligned on the same samples."""

    statistic: str
    variant: Mapping[str, np.ndarray]
    baseline: Mapping[str, np.ndarray]

    def __post_init__(self) -> None:
        if self.statistic not in BATCH_STATISTICS:
            raise ValueError(f"unknown statistic {self.statistic!r}; one of {tuple(BATCH_STATISTICS)}")
        if set(self.variant) != set(self.baseline):
            raise ValueError(f"fields differ: variant {sorted(self.variant)}, baseline {sorted(self.baseline)}")
        lengths = {len(v) for v in (*self.variant.values(), *self.baseline.values())}
        if len(lengths) != 1:
            raise ValueError(f"fields of unequal length {sorted(lengths)}")

    @property
    def n(self) -> int:
        """The number of samples."""
        return len(next(iter(self.variant.values())))

    def stacked(self) -> dict[str, np.ndarray]:
        """``{field: [variant; baseline]}`` (length ``2n``).

        Scores of the order-only statistics (:data:`_RANKED_FIELDS`) become each side's own ranks;
        weighted-F1 ids become codes 0..K-1 over both sides.
        """
        import numpy as np
        from scipy.stats import rankdata

        ranked = _RANKED_FIELDS.get(self.statistic, frozenset())

        def side(fields: Mapping[str, np.ndarray], f: str) -> np.ndarray:
            v = np.asarray(fields[f], dtype=np.float64)
            return rankdata(v) if f in ranked else v

        out = {f: np.concatenate([side(self.variant, f), side(self.baseline, f)]) for f in self.variant}
        if self.statistic == "weighted_f1":
            _, codes = np.unique(np.concatenate([out["gold"], out["pred"]]), return_inverse=True)
            m = len(out["gold"])
            out["gold"], out["pred"] = codes[:m].astype(np.float64), codes[m:].astype(np.float64)
        return out


class _Stacked(NamedTuple):
    statistic: str
    n: int
    offset: int
    fields: dict[str, np.ndarray]

    def at(self, idx: np.ndarray) -> np.ndarray:
        return batch_statistic(self.statistic, {f: v[idx] for f, v in self.fields.items()})


def _stack(cells: Sequence[PairedCell]) -> list[_Stacked]:
    out, offset = [], 0
    for c in cells:
        out.append(_Stacked(c.statistic, c.n, offset, c.stacked()))
        offset += c.n
    return out


def observed_delta(cells: Sequence[PairedCell]) -> float:
    """Δ in points: the mean over cells of score(variant) − score(baseline), ×100."""
    import numpy as np

    parts = [s.at(np.arange(s.n)) - s.at(np.arange(s.n) + s.n) for s in _stack(cells)]
    return float(100.0 * np.mean(parts))


class BootstrapCI(NamedTuple):
    """A percentile bootstrap interval of Δ (points) and the bootstrap distribution it comes from."""

    low: float
    high: float
    distribution: np.ndarray


def paired_bootstrap(cells: Sequence[PairedCell], *, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                     confidence_level: float = 0.95) -> BootstrapCI:
    """Stratified paired bootstrap of Δ: each cell's samples resampled on their own, the same indices for both sides.

    Raises:
        ValueError: no cells, or a cell with fewer than two samples.
    """
    import numpy as np
    from scipy.stats import bootstrap

    if not cells:
        raise ValueError("no cells to compare")
    stacked = _stack(cells)

    def delta(*idx: np.ndarray, axis: int = -1) -> np.ndarray:
        parts = [s.at(i) - s.at(i + s.n) for s, i in zip(stacked, idx, strict=True)]
        return np.asarray(100.0 * np.mean(parts, axis=0))

    data = tuple(np.arange(s.n) for s in stacked)
    n_total = sum(s.n for s in stacked)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a NaN statistic (constant scores) is reported as n/a by the caller
        res = bootstrap(data, delta, vectorized=True, paired=False, method="percentile", n_resamples=n_resamples,
                        batch=batch_size(n_total, n_resamples), confidence_level=confidence_level, rng=np.random.default_rng(seed))
    return BootstrapCI(float(res.confidence_interval.low), float(res.confidence_interval.high), np.asarray(res.bootstrap_distribution))


class PermutationP(NamedTuple):
    """The observed Δ (points), its two-sided randomization p-value and the null distribution."""

    observed: float
    p_value: float
    null_distribution: np.ndarray


def paired_permutation(cells: Sequence[PairedCell], *, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> PermutationP:
    """Paired randomization test of Δ: each sample's variant and baseline values swapped at random.

    Raises:
        ValueError: no cells, or fewer than two samples in all.
    """
    import numpy as np
    from scipy.stats import permutation_test

    if not cells:
        raise ValueError("no cells to compare")
    stacked = _stack(cells)
    total = sum(s.n for s in stacked)

    def local(v: np.ndarray, s: _Stacked) -> np.ndarray:
        # global position → index into the cell's stacked [variant; baseline] fields
        return np.where(v < total, v - s.offset, v - total - s.offset + s.n)

    def delta(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        parts = [s.at(local(x[..., s.offset:s.offset + s.n], s)) - s.at(local(y[..., s.offset:s.offset + s.n], s)) for s in stacked]
        return np.asarray(100.0 * np.mean(parts, axis=0))

    x = np.arange(total)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = permutation_test((x, x + total), delta, permutation_type="samples", vectorized=True, n_resamples=n_resamples,
                               batch=batch_size(total, n_resamples), alternative="two-sided", rng=np.random.default_rng(seed))
    return PermutationP(float(res.statistic), float(res.pvalue), np.asarray(res.null_distribution))


class PairedResult(NamedTuple):
    """A compared task (or mean over tasks): Δ and its CI in points, p, verdict and how they were made."""

    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    verdict: Verdict
    n_samples: int
    n_resamples: int
    seed: int
    reason: str


def verdict_of(ci_low: float, ci_high: float, p_value: float, alpha: float = 0.05) -> Verdict:
    """``better`` / ``worse`` when the CI excludes 0 on that side and ``p < alpha``, else ``indistinguishable`` (``n/a`` on NaN)."""
    import math

    if any(math.isnan(v) for v in (ci_low, ci_high, p_value)):
        return "n/a"
    if p_value < alpha and ci_low > 0:
        return "better"
    if p_value < alpha and ci_high < 0:
        return "worse"
    return "indistinguishable"


def _undefined(n: int, n_resamples: int, seed: int, reason: str, delta: float = float("nan")) -> PairedResult:
    nan = float("nan")
    return PairedResult(delta, nan, nan, nan, "n/a", n, n_resamples, seed, reason)


def paired_test(cells: Sequence[PairedCell], *, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0, alpha: float = 0.05) -> PairedResult:
    """Δ, the stratified paired bootstrap CI at ``1 − alpha``, the randomization p-value and the verdict of one task."""
    import math

    n = sum(c.n for c in cells)
    if not cells:
        return _undefined(0, n_resamples, seed, "no cells")
    small = [i for i, c in enumerate(cells) if c.n < 2]
    if small:
        return _undefined(n, n_resamples, seed, f"{len(small)} cell(s) with fewer than 2 samples")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        delta = observed_delta(cells)
    if math.isnan(delta):
        return _undefined(n, n_resamples, seed, "the statistic is undefined (constant scores?)")
    ci = paired_bootstrap(cells, n_resamples=n_resamples, seed=seed, confidence_level=1.0 - alpha)
    perm = paired_permutation(cells, n_resamples=n_resamples, seed=seed)
    if math.isnan(ci.low) or math.isnan(ci.high) or math.isnan(perm.p_value):
        return _undefined(n, n_resamples, seed, "the statistic is undefined on some resamples (constant scores?)", delta)
    return PairedResult(delta, ci.low, ci.high, perm.p_value, verdict_of(ci.low, ci.high, perm.p_value, alpha), n, n_resamples, seed, "")


def mean_test(deltas: Sequence[float], *, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0, alpha: float = 0.05) -> PairedResult:
    """A mean of task Δs (points): bootstrap over the tasks and the sign-flip randomization test."""
    import numpy as np
    from scipy.stats import bootstrap, permutation_test

    values = np.asarray(deltas, dtype=np.float64)
    if len(values) < 2:
        mean = float(values[0]) if len(values) else float("nan")
        return _undefined(len(values), n_resamples, seed, f"mean over {len(values)} task(s): see the task row", mean)

    def mean_of(x: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.asarray(np.mean(x, axis=axis))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ci = bootstrap((values,), mean_of, vectorized=True, method="percentile", n_resamples=n_resamples,
                       confidence_level=1.0 - alpha, rng=np.random.default_rng(seed)).confidence_interval
        p = permutation_test((values,), mean_of, permutation_type="samples", vectorized=True, n_resamples=n_resamples,
                             alternative="two-sided", rng=np.random.default_rng(seed)).pvalue
    low, high, pv = float(ci.low), float(ci.high), float(p)
    return PairedResult(float(np.mean(values)), low, high, pv, verdict_of(low, high, pv, alpha), len(values), n_resamples, seed, "")
