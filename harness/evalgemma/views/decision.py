"""The decision table: one row per stored variant (quality, Δ vs a baseline, cost) and its Pareto fronts.

Quality is the mean main score over the tasks every scored variant has complete (so the means are
comparable), in points (×100). Δ is the difference of those means against the baseline; the CI,
p-value and verdict come from ``evalgemma compare`` (``comparison``) when given. Bytes per vector
and weight size come from the stored rows (``embedding_bytes``, ``weight_bytes``) unless ``cost``
(``evalgemma bench``) gives them; throughput only from ``cost``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from evalgemma.errors import DataError, unknown_name
from evalgemma.views.leaderboard import VariantName, match_variant, task_scores

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

#: Columns of :attr:`Decision.table` (scores and deltas in points, ×100; bytes as integers or NaN).
DECISION_COLUMNS: tuple[str, ...] = (
    "variant", "variant_key", "model", "dim", "weight_format", "embed_dtype", "backend", "device", "n_tasks", "mean",
    "delta", "ci_low", "ci_high", "p_value", "verdict", "bytes_per_vector", "weight_bytes", "texts_per_s",
    "texts_per_s_short", "is_baseline", "pareto_bytes", "pareto_weight", "pareto_speed",
)

#: The Pareto axes: (decision column, what it is, lower is better).
PARETO_AXES: tuple[tuple[str, str, bool], ...] = (
    ("bytes_per_vector", "bytes per vector", True),
    ("weight_bytes", "weight size (bytes)", True),
    ("texts_per_s", "throughput (texts/s)", False),
)

DEFAULT_BASELINE_RULE = "the largest-dim float32 torch variant without weight or embedding quantization"


class SuiteVerdict(NamedTuple):
    """One suite-level row of ``evalgemma compare`` for a variant against the baseline (points, ×100)."""

    suite: str
    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    verdict: str
    reason: str


@dataclass(frozen=True)
class Decision:
    """The decision table and what it was computed over."""

    table: pd.DataFrame  # DECISION_COLUMNS, one row per stored variant, best mean first
    tasks: tuple[tuple[str, str], ...]  # the shared (suite, task) pairs the means are over
    baseline_key: str | None
    baseline_label: str
    baseline_reason: str
    verdicts: dict[str, tuple[SuiteVerdict, ...]] = field(default_factory=dict)  # variant_key -> compare rows
    notes: tuple[str, ...] = ()

    @property
    def has_comparison(self) -> bool:
        return bool(self.verdicts)


def pareto_front(points: Any, *, lower_x_is_better: bool = True) -> np.ndarray:
    """Which points are Pareto-optimal: higher y (quality) is better; lower x (cost) is better unless
    ``lower_x_is_better`` is False (throughput).

    A point is dominated when another is at least as good on both axes and strictly better on one;
    equal points do not dominate each other. Points with a NaN coordinate are never optimal and
    dominate nothing.

    Args:
        points: an ``(n, 2)`` array-like of (x, y).

    Returns:
        A boolean array of length n.
    """
    import numpy as np

    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    mask = np.zeros(len(pts), dtype=bool)
    ok = np.flatnonzero(~np.isnan(pts).any(axis=1))
    if not len(ok):
        return mask
    x = pts[ok, 0] if lower_x_is_better else -pts[ok, 0]
    y = pts[ok, 1]
    best = -math.inf  # best y among points with a strictly smaller x
    for xv in np.unique(x):  # ascending x
        group = np.flatnonzero(x == xv)
        top = y[group].max()
        if top > best:
            mask[ok[group[y[group] == top]]] = True
            best = top
    return mask


def _first(g: pd.DataFrame, col: str, default: Any = "") -> Any:
    if col not in g.columns:
        return default
    vals = g[col].dropna()
    vals = vals[vals.astype(str) != ""]
    return vals.iloc[0] if len(vals) else default


def _bytes(g: pd.DataFrame, col: str) -> float:
    if col not in g.columns:
        return math.nan
    v = g[col].dropna()
    v = v[v > 0]
    return float(v.max()) if len(v) else math.nan


def _weight_format(dtype: str, quant: str, source: str) -> str:
    if quant in ("", "none"):
        return dtype or "float32"
    return f"{quant} ({source})" if source else quant


def _default_baseline(table: pd.DataFrame) -> tuple[int | None, str]:
    """Row index of the default baseline and why it was chosen."""
    if table.empty:
        return None, ""
    scored = table[table["n_tasks"] > 0]
    plain = scored[(scored["weight_format"] == "float32") & (scored["embed_dtype"].isin(["float32", ""])) & (scored["backend"] == "torch")]
    pool, why = (plain, f"default: {DEFAULT_BASELINE_RULE}") if not plain.empty else (
        scored, f"default: no stored variant is {DEFAULT_BASELINE_RULE.removeprefix('the ')}; took the largest-dim variant")
    if pool.empty:
        return None, ""
    best = pool.sort_values(["dim", "n_tasks", "variant"], ascending=[False, False, True], kind="stable")
    return int(best.index[0]), why


def _verdicts(comparison: pd.DataFrame, baseline_key: str) -> dict[str, tuple[SuiteVerdict, ...]]:
    rows = comparison[(comparison["level"] == "suite") & (comparison["baseline_key"] == baseline_key)]
    out: dict[str, tuple[SuiteVerdict, ...]] = {}
    for key, g in rows.groupby("variant_key", sort=False):
        out[str(key)] = tuple(
            SuiteVerdict(str(r.suite), float(r.delta), float(r.ci_low), float(r.ci_high), float(r.p_value), str(r.verdict), str(r.reason or ""))
            for r in g.sort_values("suite").itertuples(index=False)
        )
    return out


def decision_table(
    frame: pd.DataFrame,
    *,
    baseline: str | None = None,
    comparison: pd.DataFrame | None = None,
    cost: pd.DataFrame | None = None,
    notes: Sequence[str] = (),
) -> Decision:
    """The decision table of the store's variants.

    Args:
        frame: store rows (``load_results``: the newest run per cell).
        baseline: a variant label or key; default: the comparison's baseline, else
            :data:`DEFAULT_BASELINE_RULE`.
        comparison: ``evalgemma.views.compare.comparison_table`` (suite rows give Δ's CI and verdict).
        cost: ``evalgemma.views.cost.cost_table`` (one row per variant key: bytes, throughput, device).
        notes: more notes for the table (say, why there is no comparison; :func:`store_inputs` gives them).

    Raises:
        DataError: the store has no rows.
        ConfigError: ``baseline`` names no stored variant (with close matches), or several.
    """
    import numpy as np
    import pandas as pd

    runs = frame[frame["kind"] == "run"] if "kind" in frame.columns else frame
    if runs.empty:
        raise DataError("decision table: the store has no results (run `evalgemma run` first)")
    ts = task_scores(runs)
    ts = ts[ts["complete"].astype(bool)]
    have: dict[str, set[tuple[str, str]]] = {str(k): set(zip(g["suite"], g["task"], strict=True)) for k, g in ts.groupby("variant_key")}
    scored = [s for s in have.values() if s]
    shared = set.intersection(*scored) if scored else set()
    tasks = tuple(sorted(shared))
    notes = list(notes)
    if scored and not shared:
        notes.append("no task is complete for every scored variant, so there is no common mean; see the per-suite leaderboards")
    cost_by = {str(r["variant_key"]): r for r in cost.to_dict("records")} if cost is not None and not cost.empty else {}
    recs = []
    for key, g in runs.groupby("variant_key", sort=False):
        key = str(key)
        mine = ts[(ts["variant_key"] == key)]
        mine = mine[[(s, t) in shared for s, t in zip(mine["suite"], mine["task"], strict=True)]]
        c = cost_by.get(key, {})
        bpv = float(c.get("embedding_bytes") or math.nan) if c else math.nan
        wb = float(c.get("weight_bytes") or math.nan) if c else math.nan
        recs.append({
            "variant": str(g["variant"].iloc[0]), "variant_key": key, "model": str(_first(g, "model")), "dim": int(_first(g, "dim", 0) or 0),
            "weight_format": _weight_format(str(_first(g, "dtype")), str(_first(g, "quant", "none")), str(_first(g, "quant_source"))),
            "embed_dtype": str(_first(g, "embed_dtype", "float32")),
            "backend": str(c.get("backend") or _first(g, "backend", "torch")), "device": str(c.get("device") or _first(g, "device")),
            "n_tasks": len(mine), "mean": 100 * float(np.mean(mine["main_score"])) if len(mine) and shared else math.nan,
            "bytes_per_vector": bpv if bpv > 0 else _bytes(g, "embedding_bytes"),
            "weight_bytes": wb if wb > 0 else _bytes(g, "weight_bytes"),
            "texts_per_s": float(c.get("texts_per_s_long") or math.nan) if c else math.nan,
            "texts_per_s_short": float(c.get("texts_per_s_short") or math.nan) if c else math.nan,
        })
    table = pd.DataFrame(recs)
    verdicts: dict[str, tuple[SuiteVerdict, ...]] = {}
    from_compare = False
    if baseline is None and comparison is not None and not comparison.empty:
        keys = comparison.loc[comparison["level"] == "suite", "baseline_key"]
        keys = keys[keys.isin(table["variant_key"])]
        if len(keys):
            baseline, from_compare = str(keys.value_counts().index[0]), True
    idx: int | None
    if baseline is not None:
        names = [VariantName(v, k, "run") for v, k in zip(table["variant"], table["variant_key"], strict=True)]
        hit = match_variant(baseline, names)
        if hit is None:
            raise unknown_name("variant", baseline, [n.label for n in names] + [n.key for n in names], where="--baseline")
        idx = int(table.index[table["variant_key"] == hit.key][0])
        why = "the baseline of `evalgemma compare`" if from_compare else f"given (--baseline {baseline!r})"
    else:
        idx, why = _default_baseline(table)
    base_key = str(table.loc[idx, "variant_key"]) if idx is not None else None
    base_label = str(table.loc[idx, "variant"]) if idx is not None else ""
    table["is_baseline"] = table["variant_key"] == base_key
    base_mean = float(table.loc[idx, "mean"]) if idx is not None else math.nan
    table["delta"] = table["mean"] - base_mean
    for col in ("ci_low", "ci_high", "p_value"):
        table[col] = math.nan
    table["verdict"] = ""
    if comparison is not None and not comparison.empty and base_key is not None:
        verdicts = _verdicts(comparison, base_key)
        for i, key in zip(table.index, table["variant_key"], strict=True):
            vs = verdicts.get(str(key), ())
            if len(vs) == 1:
                table.loc[i, ["delta", "ci_low", "ci_high", "p_value"]] = [vs[0].delta, vs[0].ci_low, vs[0].ci_high, vs[0].p_value]
            if vs:
                kinds = {v.verdict for v in vs}
                table.loc[i, "verdict"] = kinds.pop() if len(kinds) == 1 else "mixed"
        if verdicts:
            first = comparison.iloc[0]
            notes.append(f"95% CI, p and verdict: `evalgemma compare` of the suite's Mean(Task) (a paired bootstrap over the tasks; one task: "
                         f"over its queries/pairs), {int(first['n_resamples'])} resamples and permutations, seed {int(first['seed'])}; "
                         "better/worse only when the CI excludes 0 and p < alpha")
        else:
            notes.append(f"the comparison given has no suite rows against the baseline {base_label!r}; Δ is the difference of means, without a CI")
    for col, _what, lower in PARETO_AXES:
        name = {"bytes_per_vector": "pareto_bytes", "weight_bytes": "pareto_weight", "texts_per_s": "pareto_speed"}[col]
        table[name] = pareto_front(table[[col, "mean"]].to_numpy(dtype=float), lower_x_is_better=lower)
    table = table.sort_values(["mean", "variant"], ascending=[False, True], na_position="last", kind="stable").reset_index(drop=True)
    return Decision(table[list(DECISION_COLUMNS)], tasks, base_key, base_label, why if base_key else "", verdicts, tuple(notes))


def shared_task_text(tasks: Sequence[tuple[str, str]], limit: int = 8) -> str:
    """``k task(s) of suite S: A, B, …`` for the tasks a decision mean is over."""
    if not tasks:
        return "no shared task"
    suites = sorted({s for s, _ in tasks})
    names = [t if len(suites) == 1 else f"{t} ({s})" for s, t in tasks]
    shown = ", ".join(names[:limit]) + (f", … ({len(names)} in all)" if len(names) > limit else "")
    where = f" of {suites[0]}" if len(suites) == 1 else f" across {len(suites)} suites"
    return f"{len(tasks)} task(s){where}: {shown}"


class DecisionInputs(NamedTuple):
    """What the decision table joins from the store beyond its rows (see :func:`store_inputs`)."""

    comparison: pd.DataFrame | None  # evalgemma compare's table against the decision's baseline
    cost: pd.DataFrame | None  # evalgemma bench's newest figures per variant
    notes: tuple[str, ...]  # why either is missing


def store_inputs(
    store: Path | str,
    frame: pd.DataFrame,
    *,
    baseline: str | None = None,
    n_resamples: int | None = None,
    seed: int = 0,
    alpha: float = 0.05,
) -> DecisionInputs:
    """The comparison and the cost table of a store, as ``evalgemma report`` and ``plot pareto`` use them.

    The comparison is ``evalgemma compare`` against the decision's baseline (``baseline``, else
    :data:`DEFAULT_BASELINE_RULE`) over every other variant, from the per-sample scores in
    ``<store>/_samples``; the cost is ``evalgemma bench``'s newest measurement per variant. Either
    is None, with a note saying why, when the store has nothing for it.

    Raises:
        ConfigError: ``baseline`` names no stored variant; bad resampling settings.
    """
    from evalgemma.errors import ConfigError
    from evalgemma.store.samples import load_samples
    from evalgemma.views.compare import check_settings, comparison_table
    from evalgemma.views.cost import cost_table
    from evalgemma.views.significance import DEFAULT_RESAMPLES

    n_resamples = n_resamples or DEFAULT_RESAMPLES
    check_settings(n_resamples, alpha)
    runs = frame[frame["kind"] == "run"] if "kind" in frame.columns else frame
    cost = cost_table(store, warn=False)
    cost_or_none = None if cost.empty else cost
    notes: list[str] = []
    base = decision_table(runs, baseline=baseline, cost=cost_or_none)
    if base.baseline_key is None or runs["variant_key"].nunique() < 2:
        return DecisionInputs(None, cost_or_none, ())
    samples = load_samples(store, runs)
    if samples.empty:
        notes.append("the store has no per-sample scores (units written before they were stored), so Δ has no CI or verdict; "
                     "rerun them with `evalgemma run --force`")
        return DecisionInputs(None, cost_or_none, tuple(notes))
    try:
        comparison = comparison_table(runs, samples, base.baseline_key, n_resamples=n_resamples, seed=seed, alpha=alpha)
    except (DataError, ConfigError) as exc:  # settings and baseline are checked above: what is left is the data's
        return DecisionInputs(None, cost_or_none, (f"no CI or verdict: {exc}",))
    return DecisionInputs(comparison, cost_or_none, ())
