"""Measurement: the real EmbeddingGemma-300m through evalgemma vs plain mteb vs published scores.

Not a test (the weights are 1.15 GB and never used in tests or CI). Given a local copy of
google/embeddinggemma-300m (``/work/shared/tools/fetch_embeddinggemma.sh DIR``), it runs the
mirrored MTEB tasks that fit on a small CPU machine through

  (a) evalgemma's library API (``run.plan.plan_run`` + ``execute``, exactly what ``evalgemma run``
      calls), one encode per weight variant with 768 and 128 dims derived from it, and
  (b) plain ``mteb.evaluate`` with mteb's own ``SentenceTransformerEncoderWrapper`` around a
      ``SentenceTransformer`` loaded from the same directory (same dtype, same max length, the
      model's prompt dictionary passed as ``model_prompts``). 128d on this path is the model with
      its last Dense layer cut to its first 128 output rows, so sentence-transformers' own
      ``Normalize`` re-normalises the truncated vector (the model card's Matryoshka rule) inside
      the pipeline; PTQ weights are produced by the same ``quantize_model`` call on the loaded
      model (this path checks the bridge, not the quantizer),

then compares the main score of every (task, split, subset) cell between (a) and (b) (exact
float equality expected; the difference is printed otherwise) and with EmbeddingGemma's
published per-subset scores (``mteb_reference/scores.csv``, main revision ``64614b0b…``).
For a gap it measures candidate causes on STSBenchmark: prompts off, max length 2048 (with the
number of inputs longer than 512 tokens, counted on the exact strings sent to the model), and
bfloat16 vs float32 weights. Dataset revisions: the mirror's pinned revision is printed per task.

Prints Markdown tables and writes every figure to ``--out`` (JSON, rewritten after each step;
``--resume`` skips the steps already in it). evalgemma's results also stay in ``--store`` and its
vectors in ``--cache-dir``, so a rerun re-encodes nothing on that side.

Usage (2-core CPU; see benchmarks/README.md for the measured run):
  nice -n 10 python benchmarks/real_embeddinggemma.py --model-dir /work/models/embeddinggemma-300m \\
      --data-dir /work/shared/data/hf --out /tmp/realgemma.json --resume
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PUBLISHED_MODEL = "google/embeddinggemma-300m"
#: Tatoeba's six smallest language pairs (104-137 sentence pairs each, 1,462 texts in all).
DEFAULT_TATOEBA = ("tzl-eng", "swg-eng", "gsw-eng", "ast-eng", "ang-eng", "cha-eng")
DEFAULT_TASKS = ("STSBenchmark", "PoemSentimentClassification")
DEFAULT_FP32_ONLY = ("Tatoeba", "HumanEvalRetrieval")
DEFAULT_SUBSETS = {"Tatoeba": DEFAULT_TATOEBA, "XQuADRetrieval": ("en",)}
CAUSE_TASK = "STSBenchmark"


# ---------------------------------------------------------------- environment


def machine() -> dict[str, str]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": str(os.cpu_count()), "python": platform.python_version(), "os": platform.platform()}


def loadavg() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("evalgemma", "torch", "sentence-transformers", "transformers", "mteb", "numpy", "scikit-learn", "datasets"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "absent"
    try:
        out["git"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        out["git"] = "unknown"
    return out


# ---------------------------------------------------------------- what is measured


@dataclass(frozen=True)
class Weight:
    """A weight variant: dtype and post-training block quantization; ``wid`` names its steps."""

    wid: str
    dtype: str = "float32"
    quant: str = "none"


@dataclass
class Results:
    """Everything measured, as one JSON document (rewritten after every step)."""

    path: Path
    doc: dict[str, Any] = field(default_factory=dict)

    def load(self, resume: bool) -> None:
        if resume and self.path.is_file():
            self.doc = json.loads(self.path.read_text(encoding="utf-8"))
        self.doc.setdefault("steps", {})

    def done(self, step: str) -> bool:
        return step in self.doc["steps"]

    def put(self, step: str, value: dict[str, Any]) -> None:
        self.doc["steps"][step] = value
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.doc, indent=1, sort_keys=True, default=str), encoding="utf-8")
        os.replace(tmp, self.path)


def cell_key(task: str, split: str, subset: str) -> str:
    return f"{task}|{split}|{subset}"


# ---------------------------------------------------------------- (a) evalgemma


class TokenCounter:
    """Sees every batch sent to the model (``Encoder.on_encode``) and counts, per task, the
    tokenized lengths of the exact input strings (prompt + text, special tokens included)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.task = ""
        self.lengths: dict[str, list[int]] = {}

    def __call__(self, texts: list[str], prompt: str | None) -> None:
        enc = self.tokenizer([(prompt or "") + t for t in texts], add_special_tokens=True, truncation=False)["input_ids"]
        self.lengths.setdefault(self.task, []).extend(len(ids) for ids in enc)

    def summary(self) -> dict[str, dict[str, Any]]:
        return {
            task: {"inputs": len(n), "max_tokens": max(n), "median_tokens": statistics.median(n),
                   "over_512": sum(1 for x in n if x > 512), "over_2048": sum(1 for x in n if x > 2048)}
            for task, n in self.lengths.items() if n
        }


def run_evalgemma(args: argparse.Namespace, weight: Weight, tasks: list[str], dims: tuple[int, ...], *,
                  prompts: bool = True, max_seq_length: int | None = None, count_tokens: bool = False) -> dict[str, Any]:
    """One evalgemma run (one weight variant, every dim derived from one encode) and its rows."""
    from evalgemma.benchmarks.mteb.unit import bench_task
    from evalgemma.run import RunConfig, execute, plan_run
    from evalgemma.store.parquet import load_results

    config = RunConfig.build(
        model=str(args.model_dir), tasks=tuple(tasks), dims=dims, dtype=weight.dtype,
        quants=(weight.quant,), quant_source="ptq" if weight.quant != "none" else None,
        max_seq_length=max_seq_length, batch_size=args.batch_size, device="cpu", prompts=prompts,
        store=args.store, data_dir=args.data_dir, offline=True, cache_dir=args.cache_dir, show_progress=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "--dim 128: not declared by <local dir>": a local copy has no catalog entry
        plan = plan_run(config)
    for t in plan.tasks:  # the same subsets as the plain-mteb path: the plan's cells follow the cut task
        if t.name in args.subsets and t.obj is not None:
            t.obj.hf_subsets = list(args.subsets[t.name])
            cut = bench_task(t.obj)
            t.cells = t.selected = cut.cells
            t.version = cut.version
            for unit in plan.units:
                if unit.task is t:
                    unit.missing = {key: cut.cells for key in unit.missing}
    events: list[dict[str, Any]] = []
    counters: list[TokenCounter] = []

    def on_event(kind: str, data: dict[str, Any]) -> None:
        if kind == "unit-start" and counters:
            counters[0].task = data["task"]
        if kind == "unit-done":
            events.append({k: data[k] for k in ("variant", "task", "main_score", "wall_s", "texts_encoded", "texts_per_s")})
            print(f"    evalgemma {data['variant']} / {data['task']}: {100 * data['main_score']:.3f}  "
                  f"({data['wall_s']:.1f} s, {data['texts_encoded']} texts encoded)", flush=True)

    def hook(encoder: Any) -> None:
        if count_tokens:
            counter = TokenCounter(encoder.st_model.tokenizer)
            counters.append(counter)
            encoder.on_encode = counter

    load0 = loadavg()
    t0 = time.perf_counter()
    summary = execute(plan, on_event=on_event, encoder_hook=hook)
    wall = time.perf_counter() - t0
    keys = {v.key: v for v in plan.variants}
    frame = load_results(args.store, warn=False)
    frame = frame[frame["variant_key"].isin(list(keys)) & frame["task"].isin(tasks) & frame["is_main"]]
    variants: dict[str, Any] = {}
    for key, v in keys.items():
        rows = frame[frame["variant_key"] == key]
        cells = {cell_key(r.task, r.split, r.hf_subset): float(r.value) for r in rows.itertuples()}
        scores = {task: float(g["main_score"].iloc[0]) for task, g in rows.groupby("task")}
        variants[str(v.dim)] = {"label": v.label, "variant_key": key, "weight_key": v.weight.key, "cells": cells, "task_scores": scores}
    return {
        "weight": weight.wid, "dtype": weight.dtype, "quant": weight.quant, "prompts": prompts,
        "max_seq_length": plan.variants[0].weight.max_seq_length, "variants": variants, "units": events,
        "wall_s": wall, "skipped_stored": summary.skipped, "encode_stats": summary.encode_stats,
        "loadavg_start": load0, "loadavg_end": loadavg(),
        "tokens": counters[0].summary() if counters else None,
        "data_sources": {t.name: t.data_source for t in plan.tasks},
        "dataset_revisions": {t.name: str(t.obj.metadata.dataset.get("revision", "")) for t in plan.tasks if t.obj is not None},
    }


# ---------------------------------------------------------------- (b) plain mteb


def mirrored_tasks(data_dir: Path, names: Iterable[str], subsets: dict[str, tuple[str, ...]]) -> list[Any]:
    """mteb task objects pointed at the local mirrors the way the data README says (no evalgemma code)."""
    import mteb

    mirrors = json.loads((data_dir / "mirrors.json").read_text(encoding="utf-8"))
    out = []
    for name in names:
        task = mteb.get_task(name)
        task.metadata = task.metadata.model_copy(deep=True)  # the metadata object is shared by the class
        task.metadata.dataset["path"] = str(data_dir / mirrors[name]["local_path"])
        if name in subsets:
            task.hf_subsets = list(subsets[name])
        out.append(task)
    return out


def cut_last_dense(st: Any, dim: int) -> None:
    """Matryoshka inside the pipeline: keep the first ``dim`` output rows of the last Dense layer,
    so the following ``Normalize`` module re-normalises the truncated vector."""
    import torch
    from sentence_transformers.base.modules.dense import Dense

    dense = [m for m in st if isinstance(m, Dense)][-1]
    old = dense.linear
    new = torch.nn.Linear(old.in_features, dim, bias=old.bias is not None, dtype=old.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(old.weight[:dim])
        if old.bias is not None:
            new.bias.copy_(old.bias[:dim])
    dense.linear = new
    dense.out_features = dim


def run_plain_mteb(args: argparse.Namespace, weight: Weight, dim: int, tasks: list[str], *, max_seq_length: int = 512,
                   batch_size: int | None = None) -> dict[str, Any]:
    """Plain mteb: mteb's SentenceTransformerEncoderWrapper around the same weights, mteb.evaluate."""
    batch_size = batch_size or args.batch_size
    import mteb
    import torch
    from mteb.models.sentence_transformer_wrapper import SentenceTransformerEncoderWrapper
    from sentence_transformers import SentenceTransformer

    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[weight.dtype]
    load0 = loadavg()
    t0 = time.perf_counter()
    st = SentenceTransformer(str(args.model_dir), device="cpu", model_kwargs={"dtype": torch_dtype})
    st.max_seq_length = max_seq_length
    st.eval()
    if weight.quant != "none":
        from evalgemma.variants.weight_quant import quantize_model

        quantize_model(st, weight.quant)
    full = st.get_embedding_dimension() if hasattr(st, "get_embedding_dimension") else st.get_sentence_embedding_dimension()
    if dim != full:
        cut_last_dense(st, dim)
    st_config = args.model_dir / "config_sentence_transformers.json"
    model_prompts = (json.loads(st_config.read_text(encoding="utf-8")).get("prompts") if st_config.is_file() else None) or None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Model prompts specified, these will overwrite...": the same dict
        model = SentenceTransformerEncoderWrapper(st, model_prompts=model_prompts)
        objs = mirrored_tasks(args.data_dir, tasks, args.subsets)
        result = mteb.evaluate(model, objs, cache=None, show_progress_bar=False,
                               encode_kwargs={"batch_size": batch_size, "show_progress_bar": False})
    wall = time.perf_counter() - t0
    cells: dict[str, float] = {}
    scores: dict[str, float] = {}
    times: dict[str, float] = {}
    for tr in result.task_results:
        for split, entries in tr.scores.items():
            for entry in entries:
                cells[cell_key(tr.task_name, split, str(entry["hf_subset"]))] = float(entry["main_score"])
        scores[tr.task_name] = float(tr.get_score())
        times[tr.task_name] = float(tr.evaluation_time or 0.0)
        print(f"    mteb      {weight.wid} · {dim}d / {tr.task_name}: {100 * scores[tr.task_name]:.3f}  ({times[tr.task_name]:.1f} s)", flush=True)
    return {"weight": weight.wid, "dim": dim, "max_seq_length": max_seq_length, "batch_size": batch_size,
            "cells": cells, "task_scores": scores, "evaluation_time_s": times, "wall_s": wall,
            "loadavg_start": load0, "loadavg_end": loadavg()}


def vector_check(args: argparse.Namespace, weight: Weight, task_name: str) -> dict[str, Any]:
    """Where the two paths' vectors part: record what mteb's wrapper returns for each encode call
    of one task, then encode the same calls (same texts, prompt, order) with evalgemma's
    ``Encoder``, (i) as in a unit (dedup, longest first, vectors reused across the task's calls),
    before and after the full-dim view (``l2_normalize``), and (ii) with a fresh ``Encoder`` per
    call; count rows bit-identical to mteb's. Then score plain mteb once more with that view
    applied to its own vectors: if that equals evalgemma's stored score, the view alone explains
    the difference."""
    import mteb
    import numpy as np
    import torch
    from mteb.models.abs_encoder import get_prompt_name
    from mteb.models.sentence_transformer_wrapper import SentenceTransformerEncoderWrapper
    from sentence_transformers import SentenceTransformer

    from evalgemma.encode.encoder import Encoder
    from evalgemma.variants.views import l2_normalize

    calls: list[tuple[str, list[str], str | None, Any]] = []

    class Recording(SentenceTransformerEncoderWrapper):  # type: ignore[misc]
        def encode(self, inputs: Any, *, task_metadata: Any, hf_split: str, hf_subset: str, prompt_type: Any = None, **kwargs: Any) -> Any:
            out = super().encode(inputs, task_metadata=task_metadata, hf_split=hf_split, hf_subset=hf_subset, prompt_type=prompt_type, **kwargs)
            name = get_prompt_name(self.model_prompts, task_metadata, prompt_type) if self.model_prompts else None
            texts = [str(t) for batch in inputs for t in batch["text"]]
            calls.append((hf_split, texts, self.model_prompts.get(name) if name else None, np.asarray(out, dtype=np.float32)))
            return out

    class Renormalised(SentenceTransformerEncoderWrapper):  # type: ignore[misc]
        def encode(self, *args: Any, **kwargs: Any) -> Any:
            return l2_normalize(np.asarray(super().encode(*args, **kwargs), dtype=np.float32))

    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[weight.dtype]
    st = SentenceTransformer(str(args.model_dir), device="cpu", model_kwargs={"dtype": torch_dtype})
    st.max_seq_length = 512
    st.eval()
    prompts = json.loads((args.model_dir / "config_sentence_transformers.json").read_text(encoding="utf-8")).get("prompts") or None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = mteb.evaluate(Recording(st, model_prompts=prompts), mirrored_tasks(args.data_dir, [task_name], args.subsets), cache=None,
                               show_progress_bar=False, encode_kwargs={"batch_size": args.batch_size, "show_progress_bar": False})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        renormalised = mteb.evaluate(Renormalised(st, model_prompts=prompts), mirrored_tasks(args.data_dir, [task_name], args.subsets), cache=None,
                                     show_progress_bar=False, encode_kwargs={"batch_size": args.batch_size, "show_progress_bar": False})
    shared = Encoder(st, "v1-vector-check", batch_size=args.batch_size)
    seen: set[str] = set()
    out = []
    for split, texts, prompt, plain in calls:
        raw = shared.encode(texts, prompt)
        in_unit = l2_normalize(raw)
        alone = l2_normalize(Encoder(st, "v1-vector-check", batch_size=args.batch_size).encode(texts, prompt))
        out.append({
            "identical_rows_raw": int((raw == plain).all(axis=1).sum()),
            "split": split, "rows": len(texts), "distinct": len(set(texts)), "seen_in_earlier_call": sum(1 for t in set(texts) if t in seen),
            "identical_rows_in_unit": int((in_unit == plain).all(axis=1).sum()), "max_abs_diff_in_unit": float(np.abs(in_unit - plain).max()),
            "identical_rows_fresh_encoder": int((alone == plain).all(axis=1).sum()), "max_abs_diff_fresh_encoder": float(np.abs(alone - plain).max()),
            "identical_rows_plain_renormalised": int((l2_normalize(plain) == plain).all(axis=1).sum()),
        })
        seen.update(texts)
    return {"task": task_name, "weight": weight.wid, "calls": out, "task_score_plain": float(result.task_results[0].get_score()),
            "task_score_plain_renormalised": float(renormalised.task_results[0].get_score())}


def measure_throughput(args: argparse.Namespace, weight: Weight, texts: list[str], prompt: str) -> dict[str, float]:
    """texts/s of one weight variant on ``texts`` (after a one-batch warm-up), to size a run first."""
    import torch
    from sentence_transformers import SentenceTransformer

    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[weight.dtype]
    st = SentenceTransformer(str(args.model_dir), device="cpu", model_kwargs={"dtype": torch_dtype})
    st.max_seq_length = 512
    with torch.inference_mode():
        st.encode(texts[: args.batch_size], prompt=prompt, batch_size=args.batch_size)
        t0 = time.perf_counter()
        st.encode(texts, prompt=prompt, batch_size=args.batch_size)
        wall = time.perf_counter() - t0
    return {"texts": len(texts), "wall_s": wall, "texts_per_s": len(texts) / wall, "loadavg": loadavg()}


# ---------------------------------------------------------------- published scores


def published_cells(reference_dir: Path) -> dict[str, dict[str, Any]]:
    """EmbeddingGemma's published main score per cell (main revision, HEAD of the results repo)."""
    out: dict[str, dict[str, Any]] = {}
    with (reference_dir / "scores.csv").open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["model"] != PUBLISHED_MODEL or row["is_main_revision"] != "1" or row["snapshot"] != "HEAD" or not row["main_score"]:
                continue
            key = cell_key(row["benchmark_task"], row["split"], row["hf_subset"])
            out[key] = {"score": float(row["main_score"]), "mteb_version": row["mteb_version"], "source": row["source_path"]}
    return out


def paper_task_scores(path: Path) -> dict[str, float]:
    """Per-task 768d values of the paper's Tables 10-11 (two decimals), where the task is there."""
    out: dict[str, float] = {}
    if not path.is_file():
        return out
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["model"] == PUBLISHED_MODEL and row["dim"] == "768" and row["is_main"] == "True" and row["kind"] == "paper":
                out.setdefault(row["task"], float(row["main_score"]))
    return out


# ---------------------------------------------------------------- tables


def fmt(x: float | None, digits: int = 3, sign: bool = False) -> str:
    """A 0-1 score as ×100 text (``n/a`` when absent)."""
    if x is None:
        return "n/a"
    return f"{100 * x:+.{digits}f}" if sign else f"{100 * x:.{digits}f}"


def delta(a: float | None, b: float | None, digits: int = 3) -> str:
    return "n/a" if a is None or b is None else fmt(a - b, digits, sign=True)


def equality_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Per (variant, cell): evalgemma vs plain mteb main score, exact comparison."""
    rows = []
    steps = doc["steps"]
    for name, step in sorted(steps.items()):
        if not name.startswith("mteb:") or name.count(":") != 2:
            continue
        _, wname, dim = name.split(":")
        eg = steps.get(f"evalgemma:{wname}")
        if eg is None or dim not in eg["variants"]:
            continue
        ev = eg["variants"][dim]
        for key, plain in sorted(step["cells"].items()):
            mine = ev["cells"].get(key)
            rows.append({"variant": f"{WEIGHT_LABELS.get(wname, wname)} · {dim}d", "cell": key, "evalgemma": mine, "mteb": plain,
                         "diff": None if mine is None else mine - plain, "equal": mine == plain})
        for task, plain in sorted(step["task_scores"].items()):
            mine = ev["task_scores"].get(task)
            rows.append({"variant": f"{WEIGHT_LABELS.get(wname, wname)} · {dim}d", "cell": f"{task}|task score", "evalgemma": mine, "mteb": plain,
                         "diff": None if mine is None else mine - plain, "equal": mine == plain})
    return rows


def published_rows(doc: dict[str, Any], published: dict[str, dict[str, Any]], paper: dict[str, float]) -> list[dict[str, Any]]:
    """Per task (and per cell): reproduced (evalgemma, each 768d weight variant) vs published."""
    rows = []
    steps = doc["steps"]
    ref_step = steps.get("evalgemma:fp32")
    if ref_step is None:
        return rows
    full = doc["meta"]["full_dim"]
    vfull = ref_step["variants"].get(full, {})
    by_task: dict[str, list[str]] = {}
    for key in vfull.get("cells", {}):
        by_task.setdefault(key.split("|")[0], []).append(key)
    for task, keys in sorted(by_task.items()):
        pub = [published[k]["score"] for k in keys if k in published]
        complete = len(pub) == len(keys)
        row: dict[str, Any] = {
            "task": task, "cells": len(keys), "published_cells": len(pub),
            "published": sum(pub) / len(pub) if complete and pub else None,
            "paper_2dp": paper.get(task) if task not in doc.get("subsets", {}) else None,
            "mteb_version_published": sorted({published[k]["mteb_version"] for k in keys if k in published}),
        }
        for wname, step in sorted(steps.items()):
            if not wname.startswith("evalgemma:") or wname.count(":") != 1:
                continue
            score = step["variants"].get(full, {}).get("task_scores", {}).get(task)
            row[wname.split(":", 1)[1]] = score
        row["gap_fp32"] = None if row["published"] is None or row.get("fp32") is None else row["fp32"] - row["published"]
        row["gap_bf16"] = None if row["published"] is None or row.get("bf16") is None else row["bf16"] - row["published"]
        row["per_cell"] = {k: {"reproduced_fp32": vfull["cells"][k], "published": published.get(k, {}).get("score")} for k in sorted(keys)}
        rows.append(row)
    return rows


def print_tables(doc: dict[str, Any], published: dict[str, dict[str, Any]], paper: dict[str, float]) -> str:
    lines: list[str] = []
    pub_rows = published_rows(doc, published, paper)
    doc["published_comparison"] = pub_rows
    if pub_rows:
        lines += ["", "### Reproduced (evalgemma, 768d, 512 tokens, CPU) vs published (MTEB results repo, rev 64614b0b)", "",
                  "| task | cells | fp32 | bf16 | q8_0 (ptq) | q4_0 (ptq) | published | gap fp32 | gap bf16 | paper (2 dp) |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in pub_rows:
            lines.append(
                f"| {r['task']} | {r['cells']} | {fmt(r.get('fp32'))} | {fmt(r.get('bf16'))} | {fmt(r.get('q8_0'))} | "
                f"{fmt(r.get('q4_0'))} | {fmt(r['published'])} | "
                f"{fmt(r['gap_fp32'], sign=True)} | {fmt(r['gap_bf16'], sign=True)} | {fmt(r['paper_2dp'], 2)} |")
        lines += ["", "Per cell (fp32 768d vs published):", "", "| cell | reproduced | published | gap |", "|---|---|---|---|"]
        for r in pub_rows:
            for key, c in r["per_cell"].items():
                lines.append(f"| {key} | {fmt(c['reproduced_fp32'], 4)} | {fmt(c['published'], 4)} | {delta(c['reproduced_fp32'], c['published'], 4)} |")
    eq = equality_rows(doc)
    doc["equality"] = eq
    if eq:
        n_equal = sum(1 for r in eq if r["equal"])
        lines += ["", f"### evalgemma vs plain mteb (same weights): {n_equal}/{len(eq)} scores bit-identical", "",
                  "| variant | cell | evalgemma | plain mteb | difference |", "|---|---|---|---|---|"]
        for r in eq:
            diff = "identical" if r["equal"] else ("missing" if r["diff"] is None else f"{r['diff']:+.3e}")
            lines.append(f"| {r['variant']} | {r['cell']} | {r['evalgemma']!r} | {r['mteb']!r} | {diff} |")
    causes = doc["steps"]
    full = doc["meta"]["full_dim"]
    pub_tasks = [(r["task"], r["published"]) for r in pub_rows if r["published"] is not None]
    rows = []
    for name, label in (("evalgemma:fp32", "fp32, prompts, 512 tokens (evalgemma default)"),
                        ("evalgemma:bf16", "bf16 weights"),
                        ("cause:no-prompts", "fp32, --no-prompts"),
                        ("cause:max-len-2048", "fp32, --max-seq-length 2048"),
                        (f"mteb:fp32:{full}", "plain mteb, fp32")):
        step = causes.get(name)
        if step is None:
            continue
        scores = step["task_scores"] if name.startswith("mteb:") else step["variants"].get(full, {}).get("task_scores", {})
        cells = [f"{fmt(scores[t], 3)} ({delta(scores[t], pub, 3)})" if t in scores else "not run" for t, pub in pub_tasks]
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    if rows and pub_tasks:
        lines += ["", "### Candidate causes of the gaps: score ×100 (Δ vs published)", "",
                  "| setting | " + " | ".join(t for t, _ in pub_tasks) + " |", "|---|" + "---|" * len(pub_tasks),
                  "| published | " + " | ".join(fmt(pub, 3) for _, pub in pub_tasks) + " |", *rows]
        tok = causes.get(f"tokens:{CAUSE_TASK}")
        if tok:
            lines.append(f"\n{CAUSE_TASK} test inputs (distinct, prompt {tok['prompt']!r} + sentence, special tokens): {tok['inputs']}, "
                         f"longest {tok['max_tokens']} tokens, median {tok['median_tokens']}, "
                         f"{tok['over_512']} longer than 512, {tok['over_2048']} longer than 2048.")
        per_task = causes.get("evalgemma:fp32", {}).get("tokens") or {}
        if per_task and "inputs" not in per_task:
            lines.append(
                "Inputs the fp32 run sent to the model, per task: "
                + "; ".join(f"{t}: {c['inputs']}, longest {c['max_tokens']}, {c['over_512']} > 512" for t, c in sorted(per_task.items()))
            )
    revs = causes.get("evalgemma:fp32", {}).get("dataset_revisions")
    if revs:
        lines += [
            "",
            "Dataset revision each task pins in mteb 2.26.24 (the mirrors hold these): " + ", ".join(f"{k} `{v[:12]}`" for k, v in sorted(revs.items())),
        ]
    batch_steps = [(n, st) for n, st in sorted(doc["steps"].items()) if n.startswith("mteb:") and n.count(":") == 3]
    if batch_steps:
        lines += [
            "",
            "### Plain mteb alone: the same weights at another batch size (batch composition changes float rounding)",
            "",
            "| weights | cell | batch 32 | other batch | batch | difference |",
            "|---|---|---|---|---|---|",
        ]
        for name, other in batch_steps:
            _, wid, dim, _ = name.split(":")
            base_cells = doc["steps"].get(f"mteb:{wid}:{dim}", {}).get("cells", {})
            for key, value in sorted(other["cells"].items()):
                base_value = base_cells.get(key)
                diff = "identical" if base_value == value else ("missing" if base_value is None else f"{value - base_value:+.3e}")
                lines.append(f"| {WEIGHT_LABELS.get(wid, wid)} · {dim}d | {key} | {base_value!r} | {value!r} | {other.get('batch_size')} | {diff} |")
    for name, vc in sorted(doc["steps"].items()):
        if not name.startswith("vectors:"):
            continue
        lines += [
            "",
            f"### {vc['task']} ({vc['weight']}): vectors of each mteb encode call, evalgemma's Encoder vs mteb's wrapper",
            "",
            "| call (split) | rows | already encoded in an earlier call | bit-identical: Encoder output | "
            "bit-identical: after the view, in a unit (max abs diff) | bit-identical: after the view, fresh Encoder | "
            "bit-identical: mteb's own vectors after l2_normalize |",
            "|---|---|---|---|---|---|---|",
        ]
        for c in vc["calls"]:
            lines.append(
                f"| {c['split']} | {c['rows']} | {c['seen_in_earlier_call']} | {c.get('identical_rows_raw', 'n/a')} | "
                f"{c['identical_rows_in_unit']} ({c['max_abs_diff_in_unit']:.2e}) | {c['identical_rows_fresh_encoder']} | "
                f"{c['identical_rows_plain_renormalised']} |"
            )
        eg_score = doc["steps"].get(f"evalgemma:{vc['weight']}", {}).get("variants", {}).get(full, {}).get("task_scores", {}).get(vc["task"])
        lines.append(
            f"\nTask score: plain mteb {vc['task_score_plain']!r}; plain mteb with l2_normalize applied to its own vectors "
            f"{vc.get('task_score_plain_renormalised')!r}; evalgemma {eg_score!r}."
        )
    timing = [
        f"| {name} | {s['wall_s']:.0f} | {s.get('loadavg_start', float('nan')):.1f} → {s.get('loadavg_end', float('nan')):.1f} |"
        for name, s in sorted(doc["steps"].items())
        if "wall_s" in s
    ]
    if timing:
        lines += [
            "",
            "### Wall time per step (2 shared CPU cores; load average = runnable processes)",
            "",
            "| step | wall s | load average start → end |",
            "|---|---|---|",
            *timing,
        ]
    text = "\n".join(lines)
    print(text, flush=True)
    return text


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    data_default = Path(os.environ.get("EVALGEMMA_DATA", REPO.parent / "shared" / "data")) / "hf"
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir", type=Path, required=True, help="local google/embeddinggemma-300m (sentence-transformers layout)")
    p.add_argument("--data-dir", type=Path, default=data_default, help="offline MTEB mirrors (with mirrors.json)")
    p.add_argument("--reference-dir", type=Path, default=None, help="mteb_reference/ (default: DATA_DIR/../mteb_reference)")
    p.add_argument("--out", type=Path, required=True, help="JSON of every figure")
    p.add_argument("--markdown", type=Path, default=None, help="also write the printed tables here")
    p.add_argument("--store", type=Path, default=Path("/tmp/realgemma-store"), help="evalgemma results store (kept for reruns)")
    p.add_argument("--cache-dir", type=Path, default=Path("/tmp/realgemma-cache"), help="evalgemma embedding cache")
    p.add_argument("--tasks", default=",".join(DEFAULT_TASKS), help="tasks for every weight variant")
    p.add_argument("--fp32-only-tasks", default=",".join(DEFAULT_FP32_ONLY), help="tasks for the float32 weights only")
    p.add_argument("--subset", action="append", default=[], metavar="TASK=S1,S2", help=f"restrict a task's subsets (default: {DEFAULT_SUBSETS})")
    p.add_argument("--dims", default="768,128")
    p.add_argument("--weights", default="fp32,bf16,q8_0,q4_0", help="fp32, bf16, q8_0, q4_0 (PTQ of the fp32 weights)")
    p.add_argument("--plain-dims", default="768,128", help="dims checked against plain mteb (128d costs one more encode per weight)")
    p.add_argument("--plain-weights", default="fp32,bf16,q8_0,q4_0", help="weights checked against plain mteb at the full dim")
    p.add_argument("--plain-128-weights", default="fp32", help="weights whose other dims are also checked against plain mteb (on --tasks)")
    p.add_argument("--force-max-len-run", action="store_true", help="rerun STSBenchmark at 2048 tokens even if no input exceeds 512")
    p.add_argument("--causes", default="no-prompts,max-len-2048", help=f"extra fp32 runs: no-prompts (on --tasks), max-len-2048 (on {CAUSE_TASK}; empty: none)")
    p.add_argument("--bf16-limit-min", type=float, default=10.0, help="skip bf16 on a task whose estimated encode time exceeds this")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--vector-check", default="PoemSentimentClassification", help="task whose vectors are compared row by row (empty: none)")
    p.add_argument(
        "--batch-check",
        type=int,
        default=16,
        help="also run plain mteb (fp32, full dim, --tasks) at this batch size: how much a score moves with batch composition alone (0: skip)",
    )
    p.add_argument("--resume", action="store_true", help="skip steps already in --out")
    args = p.parse_args(argv)
    args.model_dir = args.model_dir.resolve()
    args.reference_dir = args.reference_dir or args.data_dir.parent / "mteb_reference"
    subsets = dict(DEFAULT_SUBSETS)
    for item in args.subset:
        task, _, names = item.partition("=")
        if not names:
            p.error(f"--subset {item}: expected TASK=S1,S2")
        subsets[task] = tuple(names.split(","))
    args.subsets = subsets
    for flag in ("tasks", "fp32_only_tasks", "weights", "causes", "plain_weights", "plain_128_weights"):
        setattr(args, flag, [x for x in getattr(args, flag).split(",") if x])
    args.dims = tuple(int(x) for x in args.dims.split(","))
    args.plain_dims = tuple(int(x) for x in args.plain_dims.split(",") if x)
    if not (args.model_dir / "modules.json").is_file():
        p.error(f"--model-dir {args.model_dir}: not a sentence-transformers directory (no modules.json)")
    if not (args.data_dir / "mirrors.json").is_file():
        p.error(f"--data-dir {args.data_dir}: no mirrors.json")
    return args


WEIGHTS = {w.wid: w for w in (Weight("fp32"), Weight("bf16", "bfloat16"), Weight("q8_0", "float32", "q8_0"), Weight("q4_0", "float32", "q4_0"))}
WEIGHT_LABELS = {"fp32": "fp32", "bf16": "bf16", "q8_0": "q8_0 (ptq)", "q4_0": "q4_0 (ptq)"}


def step(results: Results, name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
    if results.done(name):
        print(f"-- {name}: in {results.path} already (--resume)", flush=True)
        return results.doc["steps"][name]
    print(f"-- {name} (load average {loadavg():.1f})", flush=True)
    try:
        value = fn()
    except Exception as exc:  # one failing step must not lose the others; it is reported in the JSON
        import traceback

        traceback.print_exc()
        results.doc.setdefault("failures", {})[name] = f"{type(exc).__name__}: {exc}"
        results.save()
        return None
    results.put(name, value)
    return value


def bf16_tasks(args: argparse.Namespace, results: Results, tasks: list[str]) -> list[str]:
    """Tasks whose bf16 encode is estimated under ``--bf16-limit-min`` (fp32 text counts × measured bf16 s/text)."""
    import pyarrow.parquet as pq

    mirror = args.data_dir / json.loads((args.data_dir / "mirrors.json").read_text())["STSBenchmark"]["local_path"]
    table = pq.read_table(next((mirror / "data").glob("test-*.parquet")))
    texts = list(dict.fromkeys(table.column("sentence1").to_pylist()))[:256]
    probe = step(results, "throughput:bf16", lambda: measure_throughput(args, WEIGHTS["bf16"], texts, "task: sentence similarity | query: "))
    fp32 = results.doc["steps"].get("evalgemma:fp32", {})
    if probe is None:
        return []
    keep = []
    for task in tasks:
        n = sum(u["texts_encoded"] for u in fp32.get("units", []) if u["task"] == task)
        minutes = n / probe["texts_per_s"] / 60 if n else 0.0
        verdict = "run" if minutes <= args.bf16_limit_min else "skip"
        print(f"    bf16 {task}: {n} texts at {probe['texts_per_s']:.1f} texts/s ≈ {minutes:.1f} min → {verdict}", flush=True)
        results.doc.setdefault("bf16_estimate", {})[task] = {"texts": n, "minutes": minutes, "run": verdict == "run"}
        if verdict == "run":
            keep.append(task)
    results.save()
    return keep


def planned_steps(args: argparse.Namespace, results: Results) -> Iterable[tuple[str, Callable[[], dict[str, Any]]]]:
    """The steps in the order that gets the main figures first: fp32 through both paths, the
    STSBenchmark cause runs, bf16 through both paths, the 128d plain-mteb check, the PTQ weights
    through evalgemma, and last the PTQ weights through plain mteb.

    A generator, so later choices (bf16 tasks, the max-length rerun) use what was measured before.
    """
    full = args.dims[0]
    all_fp32 = list(dict.fromkeys([*args.tasks, *args.fp32_only_tasks]))

    def tasks_of(wid: str) -> list[str]:
        return all_fp32 if wid == "fp32" else list(args.tasks)

    def evalgemma(wid: str, tasks: list[str]) -> tuple[str, Callable[[], dict[str, Any]]]:
        return f"evalgemma:{wid}", lambda: run_evalgemma(args, WEIGHTS[wid], tasks, args.dims, count_tokens=(wid == "fp32"))

    def plain(wid: str, dim: int, tasks: list[str]) -> tuple[str, Callable[[], dict[str, Any]]]:
        max_len = results.doc["steps"].get(f"evalgemma:{wid}", {}).get("max_seq_length", 512)  # the same as (a)
        return f"mteb:{wid}:{dim}", lambda: run_plain_mteb(args, WEIGHTS[wid], dim, tasks, max_seq_length=max_len)

    other_dims = [d for d in args.plain_dims if d != full]
    if "fp32" in args.weights:
        yield evalgemma("fp32", tasks_of("fp32"))
        if full in args.plain_dims and "fp32" in args.plain_weights:
            yield plain("fp32", full, tasks_of("fp32"))
        fp32 = WEIGHTS["fp32"]
        if "no-prompts" in args.causes:
            yield "cause:no-prompts", lambda: run_evalgemma(args, fp32, list(args.tasks), (full,), prompts=False)
        if "max-len-2048" in args.causes:
            yield f"tokens:{CAUSE_TASK}", lambda: sts_token_lengths(args)
            tokens = results.doc["steps"].get(f"tokens:{CAUSE_TASK}", {})
            if tokens.get("over_512", 1) or args.force_max_len_run or results.done("cause:max-len-2048"):
                yield "cause:max-len-2048", lambda: run_evalgemma(args, fp32, [CAUSE_TASK], (full,), max_seq_length=2048)
            else:
                print(
                    f"-- cause:max-len-2048: not run: none of the {tokens['inputs']} {CAUSE_TASK} inputs exceeds 512 tokens "
                    f"(longest {tokens['max_tokens']}), so 512 and 2048 give the same token ids (--force-max-len-run runs it)",
                    flush=True,
                )
    bf16 = bf16_tasks(args, results, tasks_of("bf16")) if "bf16" in args.weights else []
    if bf16:
        yield evalgemma("bf16", bf16)
        if full in args.plain_dims and "bf16" in args.plain_weights:
            yield plain("bf16", full, bf16)
    if "fp32" in args.weights and args.vector_check:
        yield f"vectors:fp32:{args.vector_check}", lambda: vector_check(args, WEIGHTS["fp32"], args.vector_check)
    for wid in ("fp32", "bf16"):
        if wid in args.weights and args.batch_check and args.batch_check != args.batch_size and (wid != "bf16" or bf16):
            yield (
                f"mteb:{wid}:{full}:bs{args.batch_check}",
                lambda wid=wid: run_plain_mteb(
                    args, WEIGHTS[wid], full, bf16 if wid == "bf16" else list(args.tasks), max_seq_length=512, batch_size=args.batch_check
                ),
            )
    if "fp32" in args.weights and "fp32" in args.plain_128_weights:
        for dim in other_dims:
            yield plain("fp32", dim, list(args.tasks))
    quants = [w for w in ("q8_0", "q4_0") if w in args.weights]
    for wid in quants:
        yield evalgemma(wid, tasks_of(wid))
    for wid in quants:
        if full in args.plain_dims and wid in args.plain_weights:
            yield plain(wid, full, tasks_of(wid))
    for wid in ("bf16", "q8_0", "q4_0"):
        if wid in args.weights and wid in args.plain_128_weights and (wid != "bf16" or bf16):
            for dim in other_dims:
                yield plain(wid, dim, bf16 if wid == "bf16" else tasks_of(wid))


def sts_token_lengths(args: argparse.Namespace) -> dict[str, Any]:
    """Token lengths of every STSBenchmark test input as both paths send it: the prompt mteb's
    lookup picks from the model's dictionary, then the sentence; the model's own tokenizer,
    special tokens included, no truncation."""
    import mteb
    import pyarrow.parquet as pq
    from mteb.models.abs_encoder import get_prompt_name
    from transformers import AutoTokenizer

    task = mteb.get_task(CAUSE_TASK)
    prompts = json.loads((args.model_dir / "config_sentence_transformers.json").read_text(encoding="utf-8")).get("prompts") or {}
    name = get_prompt_name(prompts, task.metadata, None)
    prompt = prompts.get(name, "") if name else ""
    mirror = args.data_dir / json.loads((args.data_dir / "mirrors.json").read_text())[CAUSE_TASK]["local_path"]
    table = pq.read_table(next((mirror / "data").glob("test-*.parquet")))
    texts = list(dict.fromkeys(table.column("sentence1").to_pylist() + table.column("sentence2").to_pylist()))
    tokenizer = AutoTokenizer.from_pretrained(str(args.model_dir))
    lengths = [len(ids) for ids in tokenizer([prompt + t for t in texts], add_special_tokens=True, truncation=False)["input_ids"]]
    return {
        "prompt": prompt,
        "inputs": len(lengths),
        "max_tokens": max(lengths),
        "median_tokens": statistics.median(lengths),
        "over_512": sum(1 for n in lengths if n > 512),
        "over_2048": sum(1 for n in lengths if n > 2048),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_DATASETS_CACHE", "/tmp/realgemma-hf-datasets")
    warnings.filterwarnings("ignore", module="sklearn")  # per-experiment "Recall is ill-defined" on tiny classes
    results = Results(args.out)
    results.load(args.resume)
    results.doc["meta"] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "versions": versions(),
        "model_dir": str(args.model_dir),
        "data_dir": str(args.data_dir),
        "batch_size": args.batch_size,
        "subsets": {k: list(v) for k, v in args.subsets.items()},
        "full_dim": str(args.dims[0]),
    }
    results.doc["subsets"] = {k: list(v) for k, v in args.subsets.items()}
    results.save()
    started = time.perf_counter()
    for name, fn in planned_steps(args, results):
        step(results, name, fn)
    results.doc["meta"]["total_wall_s"] = results.doc["meta"].get("total_wall_s", 0.0) + (time.perf_counter() - started)
    published = published_cells(args.reference_dir)
    paper = paper_task_scores(REPO / "results" / "reference" / "paper_task_scores.csv")
    text = print_tables(results.doc, published, paper)
    results.save()
    if args.markdown is not None:
        args.markdown.write_text(text + "\n", encoding="utf-8")
    return 1 if results.doc.get("failures") else 0


if __name__ == "__main__":
    raise SystemExit(main())
