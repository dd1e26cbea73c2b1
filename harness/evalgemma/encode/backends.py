"""The runtimes a variant can be encoded with (``--backend``): one registry, defined once.

``BACKENDS`` maps a name to a :class:`Backend`: the weight-quantization formats it has, whether it
encodes from an artifact file (whose sha256 then joins the variant identity), and three lazy hooks:

* ``artifact(request, build)`` — the file this backend encodes with for a (model, quant): exported
  and cached (``build=True``) or only looked up (``build=False``, for ``evalgemma plan``);
* ``describe(path)`` — a ``ResolvedModel`` for a ``--model`` that is already this backend's artifact
  (an ONNX directory), or None when ``path`` is not one;
* ``load(request)`` — an ``Encoder`` (the one class every task uses) and what the weights are.

Adding a runtime (as ``gguf``: none, bf16, q8_0, q4_0) is one entry here plus its loader module; plan,
run, store, cache, views and ``evalgemma parity`` read everything else from the entry. Heavy
imports (torch, onnxruntime, llama_cpp) happen only inside the hooks.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from evalgemma.encode.models import ResolvedModel
from evalgemma.errors import ConfigError, DataError, unknown_name
from evalgemma.io import file_sha256
from evalgemma.variants.spec import TORCH_BACKEND, WeightSpec


@dataclass(frozen=True)
class Artifact:
    """The file a non-torch backend encodes with, and where its torch float32 reference is."""

    backend: str
    quant: str
    sha256: str  # of the file: part of the variant identity
    path: Path
    reference: str | None  # a sentence-transformers directory computing the same vectors in torch (None: unknown)
    file_bytes: int
    origin: str  # "exported" | "given"
    handle: Any = None  # the backend's own description (an ``OnnxArtifact``)


@dataclass(frozen=True)
class LoadRequest:
    """What a loader needs: the model, the weight variant and the runtime options."""

    model: ResolvedModel
    weight: WeightSpec
    device: str = "cpu"
    batch_size: int = 32
    disk_cache: Any = None
    show_progress: bool = False
    trust_remote_code: bool = False
    allow_pickle_weights: bool = False
    artifact_dir: Path | None = None  # exported artifacts (None: the user cache dir)
    threads: int | None = None


@dataclass
class Loaded:
    """A loader's answer: the encoder, the store fields it fills (weight bytes, quantized tensors), the artifact."""

    encoder: Any
    info: dict[str, Any] = field(default_factory=dict)
    artifact: Artifact | None = None


@dataclass(frozen=True)
class Backend:
    """One runtime: its quantization formats and its lazy hooks."""

    name: str
    quants: tuple[str, ...]
    description: str
    load: Callable[[LoadRequest], Loaded]
    artifact: Callable[[LoadRequest, bool], Artifact | None] | None = None  # None: encodes the model itself (torch)
    describe: Callable[[Path], ResolvedModel | None] | None = None

    @property
    def has_artifact(self) -> bool:
        return self.artifact is not None

    def check_quant(self, quant: str, where: str = "--quant") -> str:
        """``quant`` if this backend has it, else a ConfigError naming the flag, the backend and its formats."""
        if quant not in self.quants:
            raise ConfigError(f"{where} {quant}: the {self.name} backend has no {quant!r} quantization (it has {', '.join(self.quants)}; "
                              f"other backends: {_formats_by_backend(exclude=self.name)})")
        return quant


# ---------------------------------------------------------------- torch


def _load_torch(request: LoadRequest) -> Loaded:
    """The sentence-transformers pipeline in torch (``--quant``: evalgemma's simulated GGML formats)."""
    from evalgemma.encode.encoder import Encoder, load_sentence_transformer

    weight = request.weight
    load_path = None
    if weight.quant != "none" and weight.quant_source == "qat":
        from evalgemma.variants.weight_quant import fetch_checkpoint

        load_path, _, _ = fetch_checkpoint(request.model.model_id, weight.quant, "qat")
    st = load_sentence_transformer(
        request.model, weight, device=request.device, load_path=load_path,
        trust_remote_code=request.trust_remote_code, allow_pickle_weights=request.allow_pickle_weights,
    )
    if weight.quant != "none":
        from evalgemma.variants.weight_quant import quantize_model

        report = quantize_model(st, weight.quant)
        info: dict[str, Any] = {"quant_tensors": json.dumps(list(report.tensors)), "weight_bytes": int(report.weight_bytes)}
    else:
        info = {"weight_bytes": int(sum(p.numel() * p.element_size() for p in st.parameters())), "quant_tensors": "[]"}
    encoder = Encoder(st, weight.key, batch_size=request.batch_size, disk_cache=request.disk_cache, show_progress=request.show_progress)
    return Loaded(encoder, info)


# ---------------------------------------------------------------- onnx


def _onnx_artifact(request: LoadRequest, build: bool) -> Artifact | None:
    from evalgemma.encode import onnx_backend as ob

    model, quant = request.model, request.weight.quant
    cache = request.artifact_dir or ob.default_onnx_cache_dir()
    given = ob.given_onnx(Path(model.load_path)) if model.is_local else None
    if given is not None:
        art = ob.open_onnx(given, quant, cache_dir=cache)  # type: ignore[arg-type]
        reference = _onnx_reference(art, Path(model.load_path))
    else:
        source = _local_source(model)
        found = (ob.export_onnx(source, cache, quant, allow_pickle_weights=request.allow_pickle_weights)  # type: ignore[arg-type]
                 if build else ob.find_export(source, cache, quant))  # type: ignore[arg-type]
        if found is None:
            return None
        art, reference = found, str(source)
    return Artifact("onnx", art.quant, art.sha256, art.path, reference, art.file_bytes, art.origin, art)


def _onnx_reference(art: Any, given: Path) -> str | None:
    """The torch pipeline beside a given ONNX model: the directory holding ``onnx/model.onnx`` or
    ``model.onnx`` when it is a sentence-transformers model, else the source an evalgemma export records."""
    folder = given if given.is_dir() else given.parent
    for candidate in (folder, folder.parent):
        if (candidate / "modules.json").is_file():
            return str(candidate)
    source = (art.manifest or {}).get("source")
    if source and (Path(source) / "modules.json").is_file():
        return str(source)
    return None


def _local_source(model: ResolvedModel, backend: str = "onnx") -> Path:
    """The local directory of ``model`` (a hub model: its snapshot in the HF cache, downloaded when online)."""
    if model.is_local:
        return Path(model.load_path)
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id=model.model_id, revision=model.revision))
    except Exception as exc:  # network and cache errors come in many types
        raise DataError(f"--backend {backend}: the export needs {model.model_id}@{model.revision[:12]} on disk ({type(exc).__name__}: {exc})") from exc


def _describe_onnx(path: Path) -> ResolvedModel | None:
    """A ``--model`` that is an ONNX model (a ``.onnx`` file, or a folder with ``model.onnx`` / ``onnx/model.onnx``)."""
    from evalgemma.encode import onnx_backend as ob
    from evalgemma.encode.models import content_fingerprint, describe_local, local_model_name

    onnx_file = ob.given_onnx(path)
    if onnx_file is None:
        return None
    art = ob.open_onnx(path)
    folder = path if path.is_dir() else path.parent
    st_dir = next((c for c in (folder, folder.parent) if (c / "modules.json").is_file() or (c / "config.json").is_file()), None)
    if st_dir is not None:
        described = describe_local(st_dir)
    else:
        prompts, _ = ob.st_prompts(art.tokenizer_dir)
        described = ResolvedModel(str(folder.resolve()), str(folder.resolve()), content_fingerprint(str(folder.resolve())),
                                  local_model_name(folder), prompts, is_local=True)
    source = (art.manifest or {}).get("source")
    short = local_model_name(Path(source)) if source and Path(source).is_dir() else described.short_name
    return replace(described, model_id=str(path.resolve()), load_path=str(path.resolve()), short_name=short,
                   output_dim=art.output_dim or described.output_dim, is_local=True)


def _load_onnx(request: LoadRequest) -> Loaded:
    from evalgemma.encode import onnx_backend as ob

    found = _onnx_artifact(request, True)
    assert found is not None  # build=True exports or raises
    if request.weight.artifact_sha256 and found.sha256 != request.weight.artifact_sha256:
        raise DataError(f"{found.path}: its sha256 {found.sha256[:16]} is not the {request.weight.artifact_sha256[:16]} the plan recorded "
                        "(the file changed during the run); rerun")
    encoder = ob.onnx_encoder(found.handle, request.weight.key, max_seq_length=request.weight.max_seq_length, batch_size=request.batch_size,
                              threads=request.threads, disk_cache=request.disk_cache, show_progress=request.show_progress)
    return Loaded(encoder, {"weight_bytes": int(found.file_bytes), "quant_tensors": "[]"}, found)


# ---------------------------------------------------------------- gguf (llama.cpp)


def _gguf_cache(request: LoadRequest) -> Path:
    from evalgemma.encode import gguf_backend as gb

    return request.artifact_dir or gb.default_gguf_cache_dir()


def _gguf_artifact(request: LoadRequest, build: bool) -> Artifact | None:
    from evalgemma.encode import gguf_backend as gb

    model, quant = request.model, request.weight.quant
    given = gb.given_gguf(Path(model.load_path)) if model.is_local else None
    if given is not None:
        art = gb.open_gguf(given, quant, cache_dir=_gguf_cache(request))
        folder = gb.st_folder(given)
        source = art.manifest.get("source") if art.manifest else None
        reference = str(folder) if folder is not None else (str(source) if source and (Path(source) / "modules.json").is_file() else None)
    else:
        source_dir = _local_source(model, "gguf")
        found = gb.convert_gguf(source_dir, _gguf_cache(request), quant, build=build)
        if found is None:
            return None
        art, reference = found, str(source_dir)
    return Artifact("gguf", art.quant, art.sha256, art.path, reference, art.file_bytes, art.origin, art)


def _describe_gguf(path: Path) -> ResolvedModel | None:
    """A ``--model`` that is a ``.gguf`` file: described by the sentence-transformers folder beside it, else by the file."""
    from evalgemma.encode import gguf_backend as gb
    from evalgemma.encode.models import describe_local

    file = gb.given_gguf(path)
    if file is None:
        return None
    if not file.is_file():
        raise ConfigError(f"--model {path}: no such GGUF file")
    folder = gb.st_folder(file)
    resolved = str(file.resolve())
    revision = "sha256:" + file_sha256(file)[:16]
    if folder is not None:
        described = describe_local(folder)
        return replace(described, model_id=resolved, load_path=resolved, revision=revision, is_local=True)
    info = gb.inspect_gguf(file)  # nothing beside it to describe it: llama.cpp does (a bad file is a DataError here)
    arch = str(info["metadata"].get("general.architecture", ""))
    return ResolvedModel(resolved, resolved, revision, file.stem, {}, "gemma3_text" if arch.startswith("gemma") else arch, int(info["n_embd"]),
                         (), None, True)


def _load_gguf(request: LoadRequest) -> Loaded:
    from evalgemma.encode import gguf_backend as gb
    from evalgemma.encode.onnx_backend import st_prompts

    found = _gguf_artifact(request, True)
    assert found is not None
    if request.weight.artifact_sha256 and found.sha256 != request.weight.artifact_sha256:
        raise DataError(f"{found.path}: its sha256 {found.sha256[:16]} is not the {request.weight.artifact_sha256[:16]} the plan recorded "
                        "(the file changed during the run); rerun")
    default_name = st_prompts(Path(found.reference))[1] if found.reference else None
    encoder = gb.gguf_encoder(found.handle, request.weight.key, max_seq_length=request.weight.max_seq_length, prompts=request.model.prompts,
                              default_prompt_name=default_name, batch_size=request.batch_size, threads=request.threads,
                              disk_cache=request.disk_cache, show_progress=request.show_progress)
    return Loaded(encoder, {"weight_bytes": int(found.file_bytes), "quant_tensors": "[]"}, found)


# ---------------------------------------------------------------- the registry


def _register(*entries: Backend) -> dict[str, Backend]:
    out: dict[str, Backend] = {}
    for entry in entries:
        if entry.name in out:
            raise ValueError(f"backend {entry.name!r} registered twice")
        out[entry.name] = entry
    return out


#: Every backend, by ``--backend`` name.
BACKENDS: dict[str, Backend] = _register(
    Backend(TORCH_BACKEND, ("none", "q8_0", "q4_0", "mixed"), "sentence-transformers in PyTorch; --quant simulates the GGML formats", _load_torch),
    Backend("onnx", ("none", "int8", "q4"), "the whole pipeline exported to ONNX, run by ONNX Runtime (int8 dynamic, q4 MatMulNBits)",
            _load_onnx, _onnx_artifact, _describe_onnx),
    Backend("gguf", ("none", "bf16", "q8_0", "q4_0"), "llama.cpp (llama-cpp-python) on a GGUF made by llama.cpp's converter and quantizer",
            _load_gguf, _gguf_artifact, _describe_gguf),
)


def get_backend(name: str, where: str = "--backend") -> Backend:
    """The backend called ``name``; an unknown name is a ConfigError with close matches and the valid names."""
    if name not in BACKENDS:
        raise unknown_name("backend", name, BACKENDS, where=where)
    return BACKENDS[name]


def all_quants() -> tuple[str, ...]:
    """Every quantization name some backend has, in registry order."""
    return tuple(dict.fromkeys(q for b in BACKENDS.values() for q in b.quants))


def _formats_by_backend(exclude: str = "") -> str:
    return "; ".join(f"{b.name}: {', '.join(b.quants)}" for b in BACKENDS.values() if b.name != exclude) or "none"


def check_backend_quants(backends: tuple[str, ...], quants: tuple[str, ...]) -> tuple[list[tuple[Backend, str]], list[str]]:
    """The (backend, quant) pairs of a sweep that exist, and one note per pair left out.

    Raises:
        ConfigError: an unknown backend or quantization name; a single pair the backend lacks; a sweep with no pair left.
    """
    entries = [get_backend(b) for b in dict.fromkeys(backends)]
    known = all_quants()
    for q in quants:
        if q not in known:
            raise unknown_name("weight quantization format", q, known, where="--quant")
    quants = tuple(dict.fromkeys(quants))
    if len(entries) == 1 and len(quants) == 1:
        entries[0].check_quant(quants[0])
    pairs = [(b, q) for b in entries for q in quants if q in b.quants]
    left = [f"--backend {b.name} --quant {q}: left out of the sweep (the {b.name} backend has no {q}; it has {', '.join(b.quants)})"
            for b in entries for q in quants if q not in b.quants]
    if not pairs:
        raise ConfigError(f"--backend {','.join(b.name for b in entries)} --quant {','.join(quants)}: no backend has any of these quantizations "
                          f"({_formats_by_backend()})")
    return pairs, left
