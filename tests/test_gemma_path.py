"""The EmbeddingGemma code path on a tiny random-weight model with the real architecture.

Prompts per task type and side (exact strings reaching the tokenizer), Matryoshka
truncation + re-normalisation, bfloat16, float16 refusal, max length 512 by default.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from evalgemma.encode.models import describe_local
from evalgemma.errors import ConfigError
from evalgemma.run import RunConfig, execute, plan_run
from evalgemma.store.parquet import load_results

SMOKE_SUBSET = ("SmokeSTS", "SmokeRetrieval", "SmokeClassification")


@pytest.fixture(scope="module")
def gemma_run(tiny_gemma: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[str, str]]]:
    """Run three smoke tasks at two dims, recording every (text, prompt) sent to the tokenizer."""
    store = tmp_path_factory.mktemp("gemma-store")
    config = RunConfig.build(
        model=str(tiny_gemma), suite="smoke", tasks=SMOKE_SUBSET, dims=(32, 16), store=store, device="cpu", show_progress=False, langs=("eng", "deu")
    )
    plan = plan_run(config)
    seen: list[tuple[str, str]] = []

    def hook(encoder: object) -> None:
        # Spy on the Transformer module's call into the tokenizer: these are the exact
        # strings tokenized (sentence-transformers prepends the prompt just before).
        module = encoder.st_model[0]  # type: ignore[attr-defined]
        original = module._call_processor

        def spy(modality: object, processor_inputs: dict[str, list[str]], *args: object, **kwargs: object) -> object:
            seen.extend((t, "") for t in processor_inputs.get("text", []))
            return original(modality, processor_inputs, *args, **kwargs)

        module._call_processor = spy

    execute(plan, encoder_hook=hook)
    return store, seen


def test_model_is_recognised_as_gemma(tiny_gemma: Path) -> None:
    model = describe_local(tiny_gemma)
    assert model.is_gemma3
    assert model.output_dim == 32
    # The real prompt dictionary of google/embeddinggemma-300m (14 keys, trailing spaces kept).
    assert model.prompts["Retrieval-document"] == "title: none | text: "
    assert model.prompts["STS"] == "task: sentence similarity | query: "
    assert len(model.prompts) == 14


def test_prompts_reach_the_tokenizer(gemma_run: tuple[Path, list[tuple[str, str]]]) -> None:
    store, seen = gemma_run
    texts = [t for t, _ in seen]
    # Every text sent to the model starts with one of the model's prompts for its task type/side.
    sts = [t for t in texts if t.startswith("task: sentence similarity | query: ")]
    queries = [t for t in texts if t.startswith("task: search result | query: ")]
    documents = [t for t in texts if t.startswith("title: none | text: ")]
    classification = [t for t in texts if t.startswith("task: classification | query: ")]
    assert sts and queries and documents and classification
    assert len(sts) + len(queries) + len(documents) + len(classification) == len(texts)
    frame = load_results(store)
    prompts = json.loads(frame[frame["task"] == "SmokeRetrieval"]["prompts"].iloc[0])
    assert prompts == {"Retrieval/document": "title: none | text: ", "Retrieval/query": "task: search result | query: "}
    prompts = json.loads(frame[frame["task"] == "SmokeSTS"]["prompts"].iloc[0])
    assert set(prompts.values()) == {"task: sentence similarity | query: "}


def test_each_text_encoded_once_for_two_dims(gemma_run: tuple[Path, list[tuple[str, str]]]) -> None:
    _, seen = gemma_run
    texts = [t for t, _ in seen]
    # Two dims are derived from one encoding: no text reaches the tokenizer twice.
    assert len(texts) == len(set(texts))


def test_dims_stored_as_separate_variants(gemma_run: tuple[Path, list[tuple[str, str]]]) -> None:
    store, _ = gemma_run
    frame = load_results(store)
    assert sorted(frame["dim"].unique()) == [16, 32]
    assert frame.groupby("dim")["variant_key"].nunique().tolist() == [1, 1]
    assert set(frame["variant"]) == {"tiny-embeddinggemma · 16d", "tiny-embeddinggemma · 32d"}
    # The paper's protocol: 512 tokens by default for Gemma 3 models.
    assert set(frame["max_seq_length"]) == {512}


def test_truncation_renormalises(tiny_gemma: Path) -> None:
    from sentence_transformers import SentenceTransformer

    from evalgemma.variants.views import truncate

    model = SentenceTransformer(str(tiny_gemma), device="cpu")
    full = model.encode(["a short sentence", "another one, longer than the first"], convert_to_numpy=True)
    own = SentenceTransformer(str(tiny_gemma), device="cpu", truncate_dim=16).encode(
        ["a short sentence", "another one, longer than the first"], convert_to_numpy=True
    )
    ours = truncate(full, 16)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(ours, own / np.linalg.norm(own, axis=1, keepdims=True), atol=1e-6)


def test_bfloat16_is_what_encodes(tiny_gemma: Path, tmp_path: Path) -> None:
    """--dtype bfloat16 loads the weights in bf16: the run's vectors are exactly those of an
    independent bf16 SentenceTransformer, and differ from float32 by bf16's rounding error."""
    import torch
    from sentence_transformers import SentenceTransformer

    def run(dtype: str) -> tuple[set[torch.dtype], list[tuple[list[str], dict[str, object], np.ndarray]]]:
        dtypes: set[torch.dtype] = set()
        calls: list[tuple[list[str], dict[str, object], np.ndarray]] = []

        def hook(encoder: object) -> None:
            model = encoder.st_model  # type: ignore[attr-defined]
            dtypes.update(p.dtype for p in model.parameters())
            original = model.encode

            def spy(texts: list[str], **kwargs: object) -> np.ndarray:
                out = original(texts, **kwargs)
                calls.append((list(texts), dict(kwargs), np.array(out)))
                return out

            model.encode = spy

        config = RunConfig.build(
            model=str(tiny_gemma), suite="smoke", tasks=("SmokeSTS",), langs=("eng",), dtype=dtype, store=tmp_path, device="cpu", show_progress=False
        )
        execute(plan_run(config), encoder_hook=hook)
        return dtypes, calls

    bf16_dtypes, bf16_calls = run("bfloat16")
    f32_dtypes, f32_calls = run("float32")
    assert bf16_dtypes == {torch.bfloat16} and f32_dtypes == {torch.float32}
    assert [c[:2] for c in bf16_calls] == [c[:2] for c in f32_calls] and bf16_calls  # the same texts, prompts and batches
    independent = {d: SentenceTransformer(str(tiny_gemma), device="cpu", model_kwargs={"dtype": d}) for d in (torch.bfloat16, torch.float32)}
    for (texts, kwargs, bf16), (_, _, f32) in zip(bf16_calls, f32_calls, strict=True):
        with torch.inference_mode():
            want_bf16 = independent[torch.bfloat16].encode(texts, **kwargs)
            want_f32 = independent[torch.float32].encode(texts, **kwargs)
        np.testing.assert_array_equal(bf16, want_bf16)
        np.testing.assert_array_equal(f32, want_f32)
        # bf16 keeps 8 significant bits: unit vectors move by about 2^-8 relative, not 0 and not more
        err = np.abs(bf16.astype(np.float64) - f32).max()
        assert 1e-4 < err < 0.05, err
    frame = load_results(tmp_path)
    assert set(frame["dtype"]) == {"bfloat16", "float32"}
    assert frame[frame["dtype"] == "bfloat16"]["variant"].iloc[0] == "tiny-embeddinggemma · bf16 · 32d"


def test_float16_refused(tiny_gemma: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="float16 is refused for Gemma 3"):
        plan_run(RunConfig.build(model=str(tiny_gemma), suite="smoke", dtype="float16", store=tmp_path))


def test_dim_larger_than_output_refused(tiny_gemma: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--dim 64: larger than tiny-embeddinggemma's output dimension 32"):
        plan_run(RunConfig.build(model=str(tiny_gemma), suite="smoke", dims=(64,), store=tmp_path))


def test_undeclared_dim_warns(tiny_gemma: Path, tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="not a Matryoshka dimension declared"):
        plan = plan_run(RunConfig.build(model=str(tiny_gemma), suite="smoke", dims=(24,), store=tmp_path))
    assert plan.variants[0].dim == 24
