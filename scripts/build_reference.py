#!/usr/bin/env python
"""Build ``results/reference/`` (published MTEB and paper scores, as data) from shared material.

Inputs (read-only, never copied wholesale):

* ``<data>/mteb_reference/`` — per-task scores read from ``embeddings-benchmark/results`` (see its
  README): ``benchmarks.csv``, ``benchmark_cells.csv``, ``task_scores.csv``, ``benchmark_means.csv``.
* ``<docs>/embeddinggemma.md`` — the EmbeddingGemma paper tables (arXiv:2509.20354 v1), parsed from
  the markdown here: §7 (Matryoshka means), §8 (QAT means), §10.2–10.8 (peers, per type, Code per
  task, XOR-Retrieve and XTREME-UP per language) and §11 (per-task scores, Tables 10–11).

Outputs (``results/reference/``), every row with ``source`` and ``kind`` (``mteb`` | ``paper``):

* ``suite_tasks.csv`` — the expected tasks of each MTEB suite (type, main metric, splits, cells).
* ``mteb_task_scores.parquet`` — one store-like row per (model, suite, task), 0-1 scale.
* ``mteb_benchmark_means.csv`` — the means the source data computed (cross-check only).
* ``paper_task_scores.csv`` — per-task / per-language paper values, 0-1 scale.
* ``paper_aggregates.csv`` — published means (Mean(Task), Mean(TaskType), per-type means), 0-1.
* ``inputs.json`` — sha256 of every input file.

No score appears in this script: every number is read from the inputs.

Usage: ``python scripts/build_reference.py [--data DIR] [--docs DIR] [--out results/reference]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]

#: mteb benchmark name -> evalgemma suite name.
SUITES = {
    "MTEB(Multilingual, v2)": "mteb-multilingual-v2",
    "MTEB(eng, v2)": "mteb-eng-v2",
    "MTEB(Code, v1)": "mteb-code-v1",
}
XTREME_SUITE, XTREME_TASK, XTREME_METRIC = "xtreme-up", "xtreme-up-cross-lang", "mrr_at_10"
XOR_SUITE, XOR_TASK, XOR_METRIC = "xor-retrieve", "xor-retrieve", "recall_at_5kt"
GEMMA = "google/embeddinggemma-300m"
PAPER = "arXiv:2509.20354 v1"

#: Paper model names -> Hugging Face ids (names only; models not listed keep the paper's name).
PAPER_MODEL_IDS = {
    "embeddinggemma": GEMMA,
    "gte multilingual base": "Alibaba-NLP/gte-multilingual-base",
    "gte-multilingual-base": "Alibaba-NLP/gte-multilingual-base",
    "me5 large instruct": "intfloat/multilingual-e5-large-instruct",
    "multilingual-e5-large-instruct": "intfloat/multilingual-e5-large-instruct",
    "multilingual-e5-base": "intfloat/multilingual-e5-base",
    "multilingual-e5-small": "intfloat/multilingual-e5-small",
    "bge-m3": "BAAI/bge-m3",
    "jina embeddings v3": "jinaai/jina-embeddings-v3",
    "jina-embeddings-v3": "jinaai/jina-embeddings-v3",
    "qwen3 embedding 0.6b": "Qwen/Qwen3-Embedding-0.6B",
    "qwen3-embedding-0.6b": "Qwen/Qwen3-Embedding-0.6B",
    "snowflake-arctic-embed-m-v2.0": "Snowflake/snowflake-arctic-embed-m-v2.0",
    "granite-embedding-278m-multi.": "ibm-granite/granite-embedding-278m-multilingual",
}

#: Column abbreviations of the paper tables -> mteb task type names. The paper's
#: "InstructionRetrieval" tasks are typed ``InstructionReranking`` in mteb 2.26.24.
TYPE_ABBREV = {
    "bitext": "BitextMining", "class": "Classification", "clust": "Clustering",
    "instretr": "InstructionReranking", "instr": "InstructionReranking",
    "multilbl": "MultilabelClassification", "multil": "MultilabelClassification",
    "paircl": "PairClassification", "pairc": "PairClassification", "rerank": "Reranking",
    "retr": "Retrieval", "sts": "STS", "summ": "Summarization",
    "instructionretrieval": "InstructionReranking",
}

#: §10.6 column abbreviations -> mteb task names (the table's own legend, written out).
CODE_ABBREV = {
    "Apps": "AppsRetrieval", "COIR": "COIRCodeSearchNetRetrieval", "CES": "CodeEditSearchRetrieval",
    "CFMT": "CodeFeedbackMT", "CFST": "CodeFeedbackST", "CSNCC": "CodeSearchNetCCRetrieval",
    "CSN": "CodeSearchNetRetrieval", "CTOC": "CodeTransOceanContest", "CTODL": "CodeTransOceanDL",
    "CosQA": "CosQA", "SOQA": "StackOverflowQA", "T2SQL": "SyntheticText2SQL",
}

QUANT_ROWS = {"bf16": ("none", "bfloat16"), "q8_0": ("q8_0", "bfloat16"), "mixed": ("mixed", "bfloat16"), "q4_0": ("q4_0", "bfloat16")}

REF_COLUMNS = [
    "model", "variant", "variant_key", "dim", "dtype", "quant", "suite", "task", "task_type",
    "hf_subset", "split", "metric", "value", "is_main", "main_score", "source", "kind",
]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def variant_key(label: str, kind: str) -> str:
    """Deterministic key of a reference variant (prefix ``ref-`` so it never collides with a store key)."""
    return "ref-" + hashlib.sha256(f"{kind}\x00{label}".encode()).hexdigest()[:12]


def short(model: str) -> str:
    return model.rsplit("/", 1)[-1]


def label(model: str, dim: int, kind: str, quant: str = "none") -> str:
    parts = [short(model)]
    if quant != "none":
        parts.append(f"{quant}(qat)")
    if dim:
        parts.append(f"{dim}d")
    return " · ".join(parts) + (" (paper)" if kind == "paper" else " (MTEB)")


# ---------------------------------------------------------------- markdown parsing


def section(md: str, number: str) -> str:
    """The text of the section whose heading starts with ``## number`` / ``### number``."""
    lines = md.splitlines()
    pat = re.compile(rf"^(#+)\s+{re.escape(number)}[.\s]")
    for i, line in enumerate(lines):
        m = pat.match(line)
        if m:
            level = len(m.group(1))
            out = []
            for nxt in lines[i + 1 :]:
                h = re.match(r"^(#+)\s", nxt)
                if h and len(h.group(1)) <= level:
                    break
                out.append(nxt)
            return "\n".join(out)
    raise SystemExit(f"embeddinggemma.md: section {number} not found")


def tables(text: str) -> list[list[dict[str, str]]]:
    """Every pipe table of ``text`` as a list of rows (header -> cell), bold markers removed."""
    found: list[list[dict[str, str]]] = []
    block: list[str] = []
    for line in [*text.splitlines(), ""]:
        if line.strip().startswith("|"):
            block.append(line.strip())
            continue
        if len(block) >= 3:
            cells = [[c.strip().replace("**", "") for c in row.strip("|").split("|")] for row in block]
            header, rows = cells[0], cells[2:]
            found.append([dict(zip(header, row, strict=True)) for row in rows])
        block = []
    return found


def number(cell: str) -> float | None:
    """A table cell as a float on the paper's ×100 scale; ``-``/``–``/empty are missing."""
    cell = cell.strip().replace("−", "-")
    if cell in ("", "-", "–"):
        return None
    return float(cell)


def model_of(name: str) -> tuple[str, int]:
    """(model id, dim) of a paper row name like ``EmbeddingGemma 512d`` or ``BGE-M3``."""
    name = name.replace("†", "").strip()
    m = re.match(r"^(.*?)\s+(\d+)d$", name)
    dim = 0
    if m:
        name, dim = m.group(1), int(m.group(2))
    model = PAPER_MODEL_IDS.get(name.lower(), name)
    if model == GEMMA and not dim:
        dim = 768
    return model, dim


def type_of(header: str) -> str | None:
    return TYPE_ABBREV.get(re.sub(r"[^a-z]", "", header.lower()))


# ---------------------------------------------------------------- rows


def row(model: str, dim: int, kind: str, suite: str, task: str, task_type: str, metric: str,
        score: float, source: str, *, hf_subset: str = "", split: str = "", quant: str = "none",
        dtype: str = "", main_score: float | None = None, variant: str | None = None) -> dict[str, object]:
    lab = variant or label(model, dim, kind, quant)
    if kind == "paper" and model == GEMMA and not dtype:
        dtype = "bfloat16"  # [P] §4.2: evaluations run with bf16 weights
    return {
        "model": model, "variant": lab, "variant_key": variant_key(lab, kind), "dim": dim, "dtype": dtype,
        "quant": quant, "suite": suite, "task": task, "task_type": task_type, "hf_subset": hf_subset,
        "split": split, "metric": metric, "value": score, "is_main": True,
        "main_score": score if main_score is None else main_score, "source": source, "kind": kind,
    }


def agg(model: str, dim: int, suite: str, aggregate: str, value: float, source: str, *,
        task_type: str = "", n_tasks: int = 0, quant: str = "none", dtype: str = "") -> dict[str, object]:
    lab = label(model, dim, "paper", quant)
    if model == GEMMA and not dtype:
        dtype = "bfloat16"  # [P] §4.2: evaluations run with bf16 weights
    return {
        "model": model, "variant": lab, "variant_key": variant_key(lab, "paper"), "dim": dim, "dtype": dtype,
        "quant": quant, "suite": suite, "statistic": aggregate, "task_type": task_type, "value": value / 100,
        "n_tasks": n_tasks, "source": source, "kind": "paper",
    }


def embed_dims(models: list[str]) -> dict[str, int]:
    """Output dims from mteb's ModelMeta (0 where mteb does not know the model)."""
    try:
        import mteb
    except ImportError:
        return {}
    out: dict[str, int] = {}
    for m in models:
        try:
            d = mteb.get_model_meta(m).embed_dim
        except Exception:  # unknown model names raise several types inside mteb
            continue
        if isinstance(d, (list, tuple)):
            d = max(d)
        out[m] = int(d) if d else 0
    return out


def build_mteb(data: Path, out: Path) -> pd.DataFrame:
    bench = pd.read_csv(data / "benchmarks.csv")
    cells = pd.read_csv(data / "benchmark_cells.csv")
    n_cells = cells.groupby(["benchmark", "task_name"]).size().rename("n_cells").reset_index()
    st = bench.merge(n_cells, on=["benchmark", "task_name"], how="left")
    st.insert(0, "suite", st["benchmark"].map(SUITES))
    st = st.rename(columns={"task_name": "task", "main_score_metric": "main_metric"})
    st["source"] = "mteb 2.26.24 benchmark definitions via shared/data/mteb_reference/benchmarks.csv"
    st = st[["suite", "benchmark", "task", "task_type", "main_metric", "eval_splits", "n_hf_subsets", "n_cells", "source"]]
    st.sort_values(["suite", "task_type", "task"]).to_csv(out / "suite_tasks.csv", index=False)

    ts = pd.read_csv(data / "task_scores.csv", low_memory=False)
    dims = embed_dims(sorted(ts["model"].unique()))
    metric = bench.set_index(["benchmark", "task_name"])["main_score_metric"]
    recs = []
    for r in ts.itertuples(index=False):
        dim = dims.get(r.model, 0)
        src = f"embeddings-benchmark/results@f4cc6c8b365a {r.source_path if isinstance(r.source_path, str) else '(no file)'}"
        rec = row(r.model, dim, "mteb", SUITES[r.benchmark], r.task_name, r.task_type, metric[(r.benchmark, r.task_name)], r.task_score, src)
        rec.update(
            revision=r.revision_used if isinstance(r.revision_used, str) else "",
            model_group=r.model_group,
            status=r.status,
            n_cells_expected=r.n_cells_expected,
            n_cells_found=r.n_cells_found,
            main_score_recovered=r.recovered_task_score if pd.notna(r.recovered_task_score) else r.task_score,
            main_score_earliest=(
                r.earliest_task_score if pd.notna(r.earliest_task_score) else (r.recovered_task_score if pd.notna(r.recovered_task_score) else r.task_score)
            ),
            mteb_version=str(r.mteb_version) if pd.notna(r.mteb_version) else "",
        )
        recs.append(rec)
    frame = pd.DataFrame(recs)
    frame["dim"] = frame["dim"].astype("int32")
    frame.to_parquet(out / "mteb_task_scores.parquet", index=False)

    bm = pd.read_csv(data / "benchmark_means.csv")
    bm.insert(2, "suite", bm["benchmark"].map(SUITES))
    bm["source"] = "shared/data/mteb_reference/benchmark_means.csv (means over scored tasks, ×100)"
    bm.to_csv(out / "mteb_benchmark_means.csv", index=False)
    return frame


def parse_paper(md: str, suite_tasks: pd.DataFrame) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    task_rows: list[dict[str, object]] = []
    aggs: list[dict[str, object]] = []
    types = {(r.suite, r.task): r.task_type for r in suite_tasks.itertuples()}
    metrics = {(r.suite, r.task): r.main_metric for r in suite_tasks.itertuples()}

    # §7 Matryoshka means (model card "Full Precision Checkpoint").
    cols7 = {
        "Multi v2 Mean(Task)": ("mteb-multilingual-v2", "mean_task"),
        "Multi v2 Mean(Type)": ("mteb-multilingual-v2", "mean_tasktype"),
        "eng v2 Mean(Task)": ("mteb-eng-v2", "mean_task"),
        "eng v2 Mean(Type)": ("mteb-eng-v2", "mean_tasktype"),
        "Code v1 Mean(Task) (12 tasks)": ("mteb-code-v1", "mean_task"),
        "Code −COIR ([P] T8)": ("mteb-code-v1", "mean_task_no_coir"),
    }
    (t7,) = tables(section(md, "7"))
    for r in t7:
        dim = int(r["Dim"])
        for col, (suite, what) in cols7.items():
            v = number(r[col])
            if v is not None:
                aggs.append(agg(GEMMA, dim, suite, what, v, f"{PAPER} model card 'Full Precision Checkpoint'; Table 8 (−COIR); embeddinggemma.md §7"))

    # §8 QAT means ([P] Table 1).
    cols8 = {
        "Multi v2 Mean(Task)": ("mteb-multilingual-v2", "mean_task"),
        "Multi v2 Mean(Type)": ("mteb-multilingual-v2", "mean_tasktype"),
        "eng v2 Mean(Task)": ("mteb-eng-v2", "mean_task"),
        "eng v2 Mean(Type)": ("mteb-eng-v2", "mean_tasktype"),
        "Code v1 Mean(Task)": ("mteb-code-v1", "mean_task"),
    }
    (t8,) = tables(section(md, "8"))
    for r in t8:
        key = re.split(r"[\s=(†]", r["Precision"].lower())[0]
        quant, dtype = QUANT_ROWS[key]
        for col, (suite, what) in cols8.items():
            v = number(r[col])
            if v is not None:
                aggs.append(agg(GEMMA, 768, suite, what, v, f"{PAPER} Table 1; model card 'QAT Checkpoints'; embeddinggemma.md §8", quant=quant, dtype=dtype))

    # §10.2 Multilingual per type vs peers ([P] Table 5).
    (t102,) = tables(section(md, "10.2"))
    for r in t102:
        model, dim = model_of(r["Model"])
        src = f"{PAPER} Table 5; embeddinggemma.md §10.2"
        for col, cell in r.items():
            v = number(cell) if col not in ("Model", "Params") else None
            if v is None:
                continue
            if col == "Mean(Task)":
                aggs.append(agg(model, dim, "mteb-multilingual-v2", "mean_task", v, src, n_tasks=131))
            elif col == "Mean(Type)":
                aggs.append(agg(model, dim, "mteb-multilingual-v2", "mean_tasktype", v, src))
            elif type_of(col):
                aggs.append(agg(model, dim, "mteb-multilingual-v2", "type_mean", v, src, task_type=type_of(col) or ""))

    # §10.3 eng / Code / XOR / XTREME-UP vs peers ([P] Table 5).
    cols103 = {
        "eng Mean(Task)": ("mteb-eng-v2", "mean_task"),
        "eng Mean(Type)": ("mteb-eng-v2", "mean_tasktype"),
        "Code (11 tasks, −COIR)": ("mteb-code-v1", "mean_task_no_coir"),
        "XOR-Retrieve R@5kt": (XOR_SUITE, "mean_task"),
        "XTREME-UP MRR@10": (XTREME_SUITE, "mean_task"),
    }
    (t103,) = tables(section(md, "10.3"))
    for r in t103:
        model, dim = model_of(r["Model"])
        for col, (suite, what) in cols103.items():
            v = number(r[col])
            if v is not None:
                aggs.append(agg(model, dim, suite, what, v, f"{PAPER} Table 5; embeddinggemma.md §10.3"))

    # §10.4 / §10.5: per dim and per type, one decimal ([P] Tables 6, 7).
    for sec, suite, tab in (("10.4", "mteb-multilingual-v2", "Table 6"), ("10.5", "mteb-eng-v2", "Table 7")):
        (t,) = tables(section(md, sec))
        for r in t:
            model, dim = model_of(r["Model"])
            if model == GEMMA and dim == 768:
                continue  # the two-decimal values of §7 / §10.2 are the better source
            src = f"{PAPER} {tab}; embeddinggemma.md §{sec}"
            for col, cell in r.items():
                if col in ("Model", "Mem MB", "Params", "Rank"):
                    continue
                v = number(cell)
                if v is None:
                    continue
                if col == "M(Task)":
                    if model != GEMMA:  # EmbeddingGemma's per-dim means have two decimals in §7
                        aggs.append(agg(model, dim, suite, "mean_task", v, src))
                elif col == "M(Type)":
                    if model != GEMMA:
                        aggs.append(agg(model, dim, suite, "mean_tasktype", v, src))
                elif type_of(col):
                    aggs.append(agg(model, dim, suite, "type_mean", v, src, task_type=type_of(col) or ""))

    # §10.6 Code per task ([P] Table 8): per-task rows for all but EmbeddingGemma 768d (§11 has two decimals).
    (t106,) = tables(section(md, "10.6"))
    for r in t106:
        model, dim = model_of(r["Model"])
        src = f"{PAPER} Table 8; embeddinggemma.md §10.6"
        for col in ("All", "−COIR"):
            v = number(r[col])
            if v is not None and model != GEMMA:
                aggs.append(agg(model, dim, "mteb-code-v1", "mean_task" if col == "All" else "mean_task_no_coir", v, src))
        if model == GEMMA and dim == 768:
            continue
        for abbrev, task in CODE_ABBREV.items():
            v = number(r[abbrev])
            if v is not None:
                task_rows.append(
                    row(model, dim, "paper", "mteb-code-v1", task, types[("mteb-code-v1", task)], metrics[("mteb-code-v1", task)], v / 100, src, split="test")
                )

    # §10.7 XOR-Retrieve per language ([P] Table 12 left), R@5kt.
    text = section(md, "10.7")
    m = re.search(r"R@5kt:\s*(.*?);", text)
    if not m:
        raise SystemExit("embeddinggemma.md §10.7: no 'R@5kt:' list")
    for item in m.group(1).split(","):
        lang, val = item.split()
        task_rows.append(
            row(
                GEMMA,
                768,
                "paper",
                XOR_SUITE,
                XOR_TASK,
                "Retrieval",
                XOR_METRIC,
                float(val) / 100,
                f"{PAPER} Table 12 (left); embeddinggemma.md §10.7",
                hf_subset=lang,
                split="test",
            )
        )

    # §10.8 XTREME-UP per language: EmbeddingGemma two decimals (Table 12), peers one decimal (Table 9).
    t_gemma, t_all = tables(section(md, "10.8"))
    per_model: list[tuple[str, int, dict[str, float], str]] = []
    (g,) = t_gemma
    per_model.append((GEMMA, 768, {k: float(v) for k, v in g.items()}, f"{PAPER} Table 12 (right); embeddinggemma.md §10.8"))
    for r in t_all:
        model, dim = model_of(r["Model"])
        if model == GEMMA:
            continue
        langs = {k: number(v) for k, v in r.items() if k not in ("Model", "Params", "Avg")}
        per_model.append((model, dim, {k: v for k, v in langs.items() if v is not None}, f"{PAPER} Table 9; embeddinggemma.md §10.8"))
        avg = number(r["Avg"])
        if avg is not None:
            aggs.append(agg(model, dim, XTREME_SUITE, "mean_task", avg, f"{PAPER} Table 9; embeddinggemma.md §10.8"))
    for model, dim, langs, src in per_model:
        mean = sum(langs.values()) / len(langs) / 100
        for lang, v in langs.items():
            task_rows.append(
                row(model, dim, "paper", XTREME_SUITE, XTREME_TASK, "Retrieval", XTREME_METRIC, v / 100, src, hf_subset=lang, split="test", main_score=mean)
            )

    # §11 per-task scores of EmbeddingGemma ([P] Tables 10–11).
    text = section(md, "11")
    suite = ""
    names = {"MTEB(Multilingual, v2)": "mteb-multilingual-v2", "MTEB(eng, v2)": "mteb-eng-v2", "MTEB(Code, v1)": "mteb-code-v1"}
    seen: dict[str, int] = {}
    for line in text.splitlines():
        head = re.match(r"^\*\*(MTEB\([^)]*\))\*\*\s*\((\d+)\):?(.*)$", line.strip())
        body = ""
        if head:
            suite = names[head.group(1)]
            seen[suite] = 0
            body = head.group(3)
        elif line.startswith("- "):
            body = line[2:]
        if not body.strip():
            continue
        body = re.sub(r"\([^)]*\)", "", body)  # parenthetical remarks, e.g. "(86.47 in the Multilingual table …)"
        for seg in re.split(r"(?:^|(?<=\d)\.\s+)(?=[A-Za-z]+:\s)", body.strip()):
            seg = seg.strip().rstrip(".")
            if not seg:
                continue
            mm = re.match(r"^([A-Za-z]+):\s+(.*)$", seg)
            items = mm.group(2) if mm else seg
            for item in items.split(","):
                parts = item.strip().rsplit(" ", 1)
                if len(parts) != 2:
                    raise SystemExit(f"embeddinggemma.md §11: cannot parse item {item!r}")
                task, val = parts
                key = (suite, task)
                if key not in types:
                    raise SystemExit(f"embeddinggemma.md §11: task {task!r} is not in {suite} (suite_tasks.csv)")
                if mm and TYPE_ABBREV.get(mm.group(1).lower(), mm.group(1)) != types[key]:
                    raise SystemExit(f"embeddinggemma.md §11: {task} grouped under {mm.group(1)}, mteb says {types[key]}")
                task_rows.append(
                    row(GEMMA, 768, "paper", suite, task, types[key], metrics[key], float(val) / 100, f"{PAPER} Tables 10–11; embeddinggemma.md §11", split="")
                )
                seen[suite] += 1
    expected = suite_tasks.groupby("suite").size().to_dict()
    if seen != expected:
        raise SystemExit(f"embeddinggemma.md §11: parsed task counts {seen}, suite_tasks.csv expects {expected}")
    return task_rows, aggs


def main(argv: list[str] | None = None) -> int:
    default_data = Path(os.environ.get("EVALGEMMA_DATA", REPO.parent / "shared" / "data"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=default_data, help="shared data root (holds mteb_reference/)")
    ap.add_argument("--docs", type=Path, default=default_data.parent / "docs", help="folder holding embeddinggemma.md")
    ap.add_argument("--out", type=Path, default=REPO / "results" / "reference")
    args = ap.parse_args(argv)
    data = args.data / "mteb_reference"
    doc = args.docs / "embeddinggemma.md"
    for p in (data / "task_scores.csv", data / "benchmarks.csv", doc):
        if not p.is_file():
            print(f"error: {p}: missing input (set --data/--docs or $EVALGEMMA_DATA)", file=sys.stderr)
            return 3
    args.out.mkdir(parents=True, exist_ok=True)
    build_mteb(data, args.out)
    suite_tasks = pd.read_csv(args.out / "suite_tasks.csv")
    task_rows, aggs = parse_paper(doc.read_text(encoding="utf-8"), suite_tasks)
    aggs_frame = pd.DataFrame(aggs)
    # §8's bf16 row repeats §7's 768d means (same variant): keep the first source.
    aggs_frame = aggs_frame.drop_duplicates(["variant_key", "suite", "statistic", "task_type"], keep="first")
    tasks_frame = pd.DataFrame(task_rows, columns=REF_COLUMNS)
    dup = tasks_frame.duplicated(["variant_key", "suite", "task", "hf_subset"])
    if dup.any():
        raise SystemExit(f"duplicate paper task rows: {tasks_frame[dup][['variant', 'suite', 'task', 'hf_subset']].head().to_dict('records')}")
    aggs_frame.to_csv(args.out / "paper_aggregates.csv", index=False)
    tasks_frame.to_csv(args.out / "paper_task_scores.csv", index=False)
    inputs = {str(p.relative_to(args.data.parent)): sha256(p) for p in _inputs(data, doc)}
    (args.out / "inputs.json").write_text(json.dumps(inputs, indent=2, sort_keys=True) + "\n")
    print(f"wrote {args.out}: {len(tasks_frame)} paper task rows, {len(aggs_frame)} paper aggregates")
    return 0


def _inputs(data: Path, doc: Path) -> Iterator[Path]:
    for name in ("benchmarks.csv", "benchmark_cells.csv", "task_scores.csv", "benchmark_means.csv"):
        yield data / name
    yield doc


if __name__ == "__main__":
    sys.exit(main())
