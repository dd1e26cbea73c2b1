"""The ONNX Runtime backend: whole-pipeline export, parity with the torch float32 reference,
prompts, quantization, the content cache, broken artifacts caught by ``parity``, bad input.

Reference = the model through sentence-transformers in float32 (the torch backend's ``Encoder``);
candidate = the same ``Encoder`` class around ``OnnxSentenceModel``. Texts are real: STSBenchmark
test sentences (English) and the project's own smoke bitext sentences in five languages.

Four exports in all (MiniLM, tiny EmbeddingGemma, tiny with its pooling swapped for the first
token, tiny without its Dense heads), shared through one artifact cache per session.
"""

from __future__ import annotations

import builtins
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="the ONNX backend needs evalgemma[backends]")

from conftest import require
from evalgemma.encode import onnx_backend as ob
from evalgemma.encode.encoder import Encoder
from evalgemma.encode.parity import ParityThresholds, parity, top_k_neighbours
from evalgemma.errors import ConfigError, DataError

#: fp32 bounds; measured on the 80 probe texts: cosine 1.0000000 (min and mean), top-10 overlap 1.0,
#: max |Δ norm| ≤ 5e-7 for both models. Quantized formats: bounds a little below the measured values.
FP32 = ParityThresholds(min_cosine=0.9999, min_mean_cosine=0.99999, min_top10_overlap=0.99, max_norm_delta=1e-5)
#: Measured (min / mean cosine vs torch float32, 80 texts): MiniLM int8 0.93266 / 0.96488, q4 0.95542 /
#: 0.96960; tiny EmbeddingGemma int8 0.99698 / 0.99954, q4 0.95241 / 0.98045.
QUANT_MIN_COSINE = {("minilm", "int8"): 0.90, ("minilm", "q4"): 0.93, ("tiny", "int8"): 0.99, ("tiny", "q4"): 0.93}
QUANT_MEAN_COSINE = {("minilm", "int8"): 0.95, ("minilm", "q4"): 0.95, ("tiny", "int8"): 0.998, ("tiny", "q4"): 0.97}
GEMMA_PROMPTS = ("task: search result | query: ", "title: none | text: ", "task: sentence similarity | query: ")


# ---------------------------------------------------------------- fixtures


def probe_texts(shared_data: Path, repo: Path) -> list[str]:
    """60 distinct STSBenchmark test sentences, then 4 smoke bitext rows in eng/deu/fra/spa/ita."""
    path = require(shared_data / "stsbenchmark" / "sts-test.csv", "STSBenchmark test file")
    sts: dict[str, None] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        sts.update(dict.fromkeys(line.split("\t")[5:7]))
        if len(sts) >= 60:
            break
    rows = [json.loads(line) for line in (repo / "tasks" / "smoke" / "bitext.jsonl").read_text(encoding="utf-8").splitlines()[:4]]
    return list(sts)[:60] + [row["text"][lang] for row in rows for lang in ("eng", "deu", "fra", "spa", "ita")]


@pytest.fixture(scope="module")
def texts(shared_data: Path) -> list[str]:
    return probe_texts(shared_data, Path(__file__).resolve().parents[1])


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


def torch_encoder(path: Path, max_seq_length: int, key: str) -> Encoder:
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(2)
    st = SentenceTransformer(str(path), device="cpu")
    st.max_seq_length = max_seq_length
    return Encoder(st.eval(), key)


@pytest.fixture(scope="module")
def models(minilm_path: Path, tiny_gemma: Path) -> dict[str, tuple[Path, int]]:
    # (directory, max_seq_length): MiniLM's own 256; 512 for Gemma 3 models, as the torch path.
    return {"minilm": (minilm_path, 256), "tiny": (tiny_gemma, 512)}


class _Lazy(dict):  # type: ignore[type-arg]
    """Built on first use, so ``-k`` runs export only what they need."""

    def __init__(self, build: Any) -> None:
        super().__init__()
        self.build = build

    def __missing__(self, key: Any) -> Any:
        self[key] = value = self.build(key)
        return value


@pytest.fixture(scope="module")
def references(models: dict[str, tuple[Path, int]]) -> dict[str, Encoder]:
    return _Lazy(lambda name: torch_encoder(models[name][0], models[name][1], f"torch-{name}"))


@pytest.fixture(scope="module")
def artifacts(models: dict[str, tuple[Path, int]], cache: Path) -> dict[tuple[str, str], ob.OnnxArtifact]:
    return _Lazy(lambda key: ob.export_onnx(models[key[0]][0], cache, key[1]))


_ENCODERS: dict[tuple[str, int], Encoder] = {}


def candidate(artifact: ob.OnnxArtifact, max_seq_length: int) -> Encoder:
    """One ONNX encoder per (artifact, max length) for the module (sessions and tokenizers load once)."""
    key = (artifact.sha256, max_seq_length)
    if key not in _ENCODERS:
        _ENCODERS[key] = ob.onnx_encoder(artifact, f"onnx-{artifact.quant}-{artifact.sha256[:12]}", max_seq_length=max_seq_length, threads=2)
    encoder = _ENCODERS[key]
    encoder.clear_memory()
    return encoder


# ---------------------------------------------------------------- parity function


class _Fixed:
    def __init__(self, vectors: np.ndarray, key: str) -> None:
        self.vectors, self.weight_key = vectors, key

    def encode(self, texts: Any, prompt: str | None) -> np.ndarray:
        return self.vectors[: len(texts)]


def test_top_k_neighbours_order_and_ties() -> None:
    # Row 0 = (1, 0); rows 1 and 2 both (1, 1): equal cosine 0.7071 to row 0, so the tie goes to the
    # lower index (1 before 2); row 3 = (0, 1) has cosine 0 to row 0 and is last.
    v = np.array([[1.0, 0.0], [1.0, 1.0], [1.0, 1.0], [0.0, 1.0]])
    assert top_k_neighbours(v, 3).tolist() == [[1, 2, 3], [2, 0, 3], [1, 0, 3], [1, 2, 0]]


def test_parity_figures_by_hand() -> None:
    ref = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    # Text 0 scaled by 2 (cosine 1, norm delta 1); text 1 rotated to (0.6, 0.8): cosine 0.8; text 2 equal.
    cand = np.array([[2.0, 0.0], [0.6, 0.8], [0.6, 0.8]])
    report = parity(_Fixed(ref, "a"), _Fixed(cand, "b"), ["x", "y", "z"], k=1)
    assert report.cosines == pytest.approx((1.0, 0.8, 1.0), abs=1e-12)
    assert (report.cosine_min, report.worst_text, report.max_norm_delta) == (pytest.approx(0.8), 1, pytest.approx(1.0))
    # Top-1 neighbours: ref 0→2 (0.6), 1→2 (0.8), 2→1 (0.8); cand 0→1 (0.6 vs 0.6: tie, lower index 1),
    # 1→2 (1.0), 2→1 (1.0). Overlap: 0, 1, 1 → mean 2/3.
    assert report.top10_overlap_mean == pytest.approx(2 / 3) and report.top10_overlap_min == 0.0
    assert report.failures(ParityThresholds(min_cosine=0.9, min_mean_cosine=0.9, min_top10_overlap=0.5, max_norm_delta=0.5)) == [
        "cosine min 0.800000 < 0.9 (text 1)",
        "max |Δ norm| 1 > 0.5",
    ]
    with pytest.raises(ConfigError, match="same weight key"):
        parity(_Fixed(ref, "a"), _Fixed(cand, "a"), ["x", "y"])


# ---------------------------------------------------------------- tokenization and prompts


@pytest.mark.parametrize("name", ["minilm", "tiny"])
def test_tokenization_equals_sentence_transformers(name: str, models: dict[str, tuple[Path, int]], references: dict[str, Encoder],
                                                   artifacts: dict[tuple[str, str], ob.OnnxArtifact], texts: list[str]) -> None:
    """The graph inputs equal what sentence-transformers' own Transformer module builds, prompt and
    truncation included (max_seq_length 16 cuts the longest texts used here)."""
    st = references[name].st_model
    onnx_model = ob.OnnxSentenceModel(artifacts[(name, "none")], max_seq_length=16, threads=1)
    sample = sorted(texts, key=len)[-12:] + sorted(texts, key=len)[:4]
    old = st.max_seq_length
    st.max_seq_length = 16
    try:
        for prompt in (None, "task: sentence similarity | query: "):
            expected = st.preprocess(sample, prompt=prompt)
            got = onnx_model.tokenize([(prompt or "") + t for t in sample])
            for key in ("input_ids", "attention_mask"):
                assert np.array_equal(got[key], expected[key].numpy()), (name, prompt, key)
            assert got["input_ids"].shape[1] == 16 and got["attention_mask"][-1].sum() < 16
    finally:
        st.max_seq_length = old


def test_gemma_prompts_reach_the_onnx_tokenizer(artifacts: dict[tuple[str, str], ob.OnnxArtifact], references: dict[str, Encoder],
                                                texts: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    encoder = candidate(artifacts[("tiny", "none")], 512)
    model = encoder.st_model
    seen: list[str] = []
    real = model.tokenizer

    class Recording:
        def __init__(self) -> None:
            self.model_max_length = real.model_max_length

        def __call__(self, batch: list[str], **kwargs: Any) -> Any:
            seen.extend(batch)
            return real(batch, **kwargs)

    monkeypatch.setattr(model, "tokenizer", Recording())
    sample = texts[:5] + texts[60:65]
    for prompt in GEMMA_PROMPTS:
        seen.clear()
        vectors = encoder.encode(sample, prompt)
        # Every string the tokenizer saw is the prompt followed by one text, each text once.
        assert sorted(seen) == sorted(prompt + t for t in sample)
        ref = references["tiny"].encode(sample, prompt)
        cos = np.sum(vectors * ref, axis=1) / np.linalg.norm(vectors, axis=1) / np.linalg.norm(ref, axis=1)
        assert cos.min() >= 0.9999, prompt
    # Different prompts give different vectors (the prompt is not dropped on the way).
    a, b = encoder.encode(sample[:1], GEMMA_PROMPTS[0]), encoder.encode(sample[:1], GEMMA_PROMPTS[2])
    assert float(np.dot(a[0], b[0])) < 0.9999


# ---------------------------------------------------------------- parity: fp32 and quantized


@pytest.mark.parametrize("name", ["minilm", "tiny"])
def test_fp32_parity(name: str, models: dict[str, tuple[Path, int]], references: dict[str, Encoder],
                     artifacts: dict[tuple[str, str], ob.OnnxArtifact], texts: list[str]) -> None:
    art = artifacts[(name, "none")]
    enc = candidate(art, models[name][1])
    prompt = "task: sentence similarity | query: " if name == "tiny" else None
    report = parity(references[name], enc, texts, prompt=prompt)
    print(f"\n{name} onnx fp32: cosine min {report.cosine_min:.7f} mean {report.cosine_mean:.7f}, "
          f"top-10 overlap {report.top10_overlap_mean:.4f}, max |Δ norm| {report.max_norm_delta:.2e}")
    assert report.failures(FP32) == []
    assert art.manifest["modules"][-1] == "Normalize" and enc.full_dim == art.output_dim
    # Single text, batch of one and the empty call: the graph is not specialised to the trace's batch.
    one = enc.encode(texts[:1], prompt)
    assert one.shape == (1, art.output_dim) and enc.encode([], prompt).shape == (0, art.output_dim)


def test_fp32_parity_beyond_the_sliding_window(tiny_gemma: Path, artifacts: dict[tuple[str, str], ob.OnnxArtifact], texts: list[str]) -> None:
    """A text of 1024 tokens (max_seq_length 1024): the tiny model's sliding-window layer (window 512,
    bidirectional) masks part of it; the exported graph must compute the same mask as torch."""
    long_text = " ".join(texts * 2)
    ref = torch_encoder(tiny_gemma, 1024, "torch-tiny-1024")
    enc = candidate(artifacts[("tiny", "none")], 1024)
    n_tokens = len(enc.st_model.tokenizer(long_text)["input_ids"])
    assert n_tokens > 1024  # truncated to 1024 tokens: far beyond the 512 window
    report = parity(ref, enc, [long_text, texts[0], texts[1]])
    assert report.cosine_min >= 0.9999


@pytest.mark.parametrize(("name", "quant"), [("minilm", "int8"), ("minilm", "q4"), ("tiny", "int8"), ("tiny", "q4")])
def test_quantized_parity(name: str, quant: str, models: dict[str, tuple[Path, int]], references: dict[str, Encoder],
                          artifacts: dict[tuple[str, str], ob.OnnxArtifact], texts: list[str]) -> None:
    art = artifacts[(name, quant)]
    ops = art.manifest["op_counts"]
    if quant == "int8":
        assert ops.get("MatMulInteger", 0) > 0 and "Gemm" not in ops
    else:
        assert ops.get("MatMulNBits", 0) > 0 and "Gemm" not in ops
    assert art.file_bytes < artifacts[(name, "none")].file_bytes
    assert art.manifest["quantized_from"]["onnx_sha256"] == artifacts[(name, "none")].sha256
    prompt = "task: sentence similarity | query: " if name == "tiny" else None
    report = parity(references[name], candidate(art, models[name][1]), texts, prompt=prompt)
    print(f"\n{name} onnx {quant}: cosine min {report.cosine_min:.5f} mean {report.cosine_mean:.5f}, "
          f"top-10 overlap {report.top10_overlap_mean:.4f}, max |Δ norm| {report.max_norm_delta:.2e}, {art.file_bytes / 1e6:.1f} MB")
    assert report.cosine_min >= QUANT_MIN_COSINE[(name, quant)]
    assert report.cosine_mean >= QUANT_MEAN_COSINE[(name, quant)]
    assert report.failures(FP32), "a quantized artifact should not pass the fp32 bounds"


# ---------------------------------------------------------------- the content cache and broken artifacts


@pytest.mark.slow  # two extra exports of the tiny model (about 20 s each); test_backends.py catches cut Dense heads fast
def test_cache_hit_copy_and_changed_source(tiny_gemma: Path, cache: Path, tmp_path: Path, references: dict[str, Encoder],
                                           artifacts: dict[tuple[str, str], ob.OnnxArtifact], texts: list[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    first = artifacts[("tiny", "none")]
    # A second load, and a copy of the same files elsewhere, are served from the cache without exporting.
    copy = tmp_path / "copy"
    shutil.copytree(tiny_gemma, copy)

    def no_export(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("re-exported an unchanged source")

    with monkeypatch.context() as m:
        m.setattr(ob, "_export_graph", no_export)
        for again in (ob.export_onnx(tiny_gemma, cache), ob.export_onnx(copy, cache)):
            assert (again.sha256, again.path, again.built_seconds) == (first.sha256, first.path, None)
        q4 = artifacts[("tiny", "q4")]
        assert ob.find_export(copy, cache).sha256 == first.sha256  # type: ignore[union-attr]
        assert ob.find_export(copy, cache, "q4").sha256 == q4.sha256  # type: ignore[union-attr]
    # Changed source: mean pooling replaced by the first token (a conversion that lost its pooling).
    pooling = copy / "1_Pooling" / "config.json"
    cfg = json.loads(pooling.read_text())
    assert cfg["pooling_mode"] == "mean"
    cfg["pooling_mode"] = "cls"
    pooling.write_text(json.dumps(cfg))
    assert ob.find_export(copy, cache) is None  # changed: not exported yet, and looking does not export
    changed = ob.export_onnx(copy, cache)
    assert changed.built_seconds is not None and changed.path.parent != first.path.parent and changed.sha256 != first.sha256
    report = parity(references["tiny"], candidate(changed, 512), texts, prompt="task: sentence similarity | query: ")
    print(f"\npooling lost (first token): cosine min {report.cosine_min:.4f} mean {report.cosine_mean:.4f}, top-10 {report.top10_overlap_mean:.3f}")
    assert any(f.startswith("cosine min") for f in report.failures(FP32))
    assert report.cosine_mean < 0.9


@pytest.mark.slow  # two extra exports of the tiny model (about 20 s each); test_backends.py catches cut Dense heads fast
def test_dense_heads_removed_is_caught(tiny_gemma: Path, cache: Path, tmp_path: Path, references: dict[str, Encoder], texts: list[str]) -> None:
    """Same output dim (32 → 128 → 32 heads dropped), unit norms: only parity shows it is wrong."""
    broken = tmp_path / "no-dense"
    shutil.copytree(tiny_gemma, broken)
    modules = json.loads((broken / "modules.json").read_text())
    (broken / "modules.json").write_text(json.dumps([m for m in modules if "Dense" not in m["type"]]))
    for folder in ("2_Dense", "3_Dense"):
        shutil.rmtree(broken / folder)
    art = ob.export_onnx(broken, cache)
    assert art.output_dim == 32 and art.manifest["modules"] == ["Transformer", "Pooling", "Normalize"]
    report = parity(references["tiny"], candidate(art, 512), texts, prompt="task: sentence similarity | query: ")
    print(f"\nDense heads lost: cosine min {report.cosine_min:.4f} mean {report.cosine_mean:.4f}, top-10 {report.top10_overlap_mean:.3f}")
    assert report.max_norm_delta < 1e-5  # still unit vectors
    assert report.cosine_mean < 0.9 and report.top10_overlap_mean < 0.9


def test_damaged_and_interrupted_entries_are_rebuilt(artifacts: dict[tuple[str, str], ob.OnnxArtifact], minilm_path: Path,
                                                     cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    q4 = artifacts[("minilm", "q4")]
    # Interrupted after model.onnx was written, before the manifest: the entry is incomplete.
    shutil.rmtree(q4.path.parent)
    with monkeypatch.context() as m:
        m.setattr(ob, "_op_counts", lambda path: (_ for _ in ()).throw(KeyboardInterrupt()))
        with pytest.raises(KeyboardInterrupt):
            ob.export_onnx(minilm_path, cache, "q4")
    assert (q4.path.parent / ob.MODEL_FILE).exists() and not (q4.path.parent / ob.MANIFEST).exists()
    assert not list(q4.path.parent.glob(".tmp-*"))
    rebuilt = ob.export_onnx(minilm_path, cache, "q4")
    assert rebuilt.built_seconds is not None and rebuilt.path == q4.path
    # A damaged model.onnx (its sha256 no longer the manifest's) is warned about and rebuilt.
    with rebuilt.path.open("r+b") as fh:
        fh.seek(1000)
        fh.write(b"\xff" * 16)
    with pytest.warns(RuntimeWarning, match="damaged ONNX cache entry"):
        again = ob.export_onnx(minilm_path, cache, "q4")
    assert again.built_seconds is not None and ob.file_sha256(again.path) == again.sha256
    # The same damage in a folder the user gave is an error, and nothing of theirs is changed.
    given = cache.parent / "given-damaged"
    shutil.copytree(again.path.parent, given)
    with (given / ob.MODEL_FILE).open("r+b") as fh:
        fh.seek(1000)
        fh.write(b"\xff" * 16)
    with pytest.raises(DataError, match=r"damaged ONNX artifact .*does not match the sha256"):
        ob.open_onnx(given)
    assert (given / ob.MANIFEST).is_file()


# ---------------------------------------------------------------- given artifacts and bad input


def test_open_given_directory_layouts(artifacts: dict[tuple[str, str], ob.OnnxArtifact], tmp_path: Path, texts: list[str]) -> None:
    exported = artifacts[("minilm", "none")]
    same = ob.open_onnx(exported.path.parent)
    assert (same.sha256, same.output_dim, same.origin) == (exported.sha256, 384, "given")
    # The hub layout: onnx/model.onnx with the tokenizer one folder up.
    hub = tmp_path / "hub"
    (hub / "onnx").mkdir(parents=True)
    shutil.copyfile(exported.path, hub / "onnx" / "model.onnx")
    for f in exported.tokenizer_dir.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "vocab")):
            shutil.copyfile(f, hub / f.name)
    given = ob.open_onnx(hub)
    assert given.sha256 == exported.sha256 and given.tokenizer_dir == hub and given.manifest == {}
    a = candidate(exported, 256).encode(texts[:8], None)
    b = ob.onnx_encoder(given, "onnx-given", max_seq_length=256).encode(texts[:8], None)
    assert np.array_equal(a, b)


def test_quantizing_a_given_file(artifacts: dict[tuple[str, str], ob.OnnxArtifact], cache: Path, tmp_path: Path) -> None:
    exported = artifacts[("minilm", "none")]
    given = tmp_path / "given"
    shutil.copytree(exported.path.parent, given)
    (given / ob.MANIFEST).unlink()  # a foreign copy: nothing recorded
    q = ob.open_onnx(given, "int8", cache_dir=cache)
    assert q.manifest["quantized_from"]["onnx_sha256"] == exported.sha256
    assert q.sha256 == artifacts[("minilm", "int8")].sha256  # same source bytes + recipe → the same entry
    with pytest.raises(ConfigError, match="pass a cache directory"):
        ob.open_onnx(given, "q4")
    with pytest.raises(ConfigError, match=r"already quantized .*MatMulInteger"):
        ob.open_onnx(q.path, "q4", cache_dir=cache)


def _save(model: Any, path: Path) -> Path:
    import onnx

    onnx.save(model, str(path))
    return path


def _graph(inputs: list[tuple[str, int, list[Any]]], outputs: list[tuple[str, int, list[Any]]]) -> Any:
    """A foreign graph with the given signature: each output is a Cast of the first input."""
    from onnx import helper

    ins = [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs]
    outs = [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs]
    nodes = [helper.make_node("Cast", [inputs[0][0]], [outputs[0][0]], to=outputs[0][1])]
    for extra in outputs[1:]:
        nodes.append(helper.make_node("Cast", [inputs[0][0]], [extra[0]], to=extra[1]))
    graph = helper.make_graph(nodes, "foreign", ins, outs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=10)


def test_bad_onnx_files(artifacts: dict[tuple[str, str], ob.OnnxArtifact], tmp_path: Path) -> None:
    from onnx import TensorProto as T

    exported = artifacts[("minilm", "none")]
    for f in exported.tokenizer_dir.iterdir():  # a tokenizer beside every bad file below
        if f.name.startswith("tokenizer"):
            shutil.copyfile(f, tmp_path / f.name)
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(exported.path.read_bytes()[: exported.file_bytes // 3])
    text = tmp_path / "notes.onnx"
    text.write_text("this is a README, not a model\n" * 20)
    cases = {
        truncated: "not a loadable ONNX model",
        text: "not a loadable ONNX model",
        _save(_graph([("x", T.INT64, ["b", "s"])], [("y", T.FLOAT, ["b", "s"])]), tmp_path / "wrong_io.onnx"): "not a whole sentence-embedding pipeline",
        _save(_graph([("input_ids", T.INT64, ["b", "s"]), ("attention_mask", T.INT64, ["b", "s"])], [("last_hidden_state", T.FLOAT, ["b", "s"])]),
              tmp_path / "transformer_only.onnx"): "outputs last_hidden_state",
        _save(_graph([("input_ids", T.INT64, ["b", "s", 4]), ("attention_mask", T.INT64, ["b", "s"])], [("sentence_embedding", T.FLOAT, ["b", "s", 4])]),
              tmp_path / "token_level.onnx"): "expected \\[batch, dim\\]",
        _save(_graph([("input_ids", T.INT64, ["b", "s"]), ("attention_mask", T.INT64, ["b", "s"]), ("pixel_values", T.FLOAT, ["b", 3])],
                     [("sentence_embedding", T.FLOAT, ["b", "s"])]), tmp_path / "extra_input.onnx"): "inputs input_ids, attention_mask, pixel_values",
    }
    for path, message in cases.items():
        with pytest.raises(DataError, match=message) as info:
            ob.open_onnx(path)
        assert str(path) in str(info.value) and info.value.exit_code == 3
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="not an ONNX model directory"):
        ob.open_onnx(tmp_path / "empty")
    with pytest.raises(ConfigError, match=r"no model\.onnx; it holds"):
        ob.open_onnx(exported.path.parent.parent)
    with pytest.raises(ConfigError, match="unknown ONNX quantization 'q8_0'"):
        ob.open_onnx(exported.path, "q8_0")  # type: ignore[arg-type]
    lonely = tmp_path / "lonely" / "sub"
    lonely.mkdir(parents=True)
    shutil.copyfile(exported.path, lonely / "model.onnx")
    with pytest.raises(DataError, match="no tokenizer beside it"):
        ob.open_onnx(lonely)


def test_unsupported_pipelines_and_missing_package(minilm_path: Path, tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    excl = tmp_path / "exclude-prompt"
    shutil.copytree(minilm_path, excl)
    cfg_path = excl / "1_Pooling" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["include_prompt"] = False
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="include_prompt=false"):
        ob.export_onnx(excl, cache)
    with pytest.raises(ConfigError, match="local sentence-transformers directory"):
        ob.export_onnx(tmp_path / "absent", cache)
    real_import = builtins.__import__

    def without_onnxruntime(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "onnxruntime" or name.startswith("onnxruntime."):
            raise ImportError("No module named 'onnxruntime'")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "onnxruntime", raising=False)
    monkeypatch.setattr(builtins, "__import__", without_onnxruntime)
    with pytest.raises(ConfigError, match=r"evalgemma\[backends\]") as info:
        ob.open_onnx(minilm_path)
    assert "'onnxruntime'" in str(info.value) and info.value.exit_code == 2


# ---------------------------------------------------------------- downstream: mteb through the same adapter


def test_mteb_scores_through_the_onnx_encoder(artifacts: dict[tuple[str, str], ob.OnnxArtifact], references: dict[str, Encoder]) -> None:
    """The ONNX encoder plugs into the mteb bridge unchanged: on the smoke STS and retrieval tasks
    (EmbeddingGemma prompts per task type) its main scores equal the torch backend's."""
    import mteb

    from evalgemma.benchmarks.mteb.adapter import MtebView
    from evalgemma.benchmarks.smoke.tasks import smoke_tasks
    from evalgemma.variants.views import l2_normalize

    prompts = dict(references["tiny"].st_model.prompts)
    onnx_enc = candidate(artifacts[("tiny", "none")], 512)
    scores: dict[str, list[float]] = {}
    used: list[dict[str, str]] = []
    for enc in (references["tiny"], onnx_enc):
        view = MtebView(enc, "tiny-embeddinggemma", "test", prompts, l2_normalize, "cosine", 32)
        result = mteb.evaluate(view, smoke_tasks(["SmokeSTS", "SmokeRetrieval"]), cache=None, show_progress_bar=False)
        for task_result in result.task_results:
            scores.setdefault(task_result.task_name, []).append(task_result.get_score())
        used.append(dict(view.used_prompts))
    assert used[0] == used[1] and used[1]["STS/all"] == "task: sentence similarity | query: "
    assert used[1]["Retrieval/document"] == "title: none | text: "
    for name, (torch_score, onnx_score) in scores.items():
        assert abs(torch_score - onnx_score) < 1e-6, (name, torch_score, onnx_score)
