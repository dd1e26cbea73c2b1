"""XTREME-UP as cells: one cell per (split, language); data location, prompts, evaluation of some languages.

The scoring itself is ``retrieval.evaluate`` (official semantics). Here: where the data comes from
(``--data-dir`` or the official tarball, downloaded once into the user cache), which texts the model
sees (prompts), and how per-language MRR@10 becomes rows. Every text goes through the shared
``Encoder``, so the index is encoded once per weight variant and reused by every language, dim and
embedding dtype. Suites with different language sets share cells: ``xtreme-up`` then
``xtreme-up-official`` into one store evaluates only bn and te the second time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from evalgemma.benchmarks.base import BenchTask, Cell, EvalContext, UnitResult
from evalgemma.catalog.xtreme_up import Task
from evalgemma.errors import DataError
from evalgemma.store.samples import CellSamples

#: The store task name of each XTREME-UP retrieval task.
TASK_NAMES: dict[str, str] = {Task.CROSS_LANG: "xtreme-up-cross-lang", Task.IN_LANG: "xtreme-up-in-lang"}


def text_policy(prompts: dict[str, str]) -> tuple[str, str, bool]:
    """(query prompt, passage style, use_title) for a model's prompt dictionary.

    EmbeddingGemma-style document prompts (``title: none | text: ``) are rendered with the
    real passage title (``title: {title} | text: {context}``, as the model card recommends);
    any other document prompt is put in front of the official ``title + " " + context``;
    without prompts the official texts are used unchanged.
    """
    query = prompts.get("Retrieval-query") or prompts.get("Retrieval") or prompts.get("query") or ""
    document = prompts.get("Retrieval-document") or prompts.get("document") or ""
    if document.startswith("title: "):
        return query, "embeddinggemma", True
    return query, ("official" if not document else "official+prompt"), True


def find_root(data_dir: Path | None, *, offline: bool, download: bool) -> Path | None:
    """The extracted XTREME-UP root: ``--data-dir``, else the copy in the user cache.

    Args:
        data_dir: ``--data-dir``; must hold an extracted copy.
        offline: a missing cached copy is an error.
        download: fetch the official tarball when there is no cached copy (else return None).

    Raises:
        DataError: ``--data-dir`` holds no XTREME-UP folder, or offline without a cached copy.
    """
    from evalgemma.benchmarks.xtreme_up.retrieval import download_xtreme_up, find_data_root

    if data_dir is not None:
        root = find_data_root(Path(data_dir))
        if root is None:
            raise DataError(f"--data-dir {data_dir}: no retrieval_cross_lang/ or retrieval_in_lang/ folder found (an extracted XTREME-UP copy is expected)")
        return root
    from platformdirs import user_cache_dir

    dest = Path(user_cache_dir("evalgemma")) / "xtreme-up"
    found = find_data_root(dest)
    if found is not None:
        return found
    if offline:
        raise DataError(f"--offline: XTREME-UP data not found in {dest}; pass --data-dir DIR (an extracted copy) or run once online")
    return download_xtreme_up(dest) if download else None


def bench_task(xtreme_task: str, languages: Sequence[str], split: str, root: Path | None) -> BenchTask:
    """The plan's handle of an XTREME-UP task: one cell per language; version from the data (if present)."""
    from evalgemma.benchmarks.xtreme_up.retrieval import task_version

    version = task_version(root, xtreme_task) if root is not None else ""
    return BenchTask(
        name=TASK_NAMES[xtreme_task], task_type="Retrieval", kind="xtreme-up", version=version,
        cells=tuple(Cell(split, lang) for lang in languages), languages=tuple(languages), xtreme_task=xtreme_task,
        data_source=str(root) if root is not None else "",
    )


def load(task: BenchTask, root: Path) -> None:
    """Read and validate the task's data (before any model is loaded): a DataError names the file."""
    from evalgemma.benchmarks.xtreme_up.retrieval import load_xtreme_up, task_version

    split = task.cells[0].split
    task.data = load_xtreme_up(root, task.xtreme_task, split, list(task.languages))
    task.version = task.version or task_version(root, task.xtreme_task)
    task.data_source = str(root)


def evaluate(task: BenchTask, cells: Sequence[Cell], encoder: Any, variant: Any, ctx: EvalContext) -> UnitResult:
    """MRR@10 of the languages in ``cells`` for one variant; no I/O (the data was read by :func:`load`)."""
    from evalgemma.benchmarks.xtreme_up.retrieval import PassageStyle, View
    from evalgemma.benchmarks.xtreme_up.retrieval import evaluate as score
    from evalgemma.provenance import utc_now
    from evalgemma.variants.views import Similarity, make_view

    if task.data is None:
        raise DataError(f"{task.name}: data not loaded")
    wanted = list(dict.fromkeys(cells))  # the cells asked for, in order (they may lie outside the suite's set)
    langs = [c.subset for c in wanted]
    data = replace(task.data, queries={lang: task.data.queries[lang] for lang in langs})
    prompts = dict(variant.prompts)
    query_prompt, style, use_title = text_policy(prompts)
    doc_prompt = prompts.get("Retrieval-document") or prompts.get("document") or ""
    passage_style = PassageStyle.EMBEDDINGGEMMA if style == PassageStyle.EMBEDDINGGEMMA else PassageStyle.OFFICIAL
    started, t0 = utc_now(), time.perf_counter()
    encoded0, seconds0 = encoder.stats.texts_encoded, encoder.stats.encode_seconds

    def encode(texts: list[str], role: str) -> np.ndarray:
        if role == "document" and style == "official+prompt":
            texts = [doc_prompt + t for t in texts]
        return np.asarray(encoder.encode(texts, None))

    transform, _ = make_view(variant, encoder.full_dim, ctx.calibration_vectors)
    view = View(variant.label, transform, Similarity.COSINE)  # binary views are ±1 codes: cosine ranks by Hamming distance
    result = score(
        data, encode, views=[view], query_prompt=query_prompt, passage_style=passage_style,
        use_title=use_title, search_chunk=ctx.search_chunk, device=ctx.device,
    )
    vr = result.views[variant.label]
    if vr.mean_mrr_at_10 is None:
        raise DataError(f"{task.name}: some languages have no result; nothing stored")
    rows: list[dict[str, Any]] = []
    samples: list[CellSamples] = []
    for lang, res in vr.languages.items():
        rr = np.asarray(vr.per_query_rr[lang], dtype=np.float64)  # queries in file order; the mean is official_mean(rr)
        samples.append(CellSamples(data.split, lang, "mrr_at_10", "mean", tuple(str(i) for i in range(len(rr))), {"score": rr}))
        base = {"hf_subset": lang, "split": data.split, "languages": lang, "n_samples": res.n_queries}
        rows.append({**base, "metric": "mrr_at_10", "value": float(res.mrr_at_10), "is_main": True})
        for metric in ("n_queries", "n_index", "n_missing_gold", "n_top10_ties"):
            rows.append({**base, "metric": metric, "value": float(getattr(res, metric)), "is_main": False})
    used_prompts = json.dumps(
        {"Retrieval/query": query_prompt, "Retrieval/document": (doc_prompt if style == "official+prompt" else ""),
         "passage_style": passage_style, "use_title": use_title,
         "query_example": result.query_example, "passage_example": result.passage_example},
        ensure_ascii=False, separators=(",", ":"),
    )
    extra = json.dumps(
        {"xtreme_task": data.task, "data_version": data.data_version, "data_root": str(data.root), "file_sha256": data.file_sha256,
         "diagnostics": data.diagnostics, "languages": langs},
        default=str,
    )
    fields = {"task_version": task.version, "data_revision": str(data.data_version or ""), "data_sha256": data.data_sha256,
              "prompts": used_prompts, "extra": extra}
    complete = set(wanted) == set(task.cells)
    return UnitResult(
        task=task.name, task_type=task.task_type, variant_key=variant.key, cells=tuple(wanted), rows=tuple(rows), fields=fields,
        main_score=float(vr.mean_mrr_at_10) if complete else None, started_at=started, finished_at=utc_now(),
        wall_s=time.perf_counter() - t0, texts_encoded=encoder.stats.texts_encoded - encoded0,
        encode_seconds=encoder.stats.encode_seconds - seconds0, samples=tuple(samples),
    )
