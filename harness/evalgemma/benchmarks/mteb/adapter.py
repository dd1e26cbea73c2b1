"""The bridge to mteb: an encoder mteb calls, local dataset mirrors, results to store rows.

mteb loads and scores every MTEB task (its registry, loaders, evaluators and aggregation);
evalgemma only supplies vectors. ``MtebView`` satisfies mteb's ``EncoderProtocol``: it
resolves the prompt with mteb's own lookup (``get_prompt_name``: task-side, task, type-side,
type, side), takes the full vectors from the shared ``Encoder`` and applies the variant's
view (truncate + re-normalise, embedding dtype). The exact prompt strings used are recorded
per (task type, side) for the store.

At the model's full dimension in float32 the stored values are those of plain
``mteb.evaluate`` with mteb's own ``SentenceTransformerEncoderWrapper``, bit for bit
(``tests/test_exactness.py``): each mteb encode call becomes the same single
``encode_query`` / ``encode_document`` / ``encode`` call the wrapper makes (same list, same
batches, same prompt passed as ``prompt=``), the full-dimension view is the model's output
itself, and scores use the same similarity functions (sentence-transformers' ``cos_sim``
for matrices, as the wrapper's ``model.similarity``; mteb's ``pairwise_cos_sim`` for pairs).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evalgemma.benchmarks.base import has_builtin_data
from evalgemma.encode.encoder import Encoder
from evalgemma.errors import DataError, unknown_name

View = Callable[[np.ndarray], np.ndarray]
log = logging.getLogger(__name__)


@dataclass
class MtebView:
    """An mteb encoder serving one derived variant of a shared ``Encoder``."""

    encoder: Encoder
    model_name: str
    revision: str
    prompts: dict[str, str]
    view: View
    similarity_fn: str = "cosine"  # "cosine", or "hamming" for ±1 binary codes (scored by cosine = Hamming-equivalent)
    embed_dim: int | None = None
    used_prompts: dict[str, str] = field(default_factory=dict)
    _meta: Any = None

    @property
    def mteb_model_meta(self) -> Any:
        if self._meta is None:
            from mteb.models import ModelMeta

            self._meta = ModelMeta.create_empty(
                {
                    "name": self.model_name,
                    "revision": self.revision,
                    "similarity_fn_name": "cosine",
                    "embed_dim": self.embed_dim,
                    "framework": ["Sentence Transformers"],
                }
            )
        return self._meta

    def prompt_for(self, task_metadata: Any, prompt_type: Any) -> str | None:
        """The prompt string mteb's lookup selects for this task and side (None: no prompt)."""
        from mteb.models.abs_encoder import get_prompt_name

        if not self.prompts:
            return None
        name = get_prompt_name(self.prompts, task_metadata, prompt_type)
        return self.prompts.get(name) if name else None

    def encode(self, inputs: Any, *, task_metadata: Any, hf_split: str, hf_subset: str, prompt_type: Any = None, **kwargs: Any) -> np.ndarray:
        texts: list[str] = []
        for batch in inputs:
            if "text" not in batch:
                raise DataError(f"task {task_metadata.name}: only text inputs are supported (got {sorted(batch)})")
            texts.extend(str(t) for t in batch["text"])
        prompt = self.prompt_for(task_metadata, prompt_type)
        side = prompt_type.value if prompt_type is not None else None
        self.used_prompts[f"{task_metadata.type}/{side or 'all'}"] = prompt or ""
        full = self.encoder.encode_call(texts, prompt, side)
        return self.view(full)

    def similarity(self, embeddings1: Any, embeddings2: Any) -> Any:
        # Binary views arrive as ±1 codes, on which cosine is the Hamming-equivalent similarity.
        # sentence-transformers' cos_sim, as mteb's wrapper scores through ``model.similarity``
        # (mteb's own cos_sim may move large products to a GPU, whose sums differ in the last bits).
        from sentence_transformers.util import cos_sim

        return cos_sim(_as_float(embeddings1), _as_float(embeddings2))

    def similarity_pairwise(self, embeddings1: Any, embeddings2: Any) -> Any:
        from mteb.similarity_functions import pairwise_cos_sim

        return pairwise_cos_sim(_as_float(embeddings1), _as_float(embeddings2))


def _as_float(x: Any) -> Any:
    """Integer views (int8/uint8) are scored as float vectors, as sentence-transformers does.

    mteb hands numpy arrays to ``similarity``, except when reranking pre-ranked candidates, where it
    passes ``torch.as_tensor`` of the view (an int8 tensor for int8 views).
    """
    if isinstance(x, np.ndarray) and x.dtype != np.float32:
        return x.astype(np.float32)
    import torch

    if isinstance(x, torch.Tensor) and not torch.is_floating_point(x):
        return x.to(torch.float32)
    return x


# ---------------------------------------------------------------- tasks and data


def benchmark_tasks(benchmark: str) -> list[Any]:
    """The task objects of an mteb benchmark, with the benchmark's own split/subset filters."""
    import mteb

    try:
        bench = mteb.get_benchmark(benchmark)
    except Exception as exc:
        names = [b.name for b in mteb.get_benchmarks()]
        raise unknown_name("mteb benchmark", benchmark, names) from exc
    return list(bench.tasks)


def named_tasks(names: Iterable[str]) -> list[Any]:
    """mteb tasks by name; an unknown name is a ConfigError with close matches."""
    import mteb

    out = []
    all_names: list[str] | None = None
    for name in names:
        try:
            out.append(mteb.get_task(name))
        except Exception as exc:
            if all_names is None:
                all_names = [t.metadata.name for t in mteb.get_tasks(exclude_superseded=False)]
            raise unknown_name("task", name, all_names, where="--tasks") from exc
    return out


def matching_subsets(task: Any, langs: list[str]) -> list[str]:
    """The task's subsets whose name or ISO 639-3 languages match ``langs``, in the task's order.

    A task without subsets (one ``default``) matches when any of its languages does.
    """
    wanted = set(langs)
    eval_langs = task.metadata.eval_langs
    subsets = list(getattr(task, "hf_subsets", None) or ["default"])
    keep = []
    for subset in subsets:
        codes = eval_langs.get(subset, []) if isinstance(eval_langs, dict) else eval_langs
        if subset in wanted or {c.split("-")[0] for c in codes} & wanted:
            keep.append(subset)
    return keep


SNAPSHOT_MARKER = ".evalgemma-snapshot.json"
_README_REVISION = re.compile(r"revision `([0-9a-f]{40})`")


def snapshot_revision(directory: Path) -> str | None:
    """The dataset revision a local snapshot holds, when it can be told.

    In order: the marker ``evalgemma data pull`` writes; the commit huggingface_hub records in
    ``.cache/huggingface/download/*.metadata`` (``snapshot_download(local_dir=...)``); a README
    headline that names it (``... (revision `<sha>`)``). None when nothing says.
    """
    marker = directory / SNAPSHOT_MARKER
    if marker.is_file():
        try:
            return str(json.loads(marker.read_text(encoding="utf-8"))["revision"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
    meta_dir = directory / ".cache" / "huggingface" / "download"
    for meta in sorted(meta_dir.rglob("*.metadata")) if meta_dir.is_dir() else []:
        try:
            first = meta.read_text(encoding="utf-8").split("\n", 1)[0].strip()
        except OSError:
            continue
        if re.fullmatch(r"[0-9a-f]{40}", first):
            return first
    readme = directory / "README.md"
    if readme.is_file():
        try:
            head = readme.read_text(encoding="utf-8", errors="replace")[:4000]
        except OSError:
            return None
        found = _README_REVISION.search(head)
        if found:
            return found.group(1)
    return None


def mirror_dir(data_dir: Path, task: Any) -> Path | None:
    """The local snapshot of a task's dataset under ``data_dir/<org>/<name>/``, if present and
    of the revision the task pins (a snapshot of another revision is not used: the same repo
    serves e.g. Banking77Classification and its .v2 at different revisions)."""
    ds = task.metadata.dataset
    path = str(ds.get("path", ""))
    if not path or path.startswith(("/", ".")) or ".." in Path(path).parts:
        return None
    candidate = data_dir / path
    if not candidate.is_dir():
        return None
    held = snapshot_revision(candidate)
    wanted = ds.get("revision")
    if held is not None and wanted and held != wanted:
        log.warning("%s: %s holds revision %s, the task pins %s; not used", task.metadata.name, candidate, held, wanted)
        return None
    return candidate


def point_to_mirror(task: Any, directory: Path) -> None:
    """Load the task's dataset from a local snapshot (metadata copied first: it is shared by the class)."""
    task.metadata = task.metadata.model_copy(deep=True)
    task.metadata.dataset["path"] = str(directory)


def prepare_data(tasks: list[Any], data_dir: Path | None, offline: bool) -> dict[str, str]:
    """Point tasks at mirrors under ``data_dir``; with ``offline``, a missing dataset is an error.

    Returns:
        task name → where its data comes from (local path or hub repo@revision).
    """
    sources: dict[str, str] = {}
    missing = []
    for task in tasks:
        ds = task.metadata.dataset
        local = mirror_dir(data_dir, task) if data_dir is not None else None
        if local is not None:
            point_to_mirror(task, local)
            sources[task.metadata.name] = str(local)
        else:
            if has_builtin_data(task):
                sources[task.metadata.name] = "built-in"
                continue
            sources[task.metadata.name] = f"{ds.get('path')}@{ds.get('revision')}"
            if offline:
                note = ""
                if data_dir is not None and (data_dir / str(ds.get("path"))).is_dir():
                    local_copy = data_dir / str(ds.get("path"))
                    held = snapshot_revision(local_copy)
                    if held:
                        note = f", {local_copy} holds revision {held[:12]}, the task pins {str(ds.get('revision'))[:12]}"
                missing.append(f"{task.metadata.name} ({ds.get('path')}{note})")
    if missing:
        where = f"--data-dir {data_dir}" if data_dir else "no --data-dir given"
        raise DataError(
            f"--offline: dataset not available locally for {len(missing)} task(s): {', '.join(missing[:10])}"
            f"{' …' if len(missing) > 10 else ''} ({where}). Fetch them on an online machine with "
            "`evalgemma data pull --suite ... --data-dir DIR`."
        )
    return sources


# ---------------------------------------------------------------- results → rows


def _flatten(prefix: str, value: Any, out: dict[str, float]) -> None:
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        out[prefix] = float(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)


def task_result_rows(task: Any, result: Any) -> list[dict[str, Any]]:
    """Tidy rows (hf_subset, split, languages, metric, value, is_main) of an mteb TaskResult, one
    group per evaluated cell (split, hf_subset), every metric mteb reports flattened to a name.

    Raises:
        DataError: a cell without a finite main score.
    """
    main_metric = task.metadata.main_score
    rows: list[dict[str, Any]] = []
    for split, entries in result.scores.items():
        for entry in entries:
            metrics: dict[str, float] = {}
            for key, value in entry.items():
                if key in ("hf_subset", "languages", "main_score", "mteb_version"):
                    continue
                _flatten(key, value, metrics)
            if main_metric not in metrics:
                metrics[main_metric] = float(entry["main_score"])
            subset = str(entry.get("hf_subset", "default"))
            if math.isnan(metrics[main_metric]):
                raise DataError(f"task {task.metadata.name} {split}/{subset}: mteb returned no main score")
            for metric, value in metrics.items():
                rows.append(
                    {
                        "hf_subset": subset,
                        "split": str(split),
                        "languages": ",".join(entry.get("languages", [])),
                        "metric": metric,
                        "value": value,
                        "is_main": metric == main_metric,
                    }
                )
    return rows


def describe_prompts(used: dict[str, str]) -> str:
    """The exact prompt strings used, as canonical JSON, for the ``prompts`` column."""
    return json.dumps(dict(sorted(used.items())), ensure_ascii=False, separators=(",", ":"))
