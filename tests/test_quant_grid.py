"""The quantization grid through `evalgemma run`: weight formats × dims × embedding dtypes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from evalgemma.benchmarks.mteb.adapter import MtebView
from evalgemma.errors import ConfigError
from evalgemma.run import RunConfig, execute, plan_run
from evalgemma.store.parquet import load_results


@pytest.fixture(scope="module")
def grid(hf_mirrors: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, set[str]]]:
    store = tmp_path_factory.mktemp("grid")
    seen: dict[str, set[str]] = {}
    original = MtebView.encode

    def spy(self: MtebView, *args: object, **kwargs: object) -> np.ndarray:
        out = original(self, *args, **kwargs)  # type: ignore[arg-type]
        key = str(out.dtype) + (":pm1" if out.dtype == np.float32 and set(np.unique(out[:5])) <= {-1.0, 1.0} else "")
        seen.setdefault("dtypes", set()).add(key)
        return out

    mp = pytest.MonkeyPatch()
    mp.setattr(MtebView, "encode", spy)
    try:
        with pytest.warns(UserWarning, match="--dim 128"):
            plan = plan_run(RunConfig.build(
                model="minilm", tasks=("STSBenchmark",), data_dir=hf_mirrors, offline=True, device="cpu", show_progress=False,
                quants=("none", "q8_0", "q4_0"), dims=(384, 128), embed_dtypes=("float32", "int8", "binary"), store=store,
            ))
        assert plan.n_missing == 3 * 2 * 3
        summary = execute(plan)
    finally:
        mp.undo()
    assert len(summary.written) == 18
    return store, seen


def scores(store: Path) -> dict[tuple[str, int, str], float]:
    frame = load_results(store).drop_duplicates("variant_key")
    return {(r.quant, int(r.dim), r.embed_dtype): float(r.main_score) for r in frame.itertuples()}


@pytest.mark.slow  # the grid fixture runs STSBenchmark for 3 weight variants (about 2.5 min)
def test_grid_is_complete_and_labelled(grid: tuple[Path, dict[str, set[str]]]) -> None:
    store, _ = grid
    frame = load_results(store).drop_duplicates("variant_key")
    assert len(frame) == 18
    assert "all-MiniLM-L6-v2 · q4_0(ptq) · 128d · binary" in set(frame["variant"])
    q4 = frame[frame["quant"] == "q4_0"].iloc[0]
    assert q4["quant_source"] == "ptq"
    tensors = json.loads(q4["quant_tensors"])
    assert "embeddings.word_embeddings" in " ".join(tensors) and len(tensors) == 38
    by_quant = frame.drop_duplicates("quant").set_index("quant")["weight_bytes"]
    # GGML sizes: Q8_0 34 B and Q4_0 18 B per 32 weights (plus float norms/biases/position tables).
    assert by_quant["q4_0"] < by_quant["q8_0"] < by_quant["none"] / 3
    emb = frame.set_index(["dim", "embed_dtype"])["embedding_bytes"].groupby(level=[0, 1]).first()
    assert emb[(384, "float32")] == 1536 and emb[(384, "int8")] == 384 and emb[(128, "binary")] == 16
    cal = json.loads(frame[frame["embed_dtype"] == "int8"]["calibration"].iloc[0])
    # the calibration set's identity is the sha256 of its texts (changing them changes the variant key)
    from evalgemma.benchmarks.smoke.tasks import calibration_texts
    from evalgemma.run.plan import calibration_id

    assert cal["name"] == calibration_id(calibration_texts()) and cal["name"].startswith("smoke-texts@sha256:")
    assert cal["n_vectors"] > 300 and len(cal["vectors_sha256"]) == 64


@pytest.mark.slow  # the grid fixture runs STSBenchmark for 3 weight variants (about 2.5 min)
def test_quantized_scores(grid: tuple[Path, dict[str, set[str]]]) -> None:
    store, _ = grid
    s = scores(store)
    base = s[("none", 384, "float32")]
    print("STSBenchmark main score by (quant, dim, embed dtype):", {f"{q}/{d}/{e}": round(100 * v, 2) for (q, d, e), v in sorted(s.items())})
    assert base == pytest.approx(0.820325, abs=1e-5)  # the published all-MiniLM-L6-v2 score
    assert abs(s[("q8_0", 384, "float32")] - base) <= 0.01  # Q8_0 keeps the score
    # Q4_0 and binary move it (reported in the closing note); both stay far above chance.
    assert s[("q4_0", 384, "float32")] != base and s[("q4_0", 384, "float32")] > 0.7
    assert s[("none", 384, "binary")] < base and s[("none", 384, "binary")] > 0.7
    assert s[("none", 384, "int8")] != base and abs(s[("none", 384, "int8")] - base) < 0.02


@pytest.mark.slow  # the grid fixture runs STSBenchmark for 3 weight variants (about 2.5 min)
def test_compressed_vectors_reach_the_scorer(grid: tuple[Path, dict[str, set[str]]]) -> None:
    _, seen = grid
    # float views, int8 codes, and binary codes as ±1 (Hamming-equivalent under cosine).
    assert seen["dtypes"] == {"float32", "int8", "float32:pm1"}


def test_qat_without_checkpoint_suggests_ptq(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ptq"):
        plan_run(RunConfig.build(model="minilm", suite="smoke", quants=("q8_0",), quant_source="qat", store=tmp_path))


def test_binary_needs_dims_divisible_by_8(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--embed-dtype binary: needs dims divisible by 8"):
        plan_run(RunConfig.build(model="minilm", suite="smoke", dims=(100,), embed_dtypes=("binary",), store=tmp_path))
