"""The llama.cpp (GGUF) backend: conversion with llama.cpp's own converter, quantization with its own
quantizer, parity with the torch float32 reference, prompts reaching llama.cpp, the `run` sweep, a
broken artifact (no Dense heads) caught by ``parity`` and ``run``, native crashes handled, bad input.

Models: the real all-MiniLM-L6-v2 and a tiny random-weight EmbeddingGemma that llama.cpp can run: 6 layers
(``TINY_LAYERS``). llama.cpp hard-codes EmbeddingGemma's attention pattern (every sixth layer full, the rest
sliding), so the tests' usual 2-layer model has no full-attention layer there, its full-attention mask is never
allocated, and llama.cpp aborts on the first decode (``GGML_ASSERT(buffer) failed``, whatever the width):
one test provokes that on purpose.
Artifacts are shared through one cache folder per module.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from importlib import util
from pathlib import Path

import numpy as np
import pytest

from conftest import build_tiny_gemma, require
from evalgemma.encode.backends import BACKENDS
from evalgemma.errors import ConfigError, DataError

CLI = [sys.executable, "-c", "from evalgemma.cli.app import main; main()"]
#: Layers of the tiny model llama.cpp runs (2 aborts in ggml: see test_native_abort_is_a_clear_error).
TINY_LAYERS = 6
TINY_HIDDEN = 32
#: f32 GGUF vs torch float32, measured on the 36 probe texts: see README "Deployment runtimes".
FP32_MIN_COSINE = 0.9999
#: MiniLM, texts llama.cpp tokenizes as HF does: (min, mean cosine) bounds a little below the measured
#: bf16 0.99997 / 0.99999, q8_0 0.99927 / 0.99963, q4_0 0.88983 / 0.96143 (the -s output prints them).
QUANT_BOUNDS = {"bf16": (0.9999, 0.99995), "q8_0": (0.999, 0.9995), "q4_0": (0.86, 0.95)}


def cli(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=600, env=env)


def need_llama() -> None:
    """Skip (fail in CI, like missing data) when the gguf extra is not installed."""
    if util.find_spec("llama_cpp") is None:
        from evalgemma.encode.gguf_backend import INSTALL_HINT

        msg = f"the gguf backend needs llama-cpp-python: {INSTALL_HINT}"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gguf-cache")


def build_tiny_for_llama(dest: Path, config_dir: Path, layers: int) -> Path:
    """The tests' tiny EmbeddingGemma with ``layers`` layers and the sentencepiece ``tokenizer.model`` the converter reads."""
    out = build_tiny_gemma(dest, config_dir, hidden=TINY_HIDDEN, layers=layers)
    shutil.copy(config_dir / "tokenizer.model", out / "tokenizer.model")
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    need_llama()
    config_dir = require(shared_data / "embeddinggemma_config", "EmbeddingGemma config")
    return build_tiny_for_llama(tmp_path_factory.mktemp("tiny-llama"), config_dir, TINY_LAYERS)


def probe(prompts: dict[str, str]) -> list[str]:
    from evalgemma.catalog.parity import load_probe_set

    return load_probe_set().rendered(prompts)


def torch_vectors(path: Path, texts: list[str], max_seq_length: int) -> np.ndarray:
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(2)
    st = SentenceTransformer(str(path), device="cpu")
    st.max_seq_length = max_seq_length
    return np.asarray(st.encode(texts, batch_size=32, convert_to_numpy=True), dtype=np.float32)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


# ---------------------------------------------------------------- registry (no runtime needed)


def test_registry_entry_and_thresholds() -> None:
    from evalgemma.catalog.parity import load_thresholds

    assert BACKENDS["gguf"].quants == ("none", "bf16", "q8_0", "q4_0") and BACKENDS["gguf"].has_artifact
    table, _ = load_thresholds()
    assert set(table.backends["gguf"]) == set(BACKENDS["gguf"].quants)


def test_missing_runtime_is_exit_2_with_install_hint(tmp_path: Path) -> None:
    """Without llama-cpp-python the CLI still starts; --backend gguf exits 2 saying how to install it."""
    hide = "import sys; sys.modules['llama_cpp'] = None; from evalgemma.cli.app import main; main()"
    done = subprocess.run([sys.executable, "-c", hide, "plan", "--model", "minilm", "--tasks", "STSBenchmark", "--backend", "gguf",
                           "--store", str(tmp_path / "s")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "llama-cpp-python" in done.stderr and ".[gguf]" in done.stderr


# ---------------------------------------------------------------- parity, prompts, tokens


@pytest.fixture(scope="module")
def minilm_f32(minilm_path: Path, cache: Path) -> object:
    need_llama()
    from evalgemma.encode import gguf_backend as gb

    return gb.convert_gguf(minilm_path, cache)


def _model(art: object, max_len: int, prompts: dict[str, str] | None = None) -> object:
    from evalgemma.encode import gguf_backend as gb

    return gb.GgufSentenceModel(art, max_seq_length=max_len, prompts=prompts, threads=2)  # type: ignore[arg-type]


def _agreeing(model: object, tokenizer_dir: Path, texts: list[str], max_len: int) -> np.ndarray:
    """Per text: does llama.cpp's tokenizer (the GGUF's vocabulary) give the ids the model's own HF tokenizer gives?"""
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    ours = model.tokenize(texts)  # type: ignore[attr-defined]
    return np.array([a == hf(t, truncation=True, max_length=max_len)["input_ids"] for a, t in zip(ours, texts, strict=True)])


def test_minilm_f32_parity_and_tokens(minilm_path: Path, minilm_f32: object) -> None:
    """Same function wherever llama.cpp tokenizes as the HF tokenizer does. It does not on the two Hindi probe
    texts: llama.cpp's WordPiece drops Devanagari vowel signs (spacing marks) that BERT's tokenizer keeps."""
    from evalgemma.catalog.parity import load_probe_set

    texts = probe({})
    model = _model(minilm_f32, 256)
    got = model.encode(texts)  # type: ignore[attr-defined]
    cos = cosines(got, torch_vectors(minilm_path, texts, 256))
    agree = _agreeing(model, minilm_path, texts, 256)
    model.close()  # type: ignore[attr-defined]
    print(f"\nMiniLM gguf f32: cosine min {cos.min():.7f} (same tokens: {cos[agree].min():.7f}) mean {cos.mean():.7f}")
    assert got.shape == (len(texts), 384) and np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    langs = [t.lang for t in load_probe_set().texts]
    assert sorted({langs[i] for i in np.flatnonzero(~agree)}) == ["hin"]
    assert cos[agree].min() >= FP32_MIN_COSINE


def test_tiny_gemma_f32_parity_prompts_and_tokens(tiny: Path, cache: Path) -> None:
    """The real EmbeddingGemma architecture (bidirectional Gemma 3, mean pooling, two Dense heads, Normalize)."""
    import json

    from transformers import AutoTokenizer

    from evalgemma.encode import gguf_backend as gb

    art = gb.convert_gguf(tiny, cache)
    assert art is not None and art.manifest["dense_modules"] and art.normalize and art.output_dim == TINY_HIDDEN
    prompts = json.loads((tiny / "config_sentence_transformers.json").read_text())["prompts"]
    texts = probe(prompts)
    model = _model(art, 512, prompts)
    model.record_texts = True  # type: ignore[attr-defined]
    got = model.encode_query(["Which planet is the largest?"])  # type: ignore[attr-defined]
    assert model.seen_texts == [prompts["query"] + "Which planet is the largest?"]  # type: ignore[attr-defined]
    got = model.encode(texts)  # type: ignore[attr-defined]
    ref = torch_vectors(tiny, texts, 512)
    cos = cosines(got, ref)
    print(f"\ntiny gguf f32: cosine min {cos.min():.7f} mean {cos.mean():.7f}")
    assert cos.min() >= FP32_MIN_COSINE
    hf = AutoTokenizer.from_pretrained(str(tiny))
    assert model.tokenize(texts) == [hf(t)["input_ids"] for t in texts]  # type: ignore[attr-defined]
    long = "word " * 900
    assert model.tokenize([long])[0] == hf(long, truncation=True, max_length=512)["input_ids"]  # type: ignore[attr-defined]
    model.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("quant", ["bf16", "q8_0", "q4_0"])
def test_quantized_within_stated_bounds(minilm_path: Path, minilm_f32: object, cache: Path, quant: str) -> None:
    """llama_model_quantize of the f32 file; bounds on the texts llama.cpp tokenizes as HF does (the quantization
    error alone; the thresholds file's bounds hold there too)."""
    from evalgemma.catalog.parity import load_thresholds
    from evalgemma.encode import gguf_backend as gb

    art = gb.convert_gguf(minilm_path, cache, quant)
    assert art is not None and art.file_type == quant and art.manifest["quantized_from"]["gguf_sha256"] == minilm_f32.sha256  # type: ignore[attr-defined]
    texts = probe({})
    model = _model(art, 256)
    cos = cosines(model.encode(texts), torch_vectors(minilm_path, texts, 256))  # type: ignore[attr-defined]
    agree = _agreeing(model, minilm_path, texts, 256)
    model.close()  # type: ignore[attr-defined]
    print(f"\nMiniLM gguf {quant}: cosine min {cos.min():.5f} mean {cos.mean():.5f}; same tokens: min {cos[agree].min():.5f} "
          f"mean {cos[agree].mean():.5f}; {art.file_bytes / 1e6:.1f} MB")
    low, mean = QUANT_BOUNDS[quant]
    assert cos[agree].min() >= low and cos[agree].mean() >= mean
    table, where = load_thresholds()
    bounds = table.bounds("gguf", quant, where)
    assert cos[agree].min() >= bounds.min_cosine and cos[agree].mean() >= bounds.min_mean_cosine
    assert gb.convert_gguf(minilm_path, cache, quant, build=False) == gb.GgufArtifact(**{**art.__dict__, "built_seconds": None})


# ---------------------------------------------------------------- crashes and bad input


@pytest.mark.slow  # converts a second tiny model (~20 s on 2 busy cores)
def test_native_abort_is_a_clear_error(tmp_path: Path, shared_data: Path, cache: Path) -> None:
    """The tests' usual 2-layer tiny model converts, but llama.cpp aborts on it (GGML_ASSERT → SIGABRT) in the
    worker: a DataError with llama.cpp's message, and this process goes on."""
    need_llama()
    from evalgemma.encode import gguf_backend as gb

    small = build_tiny_for_llama(tmp_path, require(shared_data / "embeddinggemma_config", "EmbeddingGemma config"), 2)
    with pytest.raises(DataError, match=r"llama\.cpp crashed while .*SIGABRT.*GGML_ASSERT"):
        gb.convert_gguf(small, cache)


def test_bad_gguf_inputs(tmp_path: Path, minilm_f32: object) -> None:
    store = tmp_path / "store"
    store.mkdir()
    (store / "keep.txt").write_text("stored")
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(minilm_f32.path.read_bytes()[: 1 << 16])  # type: ignore[attr-defined]
    foreign = tmp_path / "foreign.gguf"
    foreign.write_bytes(b"PK\x03\x04 a zip file, not GGUF" * 20)
    for bad in (truncated, foreign):
        done = cli("run", "--model", bad, "--tasks", "STSBenchmark", "--backend", "gguf", "--store", store)
        assert done.returncode == 3, done.stderr
        assert str(bad) in done.stderr and "Traceback" not in done.stderr
    assert "not a GGUF file" in cli("plan", "--model", foreign, "--tasks", "STSBenchmark", "--backend", "gguf", "--store", store).stderr
    lacking = cli("run", "--model", "minilm", "--tasks", "STSBenchmark", "--backend", "gguf", "--quant", "int8", "--store", store)
    assert lacking.returncode == 2 and "--quant int8: the gguf backend has no 'int8'" in lacking.stderr
    torch_on_gguf = cli("plan", "--model", foreign, "--tasks", "STSBenchmark", "--store", store)
    assert torch_on_gguf.returncode == 2 and "a GGUF model" in torch_on_gguf.stderr and "--backend gguf" in torch_on_gguf.stderr
    assert sorted(p.name for p in store.iterdir()) == ["keep.txt"] and (store / "keep.txt").read_text() == "stored"


def test_quantizing_a_quantized_file_is_refused(minilm_path: Path, cache: Path) -> None:
    from evalgemma.encode import gguf_backend as gb

    q4 = gb.convert_gguf(minilm_path, cache, "q4_0")
    assert q4 is not None
    with pytest.raises(ConfigError, match=r"already quantized \(q4_0\)"):
        gb.open_gguf(q4.path, "q8_0", cache_dir=cache)
    assert gb.open_gguf(q4.path, "q4_0").sha256 == q4.sha256  # the same format: used as it is


# ---------------------------------------------------------------- broken artifact, parity CLI


def _broken_copy(tiny: Path, cache: Path, dest: Path) -> Path:
    """A copy of the tiny model with ``model.gguf`` beside it converted WITHOUT --sentence-transformers-dense-modules."""
    from evalgemma.encode import gguf_backend as gb

    broken = gb.convert_gguf(tiny, cache, dense_modules=False)
    assert broken is not None and broken.manifest["dense_modules"] is False
    shutil.copytree(tiny, dest)
    shutil.copy(broken.path, dest / "no-dense.gguf")
    return dest / "no-dense.gguf"


@pytest.mark.slow  # two conversions of the tiny model (~40 s each on 2 busy cores) and two CLI runs
def test_parity_cli_and_broken_artifact(tiny: Path, cache: Path, hf_mirrors: Path, tmp_path: Path) -> None:
    ok = cli("parity", "--model", tiny, "--backend", "gguf", "--artifact-dir", cache, "--no-progress")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "within every bound" in ok.stdout
    broken = _broken_copy(tiny, cache, tmp_path / "tiny-copy")
    junit = tmp_path / "broken.xml"
    done = cli("parity", "--model", broken, "--backend", "gguf", "--junit", junit, "--no-progress")
    assert done.returncode == 4, done.stdout + done.stderr
    assert "outside the bounds" in done.stderr and "FAIL" in done.stdout
    assert ET.parse(junit).getroot().findall(".//failure")
    from evalgemma.run import RunConfig, execute, plan_run

    config = RunConfig.build(model=str(broken), tasks=("STSBenchmark",), backends=("gguf",), store=tmp_path / "store", data_dir=hf_mirrors,
                             offline=True, device="cpu", show_progress=False, cache_dir=None)
    with pytest.warns(RuntimeWarning, match=r"disagree with the torch float32 model .* on 8 probe texts: cosine min"):
        execute(plan_run(config))


# ---------------------------------------------------------------- the run sweep


@pytest.mark.slow  # four STSBenchmark encodes of MiniLM (two in llama.cpp)
def test_run_sweep_torch_gguf(minilm_path: Path, minilm_f32: object, hf_mirrors: Path, cache: Path, tmp_path: Path) -> None:
    import warnings

    from evalgemma.run import RunConfig, execute, plan_run
    from evalgemma.store.parquet import load_results

    store = tmp_path / "store"
    config = RunConfig.build(model="minilm", tasks=("STSBenchmark",), backends=("torch", "gguf"), quants=("none", "q8_0"), store=store,
                             data_dir=hf_mirrors, offline=True, device="cpu", show_progress=False, artifact_dir=cache)
    plan = plan_run(config)
    labels = ["all-MiniLM-L6-v2 · 384d", "all-MiniLM-L6-v2 · q8_0(ptq) · 384d", "all-MiniLM-L6-v2 · gguf · 384d", "all-MiniLM-L6-v2 · gguf q8_0 · 384d"]
    assert sorted(v.label for v in plan.variants) == sorted(labels)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        execute(plan)
    assert not [w for w in caught if "disagree" in str(w.message)]
    frame = load_results(store, warn=False)
    by = frame.drop_duplicates("variant_key").set_index("variant")
    assert len(by) == 4 and by["variant_key"].is_unique and by["weight_key"].is_unique
    assert by.loc["all-MiniLM-L6-v2 · gguf q8_0 · 384d", "artifact_sha256"] != by.loc["all-MiniLM-L6-v2 · gguf · 384d", "artifact_sha256"]
    assert set(by["backend"]) == {"torch", "gguf"}
    scores = frame[frame["is_main"]].set_index("variant")["value"]
    print("\n" + scores.to_string())
    assert scores["all-MiniLM-L6-v2 · gguf · 384d"] == pytest.approx(scores["all-MiniLM-L6-v2 · 384d"], abs=2e-4)
    assert plan_run(config).n_missing == 0
