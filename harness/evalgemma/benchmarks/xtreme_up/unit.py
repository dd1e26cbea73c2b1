"""XTREME-UP units inside ``evalgemma run``: data location, prompts, views, store rows.

The scoring itself is ``xtreme_up.evaluate`` (official semantics). Here: where the data
comes from (``--data-dir`` or the official tarball, downloaded once into the user cache),
which texts the model sees (prompts), and how per-language MRR@10 becomes store rows.
Every text goes through the shared ``Encoder``, so the index is encoded once per weight
variant and reused by every language, every dim and every embedding dtype.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from evalgemma.errors import DataError

if TYPE_CHECKING:
    from evalgemma.run.plan import Plan, PlannedTask
    from evalgemma.variants.spec import VariantSpec

_DATA_CACHE: dict[tuple[str, str, str, tuple[str, ...]], Any] = {}


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


def data_root(plan: Plan) -> tuple[Path, str | None]:
    """The extracted XTREME-UP root: ``--data-dir``, else the official tarball in the user cache."""
    from evalgemma.benchmarks.xtreme_up.retrieval import download_xtreme_up, find_data_root

    config = plan.config
    if config.data_dir is not None:
        root = find_data_root(Path(config.data_dir))
        if root is None:
            raise DataError(f"--data-dir {config.data_dir}: no retrieval_cross_lang/ or retrieval_in_lang/ folder found (an extracted XTREME-UP copy is expected)")
        return root, None
    from platformdirs import user_cache_dir

    dest = Path(user_cache_dir("evalgemma")) / "xtreme-up"
    if config.offline:
        found = find_data_root(dest)
        if found is None:
            raise DataError(f"--offline: XTREME-UP data not found in {dest}; pass --data-dir DIR (an extracted copy) or run once online")
        return found, None
    return download_xtreme_up(dest), None


def load_task_data(plan: Plan, task: PlannedTask) -> Any:
    """The task's XTREME-UP data (read once per process and task; validated on read)."""
    return _load(plan, task)


def _load(plan: Plan, task: PlannedTask) -> Any:
    from evalgemma.benchmarks.xtreme_up.retrieval import load_xtreme_up

    root, _ = data_root(plan)
    key = (str(root), task.xtreme_task, plan.config.split, tuple(task.languages))
    if key not in _DATA_CACHE:
        _DATA_CACHE.clear()
        _DATA_CACHE[key] = load_xtreme_up(root, task.xtreme_task, plan.config.split, list(task.languages))
    return _DATA_CACHE[key]


def evaluate_xtreme_variant(plan: Plan, encoder: Any, variant: VariantSpec, task: PlannedTask, calibration: Any) -> list[dict[str, Any]]:
    """Store rows of one (variant, XTREME-UP task) unit: one group per language."""
    from evalgemma.run.plan import _view
    from evalgemma.benchmarks.xtreme_up.retrieval import View, evaluate

    data = _load(plan, task)
    prompts = dict(variant.prompts)
    query_prompt, style, use_title = text_policy(prompts)
    doc_prompt = prompts.get("Retrieval-document") or prompts.get("document") or ""
    passage_style = "embeddinggemma" if style == "embeddinggemma" else "official"

    def encode(texts: list[str], role: str) -> np.ndarray:
        if role == "document" and style == "official+prompt":
            texts = [doc_prompt + t for t in texts]
        return encoder.encode(texts, None)

    transform, _ = _view(variant, encoder.full_dim, calibration)
    view = View(variant.label, transform, "cosine")  # binary views are ±1 codes: cosine ranks by Hamming distance
    import torch

    device = "cuda" if torch.cuda.is_available() and plan.config.device in ("auto", "cuda") else "cpu"
    result = evaluate(
        data, encode, views=[view], query_prompt=query_prompt, passage_style=passage_style,  # type: ignore[arg-type]
        use_title=use_title, search_chunk=plan.config.search_chunk, device=device,
    )
    vr = result.views[variant.label]
    if vr.mean_mrr_at_10 is None:
        raise DataError(f"{task.name}: some languages have no result; nothing stored")
    used_prompts = json.dumps(
        {"Retrieval/query": query_prompt, "Retrieval/document": (doc_prompt if style == "official+prompt" else ""),
         "passage_style": passage_style, "use_title": use_title,
         "query_example": result.query_example, "passage_example": result.passage_example},
        ensure_ascii=False, separators=(",", ":"),
    )
    extra = json.dumps(
        {"xtreme_task": data.task, "data_version": data.data_version, "data_root": str(data.root), "file_sha256": data.file_sha256,
         "diagnostics": data.diagnostics, "languages": list(task.languages), "suite_mean_over": plan.suite_name},
        default=str,
    )
    rows: list[dict[str, Any]] = []
    for lang, res in vr.languages.items():
        base = {"hf_subset": lang, "split": data.split, "languages": lang}
        rows.append({**base, "metric": "mrr_at_10", "value": float(res.mrr_at_10), "is_main": True, "n_samples": res.n_queries})
        for metric in ("n_queries", "n_index", "n_missing_gold", "n_top10_ties"):
            rows.append({**base, "metric": metric, "value": float(getattr(res, metric)), "is_main": False, "n_samples": res.n_queries})
    for r in rows:
        r.update(main_score=float(vr.mean_mrr_at_10), prompts=used_prompts, extra=extra, data_sha256=data.data_sha256,
                 data_revision=str(data.data_version or ""), task_version="xtreme-up-" + str(data.data_version or "unknown"))
    return rows

