"""``evalgemma compare``: every variant × task against a baseline, with a paired CI, p-value and verdict.

Pure functions from a newest-run results frame (``load_results``) and its per-sample scores
(``evalgemma.store.samples.load_samples``) to one frame (:data:`COLUMNS`); the statistics are
``evalgemma.views.significance``. Rules:

* Variants and the baseline are named like ``leaderboard --baseline`` (label or key, close matches).
* Only tasks complete for both sides (``evalgemma.views.scores.task_scores``) are compared, over the
  cells the task's score is the mean of; ``score``, ``baseline_score`` and ``delta`` are those stored
  task scores in points (×100), the CI and p-value come from the per-sample fields of the same cells.
* A task without per-sample scores in some cell (parallel bitext, multilabel classification,
  stores written before samples existed) or whose cells' sample ids differ is ``n/a`` with a ``reason``.
* Per suite, a ``Mean(Task)`` row: the mean of the task Δs, bootstrapped over the tasks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from evalgemma.errors import Choice, ConfigError, DataError, unknown_name
from evalgemma.views.significance import DEFAULT_RESAMPLES, MIN_RESAMPLES, PairedCell, PairedResult, mean_test, paired_test

if TYPE_CHECKING:
    import pandas as pd

#: Columns of :func:`comparison_table`, in order.
COLUMNS: tuple[str, ...] = (
    "level", "suite", "variant", "variant_key", "baseline", "baseline_key", "task", "task_type", "score", "baseline_score",
    "delta", "ci_low", "ci_high", "p_value", "verdict", "n_samples", "n_resamples", "seed", "reason",
)
#: The ``task`` of a suite row.
SUITE_MEAN = "Mean(Task)"


class CompareFormat(Choice):
    """Compare format."""

    TABLE = "table"  # a rich table on the terminal (drawn by the CLI)
    MARKDOWN = "markdown"
    CSV = "csv"
    JSON = "json"


Cell = tuple[str, str]  # (split, hf_subset)


def check_settings(n_resamples: int, alpha: float) -> None:
    """Validate the resampling settings.

    Raises:
        ConfigError: fewer than :data:`MIN_RESAMPLES` resamples, or ``alpha`` outside (0, 0.5).
    """
    if n_resamples < MIN_RESAMPLES:
        raise ConfigError(f"--resamples {n_resamples}: use at least {MIN_RESAMPLES} resamples")
    if not 0.0 < alpha < 0.5:
        raise ConfigError(f"--alpha {alpha}: must be between 0 and 0.5 (0.05 gives a 95 % interval)")


def score_cells(results: pd.DataFrame, suite: str, variant_key: str, task: str) -> list[Cell]:
    """The cells a task's score in ``suite`` is the mean of: the suite's expected cells, else the stored ones."""
    from evalgemma.benchmarks.suites import expected_cells

    expected = expected_cells(suite)
    if expected is not None and task in expected:
        return [(c.split, c.subset) for c in expected[task].cells]
    rows = results[(results["variant_key"] == variant_key) & (results["task"] == task) & results["is_main"].astype(bool)]
    if "suite" in rows.columns and (rows["suite"] == suite).any():
        rows = rows[rows["suite"] == suite]
    return list(dict.fromkeys(zip(rows["split"].astype(str), rows["hf_subset"].astype(str), strict=True)))


def group_samples(samples: pd.DataFrame) -> dict[tuple[str, str], pd.DataFrame]:
    """Samples by (variant_key, task)."""
    return {(str(k), str(t)): g for (k, t), g in samples.groupby(["variant_key", "task"], sort=False)}


def paired_cells(variant: pd.DataFrame | None, baseline: pd.DataFrame | None, cells: Sequence[Cell]) -> tuple[list[PairedCell], str]:
    """Pair the two sides' samples of one task cell by cell (aligned on ``sample_id``).

    Returns:
        ``(cells, "")``, or ``([], reason)`` when some cell cannot be paired.
    """
    from evalgemma.store.samples import cell_fields

    if variant is None or baseline is None or variant.empty or baseline.empty:
        side = "variant" if variant is None or variant.empty else "baseline"
        return [], f"no per-sample scores for the {side} (task type without samples, or stored before samples existed)"
    by_a = {(str(s), str(h)): g for (s, h), g in variant.groupby(["split", "hf_subset"], sort=False)}
    by_b = {(str(s), str(h)): g for (s, h), g in baseline.groupby(["split", "hf_subset"], sort=False)}
    out: list[PairedCell] = []
    for cell in cells:
        a, b = by_a.get(cell), by_b.get(cell)
        if a is None or b is None:
            return [], f"no per-sample scores for cell {cell[0]}/{cell[1]} ({'variant' if a is None else 'baseline'})"
        stats = set(a["statistic"]) | set(b["statistic"])
        if len(stats) != 1:
            return [], f"cell {cell[0]}/{cell[1]}: statistics differ ({', '.join(sorted(stats))})"
        ids_a, fields_a = cell_fields(a)
        ids_b, fields_b = cell_fields(b)
        if len(ids_a) != len(ids_b) or (ids_a != ids_b).any():
            return [], f"cell {cell[0]}/{cell[1]}: sample ids differ ({len(ids_a)} vs {len(ids_b)} samples)"
        if set(fields_a) != set(fields_b):
            return [], f"cell {cell[0]}/{cell[1]}: fields differ ({sorted(fields_a)} vs {sorted(fields_b)})"
        out.append(PairedCell(stats.pop(), fields_a, fields_b))
    return out, ""


def task_test(variant: pd.DataFrame | None, baseline: pd.DataFrame | None, cells: Sequence[Cell], *,
              n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0, alpha: float = 0.05) -> PairedResult:
    """The paired test of one task from the two sides' samples of it (``n/a`` with a reason when unpaired)."""
    paired, reason = paired_cells(variant, baseline, cells)
    if not paired:
        nan = math.nan
        return PairedResult(nan, nan, nan, nan, "n/a", 0, n_resamples, seed, reason)
    return paired_test(paired, n_resamples=n_resamples, seed=seed, alpha=alpha)


def _resolve(name: str, names: Sequence[Any], where: str) -> Any:
    from evalgemma.views.leaderboard import match_variant

    hit = match_variant(name, names, where=where)
    if hit is None:
        raise unknown_name("variant", name, [v.label for v in names] + [v.key for v in names], where=where)
    return hit


def comparison_table(
    results: pd.DataFrame,
    samples: pd.DataFrame,
    baseline: str,
    *,
    variants: Sequence[str] | None = None,
    tasks: Sequence[str] | None = None,
    suites: Sequence[str] | None = None,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Every variant × task (and suite Mean(Task)) against ``baseline``: Δ, paired CI, p-value, verdict.

    Args:
        results: newest-run store rows (``load_results``).
        samples: their per-sample scores (``load_samples(store, results)``).
        baseline: the baseline variant's label or key.
        variants: variants to compare (labels or keys); default every other variant in ``results``.
        tasks: only these tasks; ``suites``: only these suites (not both).
        n_resamples: bootstrap resamples and random permutations (at least :data:`MIN_RESAMPLES`).
        seed: seed of both (recorded in every row).
        alpha: significance level; the CI is at ``1 - alpha``.

    Returns:
        Columns :data:`COLUMNS`, scores and deltas in points (×100).

    Raises:
        ConfigError: an unknown variant, task or suite, ``tasks`` with ``suites``, bad settings, or no
            task complete for both sides.
        DataError: no compared task has per-sample scores.
    """
    import pandas as pd

    from evalgemma.views.leaderboard import VariantName, suites_in
    from evalgemma.views.scores import task_scores

    check_settings(n_resamples, alpha)
    if tasks and suites:
        raise ConfigError("give --suite or --tasks, not both")
    if results.empty:
        raise DataError("the store has no results to compare")
    firsts = results.drop_duplicates("variant_key")
    names = [VariantName(str(v), str(k), "run") for v, k in zip(firsts["variant"], firsts["variant_key"], strict=True)]
    base = _resolve(baseline, names, "--baseline")
    if variants:
        chosen = list(dict.fromkeys(_resolve(v, names, "--variants") for v in variants))
    else:
        chosen = sorted((v for v in names if v.key != base.key), key=lambda v: (v.label, v.key))
    if not chosen:
        raise ConfigError(f"--baseline {baseline}: the store has no other variant to compare with it; name some with --variants")
    have_suites = suites_in(results)
    for s in suites or ():
        if s not in have_suites:
            raise unknown_name("suite", s, have_suites, where="--suite")
    for t in tasks or ():
        if t not in set(results["task"]):
            raise unknown_name("task", t, set(results["task"]), where="--tasks")
    by_key = group_samples(samples)
    cache: dict[tuple[str, str, str, tuple[Cell, ...]], PairedResult] = {}
    records: list[dict[str, Any]] = []
    for suite in (list(suites) if suites else list(have_suites)):
        ts = task_scores(results, suite)
        ts = ts[ts["complete"].astype(bool)]
        if tasks:
            ts = ts[ts["task"].isin(list(tasks))]
        base_scores = ts[ts["variant_key"] == base.key].set_index("task")
        for var in chosen:
            mine = ts[(ts["variant_key"] == var.key) & ts["task"].isin(list(base_scores.index))]
            task_rows: list[dict[str, Any]] = []
            for r in mine.sort_values("task").to_dict("records"):
                task = str(r["task"])
                cells = tuple(score_cells(results, suite, base.key, task))
                key = (var.key, base.key, task, cells)
                if key not in cache:
                    cache[key] = task_test(by_key.get((var.key, task)), by_key.get((base.key, task)), cells,
                                           n_resamples=n_resamples, seed=seed, alpha=alpha)
                res = cache[key]
                score, base_score = 100.0 * float(r["main_score"]), 100.0 * float(base_scores.loc[task, "main_score"])
                task_rows.append({
                    "level": "task", "suite": suite, "variant": var.label, "variant_key": var.key, "baseline": base.label,
                    "baseline_key": base.key, "task": task, "task_type": str(r["task_type"]), "score": score,
                    "baseline_score": base_score, "delta": score - base_score, "ci_low": res.ci_low, "ci_high": res.ci_high,
                    "p_value": res.p_value, "verdict": res.verdict, "n_samples": res.n_samples, "n_resamples": n_resamples,
                    "seed": seed, "reason": res.reason,
                })
            if not task_rows:
                continue
            records += task_rows
            records.append(suite_row(task_rows, n_resamples=n_resamples, seed=seed, alpha=alpha))
    if not records:
        shown = ", ".join(v.label for v in chosen)
        raise ConfigError(f"no task is complete for both the baseline {base.label!r} and {shown} (see `evalgemma leaderboard`)")
    frame = pd.DataFrame(records, columns=list(COLUMNS))
    tested = frame[frame["level"] == "task"]
    if (tested["verdict"] == "n/a").all():
        reasons = "; ".join(sorted(set(tested["reason"])))[:300]
        raise DataError(f"no compared task has per-sample scores ({reasons}); rerun the units with `evalgemma run --force` "
                        "so their samples are stored")
    return frame


def suite_row(task_rows: Sequence[Mapping[str, Any]], *, n_resamples: int, seed: int, alpha: float) -> dict[str, Any]:
    """The Mean(Task) row of one (suite, variant): the mean task Δ over the tasks with a paired test, bootstrapped over tasks."""
    used = [r for r in task_rows if r["verdict"] != "n/a"]
    if len(used) == 1:  # a mean over one task is that task: its paired test over queries/pairs decides
        one = used[0]
        res = PairedResult(float(one["delta"]), float(one["ci_low"]), float(one["ci_high"]), float(one["p_value"]), one["verdict"],
                           1, n_resamples, seed, "the suite's one task: its paired test")
    else:
        res = mean_test([float(r["delta"]) for r in used], n_resamples=n_resamples, seed=seed, alpha=alpha)
    left_out = len(task_rows) - len(used)
    reason = res.reason
    if left_out:
        reason = (reason + "; " if reason else "") + f"mean over {len(used)} of {len(task_rows)} tasks ({left_out} n/a left out)"
    first = task_rows[0]

    def mean(col: str) -> float:
        return math.fsum(float(r[col]) for r in used) / len(used) if used else math.nan

    return {
        "level": "suite", "suite": first["suite"], "variant": first["variant"], "variant_key": first["variant_key"],
        "baseline": first["baseline"], "baseline_key": first["baseline_key"], "task": SUITE_MEAN, "task_type": "",
        "score": mean("score"), "baseline_score": mean("baseline_score"), "delta": mean("delta"), "ci_low": res.ci_low,
        "ci_high": res.ci_high, "p_value": res.p_value, "verdict": res.verdict, "n_samples": len(used),
        "n_resamples": n_resamples, "seed": seed, "reason": reason,
    }


#: Cost columns ``compare --cost`` adds from ``evalgemma bench`` (``evalgemma.views.cost.cost_table``), joined on variant_key.
COST_COLUMNS: tuple[str, ...] = (
    "weight_bytes", "embedding_bytes", "texts_per_s_long", "texts_per_s_short", "latency_p50_ms", "peak_rss_bytes", "bench_device",
)


def with_cost(frame: pd.DataFrame, costs: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with :data:`COST_COLUMNS` of each row's variant (NaN / empty where it has no measurement)."""
    costs = costs.rename(columns={"device": "bench_device"})
    right = costs[["variant_key", *COST_COLUMNS]] if not costs.empty else costs.reindex(columns=["variant_key", *COST_COLUMNS])
    out = frame.merge(right, on="variant_key", how="left", validate="many_to_one")
    out["bench_device"] = out["bench_device"].fillna("").astype(str)
    return out


# ---------------------------------------------------------------- formats


def display_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The comparison as text, rounded for reading (scores 2 decimals, p 4)."""
    def num(x: Any, fmt: str) -> str:
        return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(float(x) + 0.0, fmt)

    out = frame[["suite", "variant", "task", "task_type"]].copy()
    out["score"] = [num(x, ".2f") for x in frame["score"]]
    out["baseline"] = [num(x, ".2f") for x in frame["baseline_score"]]
    out["Δ"] = [num(round(x, 2), "+.2f") for x in frame["delta"]]
    out["95% CI"] = [f"[{num(lo, '+.2f')}, {num(hi, '+.2f')}]" for lo, hi in zip(frame["ci_low"], frame["ci_high"], strict=True)]
    out["p"] = [num(x, ".4f") for x in frame["p_value"]]
    out["verdict"] = frame["verdict"]
    out["n"] = frame["n_samples"].astype(str)
    if "weight_bytes" in frame.columns:  # compare --cost
        out["weights MB"] = [num(x / 1e6, ".1f") for x in frame["weight_bytes"]]
        out["B/vector"] = [num(x, ".0f") for x in frame["embedding_bytes"]]
        out["texts/s"] = [num(x, ".1f") for x in frame["texts_per_s_long"]]
    out["reason"] = frame["reason"]
    return out


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of a comparison, with the baseline, resamples and seed below."""
    df = display_frame(frame)
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" if i < 4 else "---:" for i in range(len(cols))) + "|"]
    for rec in df.itertuples(index=False):
        lines.append("| " + " | ".join(str(v).replace("|", "\\|") for v in rec) + " |")
    return "\n".join(lines) + "\n\n" + footer(frame) + "\n"


def footer(frame: pd.DataFrame) -> str:
    """One line: the baseline, the resampling settings and the seed."""
    if frame.empty:
        return ""
    first = frame.iloc[0]
    return (f"_baseline {first['baseline']} ({first['baseline_key']}); Δ in points; {int(first['n_resamples'])} paired bootstrap "
            f"resamples and permutations, seed {int(first['seed'])}_")


def to_csv(frame: pd.DataFrame) -> str:
    """The comparison as CSV (every column, unrounded)."""
    return str(frame.to_csv(index=False))


def to_json(frame: pd.DataFrame) -> str:
    """The comparison as a JSON list of row objects (NaN as null)."""
    import json

    rows = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in frame.to_dict("records")]
    return json.dumps(rows, indent=1, default=lambda o: o.item() if hasattr(o, "item") else str(o)) + "\n"
