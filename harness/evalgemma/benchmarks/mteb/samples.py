"""Per-sample scores of an mteb evaluation, taken from mteb's own intermediate values.

mteb computes a cell's main score from per-sample values and keeps only the aggregate. A
:class:`SampleCapture` wraps, on ONE task object and only while it evaluates, the methods that
receive those values, calls the original and records its inputs; nothing mteb computes changes:

- retrieval and reranking: ``task_specific_scores`` receives pytrec_eval's per-query scores (the
  values mteb averages for nDCG/MAP/recall/precision/hit rate); MRR per query comes from mteb's
  own ``retrieval_metrics.mrr`` on the same results (first hit skipped where the task asks).
- STS: ``_calculate_scores`` receives the normalized gold scores and the similarities.
- pair classification: ``_compute_metrics`` receives the five similarity/distance lists and labels.
- bitext mining (not parallel): ``_compute_metrics`` receives the nearest neighbours and the gold pairs.
- classification (incl. multilabel, regression) and clustering: the ``TaskResult`` holds the
  per-experiment scores and the per-level v-measures (:func:`from_task_result`).
Other types (summarization, zero-shot, parallel bitext, main metrics with no per-sample form) get none.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from evalgemma.store.samples import CellSamples

#: mteb's retrieval main-metric prefixes -> pytrec_eval measure prefixes (``ndcg_at_10`` -> ``ndcg_cut_10``).
_PYTREC = {"ndcg_at_": "ndcg_cut_", "map_at_": "map_cut_", "recall_at_": "recall_", "precision_at_": "P_", "hit_rate_at_": "success_"}

#: STS main metrics -> the key of mteb's similarity scores they correlate with the gold scores.
_STS = {"cosine_spearman": "cosine_scores", "manhattan_spearman": "manhattan_distances", "euclidean_spearman": "euclidean_distances",
        "spearman": "similarity_scores"}

#: Pair-classification similarity keys of mteb -> our field names (see ``store.samples.AP_FIELDS``).
_PAIR = {"similarity_scores": "similarity", "cosine_scores": "cosine", "manhattan_distances": "manhattan",
         "euclidean_distances": "euclidean", "dot_scores": "dot"}


def _f64(values: Any) -> Any:
    import numpy as np

    return np.asarray(values, dtype=np.float64)


class SampleCapture:
    """Record per-sample values of one task object's evaluation (install, evaluate, remove)."""

    def __init__(self, task: Any) -> None:
        self.task = task
        self.main = str(task.metadata.main_score)
        self.cells: dict[tuple[str, str], CellSamples] = {}
        self._current: tuple[str, str] | None = None
        self._installed: list[str] = []

    # ------------------------------------------------------------------ install / remove
    def install(self) -> None:
        """Wrap the methods of this task type that see per-sample values (instance attributes only)."""
        from mteb.abstasks.pair_classification import AbsTaskPairClassification
        from mteb.abstasks.retrieval import AbsTaskRetrieval
        from mteb.abstasks.sts import AbsTaskSTS
        from mteb.abstasks.text.bitext_mining import AbsTaskBitextMining

        task = self.task
        hook: tuple[str, Callable[..., Any]] | None = None
        if isinstance(task, AbsTaskRetrieval) and self._retrieval_measure() is not None:
            hook = ("task_specific_scores", self._retrieval)
        elif isinstance(task, AbsTaskSTS) and self.main in _STS:
            hook = ("_calculate_scores", self._sts)
        elif isinstance(task, AbsTaskPairClassification) and self.main in ("max_ap", *(f"{f}_ap" for f in _PAIR.values())):
            hook = ("_compute_metrics", self._pair)
        elif isinstance(task, AbsTaskBitextMining) and not task.parallel_subsets and self.main in ("f1", "accuracy"):
            hook = ("_compute_metrics", self._bitext)
        if hook is None:
            return
        self._wrap("_evaluate_subset", self._subset)
        self._wrap(*hook)

    def remove(self) -> None:
        """Drop the wrappers: the task object is as it was."""
        for name in self._installed:
            self.task.__dict__.pop(name, None)
        self._installed.clear()

    def _wrap(self, name: str, make: Callable[..., Any]) -> None:
        original = getattr(self.task, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return make(original, *args, **kwargs)

        setattr(self.task, name, wrapper)
        self._installed.append(name)

    def _subset(self, original: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        self._current = (str(kwargs.get("hf_split", "")), str(kwargs.get("hf_subset", "default")))
        try:
            return original(*args, **kwargs)
        finally:
            self._current = None

    def _record(self, statistic: str, ids: Sequence[str], fields: Mapping[str, Any]) -> None:
        if self._current is None:  # called outside a subset evaluation: nothing to key it by
            return
        split, subset = self._current
        self.cells[(split, subset)] = CellSamples(split, subset, self.main, statistic, tuple(str(i) for i in ids), dict(fields))

    # ------------------------------------------------------------------ per type
    def _retrieval_measure(self) -> str | None:
        if re.fullmatch(r"mrr_at_\d+", self.main):
            return self.main
        for prefix, pytrec in _PYTREC.items():
            if self.main.startswith(prefix) and self.main[len(prefix):].isdigit():
                return pytrec + self.main[len(prefix):]
        return None

    def _retrieval(self, original: Callable[..., Any], scores: Mapping[str, Mapping[str, float]], qrels: Any,
                   results: Mapping[str, Mapping[str, float]], *args: Any, **kwargs: Any) -> Any:
        out = original(scores, qrels, results, *args, **kwargs)
        measure = self._retrieval_measure()
        if measure == self.main:  # MRR: mteb's own per-query function, on the results mteb scored
            from mteb._evaluators.retrieval_metrics import mrr

            if getattr(self.task, "skip_first_result", False):
                results = {qid: dict(sorted(d.items(), key=lambda x: x[1], reverse=True)[1:]) for qid, d in results.items()}
            k = int(self.main.rsplit("_", 1)[1])
            per_query = mrr(qrels, results, [k])[f"MRR@{k}"]
            self._record("mean", list(results), {"score": _f64(per_query)})
        elif measure is not None:
            ids = list(scores)
            self._record("mean", ids, {"score": _f64([scores[q][measure] for q in ids])})
        return out

    def _sts(self, original: Callable[..., Any], scores: Mapping[str, Any], normalized: Sequence[float], *args: Any, **kwargs: Any) -> Any:
        out = original(scores, normalized, *args, **kwargs)
        key = _STS[self.main]
        predicted = scores.get(key)
        if predicted is None and key == "similarity_scores":  # mteb falls back to cosine
            predicted = scores["cosine_scores"]
        if predicted is not None:
            self._record("spearman", [str(i) for i in range(len(normalized))], {"gold": _f64(normalized), "score": _f64(predicted)})
        return out

    def _pair(self, original: Callable[..., Any], similarity: Mapping[str, Any], labels: Sequence[int], *args: Any, **kwargs: Any) -> Any:
        out = original(similarity, labels, *args, **kwargs)
        wanted = list(_PAIR) if self.main == "max_ap" else [k for k, f in _PAIR.items() if f"{f}_ap" == self.main]
        fields = {_PAIR[k]: _f64(similarity[k]) for k in wanted if similarity.get(k) is not None}
        if fields:
            self._record("max_ap", [str(i) for i in range(len(labels))], {"gold": _f64(labels), **fields})
        return out

    def _bitext(self, original: Callable[..., Any], neighbours: Sequence[Mapping[str, Any]], gold: Sequence[Sequence[int]],
                *args: Any, **kwargs: Any) -> Any:
        out = original(neighbours, gold, *args, **kwargs)
        pred = _f64([x["corpus_id"] for x in neighbours])
        labels = _f64([gold[i][1] for i in range(len(neighbours))])
        ids = [str(i) for i in range(len(neighbours))]
        if self.main == "f1":
            self._record("weighted_f1", ids, {"gold": labels, "pred": pred})
        else:  # accuracy = mean of per-sentence correctness
            self._record("mean", ids, {"score": _f64(pred == labels)})
        return out


def from_task_result(task: Any, result: Any) -> list[CellSamples]:
    """Per-experiment (classification) and per-level (clustering) scores of a ``TaskResult``."""
    main = str(task.metadata.main_score)
    out: list[CellSamples] = []
    for split, entries in result.scores.items():
        for entry in entries:
            subset = str(entry.get("hf_subset", "default"))
            experiments = entry.get("scores_per_experiment")
            if isinstance(experiments, list) and experiments and all(isinstance(e, Mapping) and e.get(main) is not None for e in experiments):
                values = [float(e[main]) for e in experiments]
                out.append(CellSamples(str(split), subset, main, "mean", tuple(str(i) for i in range(len(values))), {"score": _f64(values)}))
                continue
            levels = entry.get("v_measures") if main == "v_measure" else None
            if isinstance(levels, Mapping):  # AbsTaskClustering: {"Level 0": [...], ...}, flattened in level order
                ids = [f"{level}/{i}" for level, vs in levels.items() for i in range(len(vs))]
                values = [float(v) for vs in levels.values() for v in vs]
            elif isinstance(levels, list):  # AbsTaskClusteringLegacy: one list
                ids, values = [str(i) for i in range(len(levels))], [float(v) for v in levels]
            else:
                continue
            if values:
                out.append(CellSamples(str(split), subset, main, "mean", tuple(ids), {"score": _f64(values)}))
    return out
