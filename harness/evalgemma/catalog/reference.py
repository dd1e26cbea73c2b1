"""Published reference scores (MTEB results repo, EmbeddingGemma paper) as store-like rows.

The data lives in ``results/reference/`` (built by ``scripts/build_reference.py``; provenance in
its README). Nothing here holds a score: every number is read from those files.

Reference rows have the store's columns that matter for leaderboards (``model, variant,
variant_key, dim, dtype, quant, suite, task, task_type, hf_subset, split, metric, value,
is_main, main_score``) plus ``source`` and ``kind`` (``"mteb"`` or ``"paper"``). Scores are 0-1.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from evalgemma.errors import Choice, DataError

if TYPE_CHECKING:
    import pandas as pd



class ReferenceKind(Choice):
    """Reference."""

    PAPER = "paper"  # the EmbeddingGemma paper's per-task tables and published means
    MTEB = "mteb"  # the 12 named models of the MTEB results repository (missing tasks filled from the paper)
    MTEB_ALL = "mteb-all"  # all 121 models of the MTEB results repository
    BOTH = "both"  # paper + mteb
    NONE = "none"


class Revisions(Choice):
    """MTEB results revision rule."""

    HEAD = "head"  # mteb's rule on the results repository at HEAD
    RECOVERED = "recovered"  # partial tasks completed from git history
    EARLIEST = "earliest"  # the oldest complete version


#: The suffix each reference row kind adds to its variant label (``scripts/build_reference.py::label``
#: writes it), so a published row never shares a label with a run of the same model.
LABEL_SUFFIXES: dict[str, str] = {"paper": " (paper)", "mteb": " (MTEB)"}

#: Columns shared by store rows and reference rows (the leaderboard's input).
ROW_COLUMNS: tuple[str, ...] = (
    "model", "variant", "variant_key", "dim", "dtype", "quant", "suite", "task", "task_type",
    "hf_subset", "split", "metric", "value", "is_main", "main_score", "source", "kind",
)


def reference_dir(path: Path | str | None = None) -> Path:
    """The reference folder: ``path``, else ``$EVALGEMMA_REFERENCE``, else ``<repo>/results/reference``."""
    if path is not None:
        return Path(path)
    env = os.environ.get("EVALGEMMA_REFERENCE")
    if env:
        return Path(env)
    from evalgemma.catalog import PROJECT_ROOT

    return PROJECT_ROOT / "results" / "reference"


def _file(ref_dir: Path | str | None, name: str) -> Path:
    path = reference_dir(ref_dir) / name
    if not path.is_file():
        raise DataError(f"{path}: reference file missing; rebuild it with `python scripts/build_reference.py`")
    return path


def suite_tasks(ref_dir: Path | str | None = None) -> pd.DataFrame:
    """The expected tasks of each MTEB suite: ``suite, task, task_type, main_metric, eval_splits, n_cells``."""
    import pandas as pd

    return pd.read_csv(_file(ref_dir, "suite_tasks.csv"))


def mteb_rows(ref_dir: Path | str | None = None, *, revisions: str = Revisions.HEAD, all_models: bool = False) -> pd.DataFrame:
    """Task-level rows from the MTEB results repo (tasks without a score are left out).

    Args:
        ref_dir: the reference folder.
        revisions: ``"head"`` (mteb's rule on the repo at HEAD), ``"recovered"`` (partial tasks
            completed from git history) or ``"earliest"`` (oldest complete version).
        all_models: include the 109 automatically picked models, not only the 12 named ones.
    """
    import pandas as pd

    column = {Revisions.HEAD: "main_score", Revisions.RECOVERED: "main_score_recovered", Revisions.EARLIEST: "main_score_earliest"}
    rule = Revisions.parse(revisions, "revisions")
    frame = pd.read_parquet(_file(ref_dir, "mteb_task_scores.parquet"))
    if not all_models:
        frame = frame[frame["model_group"] == "named"]
    frame = frame.assign(main_score=frame[column[rule]], value=frame[column[rule]])
    frame = frame[frame["main_score"].notna()]
    return frame[list(ROW_COLUMNS)].reset_index(drop=True)


def paper_rows(ref_dir: Path | str | None = None) -> pd.DataFrame:
    """Per-task / per-language paper values (§10.6–10.8, §11 of docs/embeddinggemma.md)."""
    import pandas as pd

    frame = pd.read_csv(_file(ref_dir, "paper_task_scores.csv"), keep_default_na=False, na_values={"value": [""], "main_score": [""]})
    return frame[list(ROW_COLUMNS)]


def paper_aggregates(ref_dir: Path | str | None = None) -> pd.DataFrame:
    """Published means: ``variant, suite, statistic`` (mean_task | mean_tasktype | type_mean | mean_task_no_coir), ``task_type, value`` (0-1)."""
    import pandas as pd

    return pd.read_csv(_file(ref_dir, "paper_aggregates.csv"), keep_default_na=False, na_values={"value": [""]})


def fill_from_paper(mteb: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Add paper task scores for tasks an MTEB reference variant lacks (same model, dim, suite, task).

    This restores FloresBitextMining for EmbeddingGemma (the results repo's file was not
    available; the paper's Table 10 has it). Substituted rows keep the MTEB variant's label and
    key, and their ``source`` says what was substituted. The input frames are not modified.
    """
    import pandas as pd

    if mteb.empty or paper.empty:
        return mteb
    task_level = paper[paper["hf_subset"].fillna("") == ""]
    variants = mteb[["model", "dim", "variant", "variant_key", "suite"]].drop_duplicates()
    have = set(zip(mteb["variant_key"], mteb["suite"], mteb["task"], strict=True))
    joined = variants.merge(task_level.drop(columns=["variant", "variant_key"]), on=["model", "dim", "suite"])
    joined = joined[[(k, s, t) not in have for k, s, t in zip(joined["variant_key"], joined["suite"], joined["task"], strict=True)]]
    if joined.empty:
        return mteb
    joined = joined.assign(source=joined["source"] + " (substituted: missing from the MTEB results repo)", kind="mteb")
    return pd.concat([mteb, joined[list(ROW_COLUMNS)]], ignore_index=True)


@dataclass(frozen=True)
class Reference:
    """Reference rows (task/subset level, store-like) and published aggregates."""

    rows: pd.DataFrame
    aggregates: pd.DataFrame

    @property
    def empty(self) -> bool:
        return bool(self.rows.empty and self.aggregates.empty)


def empty_reference() -> Reference:
    """A reference with no rows (``--reference none``)."""
    import pandas as pd

    return Reference(
        pd.DataFrame(columns=list(ROW_COLUMNS)), pd.DataFrame(columns=["variant", "variant_key", "suite", "statistic", "task_type", "value", "kind"])
    )


def load_reference(which: str = ReferenceKind.PAPER, ref_dir: Path | str | None = None, *, revisions: str = Revisions.HEAD) -> Reference:
    """Load reference data.

    Args:
        which: ``paper`` (paper task rows and published means), ``mteb`` (the 12 named models
            from the MTEB results repo, missing tasks filled from the paper), ``mteb-all`` (all
            121 models), ``both`` (paper + mteb) or ``none``.
        ref_dir: the reference folder (default ``results/reference``).
        revisions: which MTEB results revision rule to use (see ``mteb_rows``).

    Raises:
        ConfigError: unknown ``which``.
        DataError: a reference file is missing.
    """
    import pandas as pd

    kind = ReferenceKind.parse(which, "--reference")
    if kind is ReferenceKind.NONE:
        return empty_reference()
    parts: list[pd.DataFrame] = []
    aggregates = empty_reference().aggregates
    paper = paper_rows(ref_dir)
    if kind in (ReferenceKind.PAPER, ReferenceKind.BOTH):
        parts.append(paper)
        aggregates = paper_aggregates(ref_dir)
    if kind in (ReferenceKind.MTEB, ReferenceKind.MTEB_ALL, ReferenceKind.BOTH):
        parts.append(fill_from_paper(mteb_rows(ref_dir, revisions=revisions, all_models=kind is ReferenceKind.MTEB_ALL), paper))
    return Reference(pd.concat(parts, ignore_index=True), aggregates)
