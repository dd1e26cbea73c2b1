"""The ONNX Runtime backend: export a whole sentence-transformers pipeline, quantize it, encode with it.

What is exported is the pipeline a user deploys, not only the transformer: every module of the
local model directory in order (Transformer, Pooling, Dense heads, Normalize), as one graph
``(input_ids, attention_mask) -> sentence_embedding`` made by ``torch.onnx.export(..., dynamo=True)``.
(sentence-transformers' own ONNX backend needs ``optimum-onnx``, which requires transformers < 4.58,
and exports the transformer alone; the legacy TorchScript exporter fails on Gemma 3.)

Artifacts are cached by content, one folder per key under ``cache_dir``::

    cache_dir/<key>/model.onnx              # written to a temp file in the folder, fsynced, os.replace'd
    cache_dir/<key>/tokenizer*.json, ...    # the model's own tokenizer files (and its ST config files)
    cache_dir/<key>/evalgemma_onnx.json     # the manifest, written last: an entry without it is incomplete

The key hashes the source directory's files (sha256), the recipe below (quantization included) and
the versions of every package that changes the file. A hit is checked against the manifest's
sha256 of ``model.onnx``; a mismatch is warned about and rebuilt.

Quantization (``--quant``): ``none`` = the float32 export; ``int8`` = ONNX Runtime's
``quantize_dynamic`` (int8 weights of every Linear, Dense heads included, and of the token-embedding
Gather; activations quantized at run time); ``q4`` = ONNX Runtime's ``MatMulNBitsQuantizer`` (4-bit
symmetric blocks of 32 along the input dimension, every Linear; the token embeddings stay float).

The encoder is the ordinary ``Encoder`` (memory and disk cache by weight key, chunking) around an
``OnnxSentenceModel`` that answers sentence-transformers' ``encode`` call: the prompt is prepended
to each text exactly as sentence-transformers does, the model's own tokenizer truncates at the
same ``max_seq_length``, and batches are formed in the same length order. onnx, onnxscript and
onnxruntime are optional (``pip install 'evalgemma[backends]'``) and imported here only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np

from evalgemma.errors import ConfigError, DataError, unknown_name
from evalgemma.io import atomic_write, atomic_write_by, file_sha256

log = logging.getLogger(__name__)

OnnxQuant = Literal["none", "int8", "q4"]
ONNX_QUANTS: tuple[OnnxQuant, ...] = ("none", "int8", "q4")
ARTIFACT_SCHEMA = "evalgemma-onnx-artifact/1"
#: Bump when the export recipe changes in a way the recipe fields do not show (wrapper, axes).
EXPORT_FORMAT = 1
MODEL_FILE = "model.onnx"
MANIFEST = "evalgemma_onnx.json"
INPUT_NAMES = ("input_ids", "attention_mask")
OPTIONAL_INPUTS = ("token_type_ids",)
OUTPUT_NAME = "sentence_embedding"
INSTALL_HINT = "pip install 'evalgemma[backends]' (onnx, onnxscript, onnxruntime)"
#: Packages whose version changes the exported or quantized file.
_VERSIONED = ("torch", "onnx", "onnxscript", "onnxruntime", "transformers", "sentence-transformers")
#: Model files copied beside model.onnx: prompts, max length, model type (for ``describe_local``).
_ST_CONFIG_FILES = ("config.json", "config_sentence_transformers.json", "sentence_bert_config.json")
_TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "tokenizer.model",
    "vocab.txt", "vocab.json", "merges.txt", "spiece.model", "sentencepiece.bpe.model", "chat_template.jinja",
)
_QUANTIZED_OPS = ("MatMulInteger", "DynamicQuantizeLinear", "MatMulNBits", "GatherBlockQuantized", "DequantizeLinear")


@dataclass(frozen=True)
class OnnxRecipe:
    """Exporter and quantizer settings: everything besides the source that changes the file."""

    quant: OnnxQuant = "none"
    opset: int = 20
    int8_weight_type: str = "QInt8"
    int8_per_channel: bool = False
    int8_reduce_range: bool = False
    int8_op_types: tuple[str, ...] = ("MatMul", "Gather")
    q4_block_size: int = 32
    q4_symmetric: bool = True
    q4_accuracy_level: int = 0  # 0 = unset: ONNX Runtime picks per execution provider
    q4_op_types: tuple[str, ...] = ("MatMul",)

    def settings(self) -> dict[str, Any]:
        """The fields that apply to this quantization (the others do not change the file)."""
        out: dict[str, Any] = {"opset": self.opset, "quant": self.quant}
        prefix = {"int8": "int8_", "q4": "q4_"}.get(self.quant)
        for key, value in asdict(self).items():
            if prefix and key.startswith(prefix):
                out[key] = list(value) if isinstance(value, tuple) else value
        return out


@dataclass(frozen=True)
class OnnxArtifact:
    """One ONNX file evalgemma can encode with, and where it came from."""

    path: Path  # the .onnx file
    sha256: str  # of the .onnx file: the artifact's identity
    quant: OnnxQuant
    origin: Literal["exported", "given"]
    source: str  # the model directory exported, or the .onnx file given
    tokenizer_dir: Path
    output_dim: int | None
    file_bytes: int
    manifest: Mapping[str, Any] = field(default_factory=dict)  # evalgemma_onnx.json ({} for a foreign file)
    built_seconds: float | None = None  # export/quantization time of this call; None = served from the cache

    @property
    def identity(self) -> dict[str, str]:
        """The fields the variant identity needs (backend, quantization, artifact sha256)."""
        return {"backend": "onnx", "onnx_quant": self.quant, "onnx_sha256": self.sha256}


# ---------------------------------------------------------------- dependencies and small helpers


def require_backend(*, export: bool = False) -> None:
    """Import the optional packages now, so a missing one is a ConfigError naming the extra.

    Raises:
        ConfigError: onnxruntime (or, with ``export``, onnx / onnxscript) is not installed.
    """
    names = ("onnxruntime", "onnx", "onnxscript") if export else ("onnxruntime",)
    for name in names:
        try:
            __import__(name)
        except ImportError as exc:
            raise ConfigError(f"--backend onnx needs the Python package {name!r}, which is not installed: {INSTALL_HINT}") from exc


def parse_onnx_quant(value: str) -> OnnxQuant:
    """``value`` if it is a quantization the ONNX backend has, else a ConfigError listing them."""
    if value not in ONNX_QUANTS:
        raise unknown_name("ONNX quantization", value, ONNX_QUANTS, where="--quant")
    return value


def _versions() -> dict[str, str]:
    out = {}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def _key(material: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(material, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:24]


def _write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, data)


def _op_counts(path: Path) -> dict[str, int]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    counts = Counter(node.op_type for node in model.graph.node)
    return dict(sorted(counts.items()))


# ---------------------------------------------------------------- the content cache


def _read_entry(folder: Path, *, repair: bool = True) -> dict[str, Any] | None:
    """The manifest of a complete, intact cache entry; None when there is none.

    A present but damaged entry (unreadable manifest, missing file, sha256 mismatch) is warned
    about and its manifest removed, so it is rebuilt; with ``repair=False`` (a folder the user
    gave, which evalgemma never changes) it is a DataError instead.
    """
    manifest_path = folder / MANIFEST
    if not manifest_path.exists():
        return None
    problem = ""
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if not isinstance(manifest, dict) or manifest.get("schema") != ARTIFACT_SCHEMA:
            problem = f"unknown manifest schema {manifest.get('schema') if isinstance(manifest, dict) else None!r}"
        elif not (folder / MODEL_FILE).is_file():
            problem = f"{MODEL_FILE} is missing"
        elif file_sha256(folder / MODEL_FILE) != manifest.get("onnx_sha256"):
            problem = f"{MODEL_FILE} does not match the sha256 its manifest records"
    except (OSError, ValueError) as exc:
        problem = f"unreadable manifest ({exc})"
    if problem and not repair:
        raise DataError(f"{folder}: damaged ONNX artifact ({problem})")
    if problem:
        warnings.warn(f"{folder}: damaged ONNX cache entry ({problem}); rebuilding it", RuntimeWarning, stacklevel=3)
        with suppress(OSError):
            manifest_path.unlink()
        return None
    return dict(manifest)


def _artifact(folder: Path, manifest: Mapping[str, Any], built_seconds: float | None) -> OnnxArtifact:
    path = folder / MODEL_FILE
    return OnnxArtifact(
        path=path,
        sha256=str(manifest["onnx_sha256"]),
        quant=manifest["recipe"]["quant"],
        origin=manifest["origin"],
        source=str(manifest["source"]),
        tokenizer_dir=folder,
        output_dim=manifest.get("output_dim"),
        file_bytes=path.stat().st_size,
        manifest=dict(manifest),
        built_seconds=built_seconds,
    )


def _finish_entry(folder: Path, manifest: dict[str, Any], started: float) -> OnnxArtifact:
    path = folder / MODEL_FILE
    manifest = {**manifest, "schema": ARTIFACT_SCHEMA, "onnx_sha256": file_sha256(path), "file_bytes": path.stat().st_size}
    manifest["op_counts"] = _op_counts(path)
    manifest["built_seconds"] = round(time.perf_counter() - started, 3)
    _write_bytes(folder / MANIFEST, (json.dumps(manifest, sort_keys=True, indent=1) + "\n").encode())
    return _artifact(folder, manifest, manifest["built_seconds"])


def default_onnx_cache_dir() -> Path:
    """``<user cache dir>/evalgemma/onnx``."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("evalgemma")) / "onnx"


# ---------------------------------------------------------------- export


def export_onnx(
    model_dir: str | Path,
    cache_dir: str | Path,
    quant: OnnxQuant = "none",
    *,
    recipe: OnnxRecipe | None = None,
    allow_pickle_weights: bool = False,
) -> OnnxArtifact:
    """The ONNX artifact of a local sentence-transformers directory, exported (and quantized) once.

    Args:
        model_dir: a local sentence-transformers model directory (a hub model: its snapshot folder).
        cache_dir: the artifact cache (``default_onnx_cache_dir()`` for the user's).
        quant: ``none`` | ``int8`` | ``q4``.
        recipe: exporter settings (the default recipe unless a test or benchmark varies it).
        allow_pickle_weights: as ``--allow-pickle-weights``.

    Raises:
        ConfigError: not a directory, an unknown quantization, a pipeline the graph cannot express
            (prompt-excluding pooling, lower-casing), or a missing optional package.
        DataError: the exporter failed, or its graph disagrees with torch on the tracing inputs.
    """
    artifact = _export(model_dir, cache_dir, quant, recipe=recipe, allow_pickle_weights=allow_pickle_weights, build=True)
    assert artifact is not None
    return artifact


def find_export(model_dir: str | Path, cache_dir: str | Path, quant: OnnxQuant = "none", *, recipe: OnnxRecipe | None = None) -> OnnxArtifact | None:
    """The cached artifact ``export_onnx`` would return, or None where it would have to build it
    (so a planner can learn the artifact's sha256, or that it is missing, without exporting)."""
    return _export(model_dir, cache_dir, quant, recipe=recipe, allow_pickle_weights=False, build=False)


def _export(
    model_dir: str | Path, cache_dir: str | Path, quant: OnnxQuant, *, recipe: OnnxRecipe | None, allow_pickle_weights: bool, build: bool,
) -> OnnxArtifact | None:
    from evalgemma.encode.models import directory_digest

    quant = parse_onnx_quant(quant)
    recipe = recipe or OnnxRecipe()
    source = Path(model_dir).expanduser().resolve()
    if not source.is_dir():
        raise ConfigError(f"--model {model_dir}: the ONNX export needs a local sentence-transformers directory")
    require_backend(export=True)
    cache = Path(cache_dir)
    versions = _versions()
    base = OnnxRecipe(**{**asdict(recipe), "quant": "none"})
    material = {"format": EXPORT_FORMAT, "source_sha256": directory_digest(source), "recipe": base.settings(), "versions": versions}
    folder = cache / _key(material)
    manifest = _read_entry(folder)
    if manifest:
        fp32 = _artifact(folder, manifest, None)
    elif build:
        fp32 = _export_entry(source, folder, base, material, allow_pickle_weights=allow_pickle_weights)
    else:
        return None
    if quant == "none":
        return fp32
    return _quantized(fp32, cache, OnnxRecipe(**{**asdict(recipe), "quant": quant}), versions, build=build)


def _export_entry(source: Path, folder: Path, recipe: OnnxRecipe, material: Mapping[str, Any], *, allow_pickle_weights: bool) -> OnnxArtifact:
    started = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    st = _load_pipeline(source, allow_pickle_weights=allow_pickle_weights)
    data, check = _export_graph(st, recipe, source)
    _write_bytes(folder / MODEL_FILE, data)
    del data
    tokenizer = st.tokenizer
    tokenizer.save_pretrained(str(folder))
    for name in _ST_CONFIG_FILES:
        if (source / name).is_file():
            _write_bytes(folder / name, (source / name).read_bytes())
    manifest = {
        "origin": "exported",
        "source": str(source),
        "key_material": dict(material),
        "recipe": recipe.settings(),
        "output_dim": int(st.get_embedding_dimension()),
        "modules": [type(m).__name__ for m in st],
        "export_check_max_abs_diff": check,
    }
    log.info("exported %s to ONNX in %.1f s", source, time.perf_counter() - started)
    return _finish_entry(folder, manifest, started)


def _load_pipeline(source: Path, *, allow_pickle_weights: bool = False) -> Any:
    """The float32 sentence-transformers pipeline on CPU, refused where one graph cannot express it."""
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    from evalgemma.encode.encoder import load_sentence_transformer
    from evalgemma.encode.models import describe_local
    from evalgemma.variants.spec import Dtype, WeightSpec

    described = describe_local(source)
    weight = WeightSpec(model=str(source), revision=described.revision, dtype=Dtype.FLOAT32, max_seq_length=described.default_max_seq_length or 512)
    st = load_sentence_transformer(described, weight, device="cpu", allow_pickle_weights=allow_pickle_weights)
    for module in st:
        if isinstance(module, Pooling) and not module.include_prompt:
            raise ConfigError(
                f"--model {source}: its Pooling excludes prompt tokens (include_prompt=false), which needs the prompt "
                "length as a graph input; the ONNX export takes input_ids and attention_mask only"
            )
        if isinstance(module, Transformer) and getattr(module, "do_lower_case", False):
            raise ConfigError(f"--model {source}: sentence-transformers lower-cases its input (do_lower_case); the ONNX backend does not")
    if st.tokenizer is None:
        raise ConfigError(f"--model {source}: no tokenizer; the ONNX backend encodes text models only")
    return st


def _export_graph(st: Any, recipe: OnnxRecipe, source: Path) -> tuple[bytes, float]:
    """Serialized ONNX of the whole pipeline, checked against torch on the tracing inputs."""
    import onnxruntime as ort
    import torch

    class Pipeline(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.model({"input_ids": input_ids, "attention_mask": attention_mask})[OUTPUT_NAME]
            return out

    wrapper = Pipeline(st).eval()
    # Two texts of different lengths: batch and sequence are traced as symbolic, padding is present.
    sample = st.tokenizer(
        ["A short text.", "A somewhat longer sentence, so that the batch has padding in it."],
        padding=True, truncation="longest_first", return_tensors="pt",
    )
    args = (sample["input_ids"], sample["attention_mask"])
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq")
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                wrapper, args, dynamo=True, input_names=list(INPUT_NAMES), output_names=[OUTPUT_NAME],
                dynamic_shapes={"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}},
                opset_version=recipe.opset, optimize=True, verbose=False,
            )
            reference = wrapper(*args).numpy()
        assert program is not None
        data = program.model_proto.SerializeToString()
    except (ConfigError, DataError):
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise DataError(f"--model {source}: torch.onnx.export(dynamo=True) failed: {type(exc).__name__}: {first[:500]}") from exc
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT_NAME], {name: a.numpy() for name, a in zip(INPUT_NAMES, args, strict=True)})[0]
    diff = float(np.max(np.abs(got - reference)))
    if not np.isfinite(diff) or diff > 1e-3:
        raise DataError(f"--model {source}: the exported ONNX graph disagrees with torch on the tracing inputs (max |Δ| {diff:.3g})")
    return data, diff


# ---------------------------------------------------------------- quantization


def _quantized(base: OnnxArtifact, cache: Path, recipe: OnnxRecipe, versions: Mapping[str, str], *, build: bool = True) -> OnnxArtifact | None:
    material = {"format": EXPORT_FORMAT, "from_onnx_sha256": base.sha256, "recipe": recipe.settings(), "versions": dict(versions)}
    folder = cache / _key(material)
    manifest = _read_entry(folder)
    if manifest:
        return _artifact(folder, manifest, None)
    if not build:
        return None
    started = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    _quantize_file(base.path, folder / MODEL_FILE, recipe)
    for item in base.tokenizer_dir.iterdir():
        if item.is_file() and (item.name in _TOKENIZER_FILES or item.name in _ST_CONFIG_FILES):
            _write_bytes(folder / item.name, item.read_bytes())
    manifest = {
        "origin": base.origin,
        "source": base.source,
        "key_material": material,
        "recipe": recipe.settings(),
        "output_dim": base.output_dim,
        "quantized_from": {"path": str(base.path), "onnx_sha256": base.sha256},
    }
    log.info("quantized %s to %s in %.1f s", base.path, recipe.quant, time.perf_counter() - started)
    return _finish_entry(folder, manifest, started)


def _quantize_file(src: Path, target: Path, recipe: OnnxRecipe) -> None:
    """ONNX Runtime's own quantizers, written atomically onto ``target``.

    Both first turn each ``Gemm`` (the Dense heads) into ``MatMul`` with ONNX Runtime's own
    ``replace_gemm_with_matmul`` (``quantize_dynamic`` does that itself; ``MatMulNBits`` only takes
    MatMul), so the heads are quantized like every other Linear. The exporter's ``value_info``
    entries for initializers are dropped first: they are redundant, and once a Gemm weight is
    transposed they contradict it and fail ONNX Runtime's shape inference.
    """
    import onnx
    from onnxruntime.quantization.onnx_model import ONNXModel

    model = onnx.load(str(src))
    initializers = {t.name for t in model.graph.initializer}
    kept = [vi for vi in model.graph.value_info if vi.name not in initializers]
    del model.graph.value_info[:]
    model.graph.value_info.extend(kept)
    if recipe.quant == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        def write(tmp: Path) -> None:
            quantize_dynamic(
                model, str(tmp), op_types_to_quantize=list(recipe.int8_op_types), per_channel=recipe.int8_per_channel,
                reduce_range=recipe.int8_reduce_range, weight_type=getattr(QuantType, recipe.int8_weight_type),
            )

        atomic_write_by(target, write)
    elif recipe.quant == "q4":
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

        wrapped = ONNXModel(model)
        wrapped.replace_gemm_with_matmul()
        quantizer = MatMulNBitsQuantizer(
            wrapped.model, bits=4, block_size=recipe.q4_block_size, is_symmetric=recipe.q4_symmetric,
            accuracy_level=recipe.q4_accuracy_level or None, op_types_to_quantize=recipe.q4_op_types,
        )
        quantizer.process()
        _write_bytes(target, quantizer.model.model.SerializeToString())
    else:
        raise ValueError(f"no quantizer for {recipe.quant!r}")


# ---------------------------------------------------------------- given artifacts


def open_onnx(
    path: str | Path,
    quant: OnnxQuant = "none",
    *,
    cache_dir: str | Path | None = None,
    recipe: OnnxRecipe | None = None,
) -> OnnxArtifact:
    """An existing ONNX model (a ``.onnx`` file, or a directory holding ``model.onnx`` or
    ``onnx/model.onnx`` and the tokenizer), checked; with ``quant`` other than ``none`` it is
    quantized once into ``cache_dir``.

    Raises:
        ConfigError: nothing at ``path``, several candidate files, no cache dir for quantization,
            quantizing a file that is already quantized, a missing optional package.
        DataError: a corrupt or non-ONNX file, a graph without the inputs ``input_ids`` and
            ``attention_mask`` and the output ``sentence_embedding [batch, dim]``, no tokenizer.
    """
    quant = parse_onnx_quant(quant)
    require_backend(export=quant != "none")
    onnx_file, folder = _locate(Path(path).expanduser())
    manifest: dict[str, Any] = {}
    if (folder / MANIFEST).is_file() and onnx_file.name == MODEL_FILE:
        manifest = _read_entry(folder, repair=False) or {}
    output_dim = inspect_onnx(onnx_file)
    tokenizer_dir = _tokenizer_dir(onnx_file)
    recorded_quant = manifest.get("recipe", {}).get("quant") if manifest else None
    given = OnnxArtifact(
        path=onnx_file,
        sha256=str(manifest["onnx_sha256"]) if manifest else file_sha256(onnx_file),
        quant=recorded_quant or "none",
        origin="given",
        source=str(onnx_file),
        tokenizer_dir=tokenizer_dir,
        output_dim=output_dim,
        file_bytes=onnx_file.stat().st_size,
        manifest=manifest,
    )
    if quant == "none":
        return given
    if cache_dir is None:
        raise ConfigError(f"--quant {quant} on a given ONNX file ({onnx_file}) quantizes it into the artifact cache: pass a cache directory")
    ops = manifest.get("op_counts") or _op_counts(onnx_file)
    already = sorted(op for op in ops if op in _QUANTIZED_OPS)
    if already or recorded_quant not in (None, "none"):
        raise ConfigError(f"--quant {quant}: {onnx_file} is already quantized ({', '.join(already) or recorded_quant}); use it with --quant none")
    quantized = _quantized(given, Path(cache_dir), OnnxRecipe(**{**asdict(recipe or OnnxRecipe()), "quant": quant}), _versions())
    assert quantized is not None
    return quantized


def given_onnx(path: Path) -> Path | None:
    """``path`` when it is an ONNX model to encode as it is (a ``.onnx`` file, or a folder holding
    ``model.onnx`` or ``onnx/model.onnx``), else None (a model directory to export)."""
    path = path.expanduser()
    if path.is_file():
        return path if path.suffix == ".onnx" else None
    if path.is_dir() and any((path / sub).is_file() for sub in (MODEL_FILE, f"onnx/{MODEL_FILE}")):
        return path
    return None


def _locate(path: Path) -> tuple[Path, Path]:
    if path.is_file():
        return path, path.parent
    if not path.is_dir():
        raise ConfigError(f"--model {path}: no such ONNX file or directory")
    for candidate in (path / MODEL_FILE, path / "onnx" / MODEL_FILE):
        if candidate.is_file():
            return candidate, candidate.parent
    found = sorted(str(p.relative_to(path)) for p in path.rglob("*.onnx"))
    if found:
        raise ConfigError(f"--model {path}: no model.onnx; it holds {', '.join(found[:8])}: pass the one to use")
    raise ConfigError(f"--model {path}: not an ONNX model directory (no model.onnx or onnx/model.onnx)")


def _tokenizer_dir(onnx_file: Path) -> Path:
    for folder in (onnx_file.parent, onnx_file.parent.parent):
        if any((folder / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt")):
            return folder
    raise DataError(f"{onnx_file}: no tokenizer beside it (tokenizer.json / tokenizer_config.json in its folder or the one above)")


def inspect_onnx(path: Path) -> int | None:
    """Load ``path`` in ONNX Runtime and check its signature; the output dim when the graph fixes it.

    Raises:
        DataError: the file does not load (corrupt, truncated, not ONNX), or its inputs/outputs are
            not ``input_ids``, ``attention_mask`` (``token_type_ids`` allowed) → ``sentence_embedding [batch, dim]``.
    """
    session = _session(path, threads=1, providers=("CPUExecutionProvider",))
    return _check_signature(session, path)


def _session(path: Path, *, threads: int | None, providers: Sequence[str]) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: optimizer notices are not for users
    try:
        return ort.InferenceSession(str(path), options, providers=list(providers))
    except MemoryError:
        raise
    except Exception as exc:  # onnxruntime's errors (InvalidProtobuf, InvalidGraph, Fail, ...) derive from Exception
        message = " ".join(str(exc).split())
        raise DataError(f"{path}: not a loadable ONNX model ({type(exc).__name__}: {message[:400]})") from exc


def _check_signature(session: Any, path: Path) -> int | None:
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name: o for o in session.get_outputs()}
    expected = f"inputs {', '.join(INPUT_NAMES)} (optionally {', '.join(OPTIONAL_INPUTS)}) and output {OUTPUT_NAME} [batch, dim]"
    has = f"inputs {', '.join(inputs) or 'none'}; outputs {', '.join(outputs) or 'none'}"
    unknown = sorted(set(inputs) - set(INPUT_NAMES) - set(OPTIONAL_INPUTS))
    if any(n not in inputs for n in INPUT_NAMES) or unknown or OUTPUT_NAME not in outputs:
        raise DataError(
            f"{path}: not a whole sentence-embedding pipeline: it has {has}; evalgemma needs {expected} "
            "(a transformer-only export lacks pooling and the Dense heads: export the model directory instead)"
        )
    for name, spec in inputs.items():
        if "int64" not in spec.type:
            raise DataError(f"{path}: input {name} is {spec.type}, expected tensor(int64)")
    shape = outputs[OUTPUT_NAME].shape
    if shape is not None and len(shape) != 2:
        raise DataError(f"{path}: output {OUTPUT_NAME} has shape {shape}, expected [batch, dim] (token embeddings mean no pooling)")
    if "float" not in outputs[OUTPUT_NAME].type or "float16" in outputs[OUTPUT_NAME].type:
        raise DataError(f"{path}: output {OUTPUT_NAME} is {outputs[OUTPUT_NAME].type}, expected tensor(float)")
    dim = shape[1] if shape else None
    return dim if isinstance(dim, int) else None


# ---------------------------------------------------------------- encoding


class OnnxSentenceModel:
    """An ONNX Runtime session and the model's tokenizer, answering sentence-transformers' ``encode``.

    Args:
        artifact: from ``export_onnx`` or ``open_onnx``.
        max_seq_length: truncation length (the torch path's ``WeightSpec.max_seq_length``).
        threads: ONNX Runtime intra-op threads (None: its default, one per physical core). Runtime only.
        providers: execution providers, in order of preference. Runtime only.
    """

    def __init__(
        self,
        artifact: OnnxArtifact,
        *,
        max_seq_length: int,
        threads: int | None = None,
        providers: Sequence[str] = ("CPUExecutionProvider",),
    ) -> None:
        require_backend()
        from transformers import AutoTokenizer

        if max_seq_length < 1:
            raise ConfigError(f"--max-seq-length {max_seq_length}: must be positive")
        self.artifact = artifact
        self.max_seq_length = max_seq_length
        self.session = _session(artifact.path, threads=threads, providers=providers)
        dim = _check_signature(self.session, artifact.path)
        self._dim = dim if dim is not None else artifact.output_dim
        self._input_names = [i.name for i in self.session.get_inputs()]
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(artifact.tokenizer_dir))
        except (OSError, ValueError) as exc:
            raise DataError(f"{artifact.tokenizer_dir}: cannot load the tokenizer of {artifact.path} ({exc})") from exc
        self.tokenizer.model_max_length = max_seq_length
        self.prompts, self.default_prompt_name = st_prompts(artifact.tokenizer_dir)

    def get_embedding_dimension(self) -> int:
        """The output dimension (a graph with a symbolic one is asked once)."""
        if self._dim is None:
            self._dim = int(self._run(self.tokenize(["dimension probe"])).shape[1])
        return int(self._dim)

    def tokenize(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """The graph's inputs for ``texts``, as sentence-transformers' Transformer module builds them."""
        encoded = self.tokenizer(
            list(texts), padding=True, truncation="longest_first", max_length=self.max_seq_length, return_tensors="np",
        )
        feeds = {}
        for name in self._input_names:
            if name in encoded:
                feeds[name] = np.asarray(encoded[name], dtype=np.int64)
            else:  # token_type_ids the tokenizer does not produce: one segment
                feeds[name] = np.zeros_like(np.asarray(encoded["input_ids"]), dtype=np.int64)
        return feeds

    def _run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(self.session.run([OUTPUT_NAME], feeds)[0], dtype=np.float32)

    def encode_query(self, texts: Sequence[str], prompt: str | None = None, **kwargs: Any) -> np.ndarray:
        """``encode`` with the model's ``query`` prompt when ``prompt`` is None (sentence-transformers' rule)."""
        return self.encode(texts, prompt=prompt if prompt is not None else self.prompts.get("query"), **kwargs)

    def encode_document(self, texts: Sequence[str], prompt: str | None = None, **kwargs: Any) -> np.ndarray:
        """``encode`` with the model's ``document`` prompt when ``prompt`` is None (sentence-transformers' rule)."""
        return self.encode(texts, prompt=prompt if prompt is not None else self.prompts.get("document"), **kwargs)

    def encode(
        self,
        texts: Sequence[str],
        prompt: str | None = None,
        batch_size: int = 32,
        convert_to_numpy: bool = True,
        show_progress_bar: bool = False,
    ) -> np.ndarray:
        """float32 ``[n, dim]`` vectors of ``prompt + text``, batched longest first as sentence-transformers does
        (``prompt`` None: the model's default prompt, if it names one)."""
        del convert_to_numpy  # always numpy
        if prompt is None and self.default_prompt_name:
            prompt = self.prompts.get(self.default_prompt_name)
        if not texts:
            return np.zeros((0, self.get_embedding_dimension()), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts])
        rendered = [(prompt or "") + texts[i] for i in order]
        starts: Iterable[int] = range(0, len(rendered), max(1, batch_size))
        if show_progress_bar:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="Batches")
        parts = [self._run(self.tokenize(rendered[s : s + batch_size])) for s in starts]
        sorted_vectors = np.concatenate(parts, axis=0)
        out = np.empty_like(sorted_vectors)
        out[order] = sorted_vectors
        return out


def st_prompts(folder: Path) -> tuple[dict[str, str], str | None]:
    """The prompt dictionary and default prompt name of ``config_sentence_transformers.json`` in ``folder``."""
    path = folder / "config_sentence_transformers.json"
    if not path.is_file():
        return {}, None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable ({exc})") from exc
    prompts = {str(k): str(v) for k, v in (config.get("prompts") or {}).items()}
    default = config.get("default_prompt_name")
    return prompts, str(default) if default else None


def onnx_encoder(
    artifact: OnnxArtifact,
    weight_key: str,
    *,
    max_seq_length: int,
    batch_size: int = 32,
    threads: int | None = None,
    disk_cache: Any = None,
    show_progress: bool = False,
) -> Any:
    """An ``Encoder`` (the same class as the torch backend's) that encodes with ONNX Runtime.

    ``weight_key`` must identify the artifact (backend, quantization, ``artifact.sha256``), since the
    in-memory and disk caches key vectors by it.
    """
    from evalgemma.encode.encoder import Encoder

    model = OnnxSentenceModel(artifact, max_seq_length=max_seq_length, threads=threads)
    return Encoder(model, weight_key, batch_size=batch_size, disk_cache=disk_cache, show_progress=show_progress)

