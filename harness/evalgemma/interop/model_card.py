"""The Hugging Face model-card ``model-index`` block of one variant, built and checked with huggingface_hub.

One ``EvalResult`` per complete task (as mteb's own v1 model cards did): task type = mteb's task type,
dataset = the task's Hub dataset (name ``MTEB <task>``, its revision, the split), metric = the task's main
metric with the task score × 100 (mteb's flat mean over the suite's cells; never rounded here).
The YAML is produced by ``huggingface_hub.ModelCardData`` and read back with
``huggingface_hub.repocard_data.model_index_to_eval_results`` before it is returned.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from evalgemma.errors import ConfigError, StoreError


def _dataset(task: str) -> tuple[str, str, str]:
    """(Hub dataset id, revision, split) of a task (built-in smoke tasks: ``evalgemma/<suite>``)."""
    from evalgemma.benchmarks.smoke.tasks import smoke_expected

    for suite in ("smoke", "types"):
        found = smoke_expected(suite).get(task)
        if found is not None:
            return f"evalgemma/{suite}/{task}", found[1], found[2][0].split
    import mteb

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            meta = mteb.get_task(task).metadata
    except (KeyError, ValueError):
        return f"evalgemma/{task}", "", "test"
    return str(meta.dataset.get("path", task)), str(meta.dataset.get("revision", "")), str((meta.eval_splits or ["test"])[0])


def eval_results(frame: Any, variant_key: str) -> list[Any]:
    """``huggingface_hub.EvalResult``s of the complete tasks of one variant (every suite its rows were run for)."""
    from huggingface_hub import EvalResult

    from evalgemma.views.scores import task_scores

    mine = frame[frame["variant_key"] == variant_key]
    out: list[Any] = []
    done: set[str] = set()
    for suite in sorted(set(mine["suite"].astype(str))):
        scores = task_scores(mine, suite)
        for rec in scores[scores["complete"]].itertuples(index=False):
            if rec.task in done:
                continue
            done.add(str(rec.task))
            main = mine[(mine["task"] == rec.task) & mine["is_main"].astype(bool)]
            dataset, revision, split = _dataset(str(rec.task))
            out.append(EvalResult(
                task_type=str(rec.task_type), task_name=str(rec.task_type), dataset_type=dataset, dataset_name=f"MTEB {rec.task}",
                dataset_revision=revision or None, dataset_split=split, metric_type=str(main["metric"].iloc[0]),
                metric_name=str(main["metric"].iloc[0]), metric_value=float(rec.main_score) * 100,
            ))
    return out


def model_index_yaml(store: Path, variant: str) -> str:
    """The model card metadata (YAML, without ``---`` fences) with the ``model-index`` of ``variant`` (label or key).

    Raises:
        StoreError: the store holds no results.
        ConfigError: an unknown or ambiguous variant, or one without a complete task.
    """
    import yaml
    from huggingface_hub import ModelCardData
    from huggingface_hub.repocard_data import model_index_to_eval_results

    from evalgemma.interop.mteb_results import select_variants
    from evalgemma.store.parquet import newest_runs, scan_store

    frame, _ = scan_store(store)
    frame = newest_runs(frame)
    if frame.empty:
        raise StoreError(f"--store {store}: no results")
    keys = select_variants(frame, [variant])
    if len(keys) != 1:
        raise ConfigError(f"--variant {variant}: matches {len(keys)} variants ({', '.join(keys)}); give a variant key")
    key = keys[0]
    results = eval_results(frame, key)
    if not results:
        raise ConfigError(f"--variant {variant}: no complete task in {store} (a model card lists task scores only)")
    label = str(frame[frame["variant_key"] == key]["variant"].iloc[0])
    card = ModelCardData(model_name=label, eval_results=results, library_name="sentence-transformers", tags=["mteb", "evalgemma"])
    text = card.to_yaml().rstrip("\n") + "\n"
    data = yaml.safe_load(text)
    name, parsed = model_index_to_eval_results(data["model-index"])  # huggingface_hub's own reader: raises on a bad block
    if name != label or len(parsed) != len(results):
        raise AssertionError(f"model-index did not round-trip: {name!r}, {len(parsed)} of {len(results)} results")
    return text
