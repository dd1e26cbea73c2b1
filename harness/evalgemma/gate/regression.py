"""The CI regression gate: a store's newest runs against a baseline (or published scores) → verdicts.

A *baseline* is one Parquet file with exactly the store's columns (``schema.arrow_schema()``):
the rows ``load_results(store)`` returned when it was accepted (newest run per unit). Baselines
change only on purpose (``accept_baseline`` refuses to overwrite without ``force``).

Comparison happens on each task's ``main_score`` (mteb's aggregated main score) and on each
suite's Mean(Task), in **score points** (0-100). Rules, all stated once here:

* **Variant matching.** A current variant matches the baseline variant with the same
  ``variant_key``. A baseline variant whose key is absent from the store then matches the current
  variant with the same readable ``variant`` label, when that label is unique among the unmatched
  variants on both sides (e.g. a baseline accepted on another machine or before an identity-field
  change); such matches are reported as notes.
* **Verdicts.** ``delta = current - baseline`` in points. ``regression`` when
  ``-delta > tolerance + EPS``, ``improvement`` when ``delta > tolerance + EPS``, else ``ok``.
  ``EPS = 1e-9`` points absorbs float rounding of the 0-1 → 0-100 conversion, so a drop of
  exactly the tolerance passes and one of tolerance + 0.01 fails. ``missing``: a baseline task
  without a current score (fails unless ``allow_missing``); ``new``: a current task or variant
  the baseline does not have (never fails).
* **Suite means.** For each matched variant and each suite of its baseline tasks, the mean of
  the task scores over the tasks scored on *both* sides (so both means cover the same tasks; the
  row says ``k/n`` when some are missing).
* **Tolerances.** Per task, else per task type, else the default (``load_tolerances``); suite
  means use ``[suites]`` entries, else the default.

``compare_reference`` runs the same comparison against published per-task scores (a
reproduction check); there a deviation beyond the tolerance in *either* direction fails.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evalgemma.catalog.reference import ReferenceKind
from evalgemma.errors import ConfigError, DataError, StoreError, unknown_name
from evalgemma.io import atomic_write
from evalgemma.store.schema import COLUMN_NAMES, SCHEMA_VERSION, upgrade_v1, v1_arrow_schema

if TYPE_CHECKING:
    import pandas as pd

#: Slack (in score points) added to every tolerance so float rounding never flips a verdict.
EPS = 1e-9

#: Tolerance (points) when neither ``--tolerance`` nor a tolerances file's ``default`` is given.
DEFAULT_TOLERANCE = 0.5

Verdict = Literal["ok", "regression", "improvement", "missing", "new", "warning"]
RowKind = Literal["task", "suite_mean"]
Mode = Literal["baseline", "reference"]
#: The published sources ``check --reference`` compares with (one at a time).
CHECK_REFERENCES: tuple[ReferenceKind, ...] = (ReferenceKind.PAPER, ReferenceKind.MTEB, ReferenceKind.MTEB_ALL)

#: Key in the Parquet metadata of a baseline file describing how it was accepted.
BASELINE_META_KEY = b"evalgemma_baseline"

# --------------------------------------------------------------------------- tolerances

_Points = Annotated[float, Field(ge=0.0, allow_inf_nan=False, strict=True)]


class TolerancesFile(BaseModel):
    """The TOML tolerances file (closed: unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default: _Points | None = None
    tasks: dict[str, _Points] = Field(default_factory=dict)
    task_types: dict[str, _Points] = Field(default_factory=dict)
    suites: dict[str, _Points] = Field(default_factory=dict)


@dataclass(frozen=True)
class Tolerances:
    """Allowed drops in score points (0-100 scale).

    Lookup order for a task: ``tasks[task]``, then ``task_types[task_type]``, then ``default``.
    Suite means use ``suites[suite]``, then ``default``.
    """

    default: float = DEFAULT_TOLERANCE
    tasks: Mapping[str, float] = field(default_factory=dict)
    task_types: Mapping[str, float] = field(default_factory=dict)
    suites: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("tasks", "task_types", "suites"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))
        values = [self.default, *self.tasks.values(), *self.task_types.values(), *self.suites.values()]
        if any(not math.isfinite(v) or v < 0 for v in values):
            raise ConfigError(f"tolerances must be finite and >= 0 score points, got {values}")

    def for_task(self, task: str, task_type: str) -> float:
        """The tolerance of one task."""
        if task in self.tasks:
            return self.tasks[task]
        if task_type in self.task_types:
            return self.task_types[task_type]
        return self.default

    def for_suite(self, suite: str) -> float:
        """The tolerance of one suite's Mean(Task)."""
        return self.suites.get(suite, self.default)

    def names(self) -> dict[str, set[str]]:
        """The task, task-type and suite names that have their own entry."""
        return {"tasks": set(self.tasks), "task_types": set(self.task_types), "suites": set(self.suites)}


def load_tolerances(path: Path | str | None, default: float | None = None) -> Tolerances:
    """Build the tolerances from an optional TOML file and a global default.

    Args:
        path: a TOML file with optional ``default = <points>`` and tables ``[tasks]``,
            ``[task_types]`` and ``[suites]`` mapping names to points; ``None`` for none.
        default: the global tolerance (``--tolerance``); ``None`` means the file's ``default``
            or else ``DEFAULT_TOLERANCE``. Giving both this and a file ``default`` is an error,
            so a CI flag can never silently override (or be overridden by) the file.

    Raises:
        ConfigError: unreadable or invalid TOML, unknown keys, non-numeric or negative values,
            or a default given twice.
    """
    if default is not None and (not math.isfinite(default) or default < 0):
        raise ConfigError(f"--tolerance {default}: must be a finite number of score points >= 0")
    if path is None:
        return Tolerances(default=DEFAULT_TOLERANCE if default is None else default)
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--tolerances {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--tolerances {path}: unreadable ({exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--tolerances {path}: invalid TOML ({exc})") from exc
    try:
        spec = TolerancesFile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(
            f"--tolerances {path}: {problems}. Valid keys: default, [tasks], [task_types], [suites] (values in score points)"
        ) from None
    if spec.default is not None and default is not None:
        raise ConfigError(f"--tolerances {path} sets default = {spec.default} and --tolerance {default} was given; keep one")
    resolved = spec.default if spec.default is not None else (DEFAULT_TOLERANCE if default is None else default)
    return Tolerances(default=resolved, tasks=spec.tasks, task_types=spec.task_types, suites=spec.suites)


# --------------------------------------------------------------------------- report


@dataclass(frozen=True)
class CheckRow:
    """One compared (variant, task) or (variant, suite mean). Scores and deltas are in points."""

    variant: str
    variant_key: str
    task: str
    kind: RowKind
    suite: str
    task_type: str
    baseline: float | None
    current: float | None
    delta: float | None
    tolerance: float
    verdict: Verdict
    message: str


@dataclass(frozen=True)
class CheckReport:
    """The verdicts of one check.

    Attributes:
        rows: every compared row, sorted by variant, suite, kind (tasks first) and task.
        mode: ``"baseline"`` or ``"reference"``.
        allow_missing: whether ``missing`` rows are skipped rather than failures.
        two_sided: whether an ``improvement`` beyond the tolerance also fails (reference mode).
        notes: facts about how the comparison was made (label matches, devices, coverage).
    """

    rows: tuple[CheckRow, ...]
    mode: Mode = "baseline"
    allow_missing: bool = False
    two_sided: bool = False
    notes: tuple[str, ...] = ()

    def with_verdict(self, verdict: Verdict) -> tuple[CheckRow, ...]:
        """The rows with one verdict."""
        return tuple(r for r in self.rows if r.verdict == verdict)

    def is_failure(self, row: CheckRow) -> bool:
        """Whether a row makes the check fail."""
        if row.verdict == "regression":
            return True
        if row.verdict == "improvement":
            return self.two_sided
        if row.verdict == "missing":
            return not self.allow_missing
        return False

    def is_skipped(self, row: CheckRow) -> bool:
        """Whether a row was not compared and does not fail (allowed missing, or new)."""
        return row.verdict == "new" or (row.verdict == "missing" and self.allow_missing)

    @property
    def failures(self) -> tuple[CheckRow, ...]:
        """The rows that make the check fail."""
        return tuple(r for r in self.rows if self.is_failure(r))

    @property
    def passed(self) -> bool:
        """True when no row fails."""
        return not self.failures

    def summary(self) -> str:
        """One line: counts per verdict and the outcome."""
        counts = {v: len(self.with_verdict(v)) for v in get_args(Verdict)}
        parts = [f"{n} {v}" for v, n in counts.items() if n]
        outcome = "PASS" if self.passed else f"FAIL ({len(self.failures)} failing)"
        return f"{outcome}: {len(self.rows)} rows, " + (", ".join(parts) or "nothing compared")


# --------------------------------------------------------------------------- unit scores


@dataclass(frozen=True)
class _Unit:
    variant_key: str
    variant: str
    model: str
    task: str
    task_type: str
    suite: str
    score: float  # 0-1, NaN when the unit has no usable main score
    device: str
    dtype: str
    dim: int = 0
    coverage: str = ""  # "incomplete (k/n cells)" when the task has no score for missing cells


def _unit_scores(frame: pd.DataFrame) -> list[_Unit]:
    """One score per (variant, suite, task), computed from cells (``evalgemma.views.scores``): a task
    with missing cells has no score (NaN) and says so in ``coverage``."""
    from evalgemma.views.scores import task_scores

    if frame.empty:
        return []
    units: list[_Unit] = []
    firsts = frame.drop_duplicates(["variant_key"]).set_index("variant_key")
    for suite in sorted(s for s in frame["suite"].dropna().unique() if s):
        ts = task_scores(frame, str(suite))
        # gate the tasks runs of this suite evaluated (cells stored by other suites still count for them)
        ran = set(zip(frame.loc[frame["suite"] == suite, "variant_key"], frame.loc[frame["suite"] == suite, "task"], strict=True))
        ts = ts[[(k, t) in ran for k, t in zip(ts["variant_key"], ts["task"], strict=True)]]
        for r in ts.sort_values(["variant_key", "task"]).to_dict("records"):
            first = firsts.loc[r["variant_key"]]
            coverage = "" if r["complete"] else f"incomplete ({r['n_cells']}/{r['n_expected']} cells)"
            units.append(
                _Unit(
                    variant_key=str(r["variant_key"]), variant=str(r["variant"]), model=str(r["model"]), task=str(r["task"]),
                    task_type=str(r["task_type"]), suite=str(suite), score=float(r["main_score"]),
                    device=str(first["device"]), dtype=str(first["dtype"]), dim=int(first["dim"]), coverage=coverage,
                )
            )
    return units


def _match_variants(base: Mapping[str, str], cur: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """Map baseline variant keys to current keys (same key, else a unique equal label).

    Args:
        base: baseline ``variant_key -> variant`` label.
        cur: current ``variant_key -> variant`` label.

    Returns:
        ``(matches, notes)``: baseline key → current key, and one note per label match.
    """
    matches = {k: k for k in base if k in cur}
    open_base = [k for k in base if k not in matches]
    open_cur = [k for k in cur if k not in matches.values()]
    notes = []
    for bkey in open_base:
        label = base[bkey]
        same_base = [k for k in open_base if base[k] == label]
        same_cur = [k for k in open_cur if cur[k] == label]
        if len(same_base) == 1 and len(same_cur) == 1:
            matches[bkey] = same_cur[0]
            notes.append(
                f"variant {label!r}: matched by label, keys differ (baseline {bkey}, store {same_cur[0]}); "
                "an identity field changed or the baseline comes from another setup"
            )
    return matches, notes


def _points(x: float) -> float:
    return x * 100.0


def _verdict(delta: float, tolerance: float) -> Verdict:
    if -delta > tolerance + EPS:
        return "regression"
    if delta > tolerance + EPS:
        return "improvement"
    return "ok"


def _scored_row(
    *, variant: str, variant_key: str, task: str, kind: RowKind, suite: str, task_type: str,
    base: float, cur: float, tolerance: float, what: str, extra: str = "",
) -> CheckRow:
    delta = cur - base
    verdict = _verdict(delta, tolerance)
    sign = "+" if delta >= 0 else "−"
    text = {
        "ok": f"within tolerance ({sign}{abs(delta):.2f} points, tolerance {tolerance:g})",
        "regression": f"dropped {abs(delta):.2f} points below {what} (tolerance {tolerance:g})",
        "improvement": f"rose {delta:.2f} points above {what} (tolerance {tolerance:g})",
    }[verdict]
    return CheckRow(variant, variant_key, task, kind, suite, task_type, base, cur, delta, tolerance, verdict, text + extra)


def _suite_label(suite: str) -> str:
    return f"mean({suite or 'no suite'})"


def _compare_units(
    base_units: list[_Unit],
    cur_units: list[_Unit],
    matches: Mapping[str, str],
    tolerances: Tolerances,
    *,
    what: str,
    report_missing_and_new: bool,
) -> tuple[list[CheckRow], list[str]]:
    notes: list[str] = []
    cur_by = {(u.variant_key, u.task): u for u in cur_units}
    base_by_variant: dict[str, list[_Unit]] = {}
    for u in base_units:
        base_by_variant.setdefault(u.variant_key, []).append(u)
    rows: list[CheckRow] = []
    for bkey, bunits in sorted(base_by_variant.items()):
        ckey = matches.get(bkey)
        suites: dict[str, list[tuple[float, float | None]]] = {}
        for b in sorted(bunits, key=lambda u: u.task):
            c = cur_by.get((ckey, b.task)) if ckey is not None else None
            label = c.variant if c is not None else b.variant
            vkey = c.variant_key if c is not None else b.variant_key
            tol = tolerances.for_task(b.task, b.task_type)
            base_pts = _points(b.score)
            if math.isnan(b.score):
                # a baseline without a score cannot gate anything; say so instead of passing silently
                notes.append(f"{b.variant}/{b.task}: the {what} has no main score (NaN); not compared")
                continue
            if c is None or math.isnan(c.score):
                suites.setdefault(b.suite, []).append((base_pts, None))
                if report_missing_and_new:
                    why = "variant absent from the store" if ckey is None else (
                        "task absent from the store" if c is None else (c.coverage or "no main score in the store (NaN)"))
                    rows.append(CheckRow(label, vkey, b.task, "task", b.suite, b.task_type, base_pts, None, None, tol,
                                         "missing", f"in {what}, {why}"))
                continue
            cur_pts = _points(c.score)
            suites.setdefault(b.suite, []).append((base_pts, cur_pts))
            rows.append(_scored_row(variant=label, variant_key=vkey, task=b.task, kind="task", suite=b.suite,
                                    task_type=b.task_type, base=base_pts, cur=cur_pts, tolerance=tol, what=what))
        label = next((cur_by[(ckey, u.task)].variant for u in bunits if ckey is not None and (ckey, u.task) in cur_by), bunits[0].variant)
        vkey = ckey if ckey is not None else bkey
        for suite, pairs in sorted(suites.items()):
            tol = tolerances.for_suite(suite)
            both = [(b, c) for b, c in pairs if c is not None]
            if not both:
                if report_missing_and_new:
                    rows.append(CheckRow(label, vkey, _suite_label(suite), "suite_mean", suite, "", sum(b for b, _ in pairs) / len(pairs),
                                         None, None, tol, "missing", f"no task of this suite has a current score (0/{len(pairs)} tasks)"))
                continue
            base_mean = math.fsum(b for b, _ in both) / len(both)
            cur_mean = math.fsum(c for _, c in both if c is not None) / len(both)
            n = f"{len(both)}/{len(pairs)} tasks scored on both sides" if len(both) < len(pairs) else f"{len(both)} task{'s' if len(both) > 1 else ''}"
            cover = f" — mean over {n}"
            rows.append(_scored_row(variant=label, variant_key=vkey, task=_suite_label(suite), kind="suite_mean", suite=suite,
                                    task_type="", base=base_mean, cur=cur_mean, tolerance=tol, what=what, extra=cover))
    if report_missing_and_new:
        matched_cur = set(matches.values())
        base_tasks = {(matches[u.variant_key], u.task) for u in base_units if u.variant_key in matches}
        for c in cur_units:
            if (c.variant_key, c.task) in base_tasks:
                continue
            why = "task not in the baseline" if c.variant_key in matched_cur else "variant not in the baseline"
            new_pts = None if math.isnan(c.score) else _points(c.score)
            rows.append(CheckRow(c.variant, c.variant_key, c.task, "task", c.suite, c.task_type, None, new_pts, None,
                                 tolerances.for_task(c.task, c.task_type), "new",
                                 f"{why}; run `evalgemma baseline accept --force` to gate it"))
    return rows, notes


def _sorted(rows: Iterable[CheckRow]) -> tuple[CheckRow, ...]:
    return tuple(sorted(rows, key=lambda r: (r.variant, r.variant_key, r.suite, r.kind != "task", r.task)))


def _device_notes(base_units: list[_Unit], cur_units: list[_Unit], matches: Mapping[str, str]) -> list[str]:
    notes = []
    for bkey, ckey in sorted(matches.items()):
        for attr in ("device", "dtype"):
            bvals = {getattr(u, attr) for u in base_units if u.variant_key == bkey} - {""}
            cvals = {getattr(u, attr) for u in cur_units if u.variant_key == ckey} - {""}
            if bvals and cvals and bvals != cvals:
                label = next(u.variant for u in cur_units if u.variant_key == ckey)
                notes.append(
                    f"variant {label!r}: baseline {attr} {sorted(bvals)} vs store {sorted(cvals)}; "
                    "scores move with hardware and dtype, so compare like with like (R10)"
                )
    return notes


def _unused_tolerance_notes(tolerances: Tolerances, units: list[_Unit]) -> list[str]:
    seen = {"tasks": {u.task for u in units}, "task_types": {u.task_type for u in units}, "suites": {u.suite for u in units}}
    notes = []
    for table, names in tolerances.names().items():
        for name in sorted(names - seen[table]):
            notes.append(f"tolerances [{table}] {name!r} matches nothing compared (typo?)")
    return notes


def _explicit_pairs(
    pairs: Mapping[str, str], base: Mapping[str, str], cur: Mapping[str, str]
) -> tuple[dict[str, str], list[str]]:
    """Resolve ``{current label|key: baseline label|key}`` to baseline key → current key.

    Raises:
        ConfigError: a name matches no variant, or a label matches several.
    """
    from evalgemma.errors import ConfigError

    def one(name: str, side: Mapping[str, str], what: str) -> str:
        if name in side:
            return name
        keys = [k for k, label in side.items() if label == name]
        if not keys:
            raise unknown_name(f"{what} variant", name, [*side.values(), *side], where="--pair")
        if len(keys) > 1:
            raise ConfigError(f"--pair: {len(keys)} {what} variants are named {name!r} (keys {', '.join(sorted(keys))}); give a key")
        return keys[0]

    out: dict[str, str] = {}
    notes = []
    for cur_name, base_name in pairs.items():
        bkey, ckey = one(base_name, base, "baseline"), one(cur_name, cur, "store")
        out[bkey] = ckey
        notes.append(f"--pair: store variant {cur[ckey]!r} compared with baseline variant {base[bkey]!r}")
    return out, notes


def compare(
    current: pd.DataFrame,
    baseline: pd.DataFrame,
    tolerances: Tolerances,
    allow_missing: bool = False,
    pairs: Mapping[str, str] | None = None,
    significance: Significance | None = None,
) -> CheckReport:
    """Compare the current results with a baseline, per task and per suite mean.

    Args:
        current: store rows, newest run per unit (``load_results``).
        baseline: baseline rows (``load_baseline``); same columns.
        tolerances: allowed drops in points.
        allow_missing: baseline tasks absent from ``current`` are skipped instead of failing.
        pairs: explicit ``{store variant: baseline variant}`` (labels or keys) to compare a
            candidate (say a quantized or truncated export) with the accepted float baseline;
            other variants are matched as usual.
        significance: per-sample scores of both sides; a drop beyond tolerance then fails only
            when the paired test (``evalgemma.views.compare.task_test``) says ``worse``, and is a
            ``warning`` row otherwise (a task without samples still fails).

    Returns:
        The report; ``report.passed`` is the gate's outcome. Pure: nothing is read or written.
    """
    base_units = _unit_scores(baseline)
    cur_units = _unit_scores(current)
    base_labels = {u.variant_key: u.variant for u in base_units}
    cur_labels = {u.variant_key: u.variant for u in cur_units}
    explicit, notes = _explicit_pairs(pairs or {}, base_labels, cur_labels)
    matches, more_notes = _match_variants(
        {k: v for k, v in base_labels.items() if k not in explicit},
        {k: v for k, v in cur_labels.items() if k not in explicit.values()},
    )
    matches.update(explicit)
    notes += more_notes
    rows, more = _compare_units(base_units, cur_units, matches, tolerances, what="baseline", report_missing_and_new=True)
    notes += more
    if significance is not None:
        rows = _with_significance(rows, {c: b for b, c in matches.items()}, current, baseline, significance)
        notes.append(f"--significance: a drop beyond tolerance fails only when the paired test finds it significant "
                     f"({significance.n_resamples} resamples, seed {significance.seed}, alpha {significance.alpha:g})")
    notes += _device_notes(base_units, cur_units, matches)
    notes += _unused_tolerance_notes(tolerances, base_units + cur_units)
    return CheckReport(rows=_sorted(rows), mode="baseline", allow_missing=allow_missing, two_sided=False, notes=tuple(notes))


@dataclass(frozen=True)
class Significance:
    """What ``check --significance`` needs: both sides' per-sample scores and the resampling settings."""

    current_samples: pd.DataFrame
    baseline_samples: pd.DataFrame
    n_resamples: int = 2000
    seed: int = 0
    alpha: float = 0.05


def _with_significance(rows: list[CheckRow], base_of: Mapping[str, str], current: pd.DataFrame, baseline: pd.DataFrame,
                       sig: Significance) -> list[CheckRow]:
    """Regression rows the paired test does not find significant become ``warning`` rows."""
    from dataclasses import replace

    from evalgemma.views.compare import group_samples, score_cells, task_test
    from evalgemma.views.significance import PairedResult, mean_test

    cur_by, base_by = group_samples(sig.current_samples), group_samples(sig.baseline_samples)
    cache: dict[tuple[str, str, str], PairedResult] = {}

    def task_result(r: CheckRow, bkey: str, task: str) -> PairedResult:
        key = (r.variant_key, r.suite, task)
        if key not in cache:
            cells = score_cells(baseline, r.suite, bkey, task)
            cache[key] = task_test(cur_by.get((r.variant_key, task)), base_by.get((bkey, task)), cells,
                                   n_resamples=sig.n_resamples, seed=sig.seed, alpha=sig.alpha)
        return cache[key]

    out: list[CheckRow] = []
    for r in rows:
        if r.verdict != "regression" or r.variant_key not in base_of:
            out.append(r)
            continue
        bkey = base_of[r.variant_key]
        if r.kind == "task":
            res = task_result(r, bkey, r.task)
        else:
            scored = [x for x in rows if x.kind == "task" and x.suite == r.suite and x.variant_key == r.variant_key and x.delta is not None]
            if len(scored) == 1:  # a mean over one task is that task: its paired test decides
                res = task_result(r, bkey, scored[0].task)
            else:
                res = mean_test([x.delta for x in scored if x.delta is not None], n_resamples=sig.n_resamples, seed=sig.seed, alpha=sig.alpha)
        test = f"paired test: {100 * (1 - sig.alpha):g} % CI [{res.ci_low:+.2f}, {res.ci_high:+.2f}], p = {res.p_value:.4f}"
        if res.verdict == "worse":
            out.append(replace(r, message=f"{r.message}; significant ({test})"))
        elif res.verdict == "n/a":
            out.append(replace(r, message=f"{r.message}; significance unknown ({res.reason}), so it fails as without --significance"))
        else:
            out.append(replace(r, verdict="warning", message=f"{r.message}, but not significant ({test}); not failed"))
    return out


def baseline_samples_path(baseline: Path | str) -> Path:
    """Where ``baseline accept`` keeps the baseline's per-sample scores: ``<stem>.samples.parquet`` beside it."""
    baseline = Path(baseline)
    return baseline.with_name(baseline.stem + ".samples.parquet")


def load_baseline_samples(baseline: Path | str) -> pd.DataFrame:
    """The per-sample scores accepted with a baseline.

    Raises:
        DataError: the samples file is missing (the baseline was accepted before samples existed).
        StoreError: it is unreadable.
    """
    from evalgemma.store.samples import read_samples_file

    path = baseline_samples_path(baseline)
    if not path.is_file():
        raise DataError(f"--significance: {path} is missing (the baseline's per-sample scores); re-accept the baseline with "
                        f"`evalgemma baseline accept --store S --out {baseline} --force` from a store with samples")
    return read_samples_file(path)


# --------------------------------------------------------------------------- reference (published scores)


def normalize_suite(name: str) -> str:
    """``mteb-eng-v2`` and ``MTEB(eng, v2)`` both become ``mtebengv2``."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def load_reference_scores(kind: str, ref_dir: Path | str | None = None) -> pd.DataFrame:
    """Published task-level scores as a frame ``model, suite, task, dim, score`` (score 0-1).

    Read through ``evalgemma.catalog.reference.load_reference`` (``results/reference/``): ``mteb`` is the
    12 named models from the MTEB results repository (mteb's rule at HEAD; tasks missing there
    filled from the paper), ``mteb-all`` all 121 models, ``paper`` the EmbeddingGemma paper's
    per-task tables (one variant per Matryoshka dim). Per-language rows are left out.

    Args:
        kind: ``"paper"``, ``"mteb"`` or ``"mteb-all"``.
        ref_dir: the reference folder (default: ``evalgemma.catalog.reference.reference_dir()``).

    Raises:
        ConfigError: unknown kind.
        DataError: a reference file is missing.
    """
    import pandas as pd

    from evalgemma.catalog.reference import load_reference

    if kind not in CHECK_REFERENCES:
        raise unknown_name(ReferenceKind.kind(), kind, CHECK_REFERENCES, where="--reference")
    rows = load_reference(kind, ref_dir).rows
    task_level = rows[rows["hf_subset"].fillna("").astype(str) == ""]
    score = task_level["main_score"].astype(float)
    return pd.DataFrame({
        "model": task_level["model"].astype(str), "suite": task_level["suite"].astype(str),
        "task": task_level["task"].astype(str), "dim": task_level["dim"].fillna(0).astype(int), "score": score,
    }).dropna(subset=["score"]).reset_index(drop=True)


def _reference_model_for(model: str, known: set[str]) -> tuple[str | None, str]:
    if model in known:
        return model, ""
    tail = Path(model.rstrip("/")).name
    cands = sorted(k for k in known if k.split("/")[-1] == tail)
    if len(cands) == 1:
        return cands[0], f"store model {model!r} matched to published {cands[0]!r} by its last path component"
    return None, ""


def _pick_reference(ref: pd.DataFrame, unit: _Unit, suite: str | None) -> tuple[float | None, str]:
    """The one published score for a unit, or ``None`` and why (see ``compare_reference``)."""
    if suite is not None:
        ref = ref[ref["suite"].map(normalize_suite) == normalize_suite(suite)]
    if ref["dim"].nunique() > 1 and (ref["dim"] == unit.dim).any():
        ref = ref[ref["dim"] == unit.dim]
    if ref["score"].nunique() > 1:
        same_suite = ref[ref["suite"].map(normalize_suite) == normalize_suite(unit.suite)]
        if same_suite["score"].nunique() == 1:
            ref = same_suite
    if ref.empty:
        return None, ""
    if ref["score"].nunique() > 1:
        listing = ", ".join(f"{s} {d}d {x * 100:.2f}" for s, d, x in zip(ref["suite"], ref["dim"], ref["score"], strict=True))
        return None, f"{unit.variant}/{unit.task}: several published scores ({listing}); not compared — pass --reference-suite"
    return float(ref["score"].iloc[0]), ""


def compare_reference(
    current: pd.DataFrame,
    reference: pd.DataFrame,
    tolerances: Tolerances,
    *,
    kind: str = "mteb",
    reference_model: str | None = None,
    suite: str | None = None,
) -> CheckReport:
    """Reproduction check: the store's task scores against published ones (two-sided).

    Store variants are matched to published rows by model id (the ``model`` column, or
    ``reference_model`` for every variant; a local path matches a published id with the same
    last component when that is unique). Only tasks present on both sides are compared. When a
    task has several published scores, the rows are narrowed to ``suite`` (if given), then to
    the unit's ``dim`` (Matryoshka variants of the paper), then to the unit's own suite
    (``STS17`` differs between eng v2 and Multilingual v2); a task still ambiguous is skipped
    with a note. A deviation beyond the tolerance in either direction fails.

    Args:
        current: store rows, newest run per unit.
        reference: ``load_reference_scores`` output (``model, suite, task, dim, score``).
        tolerances: allowed deviations in points.
        kind: the reference's name, for messages.
        reference_model: compare every variant with this published model id.
        suite: take published scores from this suite only (``mteb-eng-v2`` or ``MTEB(eng, v2)``).

    Raises:
        ConfigError: no store task has a published score for its model (name it with ``reference_model``).
    """
    cur_units = _unit_scores(current)
    known = set(reference["model"])
    notes: list[str] = []
    base_units: list[_Unit] = []
    unmatched_models: set[str] = set()
    for u in cur_units:
        model, how = (reference_model, "") if reference_model else _reference_model_for(u.model, known)
        if how and how not in notes:
            notes.append(how)
        if model is None or model not in known:
            unmatched_models.add(u.model if model is None else model)
            continue
        score, why = _pick_reference(reference[(reference["model"] == model) & (reference["task"] == u.task)], u, suite)
        if why:
            notes.append(why)
        if score is not None:
            base_units.append(_Unit(u.variant_key, u.variant, model, u.task, u.task_type, u.suite, score, "", "", u.dim))
    if not base_units:
        who = ", ".join(sorted(unmatched_models)) or "the store's models"
        example = f" (e.g. {sorted(known)[0]!r})" if known else ""
        raise ConfigError(f"--reference {kind}: no task in the store has a published score for {who}; "
                          f"name the published model with --reference-model{example}")
    matches = {u.variant_key: u.variant_key for u in base_units}
    rows, more = _compare_units(base_units, cur_units, matches, tolerances, what=f"{kind} reference", report_missing_and_new=False)
    notes += more
    notes.insert(0, f"compared {len(base_units)} of {len(cur_units)} store (variant, task) units with published {kind} scores; "
                    f"{len(cur_units) - len(base_units)} have none")
    if unmatched_models:
        notes.append(f"no published {kind} scores for model(s) {sorted(unmatched_models)}; use --reference-model ID")
    notes += _unused_tolerance_notes(tolerances, cur_units)
    return CheckReport(rows=_sorted(rows), mode="reference", allow_missing=True, two_sided=True, notes=tuple(notes))


# --------------------------------------------------------------------------- files


def load_baseline(path: Path | str) -> pd.DataFrame:
    """Read a baseline file (newest run per unit, as the store reader does).

    Raises:
        DataError: missing, not Parquet, wrong columns, newer schema version, or empty.
    """
    import pyarrow.parquet as pq

    from evalgemma.store.parquet import newest_runs

    path = Path(path)
    if not path.is_file():
        raise DataError(f"--baseline {path}: no such file; create one with `evalgemma baseline accept --store S --out {path}`")
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several unrelated types for non-Parquet input
        raise DataError(f"--baseline {path}: not a readable Parquet file ({type(exc).__name__}: {exc})") from exc
    missing = set(v1_arrow_schema().names) - set(table.column_names)
    if missing:
        raise DataError(f"--baseline {path}: not an evalgemma baseline (missing columns {sorted(missing)[:6]}{'…' if len(missing) > 6 else ''})")
    versions = {v for v in table.column("schema_version").to_pylist() if v is not None}
    if any(v > SCHEMA_VERSION for v in versions):
        raise DataError(f"--baseline {path}: schema_version {max(versions)} is newer than this evalgemma ({SCHEMA_VERSION}); upgrade evalgemma")
    if table.num_rows == 0:
        raise DataError(f"--baseline {path}: has no rows")
    if set(COLUMN_NAMES) <= set(table.column_names):
        return newest_runs(table.select(list(COLUMN_NAMES)).to_pandas())
    return newest_runs(upgrade_v1(table.select(list(v1_arrow_schema().names)).to_pandas()))  # a v1 baseline, read as it is


def load_current(store: Path | str) -> pd.DataFrame:
    """The store's newest run per unit, refusing a store with unreadable files.

    Raises:
        StoreError: the store is missing, empty or has unreadable files.
    """
    from evalgemma.store.parquet import newest_runs, scan_store

    store = Path(store)
    if not store.is_dir():
        raise StoreError(f"--store {store}: no such directory")
    frame, problems = scan_store(store)
    if problems:
        shown = "; ".join(p.reason for p in problems[:3])
        raise StoreError(f"--store {store}: {len(problems)} unreadable file(s), so the check would be incomplete: {shown}")
    if frame.empty:
        raise StoreError(f"--store {store}: no results stored")
    return newest_runs(frame)


def select_rows(frame: pd.DataFrame, *, suite: str | None = None, variants: Iterable[str] | None = None, where: str = "") -> pd.DataFrame:
    """Rows of one suite and/or some variants (by label or key).

    Raises:
        ConfigError: the suite or a variant does not occur (with close matches).
    """
    context = f" ({where})" if where else ""
    if suite is not None:
        suites = set(frame["suite"])
        if suite not in suites:
            raise unknown_name("suite", suite, suites, where=f"--suite{context}")
        frame = frame[frame["suite"] == suite]
    wanted = list(variants or [])
    if wanted:
        labels = set(frame["variant"]) | set(frame["variant_key"])
        for v in wanted:
            if v not in labels:
                raise unknown_name("variant", v, set(frame["variant"]), where=f"--variant{context}")
        frame = frame[frame["variant"].isin(wanted) | frame["variant_key"].isin(wanted)]
    return frame.reset_index(drop=True)


def accept_baseline(
    store: Path | str,
    out: Path | str,
    *,
    suite: str | None = None,
    variants: Iterable[str] | None = None,
    force: bool = False,
) -> Path:
    """Write the store's newest run per unit (optionally one suite / some variants) as a baseline.

    Args:
        store: the results store.
        out: the baseline Parquet file to write.
        suite: keep only units of this suite.
        variants: keep only these variants (readable label or ``variant_key``).
        force: replace an existing ``out``.

    Returns:
        ``out``.

    Raises:
        ConfigError: ``out`` exists and ``force`` is false; unknown suite or variant.
        StoreError: the store is missing, empty or has unreadable files; ``out`` cannot be written.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from evalgemma.store.schema import arrow_schema

    store, out = Path(store), Path(out)
    if out.exists() and not force:
        raise ConfigError(f"--out {out}: a baseline already exists; baselines change only on purpose, pass --force to replace it")
    frame = select_rows(load_current(store), suite=suite, variants=variants, where=f"--store {store}")
    schema = arrow_schema()
    meta = dict(schema.metadata or {})
    meta[BASELINE_META_KEY] = json.dumps({
        "accepted_at": datetime.now(UTC).isoformat(timespec="microseconds"),
        "store": str(store), "suite": suite, "variants": sorted(variants or []),
        "units": int(frame[["variant_key", "task"]].drop_duplicates().shape[0]),
    }).encode()
    table = pa.Table.from_pandas(frame[list(COLUMN_NAMES)], schema=schema.with_metadata(meta), preserve_index=False)
    try:
        atomic_write(out, lambda fh: pq.write_table(table, fh), exclusive=not force)
    except FileExistsError:
        raise ConfigError(f"--out {out}: a baseline already exists; pass --force to replace it") from None
    except OSError as exc:
        raise StoreError(f"--out {out}: cannot write the baseline ({exc.strerror or exc})") from exc
    _write_baseline_samples(store, frame, out)
    return out


def _write_baseline_samples(store: Path, frame: pd.DataFrame, out: Path) -> None:
    """The accepted units' per-sample scores beside the baseline (nothing when the store has none)."""
    import pyarrow as pa

    from evalgemma.store.parquet import write_table
    from evalgemma.store.samples import COLUMNS as SAMPLE_COLUMNS
    from evalgemma.store.samples import load_samples

    samples = load_samples(store, frame)
    if samples.empty:
        return
    table = pa.Table.from_pandas(samples[list(SAMPLE_COLUMNS)], preserve_index=False)
    target = baseline_samples_path(out)
    write_table(target, table, "the baseline's per-sample scores", f"the baseline {out} is written; re-accept with --force")


def write_junit(report: CheckReport, path: Path | str) -> Path:
    """Write the report as JUnit XML (atomically): one testcase per row.

    ``classname`` is the variant label, ``name`` the task (or ``mean(<suite>)``). Failing rows
    carry ``<failure>``; allowed-missing and new rows carry ``<skipped>``; improvements that pass
    carry their message in ``<system-out>``.

    Raises:
        StoreError: the file cannot be written.
    """
    import xml.etree.ElementTree as ET

    path = Path(path)
    failures = report.failures
    skipped = [r for r in report.rows if report.is_skipped(r)]
    root = ET.Element("testsuites", tests=str(len(report.rows)), failures=str(len(failures)), errors="0", skipped=str(len(skipped)))
    suite = ET.SubElement(root, "testsuite", name="evalgemma-check", tests=str(len(report.rows)),
                          failures=str(len(failures)), errors="0", skipped=str(len(skipped)))
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="mode", value=report.mode)
    for i, note in enumerate(report.notes):
        ET.SubElement(props, "property", name=f"note{i + 1}", value=note)
    for r in report.rows:
        case = ET.SubElement(suite, "testcase", classname=r.variant, name=r.task)
        detail = (f"variant={r.variant} key={r.variant_key} suite={r.suite} task={r.task} baseline={_fmt(r.baseline)} "
                  f"current={_fmt(r.current)} delta={_fmt(r.delta)} tolerance={r.tolerance:g} verdict={r.verdict}")
        if report.is_failure(r):
            fail = ET.SubElement(case, "failure", message=f"{r.task}: {r.message}", type=r.verdict)
            fail.text = detail
        elif report.is_skipped(r):
            ET.SubElement(case, "skipped", message=f"{r.task}: {r.message}")
        elif r.verdict == "improvement":
            ET.SubElement(case, "system-out").text = f"{r.message}; refresh with `evalgemma baseline accept --force`. {detail}"
    ET.indent(root)
    data = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    try:
        atomic_write(path, data)
    except OSError as exc:
        raise StoreError(f"--junit {path}: cannot write ({exc.strerror or exc})") from exc
    return path


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"

