"""Leaderboards: pure functions from result rows (store and/or reference) to tables.

MTEB rules (mteb 2.26.24, ``docs/embeddinggemma.md`` §9):

* a task's score is its ``main_score`` (the flat mean of the main metric over the task's
  (split, subset) cells; ``recomputed_scores`` checks it against the ``is_main`` rows);
* Mean(Task) is the mean over the suite's tasks; Mean(TaskType) the mean of per-type means;
* a variant missing any expected task gets no mean: ``incomplete (k/n)`` [mteb#4263].

XTREME-UP: MRR@10 per language (``hf_subset``), and the unweighted mean over the suite's
languages; a missing language makes the mean ``incomplete (k/n)``.

Scores are stored unrounded (0-1) and shown ×100 with two decimals.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from evalgemma.errors import ConfigError, DataError, unknown_name

if TYPE_CHECKING:
    import pandas as pd

    from evalgemma.catalog.reference import Reference

MTEB_SUITES: tuple[str, ...] = ("mteb-multilingual-v2", "mteb-eng-v2", "mteb-code-v1")
XTREME_METRIC = "mrr_at_10"


# ---------------------------------------------------------------- task scores


def _with_defaults(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns the leaderboard needs, defaulted for plain store frames (kind ``run``)."""
    out = frame
    defaults = {"kind": "run", "source": "store", "quant": "none", "suite": "", "hf_subset": "", "split": "", "model": "", "dim": 0}
    for col, val in defaults.items():
        if col not in out.columns:
            out = out.assign(**{col: val})
    return out


def task_scores(frame: pd.DataFrame, suite: str | None = None) -> pd.DataFrame:
    """Task scores from cells (see ``evalgemma.views.scores.task_scores``), for one suite or every
    suite named in ``frame``'s ``suite`` column."""
    import pandas as pd

    from evalgemma.views.scores import SCORE_COLUMNS
    from evalgemma.views.scores import task_scores as scores_for

    frame = _with_defaults(frame)
    suites = [suite] if suite is not None else sorted(s for s in frame["suite"].dropna().unique() if s)
    parts = [scores_for(frame, s) for s in suites]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(SCORE_COLUMNS))


def recomputed_mismatches(frame: pd.DataFrame, tol: float = 1e-12) -> pd.DataFrame:
    """Units whose stored ``main_score`` (set only when the unit holds every cell of its task in its
    suite) differs from the task score computed from those cells."""
    import pandas as pd

    frame = _with_defaults(frame)
    stored = frame[frame["main_score"].notna() & frame["is_main"].astype(bool)]
    if stored.empty:
        return pd.DataFrame(columns=["variant_key", "suite", "task", "main_score", "recomputed"])
    out = []
    keys = ["variant_key", "suite", "unit_id"] if "unit_id" in stored.columns else ["variant_key", "suite", "task"]
    for (vkey, suite, _unit), g in stored.groupby(keys, sort=False):
        ts = task_scores(g, str(suite))
        if ts.empty:
            continue
        rec = float(ts["main_score"].iloc[0])
        if not abs(rec - float(g["main_score"].iloc[0])) <= tol:
            out.append({"variant_key": vkey, "suite": suite, "task": g["task"].iloc[0], "main_score": float(g["main_score"].iloc[0]), "recomputed": rec})
    return pd.DataFrame(out, columns=["variant_key", "suite", "task", "main_score", "recomputed"])


# ---------------------------------------------------------------- expected tasks


def expected_tasks(suite: str, frame: pd.DataFrame | None = None, ref_dir: Path | str | None = None) -> dict[str, str]:
    """The tasks a suite should have, with their types (task -> task_type), in a stable order.

    MTEB suites come from the reference task list (``results/reference/suite_tasks.csv``),
    falling back to ``mteb.get_benchmark`` for a suite file naming another benchmark; ``smoke``
    from ``evalgemma.benchmarks.smoke.tasks.SMOKE_TASK_NAMES``, other built-in suites (``types``) from
    their manifest; other suites (and any suite when nothing else
    is known) from the tasks present in ``frame``.
    """
    if suite in MTEB_SUITES:
        from evalgemma.catalog.reference import suite_tasks

        st = suite_tasks(ref_dir)
        st = st[st["suite"] == suite]
        return dict(zip(st["task"], st["task_type"], strict=True))
    present: dict[str, str] = {}
    if frame is not None and not frame.empty:
        sub = frame[frame["suite"] == suite]
        present = dict(zip(sub["task"], sub["task_type"], strict=False))
    names: Sequence[str] | None = None
    if suite == "smoke":
        try:
            from evalgemma.benchmarks.smoke.tasks import SMOKE_TASK_NAMES

            names = tuple(SMOKE_TASK_NAMES)
        except ImportError:
            names = None
    else:
        spec = _suite_spec(suite)
        if spec is not None and spec.kind == "smoke":  # another built-in suite (types): its manifest's tasks
            from evalgemma.benchmarks.smoke.tasks import suite_task_types

            return {n: present.get(n, t) for n, t in suite_task_types(spec.data).items()}
        if spec is not None and spec.kind == "mteb" and spec.benchmark:
            return _mteb_benchmark_tasks(spec.benchmark)
        if spec is not None and spec.kind == "tasks":
            names = spec.tasks
    if names is None:
        return dict(sorted(present.items()))
    return {n: present.get(n, _mteb_task_type(n)) for n in names}


def _suite_spec(suite: str) -> Any:
    try:
        from evalgemma.catalog.suites import builtin_suites
    except ImportError:
        return None
    try:
        return builtin_suites().get(suite)
    except Exception:  # a broken suite file elsewhere must not hide the leaderboard
        return None


def _mteb_benchmark_tasks(benchmark: str) -> dict[str, str]:
    import mteb

    try:
        bench = mteb.get_benchmark(benchmark)
    except Exception as exc:  # mteb raises KeyError/ValueError for unknown names
        raise ConfigError(f"suite benchmark {benchmark!r}: not known to mteb ({exc})") from exc
    return {t.metadata.name: t.metadata.type for t in bench.tasks}


def _mteb_task_type(name: str) -> str:
    try:
        import mteb

        return str(mteb.get_task(name).metadata.type)
    except Exception:  # not an mteb task (e.g. a local one): type unknown
        return "unknown"


def expected_subsets(suite: str, frame: pd.DataFrame | None = None, reference: pd.DataFrame | None = None) -> tuple[str, ...]:
    """The languages (hf_subsets) of an XTREME-UP suite: the suite file's list, else the reference's, else those present."""
    from evalgemma.benchmarks.suites import expected_cells

    expected = expected_cells(suite)  # a built-in suite or a suite file
    if expected:
        return tuple(dict.fromkeys(c.subset for e in expected.values() for c in e.cells))
    for source in (reference, frame):
        if source is not None and not source.empty:
            sub = source[(source["suite"] == suite) & (source["hf_subset"].fillna("") != "")]
            if not sub.empty:
                return tuple(dict.fromkeys(sub["hf_subset"]))
    return ()


# ---------------------------------------------------------------- tables


@dataclass(frozen=True)
class Cell:
    """One shown aggregate: a value (0-1) when complete, else the coverage ``k/n``."""

    value: float | None
    k: int
    n: int

    @property
    def complete(self) -> bool:
        return self.value is not None

    def text(self) -> str:
        """×100 with two decimals, or ``incomplete (k/n)``."""
        if self.value is None:
            return f"incomplete ({self.k}/{self.n})" if self.n else "–"
        return f"{100 * self.value:.2f}"


@dataclass(frozen=True)
class Row:
    """One variant's line of a leaderboard."""

    variant: str
    variant_key: str
    model: str
    dim: int
    quant: str
    kind: str
    mean_task: Cell
    mean_tasktype: Cell
    columns: dict[str, Cell]  # per task type (MTEB) or per language (XTREME-UP)
    published: bool = False  # means copied from a paper table, not computed from tasks
    deltas: dict[str, float | None] = field(default_factory=dict)
    cost: dict[str, str] = field(default_factory=dict)  # shown cost columns (``views.cost.with_cost``), "–" without a bench row
    cost_values: dict[str, object] = field(default_factory=dict)  # the same, unrounded, by bench column


@dataclass(frozen=True)
class Leaderboard:
    """A leaderboard for one suite."""

    suite: str
    kind: str  # "mteb" (per task type) or "subsets" (per language)
    expected: tuple[str, ...]  # expected tasks (or languages)
    compared: tuple[str, ...]  # tasks (or languages) the means are over
    column_names: tuple[str, ...]
    rows: tuple[Row, ...]
    baseline: str | None = None
    shared_tasks: bool = False
    notes: tuple[str, ...] = ()
    cost_columns: tuple[str, ...] = ()  # set by ``views.cost.with_cost`` (``leaderboard --cost``)

    def to_frame(self) -> pd.DataFrame:
        """Numeric table (0-1, unrounded; NaN where incomplete) with ``n_tasks``/``n_expected`` and Δ columns."""
        import pandas as pd

        recs = []
        for r in self.rows:
            rec: dict[str, object] = {
                "variant": r.variant, "variant_key": r.variant_key, "model": r.model, "dim": r.dim,
                "quant": r.quant, "kind": r.kind, "published": r.published,
                "n_tasks": r.mean_task.k, "n_expected": r.mean_task.n,
                "mean_task": _nan(r.mean_task.value), "mean_tasktype": _nan(r.mean_tasktype.value),
            }
            for name in self.column_names:
                rec[name] = _nan(r.columns[name].value)
            for name, d in r.deltas.items():
                rec[f"Δ {name}"] = _nan(d)
            if self.cost_columns:
                rec.update({col: (math.nan if v is None else v) for col, v in r.cost_values.items()})
            recs.append(rec)
        return pd.DataFrame(recs)

    def display_frame(self) -> pd.DataFrame:
        """Text table: scores ×100 with two decimals, ``incomplete (k/n)``, signed Δ columns."""
        import pandas as pd

        first = "Mean(Task)" if self.kind == "mteb" else "Mean"
        recs = []
        for r in self.rows:
            rec: dict[str, str] = {"Variant": r.variant, "Source": r.kind + (" (published means)" if r.published else ""), first: r.mean_task.text()}
            if self.kind == "mteb":
                rec["Mean(TaskType)"] = r.mean_tasktype.text()
            for name in self.column_names:
                rec[name] = r.columns[name].text()
            if self.baseline is not None:
                for name, d in r.deltas.items():
                    rec[f"Δ {name}"] = "–" if d is None else f"{100 * d:+.2f}"
            for name in self.cost_columns:
                rec[name] = r.cost.get(name, "–")
            recs.append(rec)
        return pd.DataFrame(recs)


def _nan(x: float | None) -> float:
    return math.nan if x is None else x


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


class VariantName(NamedTuple):
    """What a user can call a variant by: its label, its key; ``kind`` is ``run``, ``paper`` or ``mteb``."""

    label: str
    key: str
    kind: str


def match_variant(name: str, variants: Iterable[VariantName], *, where: str = "--baseline") -> VariantName | None:
    """The one variant ``name`` selects, or None when it selects none.

    ``name`` is a label or a key; failing that, a reference variant's label without its
    `` (paper)`` / `` (MTEB)`` suffix (``LABEL_SUFFIXES``), so ``embeddinggemma-300m · 768d``
    selects ``embeddinggemma-300m · 768d (paper)`` when the store has no run of that label.

    Raises:
        ConfigError: ``name`` selects several variants (the message lists them).
    """
    from evalgemma.catalog.reference import LABEL_SUFFIXES

    unique = list({v.key: v for v in variants}.values())
    exact = [v for v in unique if name in (v.label, v.key)]
    stripped = [v for v in unique if v.kind in LABEL_SUFFIXES and v.label == name + LABEL_SUFFIXES[v.kind]]
    for found in (exact, stripped):
        if len(found) == 1:
            return found[0]
        if found:
            shown = ", ".join(f"{v.label!r} ({v.key})" for v in sorted(found))
            raise ConfigError(f"{where}: {name!r} matches {len(found)} variants: {shown}; give one of these labels or keys")
    return None


def find_row(rows: Sequence[Row], name: str, *, where: str = "--baseline") -> Row:
    """The leaderboard row ``name`` selects (see ``match_variant``).

    Raises:
        ConfigError: no row matches (with close matches and the valid names), or several do.
    """
    from evalgemma.catalog.reference import LABEL_SUFFIXES

    names = [VariantName(r.variant, r.variant_key, r.kind) for r in rows]
    hit = match_variant(name, names, where=where)
    if hit is None:
        short = [v.label.removesuffix(LABEL_SUFFIXES[v.kind]) for v in names if v.kind in LABEL_SUFFIXES]
        raise unknown_name("variant", name, [v.label for v in names] + short + [v.key for v in names], where=where)
    return next(r for r in rows if r.variant_key == hit.key)


def _with_deltas(rows: tuple[Row, ...], baseline: str | None, names: Sequence[str]) -> tuple[Row, ...]:
    if baseline is None:
        return rows
    base = find_row(rows, baseline)
    out = []
    for r in rows:
        deltas: dict[str, float | None] = {}
        pairs = [("Mean(Task)", r.mean_task, base.mean_task), ("Mean(TaskType)", r.mean_tasktype, base.mean_tasktype)]
        pairs += [(n, r.columns[n], base.columns[n]) for n in names]
        for name, a, b in pairs:
            deltas[name] = None if a.value is None or b.value is None else a.value - b.value
        out.append(Row(**{**r.__dict__, "deltas": deltas}))
    return tuple(out)


def _sort(rows: list[Row]) -> tuple[Row, ...]:
    # rounded to 10 decimals so that float noise (0.6+0.3 vs 0.4+0.5) does not break ties by label
    return tuple(sorted(rows, key=lambda r: (not r.mean_task.complete, -round(r.mean_task.value or 0.0, 10), -r.mean_task.k, r.variant)))


def _suite_frame(frame: pd.DataFrame | None, reference: Reference | None, suite: str) -> pd.DataFrame:
    """Store rows (every suite: a cell counts for each suite that expects it) and the suite's reference rows."""
    import pandas as pd

    parts = []
    if frame is not None and not frame.empty:
        parts.append(_with_defaults(frame))
    if reference is not None and not reference.rows.empty:
        parts.append(reference.rows[reference.rows["suite"] == suite])
    if not parts:
        columns = ["variant_key", "variant", "suite", "task", "task_type", "hf_subset", "split", "metric", "value", "is_main", "main_score"]
        return _with_defaults(pd.DataFrame(columns=columns))
    return pd.concat(parts, ignore_index=True)


def suites_in(frame: pd.DataFrame) -> tuple[str, ...]:
    """The suites that have rows in ``frame``, sorted."""
    if frame.empty or "suite" not in frame.columns:
        return ()
    return tuple(sorted(s for s in frame["suite"].dropna().unique() if s))


def build_leaderboard(
    frame: pd.DataFrame | None,
    suite: str,
    *,
    reference: Reference | None = None,
    expected: dict[str, str] | None = None,
    shared_tasks: bool = False,
    baseline: str | None = None,
) -> Leaderboard:
    """An MTEB-style leaderboard (Mean(Task), Mean(TaskType), per-type means) for one suite.

    Args:
        frame: store rows (``evalgemma.load_results``), or None.
        suite: the suite name (rows are selected by their ``suite`` column).
        reference: reference rows and published means to show alongside (see ``evalgemma.catalog.reference``).
        expected: task -> task type; default ``expected_tasks(suite, rows)``.
        shared_tasks: compare only on the tasks every shown variant has (published-only rows,
            which have no per-task scores, are then left out).
        baseline: a variant label or key; adds Δ columns (row − baseline), per type and overall.

    Raises:
        ConfigError: unknown baseline.
        DataError: no rows for the suite, or no task shared by all variants with ``shared_tasks``.
    """
    rows_frame = _suite_frame(frame, reference, suite)
    ts = task_scores(rows_frame, suite)
    expected = expected_tasks(suite, rows_frame[rows_frame["suite"] == suite]) if expected is None else dict(expected)
    for t, tt in zip(ts["task"], ts["task_type"], strict=True):
        if not expected or t not in expected:
            continue
        if expected[t] == "unknown":
            expected[t] = tt
    notes: list[str] = []
    extra = sorted(set(ts["task"]) - set(expected))
    if extra and expected:
        notes.append(f"ignored {len(extra)} task(s) not in suite {suite}: {', '.join(extra[:8])}" + (" …" if len(extra) > 8 else ""))
    ts = ts[ts["task"].isin(list(expected))]
    by_variant = {k: g for k, g in ts.groupby("variant_key", sort=False)}
    published = _published(reference, suite, set(by_variant))
    if not by_variant and not published:
        raise DataError(f"suite {suite!r}: no results (no store rows and no reference rows for it)")
    compared = tuple(expected)
    if shared_tasks:
        sets = [set(g["task"]) for g in by_variant.values()]
        shared = set.intersection(*sets) if sets else set()
        compared = tuple(t for t in expected if t in shared)
        if not compared:
            raise DataError(f"--shared-tasks: no task of suite {suite!r} is shared by every shown variant")
        notes.append(
            f"--shared-tasks: compared on {len(compared)} of {len(expected)} tasks that every shown variant has; "
            "means are not comparable with published full-suite means"
        )
        if published:
            notes.append(f"--shared-tasks: left out {len(published)} variant(s) with published means only (no per-task scores)")
            published = []
    types = tuple(dict.fromkeys(expected[t] for t in compared))
    type_tasks = {tt: [t for t in compared if expected[t] == tt] for tt in types}
    out: list[Row] = []
    for key, g in by_variant.items():
        scores = {t: v for t, v, ok in zip(g["task"], g["main_score"], g["complete"], strict=True) if ok}
        have = [t for t in compared if t in scores]
        label = str(g["variant"].iloc[0])
        cover = zip(g["task"], g["n_cells"], g["n_expected"], g["complete"], strict=True)
        partial = [f"{t} ({c}/{n} cells)" for t, c, n, ok in cover if not ok and t in compared]
        absent = [t for t in compared if t not in set(g["task"])]
        if partial:
            notes.append(f"{label}: incomplete task(s) {', '.join(partial[:6])}{' …' if len(partial) > 6 else ''}")
        if absent and len(absent) < len(compared):
            notes.append(f"{label}: missing task(s) {', '.join(absent[:6])}{f' … ({len(absent)} in all)' if len(absent) > 6 else ''}")
        complete = len(have) == len(compared)
        cols: dict[str, Cell] = {}
        for tt, tasks in type_tasks.items():
            got = [scores[t] for t in tasks if t in scores]
            cols[tt] = Cell(_mean(got) if len(got) == len(tasks) else None, len(got), len(tasks))
        mean_task = Cell(_mean([scores[t] for t in compared]) if complete else None, len(have), len(compared))
        mean_type = Cell(_mean([c.value for c in cols.values() if c.value is not None]) if complete else None, len(have), len(compared))
        first = g.iloc[0]
        out.append(Row(str(first["variant"]), str(key), str(first["model"]), int(first["dim"] or 0), str(first["quant"] or "none"),
                       str(first["kind"]), mean_task, mean_type, cols))
    n = len(compared)
    for p in published:
        # a type the paper table does not give shows "–" (Cell with n = 0), not a coverage count
        cols = {tt: Cell(p["types"][tt], len(type_tasks[tt]), len(type_tasks[tt])) if tt in p["types"] else Cell(None, 0, 0) for tt in types}
        mt = p["mean_task"]
        out.append(Row(p["variant"], p["variant_key"], p["model"], p["dim"], p["quant"], "paper",
                       Cell(mt, n if mt is not None else 0, n), Cell(p["mean_tasktype"], n if p["mean_tasktype"] is not None else 0, n),
                       cols, published=True))
    if published:
        notes.append("rows marked 'published means' copy the paper's rounded means (no per-task scores)")
    rows = _with_deltas(_sort(out), baseline, types)
    if baseline is not None:
        notes.append(f"Δ = row − baseline {baseline!r} (×100)")
    return Leaderboard(suite, "mteb", tuple(expected), compared, types, rows, baseline, shared_tasks, tuple(notes))


def _published(reference: Reference | None, suite: str, have: set[str]) -> list[dict]:  # type: ignore[type-arg]
    """Variants whose only reference data for ``suite`` are published means."""
    if reference is None or reference.aggregates.empty:
        return []
    agg = reference.aggregates[reference.aggregates["suite"] == suite]
    out = []
    for key, g in agg.groupby("variant_key", sort=False):
        if key in have:
            continue
        vals = {a: v for a, v in zip(g["statistic"], g["value"], strict=True) if a in ("mean_task", "mean_tasktype")}
        if "mean_task" not in vals:
            continue
        types = {t: v for a, t, v in zip(g["statistic"], g["task_type"], g["value"], strict=True) if a == "type_mean"}
        first = g.iloc[0]
        mean_type = vals.get("mean_tasktype")
        if mean_type is None and suite == "mteb-code-v1":
            mean_type = vals["mean_task"]  # one task type: Mean(TaskType) = Mean(Task)
        out.append({"variant": str(first["variant"]), "variant_key": str(key), "model": str(first["model"]), "dim": int(first["dim"] or 0),
                    "quant": str(first["quant"] or "none"), "mean_task": vals["mean_task"], "mean_tasktype": mean_type, "types": types})
    return out


def build_subset_table(
    frame: pd.DataFrame | None,
    suite: str = "xtreme-up",
    *,
    reference: Reference | None = None,
    subsets: Sequence[str] | None = None,
    metric: str = XTREME_METRIC,
    baseline: str | None = None,
) -> Leaderboard:
    """Per-language scores (e.g. XTREME-UP MRR@10) and their unweighted mean, per variant.

    Args:
        frame: store rows, or None.
        suite: the suite whose rows to use.
        reference: reference rows to show alongside.
        subsets: expected languages; default ``expected_subsets(suite)``.
        metric: the per-language metric.
        baseline: variant label or key for Δ columns.

    Raises:
        DataError: no rows of ``metric`` for the suite.
    """
    rows_frame = _subset_rows(_suite_frame(frame, reference, suite), suite)
    rows_frame = rows_frame[(rows_frame["metric"] == metric) & (rows_frame["hf_subset"].fillna("") != "")]
    if rows_frame.empty:
        raise DataError(f"suite {suite!r}: no per-language {metric} rows (no store rows and no reference rows for it)")
    langs = tuple(subsets) if subsets else expected_subsets(suite, rows_frame, reference.rows if reference is not None else None)
    notes = []
    extra = sorted(set(rows_frame["hf_subset"]) - set(langs))
    if extra:
        notes.append(f"ignored {len(extra)} language(s) not in suite {suite}: {', '.join(extra[:10])}" + (" …" if len(extra) > 10 else ""))
    out = []
    for key, g in rows_frame.groupby("variant_key", sort=False):
        if "task_version" in g.columns and "finished_at" in g.columns and (g["kind"] == "run").all():
            g = g.sort_values("finished_at")
            g = g[g["task_version"] == g["task_version"].iloc[-1]]  # one data version: the newest run's
        g = g.drop_duplicates(["task", "split", "hf_subset"], keep="last")
        vals = dict(zip(g["hf_subset"], g["value"], strict=False))
        if g["task"].nunique() > 1:
            notes.append(f"{g['variant'].iloc[0]}: several tasks in suite {suite}: {sorted(g['task'].unique())}")
        cols = {lang: Cell(float(vals[lang]), 1, 1) if lang in vals else Cell(None, 0, 0) for lang in langs}  # missing: "–"
        have = [lang for lang in langs if lang in vals]
        complete = len(have) == len(langs)
        mean = Cell(_mean([float(vals[lang]) for lang in langs]) if complete else None, len(have), len(langs))
        first = g.iloc[0]
        out.append(Row(str(first["variant"]), str(key), str(first["model"]), int(first["dim"] or 0), str(first["quant"] or "none"),
                       str(first["kind"]), mean, mean, cols))
    rows = _with_deltas(_sort(out), baseline, langs)
    if baseline is not None:
        notes.append(f"Δ = row − baseline {baseline!r} (×100)")
    return Leaderboard(suite, "subsets", langs, langs, langs, rows, baseline, False, tuple(notes))


def _subset_rows(rows: pd.DataFrame, suite: str) -> pd.DataFrame:
    """Store rows of the suite's task and split (from any suite's runs: languages are shared cells), and its reference rows."""
    from evalgemma.benchmarks.suites import expected_cells

    expected = expected_cells(suite)
    run = rows["kind"] == "run"
    if expected is None:
        return rows[(~run) | (rows["suite"] == suite)]
    splits = {c.split for e in expected.values() for c in e.cells}
    mine = run & rows["task"].isin(list(expected)) & rows["split"].isin(list(splits))
    return rows[(~run) | mine]


def is_subset_suite(suite: str, frame: pd.DataFrame | None = None) -> bool:
    """Whether a suite is shown per language (XTREME-UP-like) rather than per task type."""
    spec = _suite_spec(suite)
    if spec is not None:
        return getattr(spec, "kind", "") == "xtreme-up"
    return suite.startswith("xtreme-up") or suite == "xor-retrieve"
