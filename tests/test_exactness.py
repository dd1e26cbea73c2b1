"""Side by side with plain mteb: evalgemma stores exactly what ``mteb.evaluate`` computes.

For every task mirrored in ``shared/data/hf``, every stored value of every (split, subset,
metric) cell must be *equal* (float64 ``==``, no tolerance) to the value plain
``mteb.evaluate`` returns with mteb's own ``SentenceTransformerEncoderWrapper`` on the same
weights and the same data. Two models: the real all-MiniLM-L6-v2 (no prompts) and the tiny
random-weight model with EmbeddingGemma's architecture, tokenizer and real 14-key prompt
dictionary (so the prompt each task and side gets is mteb's own choice, or the numbers move).

The two paths share only the data location (``mirror_dir`` / ``point_to_mirror``). evalgemma
runs through its library API (plan_run + execute, its own model load, its Encoder, the store);
the plain path loads the model with ``SentenceTransformer(path)`` and gives it to mteb's wrapper.
Both use batch size 32 and the same max_seq_length (evalgemma's protocol: the model's own for
MiniLM, 512 for Gemma 3 models; read back from the stored rows).

Big tasks are cut the same way on both paths (``hf_subsets``, ``eval_splits``, fewer
classification experiments); MiniLM runs one mirror per task type by default and the other
mirrors in one ``slow`` test; CosQA's 6,267 code snippets run with the tiny model only.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from evalgemma.benchmarks.mteb.adapter import mirror_dir, point_to_mirror
from evalgemma.errors import IncompleteRun
from evalgemma.run import RunConfig, execute, plan_run
from evalgemma.store.parquet import load_results

BATCH_SIZE = 32

#: Keys of an mteb score entry that are labels, not measurements (the store keeps them as columns).
LABEL_KEYS = ("hf_subset", "languages", "main_score", "mteb_version")


@dataclass(frozen=True)
class Cut:
    """How a task is cut down, identically on both paths (None: as mteb defines it)."""

    subsets: tuple[str, ...] | None = None
    splits: tuple[str, ...] | None = None
    n_experiments: int | None = None  # classification: mteb's default is 10 logistic-regression runs

    def apply(self, task: Any) -> Any:
        if self.subsets is not None:
            task.hf_subsets = list(self.subsets)
        if self.splits is not None:
            task.filter_eval_splits(list(self.splits))
        if self.n_experiments is not None:
            task.n_experiments = self.n_experiments
        return task


#: MiniLM, default run: one mirror per task type (STS, bitext mining, classification, retrieval).
MINILM_CASES = {
    "STSBenchmark": Cut(),
    "Tatoeba": Cut(subsets=("tzl-eng", "swg-eng", "ast-eng")),  # the three smallest pairs (104-127 pairs)
    "PoemSentimentClassification": Cut(n_experiments=2),
}
#: MiniLM, the other mirrors, in one slow test (minutes on 2 cores: 974 + 974 MBPP code texts,
#: 3,080 + ~1,200 Banking77 texts, XQuAD's long passages). CosQA (6,267 code snippets): tiny model only.
MINILM_SLOW_CASES = {
    "HumanEvalRetrieval": Cut(),
    "STSBenchmarkMultilingualSTS": Cut(subsets=("de",), splits=("test",)),
    "Banking77Classification": Cut(n_experiments=2),
    "MBPPRetrieval": Cut(),
    "XQuADRetrieval": Cut(subsets=("en",)),
}
#: The tiny EmbeddingGemma: every mirror, with the real prompt dictionary.
TINY_CASES = {
    "STSBenchmark": Cut(),
    "Tatoeba": Cut(subsets=("tzl-eng", "swg-eng", "deu-eng")),
    "STSBenchmarkMultilingualSTS": Cut(subsets=("de",)),  # dev and test
    "XQuADRetrieval": Cut(subsets=("de", "th")),
    "Banking77Classification": Cut(n_experiments=2),
    "PoemSentimentClassification": Cut(n_experiments=2),
    "MBPPRetrieval": Cut(),
    "CosQA": Cut(),
    "HumanEvalRetrieval": Cut(),
}
#: The tiny model's largest mirrors (6,267 CosQA snippets; 3,080 + ~1,200 Banking77 texts) run with ``-m slow``.
TINY_SLOW = ("CosQA", "Banking77Classification")


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Any:
    """Both paths on one thread (the same on both, so the comparison is unaffected): on 2 shared
    cores, two OpenMP threads spend most of their time waiting for each other on small matrices."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------- the two paths


def numeric_leaves(prefix: str, value: Any, out: dict[str, float]) -> None:
    """Every number under a score entry, by dotted path (bools are flags, lists are not cells)."""
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, (int, float)):
        out[prefix] = float(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            numeric_leaves(f"{prefix}.{k}" if prefix else str(k), v, out)


def plain_cells(task_result: Any, main_metric: str) -> dict[tuple[str, str, str], float]:
    """(split, hf_subset, metric) → value of a plain mteb TaskResult."""
    cells: dict[tuple[str, str, str], float] = {}
    for split, entries in task_result.scores.items():
        for entry in entries:
            values: dict[str, float] = {}
            for key, value in entry.items():
                if key not in LABEL_KEYS:
                    numeric_leaves(key, value, values)
            # The main score is a cell of its own even when mteb names it only as main_score.
            values.setdefault(main_metric, float(entry["main_score"]))
            for metric, v in values.items():
                cells[(str(split), str(entry["hf_subset"]), metric)] = v
    return cells


def stored_cells(frame: Any) -> dict[tuple[str, str, str], float]:
    return {(r.split, r.hf_subset, r.metric): float(r.value) for r in frame.itertuples()}


def run_evalgemma(model: str, name: str, cut: Cut, hf_mirrors: Path, store: Path) -> Any:
    """evalgemma's stored rows of one task (library API, offline, CPU, no embedding cache)."""
    config = RunConfig.build(
        model=model, tasks=(name,), store=store, data_dir=hf_mirrors, offline=True, device="cpu",
        batch_size=BATCH_SIZE, cache_dir=None, show_progress=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = plan_run(config)
        (task,) = plan.tasks
        # The same cut on evalgemma's task object; the plan's cells follow it (what the unit evaluates).
        from evalgemma.benchmarks.mteb.unit import bench_task

        cut_task = bench_task(cut.apply(task.obj))
        task.cells = task.selected = cut_task.cells
        task.version = cut_task.version
        for unit in plan.units:
            unit.missing = {key: cut_task.cells for key in unit.missing}
        try:
            execute(plan)
        except IncompleteRun as exc:
            pytest.fail(f"{name}: evalgemma failed: {exc}")
    frame = load_results(store)
    return frame[frame["task"] == name]


_PLAIN_MODELS: dict[tuple[str, int], Any] = {}


def plain_model(path: str, max_seq_length: int) -> Any:
    """The model for the plain path: loaded by sentence-transformers itself, nothing else."""
    import torch
    from sentence_transformers import SentenceTransformer

    key = (path, max_seq_length)
    if key not in _PLAIN_MODELS:
        st = SentenceTransformer(path, device="cpu", model_kwargs={"dtype": torch.float32})
        st.max_seq_length = max_seq_length
        _PLAIN_MODELS[key] = st
    return _PLAIN_MODELS[key]


def run_plain_mteb(
    st: Any, name: str, cut: Cut, hf_mirrors: Path, model_prompts: dict[str, str] | None = None
) -> tuple[dict[tuple[str, str, str], float], float]:
    """Plain ``mteb.evaluate`` with mteb's own sentence-transformers wrapper: cells and task score."""
    import mteb
    from mteb.models.sentence_transformer_wrapper import SentenceTransformerEncoderWrapper

    task = cut.apply(mteb.get_task(name))
    local = mirror_dir(hf_mirrors, task)
    assert local is not None, f"{name}: no mirror of revision {task.metadata.dataset['revision']} under {hf_mirrors}"
    point_to_mirror(task, local)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wrapper = SentenceTransformerEncoderWrapper(st, model_prompts=model_prompts)
        result = mteb.evaluate(
            wrapper,
            task,
            cache=None,
            show_progress_bar=False,
            encode_kwargs={"batch_size": BATCH_SIZE, "show_progress_bar": False},
        )
    (task_result,) = result.task_results
    return plain_cells(task_result, task.metadata.main_score), float(task_result.get_score())


def assert_identical(name: str, stored: dict[tuple[str, str, str], float], plain: dict[tuple[str, str, str], float]) -> None:
    """Same cells, same float64 values (NaN only where mteb has NaN)."""
    assert sorted(stored) == sorted(plain), (
        f"{name}: cells differ; only stored: {sorted(set(stored) - set(plain))[:5]}, only plain: {sorted(set(plain) - set(stored))[:5]}"
    )
    differing = [(k, stored[k], plain[k]) for k in sorted(plain) if not (stored[k] == plain[k] or (math.isnan(stored[k]) and math.isnan(plain[k])))]
    assert not differing, f"{name}: {len(differing)} of {len(plain)} values differ, e.g. " + "; ".join(
        f"{k}: evalgemma {a!r} vs mteb {b!r} (Δ {a - b:+.3e})" for k, a, b in differing[:5]
    )


def check_task(model: str, model_path: str, name: str, cut: Cut, hf_mirrors: Path, tmp_path: Path) -> Any:
    frame = run_evalgemma(model, name, cut, hf_mirrors, tmp_path / "store")
    assert len(frame), f"{name}: nothing stored"
    (max_len,) = set(frame["max_seq_length"])
    plain, plain_score = run_plain_mteb(plain_model(model_path, int(max_len)), name, cut, hf_mirrors)
    assert_identical(name, stored_cells(frame), plain)
    # The task score (mteb's get_score over the evaluated cells) is the same number too.
    assert set(frame["main_score"]) == {plain_score}, name
    return frame


# ---------------------------------------------------------------- MiniLM


@pytest.mark.parametrize("name", list(MINILM_CASES))
def test_minilm_equals_plain_mteb(name: str, minilm_path: Path, hf_mirrors: Path, tmp_path: Path) -> None:
    check_task("minilm", str(minilm_path), name, MINILM_CASES[name], hf_mirrors, tmp_path)


@pytest.mark.slow
def test_minilm_equals_plain_mteb_on_the_other_mirrors(minilm_path: Path, hf_mirrors: Path, tmp_path: Path) -> None:
    failures = []
    for name, cut in MINILM_SLOW_CASES.items():
        try:
            check_task("minilm", str(minilm_path), name, cut, hf_mirrors, tmp_path / name)
        except AssertionError as exc:
            failures.append(str(exc))
    assert not failures, "\n".join(failures)


# ---------------------------------------------------------------- tiny EmbeddingGemma, real prompts

#: What EmbeddingGemma's dictionary gives each (task type, side) under mteb's lookup.
GEMMA_PROMPTS = {
    "STS": {"STS/all": "task: sentence similarity | query: "},
    "BitextMining": {"BitextMining/all": "task: search result | query: "},
    "Classification": {"Classification/all": "task: classification | query: "},
    "Retrieval": {"Retrieval/query": "task: search result | query: ", "Retrieval/document": "title: none | text: "},
}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in TINY_SLOW else n for n in TINY_CASES])
def test_tiny_gemma_equals_plain_mteb(name: str, tiny_gemma: Path, hf_mirrors: Path, tmp_path: Path) -> None:
    import json

    frame = check_task(str(tiny_gemma), str(tiny_gemma), name, TINY_CASES[name], hf_mirrors, tmp_path)
    # The values being equal proves the same strings reached the tokenizer on both paths; the
    # stored record says which (all 14 keys are in play, so a wrong lookup picks another one).
    (task_type,) = set(frame["task_type"])
    (prompts,) = set(frame["prompts"])
    assert json.loads(prompts) == GEMMA_PROMPTS[task_type], name
    assert set(frame["max_seq_length"]) == {512}  # the paper's protocol for Gemma 3 models


def test_a_different_prompt_changes_the_values(tiny_gemma: Path, hf_mirrors: Path, tmp_path: Path) -> None:
    """The control: the comparison can fail. Plain mteb with query and document prompts
    swapped (same model, same data) no longer equals what evalgemma stored."""
    cut = Cut()
    frame = run_evalgemma(str(tiny_gemma), "HumanEvalRetrieval", cut, hf_mirrors, tmp_path / "store")
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(tiny_gemma), device="cpu")  # its own object: the wrapper overwrites st.prompts
    st.max_seq_length = 512
    swapped = {"query": "title: none | text: ", "document": "task: search result | query: "}
    plain, _ = run_plain_mteb(st, "HumanEvalRetrieval", cut, hf_mirrors, model_prompts=swapped)
    stored = stored_cells(frame)
    assert sorted(stored) == sorted(plain)
    assert stored[("test", "default", "ndcg_at_10")] != plain[("test", "default", "ndcg_at_10")]
