"""``--backend`` and ``evalgemma parity``: the backend registry, variant identity, a torch/onnx × none/int8
sweep through ``evalgemma run`` on the offline STSBenchmark mirror, prompts reaching ONNX Runtime,
parity on the recorded probe set, a broken artifact caught by both, and bad input.

Models: the real all-MiniLM-L6-v2 and the tiny random-weight EmbeddingGemma. Exports share one
artifact folder per session (tiny: fp32 + int8 export, MiniLM: fp32 + int8).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime", reason="the ONNX backend needs evalgemma[backends]")

from evalgemma.catalog.parity import load_probe_set, load_thresholds
from evalgemma.encode.backends import BACKENDS, check_backend_quants, get_backend
from evalgemma.errors import ConfigError
from evalgemma.variants.spec import VariantSpec, WeightSpec

CLI = [sys.executable, "-c", "from evalgemma.cli.app import main; main()"]
#: The probe set's identity: a changed text must come with a version bump (and a new value here).
PROBE_SHA256 = "f7a8fc0c20998325"


def cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("artifacts")


# ---------------------------------------------------------------- registry and identity (no model)


def test_registry_and_sweep_pairs() -> None:
    assert BACKENDS["torch"].quants == ("none", "q8_0", "q4_0", "mixed")
    assert BACKENDS["onnx"].quants == ("none", "int8", "q4")
    pairs, left = check_backend_quants(("torch", "onnx"), ("none", "int8"))
    assert [(b.name, q) for b, q in pairs] == [("torch", "none"), ("onnx", "none"), ("onnx", "int8")]
    assert left == ["--backend torch --quant int8: left out of the sweep (the torch backend has no int8; it has none, q8_0, q4_0, mixed)"]
    with pytest.raises(ConfigError, match=r"--backend: unknown backend 'onx'. Did you mean 'onnx'\?"):
        get_backend("onx")
    with pytest.raises(ConfigError, match=r"--quant int8: the torch backend has no 'int8'"):
        check_backend_quants(("torch",), ("int8",))
    with pytest.raises(ConfigError, match=r"--quant: unknown weight quantization format 'q3'"):
        check_backend_quants(("torch", "onnx"), ("none", "q3"))
    with pytest.raises(ConfigError, match="no backend has any of these"):
        check_backend_quants(("onnx",), ("q8_0", "mixed"))


def test_torch_keys_unchanged_and_backend_in_identity() -> None:
    torch_w = WeightSpec("m", "r", "float32", 256)  # type: ignore[arg-type]
    # The key every stored torch variant has (computed by v1 code before backends existed).
    assert torch_w.key == "v1-" + __import__("hashlib").sha256(json.dumps(
        {"model": "m", "revision": "r", "dtype": "float32", "max_seq_length": 256, "quant": "none", "quant_source": "none",
         "quant_checkpoint": ""}, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:12]
    a = WeightSpec("m", "r", "float32", 256, "int8", "ptq", "", "onnx", "a" * 64)  # type: ignore[arg-type]
    b = WeightSpec("m", "r", "float32", 256, "int8", "ptq", "", "onnx", "b" * 64)  # type: ignore[arg-type]
    assert len({torch_w.key, a.key, b.key}) == 3
    assert VariantSpec(a, "all-MiniLM-L6-v2", (), 384).label == "all-MiniLM-L6-v2 · onnx int8 · 384d"
    assert VariantSpec(WeightSpec("m", "r", "float32", 256, backend="onnx", artifact_sha256="c" * 64), "x", (), 8).label == "x · onnx · 8d"  # type: ignore[arg-type]
    assert VariantSpec(torch_w, "x", (), 8).label == "x · 8d"


def test_probe_set_and_thresholds_files() -> None:
    probe = load_probe_set()
    assert probe.sha256[:16] == PROBE_SHA256, "the probe set changed: bump its version and PROBE_SHA256"
    assert len({t.lang for t in probe.texts}) >= 10
    from conftest import shared_data_dir

    prompts = json.loads((shared_data_dir() / "embeddinggemma_config" / "config_sentence_transformers.json").read_text())["prompts"]
    assert {t.prompt for t in probe.texts} == set(prompts), "every EmbeddingGemma prompt kind, and only those"
    table, _ = load_thresholds()
    assert set(table.backends["onnx"]) == set(BACKENDS["onnx"].quants)


def test_bad_thresholds_file(tmp_path: Path) -> None:
    bad = tmp_path / "t.toml"
    bad.write_text("schema = 1\n[onnx.none]\nmin_cosine = 0.9\nmin_cosine = 0.8\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_thresholds(bad)
    bad.write_text("schema = 1\n[onnx.none]\nmin_cosine = 0.9\n")
    with pytest.raises(ConfigError, match="invalid parity thresholds file"):
        load_thresholds(bad)
    table, where = load_thresholds()
    with pytest.raises(ConfigError, match="no bounds for --backend onnx --quant q8_0"):
        table.bounds("onnx", "q8_0", where)


# ---------------------------------------------------------------- run sweep (tiny EmbeddingGemma, real STSBenchmark)


@pytest.mark.slow  # ~45-70 s on 2 busy cores: three STSBenchmark encodes, one of them torch
def test_run_sweep_stores_every_variant_and_prompts_reach_onnx(tiny_gemma: Path, hf_mirrors: Path, artifacts: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """torch,onnx × none,int8 → three variants (torch int8 left out and named); distinct keys, labels,
    backend and artifact columns; the ONNX tokenizer sees the STS prompt; fp32 ONNX scores equal torch's."""
    import warnings

    from evalgemma.encode import onnx_backend as ob
    from evalgemma.run import RunConfig, execute, plan_run
    from evalgemma.store.parquet import load_results

    seen: list[str] = []
    original = ob.OnnxSentenceModel.tokenize
    monkeypatch.setattr(ob.OnnxSentenceModel, "tokenize", lambda self, texts: (seen.extend(texts), original(self, texts))[1])
    store = tmp_path / "store"
    config = RunConfig.build(model=str(tiny_gemma), tasks=("STSBenchmark",), backends=("torch", "onnx"), quants=("none", "int8"),
                             store=store, data_dir=hf_mirrors, offline=True, device="cpu", show_progress=False, artifact_dir=artifacts)
    plan = plan_run(config)
    assert any("--backend torch --quant int8: left out" in n for n in plan.warnings)
    assert [v.label for v in plan.variants] == ["tiny-embeddinggemma · 32d", "tiny-embeddinggemma · onnx · 32d", "tiny-embeddinggemma · onnx int8 · 32d"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        execute(plan)
    assert not [w for w in caught if "disagree" in str(w.message)], "a correct export must pass the quick probe"
    frame = load_results(store, warn=False)
    by = frame.drop_duplicates("variant_key").set_index("variant")
    assert len(by) == 3 and by["variant_key"].is_unique and by["weight_key"].is_unique
    assert list(by.loc[["tiny-embeddinggemma · 32d"], "artifact_sha256"]) == [""]
    for label, quant in (("tiny-embeddinggemma · onnx · 32d", "none"), ("tiny-embeddinggemma · onnx int8 · 32d", "int8")):
        row = by.loc[label]
        assert row["backend"] == "onnx" and row["quant"] == quant
        art = ob.find_export(tiny_gemma, artifacts, quant)  # type: ignore[arg-type]
        assert art is not None and row["artifact_sha256"] == art.sha256 == ob.file_sha256(art.path)
    assert by.loc["tiny-embeddinggemma · 32d", "backend"] == "torch"
    prompt = "task: sentence similarity | query: "
    probe = set(load_probe_set().rendered(plan.model.prompts))
    sts = [t for t in seen if t not in probe]  # the quick probe's texts aside: mteb's STSBenchmark calls, two ONNX variants
    assert len(sts) > 2 * 2700 and all(t.startswith(prompt) for t in sts), "every STS text reaches ONNX Runtime with the STS prompt"
    assert len(seen) - len(sts) == 2 * 8, "the quick probe: 8 texts per ONNX variant"
    scores = frame[frame["is_main"]].set_index("variant")["value"]
    assert scores["tiny-embeddinggemma · onnx · 32d"] == pytest.approx(scores["tiny-embeddinggemma · 32d"], abs=1e-6)
    # a rerun is complete: same keys, nothing new to run
    assert plan_run(config).n_missing == 0


# ---------------------------------------------------------------- parity command


def test_parity_fp32_and_int8_minilm(minilm_path: Path, artifacts: Path, tmp_path: Path) -> None:
    """Full precision ≥ 0.9999 cosine (exit 0), stored as a unit with the artifact's sha256; int8 within its stated bounds; JUnit written."""
    from evalgemma.encode import onnx_backend as ob
    from evalgemma.store.parquet import load_results

    store, junit = tmp_path / "store", tmp_path / "parity.xml"
    done = cli("parity", "--model", "minilm", "--backend", "onnx", "--store", store, "--junit", junit, "--artifact-dir", artifacts, "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "within every bound" in done.stdout
    frame = load_results(store, warn=False)
    values = dict(zip(frame["metric"], frame["value"], strict=True))
    assert values["cosine_min"] >= 0.9999 and values["cosine_mean"] >= 0.99999 and values["top10_overlap_mean"] == 1.0
    assert values["max_norm_delta"] < 1e-5 and values["within_bounds"] == 1.0
    art = ob.find_export(minilm_path, artifacts, "none")
    assert art is not None and set(frame["artifact_sha256"]) == {art.sha256} and set(frame["task"]) == {"Parity"}
    assert set(frame["variant"]) == {"all-MiniLM-L6-v2 · onnx · 384d"} and set(frame["task_version"]) == {f"1@sha256:{PROBE_SHA256}"}
    cases = ET.parse(junit).getroot().findall(".//testcase")
    assert [c.get("name") for c in cases] == ["cosine_min", "cosine_mean", "top10_overlap_mean", "max_norm_delta"]
    assert not ET.parse(junit).getroot().findall(".//failure")
    int8 = cli("parity", "--model", "minilm", "--backend", "onnx", "--quant", "int8", "--artifact-dir", artifacts, "--no-progress")
    assert int8.returncode == 0, int8.stdout + int8.stderr
    assert "within every bound" in int8.stdout


def _broken_copy(tiny_gemma: Path, artifacts: Path, dest: Path) -> Path:
    """A copy of the tiny model whose ``onnx/model.onnx`` is its own fp32 export with both Dense heads cut out of the graph
    (same 32-d output, still unit norm: only a comparison with torch shows it is wrong)."""
    import onnx

    from evalgemma.encode import onnx_backend as ob

    good = ob.export_onnx(tiny_gemma, artifacts)
    model = onnx.load(str(good.path))
    heads = [n for n in model.graph.node if n.op_type in ("Gemm", "MatMul") and any(i.startswith(("model.2.", "model.3.")) for i in n.input)]
    assert len(heads) == 2, [n.op_type for n in heads]
    pooled, head_out = heads[0].input[0], heads[-1].output[0]
    for node in model.graph.node:
        node.input[:] = [pooled if i == head_out else i for i in node.input]
    for node in heads:
        model.graph.node.remove(node)
    shutil.copytree(tiny_gemma, dest)
    (dest / "onnx").mkdir()
    (dest / "onnx" / "model.onnx").write_bytes(model.SerializeToString())
    return dest


def test_broken_artifact_caught_by_parity_and_run(tiny_gemma: Path, artifacts: Path, hf_mirrors: Path, tmp_path: Path) -> None:
    broken = _broken_copy(tiny_gemma, artifacts, tmp_path / "tiny-with-broken-onnx")
    junit = tmp_path / "broken.xml"
    done = cli("parity", "--model", broken, "--backend", "onnx", "--junit", junit, "--store", tmp_path / "store", "--no-progress")
    assert done.returncode == 4, done.stdout + done.stderr
    assert "outside the bounds" in done.stderr and "FAIL" in done.stdout
    assert ET.parse(junit).getroot().findall(".//failure")
    # the same artifact through `run`: stored (the user asked for it), with a clear warning from the quick probe
    from evalgemma.run import RunConfig, execute, plan_run

    config = RunConfig.build(model=str(broken), tasks=("STSBenchmark",), backends=("onnx",), store=tmp_path / "store", data_dir=hf_mirrors,
                             offline=True, device="cpu", show_progress=False, cache_dir=None)
    with pytest.warns(RuntimeWarning, match=r"disagree with the torch float32 model .* on 8 probe texts: cosine min"):
        execute(plan_run(config))


def test_given_onnx_directory_is_the_exported_one(tiny_gemma: Path, artifacts: Path) -> None:
    """``--model <exported folder> --backend onnx``: same artifact sha256 (so the same weight fields) as the export path."""
    from evalgemma.encode import onnx_backend as ob
    from evalgemma.run import RunConfig
    from evalgemma.run.plan import plan_weights

    art = ob.export_onnx(tiny_gemma, artifacts)
    model, weights, _ = plan_weights(RunConfig.build(model=str(art.path.parent), backends=("onnx",), artifact_dir=artifacts))
    assert weights[0].artifact_sha256 == art.sha256 and model.short_name == "tiny-embeddinggemma" and model.output_dim == 32
    assert model.prompts["STS"] == "task: sentence similarity | query: "


# ---------------------------------------------------------------- bad input


def test_bad_backend_inputs(tmp_path: Path, artifacts: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    (store / "keep.txt").write_text("stored")
    unknown = cli("plan", "--model", "minilm", "--suite", "smoke", "--backend", "onx", "--store", store)
    assert unknown.returncode == 2 and "--backend: unknown backend 'onx'. Did you mean 'onnx'?" in unknown.stderr
    lacking = cli("run", "--model", "minilm", "--suite", "smoke", "--backend", "torch", "--quant", "int8", "--store", store)
    assert lacking.returncode == 2 and "--quant int8: the torch backend has no 'int8'" in lacking.stderr
    parity_lacking = cli("parity", "--model", "minilm", "--backend", "onnx", "--quant", "q8_0")
    assert parity_lacking.returncode == 2 and "--quant q8_0: the onnx backend has no 'q8_0'" in parity_lacking.stderr
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "model.onnx").write_bytes(b"\x08\x07not a protobuf at all" * 10)
    bad = cli("run", "--model", corrupt, "--suite", "smoke", "--backend", "onnx", "--store", store)
    assert bad.returncode == 3 and f"{corrupt / 'model.onnx'}: not a loadable ONNX model" in bad.stderr
    torch_on_onnx = cli("plan", "--model", corrupt, "--suite", "smoke", "--store", store)
    assert torch_on_onnx.returncode == 2 and "an ONNX model" in torch_on_onnx.stderr and "--backend onnx" in torch_on_onnx.stderr
    bad_toml = tmp_path / "t.toml"
    bad_toml.write_text("schema = 1\n[onnx.none\n")
    thresholds = cli("parity", "--model", "minilm", "--thresholds", bad_toml)
    assert thresholds.returncode == 2 and str(bad_toml) in thresholds.stderr
    assert sorted(p.name for p in store.iterdir()) == ["keep.txt"] and (store / "keep.txt").read_text() == "stored"


def test_foreign_onnx_file_is_refused(tmp_path: Path) -> None:
    """A transformer-only graph (token embeddings out, no pooling): exit 3 naming the file."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Cast", ["input_ids"], ["last_hidden_state"], to=TensorProto.FLOAT)], "foreign",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "s"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["b", "s"])],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["b", "s"])],
    )
    path = tmp_path / "foreign.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8).SerializeToString())
    assert onnx.load(str(path)) is not None
    done = cli("plan", "--model", path, "--suite", "smoke", "--backend", "onnx", "--store", tmp_path / "store")
    assert done.returncode == 3 and f"{path}: not a whole sentence-embedding pipeline" in done.stderr
    assert not (tmp_path / "store").exists()
