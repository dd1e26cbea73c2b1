"""The on-disk embedding cache: hits, identity misses, exact derived views, corruption, crashes, concurrency.

Real model (all-MiniLM-L6-v2, offline) on real STSBenchmark sentences from the shared data.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import REPO, require
from evalgemma.encode.cache import (
    CacheCorruptionWarning,
    EmbeddingCache,
    check_key,
    check_namespace,
    row_checksum,
)
from evalgemma.encode.encoder import Encoder
from evalgemma.variants.spec import WeightSpec
from evalgemma.variants.views import l2_normalize, truncate

BASE = WeightSpec("sentence-transformers/all-MiniLM-L6-v2", "c9745ed1d9f207416be6d2e6f8de32d1f16199bf", "float32", 256)


def sts_sentences(shared_data: Path, n: int) -> list[str]:
    """The first ``n`` distinct sentences of sts-test.csv (tab-separated; columns 5 and 6)."""
    path = require(shared_data / "stsbenchmark" / "sts-test.csv", "STSBenchmark test file")
    out: dict[str, None] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        cols = line.split("\t")
        out.update(dict.fromkeys(cols[5:7]))
        if len(out) >= n:
            break
    return list(out)[:n]


@pytest.fixture(scope="module")
def st_model(minilm_path: Path) -> Any:
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(1)
    return SentenceTransformer(str(minilm_path), device="cpu")


@pytest.fixture(scope="module")
def sentences(shared_data: Path) -> list[str]:
    return sts_sentences(shared_data, 120)


class Counter:
    """Records every text the Encoder sends to the model."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def __call__(self, texts: list[str], prompt: str | None) -> None:
        self.texts.extend(texts)


def make_encoder(st_model: Any, cache: EmbeddingCache | None, weight: WeightSpec = BASE, batch_size: int = 32) -> tuple[Encoder, Counter]:
    counter = Counter()
    enc = Encoder(st_model, weight.key, batch_size=batch_size, disk_cache=cache, on_encode=counter)
    return enc, counter


def key(i: int) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


# ---------------------------------------------------------------- hits and misses


def test_sweep_encodes_each_text_once_and_a_second_run_reads_the_disk(st_model: Any, sentences: list[str], tmp_path: Path) -> None:
    from evalgemma.variants.embedding_quant import quantize_embeddings_view

    cache = EmbeddingCache(tmp_path / "cache")
    enc, counter = make_encoder(st_model, cache)
    queries, docs = sentences[:60], sentences[60:] + sentences[:10]  # 10 texts on both sides, same prompt
    views = {}
    for dim in (384, 256, 128, 64):
        for precision in ("float32", "binary"):
            q = truncate(enc.encode(queries, None), dim)
            d = truncate(enc.encode(docs, None), dim)
            views[dim, precision] = (q, d) if precision == "float32" else (quantize_embeddings_view(q, "binary"), quantize_embeddings_view(d, "binary"))
    # 8 variants × 2 sides asked for 8 × 130 texts; the model saw the 120 distinct ones once each.
    assert sorted(counter.texts) == sorted(sentences)
    assert enc.stats.texts_encoded == 120
    assert views[64, "float32"][0].shape == (60, 64) and views[64, "binary"][0].shape == (60, 8)
    # A new process (new Encoder, new cache object) on the same folder encodes nothing.
    enc2, counter2 = make_encoder(st_model, EmbeddingCache(tmp_path / "cache"))
    again = enc2.encode(docs, None)
    assert counter2.texts == [] and enc2.stats.cache_hits_disk == 70
    np.testing.assert_array_equal(truncate(again, 128), views[128, "float32"][1])


@pytest.mark.parametrize(
    "change",
    [
        {"prompt": "query: "},
        {"weight": WeightSpec(BASE.model, "0" * 40, "float32", 256)},  # another revision
        {"weight": WeightSpec(BASE.model, BASE.revision, "bfloat16", 256)},
        {"weight": WeightSpec(BASE.model, BASE.revision, "float32", 128)},  # max_seq_length
        {"weight": WeightSpec(BASE.model, BASE.revision, "float32", 256, "q8_0", "ptq")},
    ],
    ids=["prompt", "revision", "dtype", "max_seq_length", "quantization"],
)
def test_anything_that_changes_a_vector_misses(st_model: Any, sentences: list[str], tmp_path: Path, change: dict[str, Any]) -> None:
    texts = sentences[:8]
    first, _ = make_encoder(st_model, EmbeddingCache(tmp_path))
    first.encode(texts, None)
    same, same_counter = make_encoder(st_model, EmbeddingCache(tmp_path))
    same.encode(texts, None)
    assert same_counter.texts == []  # the control: unchanged identity hits
    other, counter = make_encoder(st_model, EmbeddingCache(tmp_path), change.get("weight", BASE))
    other.encode(texts, change.get("prompt"))
    assert sorted(counter.texts) == sorted(texts)  # (the model is the same object: only the key decides)


def test_truncated_view_of_cached_vectors_equals_sentence_transformers_truncate_dim(
    st_model: Any, minilm_path: Path, sentences: list[str], tmp_path: Path
) -> None:
    from sentence_transformers import SentenceTransformer

    texts = sentences[:40]
    make_encoder(st_model, EmbeddingCache(tmp_path))[0].encode(texts, None)
    enc, counter = make_encoder(st_model, EmbeddingCache(tmp_path))
    cached_full = enc.encode(texts, None)
    assert counter.texts == [] and enc.stats.cache_hits_disk == 40
    for dim in (256, 128, 64):
        st_trunc = SentenceTransformer(str(minilm_path), device="cpu", truncate_dim=dim)
        # st truncates after its Normalize module, so its vectors are not unit-norm; L2 them.
        reference = l2_normalize(st_trunc.encode(texts, batch_size=32, convert_to_numpy=True))
        np.testing.assert_allclose(truncate(cached_full, dim), reference, rtol=0, atol=1e-6)


# ---------------------------------------------------------------- whole calls (the MTEB path)


def st_call(st_model: Any, texts: list[str], prompt: str | None, side: str | None, batch_size: int) -> np.ndarray:
    """What mteb's SentenceTransformerEncoderWrapper computes: one call over the whole list."""
    method = {"query": st_model.encode_query, "document": st_model.encode_document, None: st_model.encode}[side]
    return method(texts, prompt=prompt, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)


def test_encode_call_is_one_sentence_transformers_call_bit_for_bit(st_model: Any, sentences: list[str], tmp_path: Path) -> None:
    texts = sentences[:70] + sentences[:30]  # 30 repeats, sorted into other padded batches than their first copies
    want = st_call(st_model, texts, "query: ", "query", 16)
    enc, counter = make_encoder(st_model, EmbeddingCache(tmp_path), batch_size=16)
    np.testing.assert_array_equal(enc.encode_call(texts, "query: ", "query"), want)
    assert counter.texts == texts  # the model got the call as given: whole list, same order, repeats included
    # The same call again (another dim or embedding dtype of the unit) is served from memory ...
    np.testing.assert_array_equal(enc.encode_call(texts, "query: ", "query"), want)
    assert counter.texts == texts and enc.stats.cache_hits_memory == 100
    # ... and in a new process (new Encoder, new cache object) from disk.
    enc2, counter2 = make_encoder(st_model, EmbeddingCache(tmp_path), batch_size=16)
    np.testing.assert_array_equal(enc2.encode_call(texts, "query: ", "query"), want)
    assert counter2.texts == [] and enc2.stats.cache_hits_disk == 100


@pytest.mark.parametrize(
    "change",
    [{"batch_size": 8}, {"side": "document"}, {"side": None}, {"prompt": None}, {"order": "reversed"}, {"order": "prefix"}],
    ids=["batch_size", "side-document", "side-none", "prompt", "reordered", "sub-list"],
)
def test_encode_call_serves_only_the_identical_call(st_model: Any, sentences: list[str], tmp_path: Path, change: dict[str, Any]) -> None:
    # Anything that changes which texts share a padded batch, or how the call is routed, is another
    # call: it is encoded whole and equals sentence-transformers on that call (never a reassembly).
    texts = sentences[:40]
    enc, _counter = make_encoder(st_model, EmbeddingCache(tmp_path), batch_size=16)
    enc.encode_call(texts, "query: ", "query")
    other_texts = {"reversed": texts[::-1], "prefix": texts[:25]}.get(change.get("order", ""), texts)
    batch_size, side, prompt = change.get("batch_size", 16), change.get("side", "query"), change.get("prompt", "query: ")
    other, other_counter = make_encoder(st_model, EmbeddingCache(tmp_path), batch_size=batch_size)
    got = other.encode_call(other_texts, prompt, side)
    assert other_counter.texts == other_texts and other.stats.cache_hits_disk == 0
    np.testing.assert_array_equal(got, st_call(st_model, other_texts, prompt, side, batch_size))


# ---------------------------------------------------------------- corruption


def _shards(root: Path) -> list[Path]:
    return sorted(root.glob(f"{BASE.key}/*.npy"))


def _flip_last_bytes(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0xFF  # inside the last row's float bytes; header and size unchanged
    path.write_bytes(bytes(raw))


def _garbage_same_size(path: Path) -> None:
    path.write_bytes(os.urandom(path.stat().st_size))


def _truncate_file(path: Path) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def _wrong_dtype(path: Path) -> None:
    arr = np.load(path, allow_pickle=False)
    # float16 with twice the columns: the same number of bytes, so only the header check can tell.
    np.save(path, np.zeros((arr.shape[0], arr.shape[1] * 2), dtype=np.float16), allow_pickle=False)


def _swap_keys(path: Path) -> None:
    index_path = path.with_suffix(".json")
    index = json.loads(index_path.read_text())
    index["keys"][0], index["keys"][1] = index["keys"][1], index["keys"][0]
    index_path.write_text(json.dumps(index))


def _garbage_index(path: Path) -> None:
    path.with_suffix(".json").write_text('{"schema": "evalgemma-embedding-cache/1", "keys": [')


@pytest.mark.parametrize("damage", [_flip_last_bytes, _garbage_same_size, _truncate_file, _wrong_dtype, _swap_keys, _garbage_index])
def test_a_damaged_shard_is_reported_recomputed_and_never_served(st_model: Any, sentences: list[str], tmp_path: Path, damage: Any) -> None:
    texts = sentences[:20]
    fresh = make_encoder(st_model, None)[0].encode(texts, None)
    make_encoder(st_model, EmbeddingCache(tmp_path))[0].encode(texts, None)
    (shard,) = _shards(tmp_path)
    damage(shard)
    enc, counter = make_encoder(st_model, EmbeddingCache(tmp_path))
    with pytest.warns(CacheCorruptionWarning, match=shard.stem):
        got = enc.encode(texts, None)
    assert sorted(counter.texts) == sorted(texts)  # every row of the damaged shard recomputed
    np.testing.assert_array_equal(got, fresh)
    # The recomputed vectors take the same content address again, now intact, and hit.
    assert _shards(tmp_path) == [shard]
    enc3, counter3 = make_encoder(st_model, EmbeddingCache(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheCorruptionWarning)
        np.testing.assert_array_equal(enc3.encode(texts, None), fresh)
    assert counter3.texts == []


def test_checksum_binds_key_and_bytes() -> None:
    row = np.array([1.0, -2.5, 3.25], dtype=np.float32)
    assert row_checksum(key(1), row) == row_checksum(key(1), row.copy())
    assert row_checksum(key(1), row) != row_checksum(key(2), row)
    assert row_checksum(key(1), row) != row_checksum(key(1), row * np.float32(-1))


# ---------------------------------------------------------------- names, size bound, failures


@pytest.mark.parametrize("bad", ["../x", "a/b", ".hidden", "", "..", "x" * 200, "a\x00b"])
def test_namespaces_that_could_escape_the_root_are_refused(bad: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="invalid namespace"):
        check_namespace(bad)
    with pytest.raises(ValueError, match="invalid namespace"):
        EmbeddingCache(tmp_path).put_many(bad, {key(1): np.zeros(3, np.float32)})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad", ["../../etc/passwd", key(1).upper(), key(1)[:63], key(1) + "0"])
def test_keys_must_be_sha256_hex(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid key"):
        check_key(bad)


def test_least_recently_used_shards_are_evicted_first(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, shard_rows=10)
    vec = {key(i): np.full(16, i, np.float32) for i in range(40)}
    cache.put_many("ns", {k: vec[k] for k in list(vec)[0:10]})  # shard A
    cache.put_many("ns", {k: vec[k] for k in list(vec)[10:20]})  # shard B
    cache.put_many("ns", {k: vec[k] for k in list(vec)[20:30]})  # shard C
    indexes = sorted((tmp_path / "ns").glob("*.json"), key=lambda p: json.loads(p.read_text())["keys"][0] != key(0))
    shard_of = {json.loads(p.read_text())["keys"][0]: p for p in indexes}
    a, b, c = shard_of[key(0)], shard_of[key(10)], shard_of[key(20)]
    for i, p in enumerate((a, b, c)):
        os.utime(p, (1_000 * (i + 1), 1_000 * (i + 1)))  # A oldest, then B, then C
    three_shards = cache.total_bytes()
    assert cache.get_many("ns", [key(3)])[key(3)][0] == 3.0  # a hit on A makes it the newest
    # Shards differ by a few bytes at most (10 rows × 16 float32 each; indexes differ only in
    # the digits of their CRCs), so A+B+C+100 < A+B+C+D but A+C+D < A+B+C+100.
    cache.max_bytes = three_shards + 100
    cache.put_many("ns", {k: vec[k] for k in list(vec)[30:40]})  # D: 4 shards > bound → evict one
    # Last use: B (2000) < C (3000) < A (now) ≈ D (now): B goes, nothing else.
    assert not b.exists() and not b.with_suffix(".npy").exists()
    assert a.exists() and c.exists() and cache.stats.evicted_shards == 1
    got = EmbeddingCache(tmp_path).get_many("ns", list(vec))
    assert sorted(got) == sorted(list(vec)[0:10] + list(vec)[20:40])


def test_leftovers_of_killed_writers_are_swept_only_when_old(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    cache.put_many("ns", {key(1): np.ones(4, np.float32)})
    old_tmp, new_tmp = tmp_path / "ns" / ".tmp-old.npy", tmp_path / "ns" / ".tmp-new.npy"
    old_orphan = tmp_path / "ns" / ("ab" * 16 + ".npy")  # an .npy whose index never got written
    for p in (old_tmp, new_tmp, old_orphan):
        p.write_bytes(b"partial")
    for p in (old_tmp, old_orphan):
        os.utime(p, (time.time() - 7200, time.time() - 7200))
    cache.put_many("ns", {key(2): np.ones(4, np.float32)})
    assert not old_tmp.exists() and not old_orphan.exists() and new_tmp.exists()
    assert sorted(cache.get_many("ns", [key(1), key(2)])) == sorted([key(1), key(2)])


def test_an_unwritable_cache_warns_and_the_run_goes_on(st_model: Any, sentences: list[str], tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache folder should be")
    enc, counter = make_encoder(st_model, EmbeddingCache(blocker / "cache"))
    with pytest.warns(RuntimeWarning, match="could not write to the embedding cache"):
        got = enc.encode(sentences[:4], None)
    assert got.shape == (4, 384) and sorted(counter.texts) == sorted(sentences[:4])


def test_mismatched_vector_shapes_are_a_programming_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="1-d vectors of one length"):
        EmbeddingCache(tmp_path).put_many("ns", {key(1): np.ones(4, np.float32), key(2): np.ones(5, np.float32)})


# ---------------------------------------------------------------- processes: kill and concurrency

CHILD_ENCODE = textwrap.dedent(
    """
    import os, sys, time
    import numpy as np, torch
    from sentence_transformers import SentenceTransformer
    from evalgemma.encode.cache import EmbeddingCache
    from evalgemma.encode.encoder import Encoder
    torch.set_num_threads(1)
    model_path, cache_dir, texts_file, out = sys.argv[1:5]
    texts = open(texts_file, encoding="utf-8").read().split("\\n")
    st = SentenceTransformer(model_path, device="cpu")

    class Announcing(EmbeddingCache):
        def put_many(self, namespace, items):
            super().put_many(namespace, items)
            print("PUT", len(items), flush=True)
            time.sleep(float(os.environ.get("TEST_SLEEP_AFTER_PUT", "0")))

    enc = Encoder(st, "v1-killtest0000", batch_size=25, disk_cache=Announcing(cache_dir), checkpoint_rows=50)
    np.save(out + ".cached.npy", enc.encode(texts, None))
    # The uninterrupted reference: one call, no cache, the same batches.
    np.save(out + ".fresh.npy", Encoder(st, "v1-killtest0000", batch_size=25).encode(texts, None))
    print("DONE", enc.stats.cache_hits_disk, enc.stats.texts_encoded, flush=True)
    """
)


def _child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO / "harness"), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def test_a_run_killed_mid_encoding_resumes_from_complete_shards_only(minilm_path: Path, shared_data: Path, tmp_path: Path) -> None:
    texts = sts_sentences(shared_data, 150)
    (tmp_path / "texts.txt").write_text("\n".join(texts), encoding="utf-8")
    (tmp_path / "child.py").write_text(CHILD_ENCODE)
    args = [sys.executable, str(tmp_path / "child.py"), str(minilm_path), str(tmp_path / "cache"), str(tmp_path / "texts.txt"), str(tmp_path / "out")]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env={**_child_env(), "TEST_SLEEP_AFTER_PUT": "60"})
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.strip() == "PUT 50", first  # one chunk of 50 texts stored, then it sleeps
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    ns = tmp_path / "cache" / "v1-killtest0000"
    assert len(list(ns.glob("*.json"))) == 1 and len(list(ns.glob("*.npy"))) == 1
    done = subprocess.run(args, capture_output=True, text=True, env=_child_env(), timeout=300, check=True)
    # The restart served the killed run's 50 vectors from disk and encoded the other 100.
    assert done.stdout.strip().splitlines()[-1] == "DONE 50 100"
    np.testing.assert_array_equal(np.load(tmp_path / "out.cached.npy"), np.load(tmp_path / "out.fresh.npy"))


CHILD_WRITE = textwrap.dedent(
    """
    import hashlib, sys
    import numpy as np
    from evalgemma.encode.cache import EmbeddingCache
    root, start, stop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    cache = EmbeddingCache(root)
    for lo in range(start, stop, 50):
        items = {}
        for i in range(lo, min(lo + 50, stop)):
            k = hashlib.sha256(str(i).encode()).hexdigest()
            items[k] = np.random.default_rng(i).standard_normal(64).astype(np.float32)
        cache.put_many("v1-shared00000", items)
        cache.get_many("v1-shared00000", list(items))
    print("OK", cache.stats.rows_written, flush=True)
    """
)


def test_two_processes_writing_one_namespace_lose_nothing(tmp_path: Path) -> None:
    (tmp_path / "child.py").write_text(CHILD_WRITE)
    root = tmp_path / "cache"
    # Overlapping ranges: keys 500..999 are written by both, at about the same time.
    procs = [
        subprocess.Popen([sys.executable, str(tmp_path / "child.py"), str(root), lo, hi], stdout=subprocess.PIPE, text=True, env=_child_env())
        for lo, hi in (("0", "1000"), ("500", "1500"))
    ]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert all(o.startswith("OK ") for o in outs)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheCorruptionWarning)
        got = EmbeddingCache(root).get_many("v1-shared00000", [key(i) for i in range(1500)])
    assert len(got) == 1500
    for i in (0, 499, 500, 999, 1000, 1499):
        np.testing.assert_array_equal(got[key(i)], np.random.default_rng(i).standard_normal(64).astype(np.float32))
    assert not list(root.rglob(".tmp-*"))
