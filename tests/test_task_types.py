"""Every task type and evaluation path of the three MTEB suites, covered end to end by ``smoke`` ∪ ``types``.

(a) The (task type, evaluation path) pairs of MTEB(Multilingual, v2), MTEB(eng, v2) and
MTEB(Code, v1) are read from mteb itself (offline: ``mteb.get_benchmark`` needs no network) and
each must have a task in the built-in ``smoke`` or ``types`` suite. A path is the mteb abstract
task class plus the switches that send it down other code: ``top_ranked`` (reranking),
``ignore_identical_ids`` / ``skip_first_result`` (retrieval), the scorer a task's
``task_specific_scores`` calls (p-MRR, max over subqueries), ``parallel_subsets`` (bitext
mining) and multi-level labels (hierarchical clustering).

(b) ``evalgemma run --suite types --model minilm --offline --device cpu --no-cache`` (through
``plan_run``/``execute``) stores a main score for every task; four of them are recomputed from the
very vectors mteb scored (scipy, sklearn, the FollowIR and nDCG formulas), and every task is
re-run through plain ``mteb.evaluate`` with mteb's own sentence-transformers wrapper. The tiny
EmbeddingGemma runs the suite too, to show which prompt each task type and side resolves to.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evalgemma.benchmarks.smoke.tasks import (
    smoke_tasks,
    suite_task_types,
    task_data_sha256,
)

BENCHMARKS = ("MTEB(Multilingual, v2)", "MTEB(eng, v2)", "MTEB(Code, v1)")

# Tasks per (task type, evaluation path) in each benchmark, as mteb 2.26.24 defines them.
# A change in mteb that adds, removes or re-routes a task fails here first, with the new table.
BENCHMARK_PATHS: dict[str, dict[tuple[str, str], int]] = {
    "MTEB(Multilingual, v2)": {
        ("BitextMining", "AbsTaskBitextMining"): 10,
        ("BitextMining", "AbsTaskBitextMining+parallel_subsets"): 3,
        ("Classification", "AbsTaskClassification"): 43,
        ("Clustering", "AbsTaskClustering"): 11,
        ("Clustering", "AbsTaskClustering+hierarchical"): 2,
        ("Clustering", "AbsTaskClusteringLegacy"): 3,
        ("InstructionReranking", "AbsTaskRetrieval+top_ranked+evaluate_p_mrr_change"): 3,
        ("MultilabelClassification", "AbsTaskMultilabelClassification"): 5,
        ("PairClassification", "AbsTaskPairClassification"): 11,
        ("Reranking", "AbsTaskRetrieval+top_ranked"): 6,
        ("Retrieval", "AbsTaskRetrieval"): 17,
        ("Retrieval", "AbsTaskRetrieval+ignore_identical_ids"): 1,
        ("STS", "AbsTaskSTS"): 16,
    },
    "MTEB(eng, v2)": {
        ("Classification", "AbsTaskClassification"): 8,
        ("Clustering", "AbsTaskClustering"): 6,
        ("Clustering", "AbsTaskClustering+hierarchical"): 2,
        ("PairClassification", "AbsTaskPairClassification"): 3,
        ("Reranking", "AbsTaskRetrieval+top_ranked"): 1,
        ("Reranking", "AbsTaskRetrieval+top_ranked+max_over_subqueries"): 1,
        ("Retrieval", "AbsTaskRetrieval"): 7,
        ("Retrieval", "AbsTaskRetrieval+ignore_identical_ids"): 3,
        ("STS", "AbsTaskSTS"): 9,
        ("Summarization", "AbsTaskSummarization"): 1,
    },
    "MTEB(Code, v1)": {
        ("Retrieval", "AbsTaskRetrieval"): 12,
    },
}

# The types task of each path the smoke suite does not cover, with its main score.
TYPES_TASKS: dict[str, tuple[tuple[str, str], str]] = {
    "TypesInstructionReranking": (("InstructionReranking", "AbsTaskRetrieval+top_ranked+evaluate_p_mrr_change"), "p-MRR"),
    "TypesMultilabelClassification": (("MultilabelClassification", "AbsTaskMultilabelClassification"), "accuracy"),
    "TypesSummarization": (("Summarization", "AbsTaskSummarization"), "cosine_spearman"),
    "TypesClusteringHierarchical": (("Clustering", "AbsTaskClustering+hierarchical"), "v_measure"),
    "TypesClusteringLegacy": (("Clustering", "AbsTaskClusteringLegacy"), "v_measure"),
    "TypesBitextMiningParallel": (("BitextMining", "AbsTaskBitextMining+parallel_subsets"), "f1"),
    "TypesRerankingSubqueries": (("Reranking", "AbsTaskRetrieval+top_ranked+max_over_subqueries"), "max_over_subqueries_map_at_1000"),
    "TypesRetrievalIgnoreIdentical": (("Retrieval", "AbsTaskRetrieval+ignore_identical_ids"), "ndcg_at_10"),
}
LANGS = ["eng", "deu", "fra"]
PAIRS = [f"{a}_Latn-{b}_Latn" for a in LANGS for b in LANGS if a != b]
SUBSETS = {
    "TypesMultilabelClassification": LANGS,
    "TypesClusteringLegacy": LANGS,
    "TypesBitextMiningParallel": PAIRS,
}
# p-MRR and Spearman lie in [-1, 1]; the other main scores in [0, 1].
SIGNED = {"p-MRR", "cosine_spearman"}


# ---------------------------------------------------------------- evaluation paths


def _abstask(task: Any) -> type:
    """The mteb abstract task class a task is built on (the first one in its MRO)."""
    return next(c for c in type(task).__mro__ if c.__module__.startswith("mteb.abstasks."))


def _scorers(task: Any) -> list[str]:
    """The functions of mteb's retrieval_metrics that an overridden ``task_specific_scores`` calls."""
    from mteb._evaluators import retrieval_metrics
    from mteb.abstasks.retrieval import AbsTaskRetrieval

    method = type(task).task_specific_scores
    if method is AbsTaskRetrieval.task_specific_scores:
        return []
    own = {name for name, value in vars(retrieval_metrics).items() if callable(value) and getattr(value, "__module__", "") == retrieval_metrics.__name__}
    return sorted(set(method.__code__.co_names) & own) or ["task_specific_scores"]


def evaluation_path(task: Any, *, top_ranked: bool, hierarchical: bool) -> tuple[str, str]:
    """(mteb task type, abstract class + the switches that select another code path in it)."""
    from mteb.abstasks.clustering import AbsTaskClustering
    from mteb.abstasks.retrieval import AbsTaskRetrieval

    base = _abstask(task)
    parts = [base.__name__]
    if issubclass(base, AbsTaskRetrieval):
        parts += [
            name
            for name, on in (("top_ranked", top_ranked), ("ignore_identical_ids", task.ignore_identical_ids), ("skip_first_result", task.skip_first_result))
            if on
        ]
        parts += _scorers(task)
    if getattr(task, "parallel_subsets", False):
        parts.append("parallel_subsets")
    if base is AbsTaskClustering and hierarchical and task.max_depth != 1:  # max_depth = 1 scores the top level only
        parts.append("hierarchical")
    return str(task.metadata.type), "+".join(parts)


def benchmark_path(task: Any) -> tuple[str, str]:
    """The path of a benchmark task, without its data: mteb's descriptive statistics say whether
    it has ``top_ranked``; ArXivHierarchicalClustering's ``dataset_transform`` splits "cs.AI"
    labels into levels with its module's ``split_labels``."""
    stats = task.metadata.descriptive_stats or {}
    top_ranked = any(isinstance(s, dict) and s.get("top_ranked_statistics") for s in stats.values())
    hierarchical = "split_labels" in type(task).dataset_transform.__code__.co_names
    return evaluation_path(task, top_ranked=top_ranked, hierarchical=hierarchical)


def _test_splits(task: Any) -> Iterator[Any]:
    ds = task.dataset
    if "test" in ds and not isinstance(ds["test"], dict):
        yield ds["test"]
        return
    for subset in ds.values():
        yield subset["test"]


def local_path(task: Any) -> tuple[str, str]:
    """The path of a built-in task, from its loaded data."""
    task.load_data()
    splits = list(_test_splits(task))
    top_ranked = any(isinstance(s, dict) and s.get("top_ranked") is not None for s in splits)
    hierarchical = any(
        not isinstance(s, dict) and "labels" in s.column_names and any(isinstance(lab, list) and len(lab) > 1 for lab in s["labels"]) for s in splits
    )
    return evaluation_path(task, top_ranked=top_ranked, hierarchical=hierarchical)


@pytest.fixture(scope="module")
def benchmark_tasks() -> dict[str, list[Any]]:
    import mteb

    return {name: list(mteb.get_benchmark(name).tasks) for name in BENCHMARKS}


@pytest.fixture(scope="module")
def local_paths() -> dict[str, dict[str, tuple[str, str]]]:
    return {suite: {t.metadata.name: local_path(t) for t in smoke_tasks(suite=suite)} for suite in ("smoke", "types")}


def test_benchmark_paths_from_mteb(benchmark_tasks: dict[str, list[Any]]) -> None:
    counted: dict[str, dict[tuple[str, str], int]] = {}
    for name, tasks in benchmark_tasks.items():
        by_path: dict[tuple[str, str], int] = defaultdict(int)
        for task in tasks:
            by_path[benchmark_path(task)] += 1
        counted[name] = dict(sorted(by_path.items()))
        assert sum(by_path.values()) == len(tasks) == {"MTEB(Multilingual, v2)": 131, "MTEB(eng, v2)": 41, "MTEB(Code, v1)": 12}[name]
    assert counted == BENCHMARK_PATHS, json.dumps({k: {"/".join(p): n for p, n in v.items()} for k, v in counted.items()}, indent=1)


def test_every_path_has_a_builtin_task(benchmark_tasks: dict[str, list[Any]], local_paths: dict[str, dict[str, tuple[str, str]]]) -> None:
    covered: dict[tuple[str, str], list[str]] = defaultdict(list)
    for paths in local_paths.values():
        for task, path in paths.items():
            covered[path].append(task)
    needed: dict[tuple[str, str], list[str]] = defaultdict(list)
    for tasks in benchmark_tasks.values():
        for task in tasks:
            needed[benchmark_path(task)].append(task.metadata.name)
    missing = {f"{t}/{p}": sorted(set(names))[:3] for (t, p), names in needed.items() if (t, p) not in covered}
    assert not missing, f"task type / evaluation path with no task in smoke or types: {missing}"
    print("\n| task type | evaluation path | covered by |")
    for path in sorted(needed):
        print(f"| {path[0]} | {path[1]} | {', '.join(covered[path])} |")


def test_types_adds_one_task_per_uncovered_path(local_paths: dict[str, dict[str, tuple[str, str]]]) -> None:
    smoke, types = local_paths["smoke"], local_paths["types"]
    assert types == {name: path for name, (path, _) in TYPES_TASKS.items()}
    assert not set(types.values()) & set(smoke.values())  # nothing the smoke suite already covers
    assert len(set(types.values())) == len(types)  # one task per path
    # the smoke suite's own paths (its tasks are pinned: their scores are a CI baseline)
    assert sorted(set(smoke.values())) == [
        ("BitextMining", "AbsTaskBitextMining"),
        ("Classification", "AbsTaskClassification"),
        ("Clustering", "AbsTaskClustering"),
        ("PairClassification", "AbsTaskPairClassification"),
        ("Reranking", "AbsTaskRetrieval+top_ranked"),
        ("Retrieval", "AbsTaskRetrieval"),
        ("STS", "AbsTaskSTS"),
    ]


def test_main_scores_match_the_benchmark_tasks(benchmark_tasks: dict[str, list[Any]]) -> None:
    # A types task reports the main score the benchmark tasks of its path report.
    by_path: dict[tuple[str, str], set[str]] = defaultdict(set)
    for tasks in benchmark_tasks.values():
        for task in tasks:
            by_path[benchmark_path(task)].add(task.metadata.main_score)
    for task in smoke_tasks(suite="types"):
        path, metric = TYPES_TASKS[task.metadata.name]
        assert task.metadata.main_score == metric
        assert metric in by_path[path], (task.metadata.name, by_path[path])


def test_planner_and_leaderboard_resolve_the_suite() -> None:
    from evalgemma.catalog.suites import resolve_suite
    from evalgemma.views.leaderboard import expected_tasks

    spec = resolve_suite("types")
    assert (spec.kind, spec.data) == ("smoke", "types")
    assert resolve_suite("smoke").data == "smoke"
    types = {name: path[0] for name, (path, _) in TYPES_TASKS.items()}
    assert suite_task_types("types") == types
    assert expected_tasks("types") == types  # nothing stored yet: the types come from the manifest


def test_suite_file_data_must_name_a_builtin_folder(tmp_path: Path) -> None:
    from evalgemma.catalog.suites import load_suite_file
    from evalgemma.errors import ConfigError

    path = tmp_path / "mine.toml"
    path.write_text('schema = 1\nkind = "smoke"\ndata = "../etc"\n')
    with pytest.raises(ConfigError, match=r"mine\.toml: data = '\.\./etc': must be the name of a folder in tasks/"):
        load_suite_file(path)
    path.write_text('schema = 1\nkind = "smoke"\ndata = "nosuch"\n')
    with pytest.raises(ConfigError, match=r"mine\.toml: data = 'nosuch': no built-in suite data there"):
        load_suite_file(path)
    path.write_text('schema = 1\nkind = "tasks"\ntasks = ["STS12"]\ndata = "types"\n')
    with pytest.raises(ConfigError, match="'data' names the folder of a kind = 'smoke' suite"):
        load_suite_file(path)


def test_bad_types_data_names_file_and_line(tmp_path: Path) -> None:
    import shutil

    from evalgemma.errors import ConfigError, DataError

    folder = tmp_path / "types"
    shutil.copytree(Path(__file__).resolve().parents[1] / "tasks" / "types", folder)

    def edit(name: str, old: str, new: str) -> None:
        path = folder / name
        text = path.read_text(encoding="utf-8")
        assert old in text
        path.write_text(text.replace(old, new, 1), encoding="utf-8")

    edit("instruction_reranking.jsonl", '"og": 0, "changed": 0}', '"og": 0, "changed": 1}')
    with pytest.raises(
        DataError, match=r"instruction_reranking\.jsonl:1 \(candidates\[3\]\): relevant under the changed instruction but not under the original"
    ):
        smoke_tasks(["TypesInstructionReranking"], data_dir=folder, suite="types")
    edit("summarization.jsonl", '"relevance": 4}', '"relevance": 9}')
    with pytest.raises(DataError, match=r"summarization\.jsonl:1 \(machine\[1\]\): relevance must be a number from 1 to 5, got 9"):
        smoke_tasks(["TypesSummarization"], data_dir=folder, suite="types")
    edit("reranking_subqueries.jsonl", '"id": "u01"', '"id": "u_01"')
    with pytest.raises(DataError, match=r"reranking_subqueries\.jsonl:1: id 'u_01' must not contain '_'"):
        smoke_tasks(["TypesRerankingSubqueries"], data_dir=folder, suite="types")
    edit("retrieval_arguments_queries.jsonl", '"id": "a-pro1"', '"id": "a-pro9"')
    with pytest.raises(DataError, match=r"retrieval_arguments_queries\.jsonl:1: query 'a-pro9' must be a document of retrieval_arguments_corpus\.jsonl"):
        smoke_tasks(["TypesRetrievalIgnoreIdentical"], data_dir=folder, suite="types")
    edit("types.toml", 'form = "legacy"', 'form = "parallel"')
    with pytest.raises(
        ConfigError,
        match=r"types\.toml \[tasks\.TypesClusteringLegacy\]: form 'parallel' is not available for type 'Clustering'; valid: default, hierarchical, legacy",
    ):
        smoke_tasks(data_dir=folder, suite="types")
    with pytest.raises(ConfigError, match=r"unknown types task 'TypesSummarisation'.*Did you mean 'TypesSummarization'"):
        smoke_tasks(["TypesSummarisation"], suite="types")


# ---------------------------------------------------------------- end to end with all-MiniLM-L6-v2


@pytest.fixture(scope="module")
def single_thread() -> Iterator[None]:
    # The data are tiny: on a small shared CPU, thread fan-out in torch and in sklearn's
    # k-means / k-NN (OpenMP) costs far more than it saves.
    import torch
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def minilm_run(tmp_path_factory: pytest.TempPathFactory, single_thread: None) -> tuple[Any, dict[tuple[str, str], dict[str, np.ndarray]]]:
    """The types suite through evalgemma, recording every vector handed to mteb (task, side) -> text -> vector."""
    from evalgemma.benchmarks.mteb.adapter import MtebView
    from evalgemma.run import RunConfig, execute, plan_run
    from evalgemma.store.parquet import load_results

    store = tmp_path_factory.mktemp("types-minilm") / "store"
    seen: dict[tuple[str, str], dict[str, np.ndarray]] = defaultdict(dict)
    original = MtebView.encode

    def spy(self: Any, inputs: Any, *, task_metadata: Any, hf_split: str, hf_subset: str, prompt_type: Any = None, **kwargs: Any) -> np.ndarray:
        batches = list(inputs)
        vectors = original(self, batches, task_metadata=task_metadata, hf_split=hf_split, hf_subset=hf_subset, prompt_type=prompt_type, **kwargs)
        side = prompt_type.value if prompt_type is not None else "all"
        texts = [str(t) for batch in batches for t in batch["text"]]
        for text, vector in zip(texts, vectors, strict=True):
            seen[(task_metadata.name, side)][text] = np.array(vector)  # as mteb got it (dtype kept)
        return vectors

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(MtebView, "encode", spy)
        plan = plan_run(RunConfig.build(model="minilm", suite="types", offline=True, device="cpu", cache_dir=None, store=store, show_progress=False))
        summary = execute(plan)
    assert len(summary.written) == len(TYPES_TASKS) and not summary.failures
    return load_results(store), dict(seen)


@pytest.fixture(scope="module")
def plain_mteb(minilm_path: Path, single_thread: None) -> dict[str, dict[str, float]]:
    """The same task objects through plain mteb.evaluate with mteb's own sentence-transformers wrapper."""
    import mteb
    from mteb.models.sentence_transformer_wrapper import (
        SentenceTransformerEncoderWrapper,
    )
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformerEncoderWrapper(SentenceTransformer(str(minilm_path), device="cpu"))
    result = mteb.evaluate(model, smoke_tasks(suite="types"), cache=None, show_progress_bar=False, encode_kwargs={"batch_size": 32, "show_progress_bar": False})
    return {tr.task_name: {"all": tr.get_score(), **{s["hf_subset"]: s["main_score"] for s in tr.scores["test"]}} for tr in result.task_results}


def _main_rows(frame: Any, task: str) -> Any:
    return frame[(frame["task"] == task) & frame["is_main"]]


def test_every_task_stores_its_main_score(minilm_run: tuple[Any, Any]) -> None:
    from evalgemma.views.leaderboard import recomputed_mismatches

    frame, _ = minilm_run
    assert sorted(frame["task"].unique()) == sorted(TYPES_TASKS)
    assert set(frame["suite"]) == {"types"} and set(frame["model"]) == {"sentence-transformers/all-MiniLM-L6-v2"}
    for task, ((task_type, _), metric) in TYPES_TASKS.items():
        rows = _main_rows(frame, task)
        assert set(rows["metric"]) == {metric}, task
        assert set(rows["task_type"]) == {task_type}
        assert list(rows["hf_subset"]) == SUBSETS.get(task, ["default"]), task
        assert set(frame[frame["task"] == task]["data_revision"]) == {task_data_sha256(task, suite="types")}
        (score,) = set(frame[frame["task"] == task]["main_score"])
        low = -1.0 if metric in SIGNED else 0.0
        assert math.isfinite(score) and low <= score <= 1.0, (task, score)
        assert 0.0 < score <= 1.0, (task, score)  # the model does real work on each type
        assert rows["value"].between(low, 1.0).all(), task
    assert recomputed_mismatches(frame).empty  # each main_score is mteb's mean over its subsets


def test_scores_equal_plain_mteb(minilm_run: tuple[Any, Any], plain_mteb: dict[str, dict[str, float]]) -> None:
    frame, _ = minilm_run
    for task in TYPES_TASKS:
        rows = _main_rows(frame, task)
        ours = {"all": float(rows["main_score"].iloc[0]), **dict(zip(rows["hf_subset"], rows["value"].astype(float), strict=True))}
        assert ours == {k: float(v) for k, v in plain_mteb[task].items()}, task


def _vectors(seen: dict[tuple[str, str], dict[str, np.ndarray]], task: str, side: str, texts: list[str]) -> np.ndarray:
    table = seen[(task, side)]
    return np.stack([table[t] for t in texts])


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return a @ b.T


def _lines(name: str) -> list[dict[str, Any]]:
    folder = Path(__file__).resolve().parents[1] / "tasks" / "types"
    return [json.loads(line) for line in (folder / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def test_summarization_equals_scipy(minilm_run: tuple[Any, Any]) -> None:
    """SummEval's protocol: a machine summary's predicted quality is its highest cosine to the
    text's human summaries; Spearman against the relevance grades per text, averaged."""
    from scipy.stats import spearmanr

    frame, seen = minilm_run
    per_text = []
    for item in _lines("summarization.jsonl"):
        human = _vectors(seen, "TypesSummarization", "all", [h["eng"] for h in item["human"]])
        machine = _vectors(seen, "TypesSummarization", "all", [m["text"]["eng"] for m in item["machine"]])
        predicted = _cos(machine, human).max(axis=1)
        per_text.append(float(spearmanr([m["relevance"] for m in item["machine"]], predicted).statistic))
    assert float(_main_rows(frame, "TypesSummarization")["value"].iloc[0]) == float(np.mean(per_text))


def test_legacy_clustering_equals_sklearn(minilm_run: tuple[Any, Any]) -> None:
    """AbsTaskClusteringLegacy: MiniBatchKMeans (k = labels in the set, batch 500, n_init auto,
    seed 42) on each set of sentences, V-measure per set, mean over sets, then over languages."""
    from sklearn.cluster import MiniBatchKMeans
    from sklearn.metrics import v_measure_score

    from evalgemma.benchmarks.smoke.tasks import load_manifest

    frame, seen = minilm_run
    lines = _lines("clustering_legacy.jsonl")
    index = {name: i for i, name in enumerate(load_manifest(suite="types").tasks["TypesClusteringLegacy"].labels)}  # labels as the dataset holds them
    by_lang = {}
    for lang in LANGS:
        per_set = []
        for name in dict.fromkeys(line["set"] for line in lines):
            members = [line for line in lines if line["set"] == name]
            vectors = _vectors(seen, "TypesClusteringLegacy", "all", [m["text"][lang] for m in members])
            labels = [index[m["label"]] for m in members]
            found = MiniBatchKMeans(n_clusters=len(set(labels)), batch_size=500, n_init="auto", compute_labels=True, random_state=42).fit(vectors).labels_
            per_set.append(v_measure_score(labels, found))
        by_lang[lang] = float(np.mean(per_set))
    rows = _main_rows(frame, "TypesClusteringLegacy")
    assert dict(zip(rows["hf_subset"], rows["value"].astype(float), strict=True)) == by_lang
    assert float(rows["main_score"].iloc[0]) == float(np.mean(list(by_lang.values())))


def test_p_mrr_equals_the_followir_formula(minilm_run: tuple[Any, Any]) -> None:
    """FollowIR's p-MRR (Weller et al. 2024): for a document the changed instruction makes
    non-relevant, with rank r_og under the original and r_new under the changed instruction,
    1 - r_og/r_new if it moved down (r_new > r_og, the instruction was followed), else
    r_new/r_og - 1; mean per query, then over queries. The query text is "<query> <instruction>",
    as mteb builds it."""
    frame, seen = minilm_run
    per_query = []
    for item in _lines("instruction_reranking.jsonl"):
        docs = _vectors(seen, "TypesInstructionReranking", "document", [c["text"]["eng"] for c in item["candidates"]])
        ranks = {}
        for key in ("instruction_og", "instruction_changed"):
            query = _vectors(seen, "TypesInstructionReranking", "query", [f"{item['query']['eng']} {item[key]['eng']}"])
            order = np.argsort(-_cos(query, docs)[0], kind="stable")
            ranks[key] = {int(doc): position + 1 for position, doc in enumerate(order)}
        changed = [n for n, c in enumerate(item["candidates"]) if c["og"] and not c["changed"]]
        scores = []
        for n in changed:
            og, new = ranks["instruction_og"][n], ranks["instruction_changed"][n]
            scores.append(1 - og / new if new > og else new / og - 1)
        per_query.append(float(np.mean(scores)))
    assert float(_main_rows(frame, "TypesInstructionReranking")["value"].iloc[0]) == float(np.mean(per_query))


def test_ignore_identical_ids_equals_ndcg_formula(minilm_run: tuple[Any, Any]) -> None:
    """One relevant document per query: nDCG@10 = 1/log2(1 + rank) if rank <= 10, else 0, where
    the rank skips the query's own document (ignore_identical_ids); mteb rounds to 5 decimals."""
    frame, seen = minilm_run
    corpus = _lines("retrieval_arguments_corpus.jsonl")
    ids = [d["id"] for d in corpus]
    docs = _vectors(seen, "TypesRetrievalIgnoreIdentical", "document", [d["text"]["eng"] for d in corpus])
    text = {d["id"]: d["text"]["eng"] for d in corpus}
    gains, with_self = [], []
    for query in _lines("retrieval_arguments_queries.jsonl"):
        (relevant,) = query["relevant"]
        scores = _cos(_vectors(seen, "TypesRetrievalIgnoreIdentical", "query", [text[query["id"]]]), docs)[0]
        ranked = [ids[i] for i in np.argsort(-scores, kind="stable")]
        assert ranked[0] == query["id"]  # without the flag each query finds itself first
        for out, kept in ((gains, [d for d in ranked if d != query["id"]]), (with_self, ranked)):
            rank = kept.index(relevant) + 1
            out.append(1 / math.log2(1 + rank) if rank <= 10 else 0.0)
    stored = float(_main_rows(frame, "TypesRetrievalIgnoreIdentical")["value"].iloc[0])
    assert stored == round(sum(gains) / len(gains), 5)
    assert stored > round(sum(with_self) / len(with_self), 5)


# ---------------------------------------------------------------- prompts on the tiny EmbeddingGemma


# EmbeddingGemma's prompt dictionary, looked up as mteb does (task-side, task, type-side, type,
# side): types with their own key (MultilabelClassification, Summarization, Clustering,
# BitextMining, Reranking) use it on every side; Retrieval has -query/-document keys;
# InstructionReranking has none and falls back to the "query" and "document" prompts.
GEMMA_PROMPTS = {
    "TypesInstructionReranking": {"InstructionReranking/document": "title: none | text: ", "InstructionReranking/query": "task: search result | query: "},
    "TypesMultilabelClassification": {"MultilabelClassification/all": "task: classification | query: "},
    "TypesSummarization": {"Summarization/all": "task: summarization | query: "},
    "TypesClusteringHierarchical": {"Clustering/all": "task: clustering | query: "},
    "TypesClusteringLegacy": {"Clustering/all": "task: clustering | query: "},
    "TypesBitextMiningParallel": {"BitextMining/all": "task: search result | query: "},
    "TypesRerankingSubqueries": {"Reranking/document": "task: search result | query: ", "Reranking/query": "task: search result | query: "},
    "TypesRetrievalIgnoreIdentical": {"Retrieval/document": "title: none | text: ", "Retrieval/query": "task: search result | query: "},
}


def test_tiny_gemma_prompts_per_type(tiny_gemma: Path, tmp_path: Path, single_thread: None) -> None:
    from evalgemma.run import RunConfig, execute, plan_run
    from evalgemma.store.parquet import load_results

    seen: list[tuple[str, str | None]] = []

    def hook(encoder: Any) -> None:
        encoder.on_encode = lambda texts, prompt: seen.extend((t, prompt) for t in texts)

    # English only: the prompts depend on the task type and side, not on the language
    plan = plan_run(RunConfig.build(model=str(tiny_gemma), suite="types", langs=("eng",), device="cpu", cache_dir=None, store=tmp_path, show_progress=False))
    execute(plan, encoder_hook=hook)
    frame = load_results(tmp_path)
    for task, prompts in GEMMA_PROMPTS.items():
        (stored,) = set(frame[frame["task"] == task]["prompts"])
        assert json.loads(stored) == prompts, task
        # the cells' main metrics; main_score is their mean where they are the whole task, else NaN
        scores = _main_rows(frame, task)["value"].tolist()
        low = -1.0 if TYPES_TASKS[task][1] in SIGNED else 0.0
        assert scores and all(math.isfinite(v) and low <= v <= 1.0 for v in scores), (task, scores)
        task_score = frame[frame["task"] == task]["main_score"]
        assert task_score.isna().all() or (task_score == sum(scores) / len(scores)).all(), task
    # every text reached the model with one of those prompts
    assert seen and {p for _, p in seen} == {p for prompts in GEMMA_PROMPTS.values() for p in prompts.values()}
