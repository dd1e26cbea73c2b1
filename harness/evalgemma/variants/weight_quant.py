"""Weight quantization of embedding models: GGML Q8_0/Q4_0 blocks and the paper's mixed recipe.

Quantization here is *fake* quantization: every selected weight tensor is quantized to its
storage format and immediately dequantized back to float, in place, so that the model runs
with exactly the values a quantized runtime would multiply with. Which tensors are selected
(docs/embeddinggemma.md §8 leaves it open for the published table, so we state our rule):

* every ``torch.nn.Linear`` weight of the model: the encoder's attention and feed-forward
  projections and the sentence-transformers ``Dense`` heads (``pooler.dense`` too on BERT);
* the token embedding table (``get_input_embeddings()`` of the Hugging Face model);
* norms, biases, position and token-type embeddings stay float.

Schemes:

* ``q8_0`` / ``q4_0``: the GGML block formats, bit-exact with llama.cpp's reference
  quantizers (blocks of 32 consecutive weights along the input dimension, one fp16 scale
  per block; 34 / 18 bytes per block).
* ``mixed``: the paper's ``e4_a8_f4_p4`` (per-channel symmetric; int4 for the token
  embeddings, feed-forward and projection (Dense head) layers, int8 for attention).

QAT checkpoints (float weights trained for a scheme) are listed in
``tasks/qat_checkpoints.toml``; :func:`load_quantized_model` loads either the QAT
checkpoint (``source="qat"``) or the base weights (``source="ptq"``) and quantizes them.

torch, transformers, sentence-transformers and huggingface_hub are imported lazily.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator

from evalgemma.catalog import TASKS_DIR
from evalgemma.errors import ConfigError, DataError, unknown_name
from evalgemma.variants.spec import Quant, QuantSource

if TYPE_CHECKING:
    import torch
    from sentence_transformers import SentenceTransformer

TensorCategory = Literal["embedding", "attention", "feed_forward", "projection"]

#: The formats that quantize (``Quant`` without ``none``) and where their weights come from.
QUANT_SCHEMES: tuple[Quant, ...] = tuple(q for q in Quant if q is not Quant.NONE)
QUANT_SOURCES: tuple[QuantSource, ...] = tuple(s for s in QuantSource if s is not QuantSource.NONE)

#: Weights per GGML block (``QK8_0`` = ``QK4_0`` = 32 in ``ggml-common.h``).
BLOCK_SIZE = 32
#: Bytes per stored block: fp16 scale + 32 int8 (Q8_0) or 32 packed nibbles (Q4_0).
BLOCK_BYTES: dict[str, int] = {"q8_0": 2 + 32, "q4_0": 2 + 16}
#: Bits per weight of the mixed recipe e4_a8_f4_p4, by tensor category.
MIXED_BITS: dict[str, int] = {"embedding": 4, "attention": 8, "feed_forward": 4, "projection": 4}
#: Per-channel scales of the mixed recipe are kept as float32 (LiteRT stores float32 scales).
MIXED_SCALE_BYTES = 4

#: Blocks processed at once, to bound memory on the 262144x768 Gemma embedding table.
_CHUNK_BLOCKS = 1 << 20

_DEFAULT_QAT_TABLE = TASKS_DIR / "qat_checkpoints.toml"


def parse_scheme(scheme: str, where: str = "--quant") -> Quant:
    """Validate a weight-quantization scheme name (a ``Quant`` other than ``none``).

    Raises:
        ConfigError: unknown name (with close matches and the valid names).
    """
    if scheme not in QUANT_SCHEMES:
        raise unknown_name("weight quantization scheme", scheme, QUANT_SCHEMES, where)
    return Quant(scheme)


def parse_source(source: str, where: str = "--quant-source") -> QuantSource:
    """Validate a quantization source (a ``QuantSource`` other than ``none``: "qat" or "ptq").

    Raises:
        ConfigError: unknown name.
    """
    if source not in QUANT_SOURCES:
        raise unknown_name("quantization source", source, QUANT_SOURCES, where)
    return QuantSource(source)


# --------------------------------------------------------------------------------------
# Block and channel quantizers (float32 arithmetic, like the C reference)
# --------------------------------------------------------------------------------------


def _round_half_away(y: torch.Tensor) -> torch.Tensor:
    """C ``roundf``: round to nearest, halves away from zero (torch.round rounds half to even).

    ``y - trunc(y)`` is exact in floating point, so ``|frac| >= 0.5`` decides the tie without
    the double rounding that ``floor(|y| + 0.5)`` suffers at 0.49999997.
    """
    import torch

    t = torch.trunc(y)
    frac = y - t
    return t + torch.where(frac.abs() >= 0.5, torch.sign(y), torch.zeros_like(y))


def _fp16_round(d: torch.Tensor) -> torch.Tensor:
    """The scale as GGML stores it: ``GGML_FP32_TO_FP16`` (round to nearest even), read back."""
    import torch

    return d.to(torch.float16).to(torch.float32)


def _as_blocks(w: torch.Tensor, fmt: str, name: str) -> torch.Tensor:
    import torch

    if w.ndim == 0 or w.shape[-1] % BLOCK_SIZE != 0:
        shape = tuple(w.shape)
        raise ConfigError(
            f"{name}: cannot quantize to {fmt}: shape {shape} has a last (input) dimension that is "
            f"not a multiple of {BLOCK_SIZE}, the GGML block size (llama.cpp rejects such rows too; "
            f"no padding rule is applied). Use --quant mixed (per-channel) for this model."
        )
    if not torch.is_floating_point(w):
        raise ConfigError(f"{name}: cannot quantize a {w.dtype} tensor; expected floating point")
    return w.detach().reshape(-1, BLOCK_SIZE)


def _q8_0_blocks(x: torch.Tensor) -> torch.Tensor:
    # llama.cpp ggml/src/ggml-quants.c, quantize_row_q8_0_ref:
    #   amax = max_j |x_j|;  d = amax / ((1 << 7) - 1);  id = d ? 1.0f/d : 0.0f;
    #   y.d = GGML_FP32_TO_FP16(d);  y.qs[j] = roundf(x_j * id);
    # and dequantize_row_q8_0: out_j = qs[j] * GGML_FP16_TO_FP32(y.d).
    import torch

    amax = x.abs().amax(dim=1, keepdim=True)
    d = amax / 127.0
    inv = torch.where(d != 0, 1.0 / d, torch.zeros_like(d))
    q = _round_half_away(x * inv)
    return q * _fp16_round(d)


def _q4_0_blocks(x: torch.Tensor) -> torch.Tensor:
    # llama.cpp ggml/src/ggml-quants.c, quantize_row_q4_0_ref:
    #   for j: if (amax < fabsf(x_j)) { amax = fabsf(x_j); max = x_j; }   (first largest |x| wins,
    #          sign kept; an all-zero block keeps max = 0)
    #   d = max / -8;  id = d ? 1.0f/d : 0.0f;  y.d = GGML_FP32_TO_FP16(d);
    #   q_j = MIN(15, (int8_t)(x_j*id + 8.5f));    (C cast truncates toward zero)
    # and dequantize_row_q4_0: out_j = (q_j - 8) * GGML_FP16_TO_FP32(y.d).
    import torch

    idx = x.abs().argmax(dim=1, keepdim=True)  # torch returns the first maximal index, as the loop
    mx = x.gather(1, idx)
    d = mx / -8.0
    inv = torch.where(d != 0, 1.0 / d, torch.zeros_like(d))
    q = torch.clamp(torch.trunc(x * inv + 8.5), max=15.0)
    return (q - 8.0) * _fp16_round(d)


def _blockwise(w: torch.Tensor, fmt: str, name: str) -> torch.Tensor:
    import torch

    blocks = _as_blocks(w, fmt, name)
    kernel = _q8_0_blocks if fmt == "q8_0" else _q4_0_blocks
    out = torch.empty(blocks.shape, dtype=torch.float32, device=blocks.device)
    with torch.no_grad():
        for start in range(0, blocks.shape[0], _CHUNK_BLOCKS):
            chunk = blocks[start : start + _CHUNK_BLOCKS].to(torch.float32)
            out[start : start + _CHUNK_BLOCKS] = kernel(chunk)
    return out.reshape(w.shape).to(w.dtype)


def quantize_dequantize_q8_0(w: torch.Tensor, name: str = "tensor") -> torch.Tensor:
    """Quantize to GGML Q8_0 and dequantize back (bit-exact with llama.cpp's reference).

    Blocks are 32 consecutive values along the last dimension (the input dimension of a
    ``Linear`` weight ``[out, in]``, the hidden dimension of an embedding table). Each block
    stores ``d = max|x| / 127`` as fp16 and ``q = roundf(x / d)`` (halves away from zero);
    the result is ``q * fp16(d)``. Arithmetic is float32 like the C code; the result has
    ``w``'s dtype and shape. ``w`` is not modified.

    Args:
        w: a floating-point tensor whose last dimension is a multiple of 32.
        name: the tensor's name, for error messages.

    Raises:
        ConfigError: the last dimension is not a multiple of 32, or ``w`` is not floating point.
    """
    return _blockwise(w, "q8_0", name)


def quantize_dequantize_q4_0(w: torch.Tensor, name: str = "tensor") -> torch.Tensor:
    """Quantize to GGML Q4_0 and dequantize back (bit-exact with llama.cpp's reference).

    Per block of 32 along the last dimension: ``max`` is the value of largest magnitude (sign
    kept, first one on ties), ``d = max / -8`` stored as fp16, ``q = min(15, trunc(x/d + 8.5))``
    in 0..15, result ``(q - 8) * fp16(d)``. Float32 arithmetic; returns ``w``'s dtype and shape.

    Args:
        w: a floating-point tensor whose last dimension is a multiple of 32.
        name: the tensor's name, for error messages.

    Raises:
        ConfigError: the last dimension is not a multiple of 32, or ``w`` is not floating point.
    """
    return _blockwise(w, "q4_0", name)


def quantize_dequantize_per_channel(w: torch.Tensor, bits: int, name: str = "tensor") -> torch.Tensor:
    """Symmetric per-channel (one scale per output row) quantize-dequantize.

    ``qmax = 2**(bits-1) - 1`` (7 for int4, 127 for int8: the symmetric range, so -8/-128 is
    never used); ``scale = max|row| / qmax`` in float32 (kept float32, not fp16);
    ``q = clamp(roundf(x / scale), -qmax, qmax)`` with halves away from zero, as in the GGML
    formats; result ``q * scale``. A row of zeros stays zero. Rows are the first dimension
    (``[out, in]`` for ``Linear``, one token per row for an embedding table).

    Args:
        w: a 2-d floating-point tensor.
        bits: 2..8.
        name: the tensor's name, for error messages.

    Raises:
        ConfigError: ``w`` is not 2-d floating point or ``bits`` is outside 2..8.
    """
    import torch

    if not 2 <= bits <= 8:
        raise ConfigError(f"{name}: per-channel bits must be in 2..8, got {bits}")
    if w.ndim != 2 or not torch.is_floating_point(w):
        raise ConfigError(f"{name}: per-channel quantization needs a 2-d float tensor, got {w.dtype} {tuple(w.shape)}")
    qmax = float(2 ** (bits - 1) - 1)
    with torch.no_grad():
        x = w.detach().to(torch.float32)
        scale = x.abs().amax(dim=1, keepdim=True) / qmax
        safe = torch.where(scale != 0, scale, torch.ones_like(scale))
        q = torch.clamp(_round_half_away(x / safe), -qmax, qmax)
        out = torch.where(scale != 0, q * scale, torch.zeros_like(x))
    return out.to(w.dtype)


# --------------------------------------------------------------------------------------
# Model-level quantization
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuantReport:
    """What :func:`quantize_model` did.

    Attributes:
        scheme: the scheme applied.
        tensors: names (as in ``model.named_parameters()``) of the quantized tensors, in order.
        formats: the storage format of each tensor in ``tensors`` ("q8_0", "q4_0",
            "int4_per_channel", "int8_per_channel").
        categories: each tensor's category ("embedding", "attention", "feed_forward",
            "projection"); the mixed recipe picks bits by category.
        weight_bytes: bytes of all parameters as stored in the format (quantized tensors in
            their block/channel format, every other parameter at its float size).
        float_bytes: bytes of all parameters at the float dtype they had before quantization.
        n_params: number of parameters of the model (shared tensors counted once).
        n_quantized: number of parameters in the quantized tensors.
    """

    scheme: str
    tensors: tuple[str, ...]
    formats: tuple[str, ...]
    categories: tuple[str, ...]
    weight_bytes: int
    float_bytes: int
    n_params: int
    n_quantized: int


class QuantTarget(NamedTuple):
    """One weight tensor selected for quantization."""

    name: str
    category: TensorCategory


_ATTENTION = re.compile(r"(^|\.)(self_attn|attention|attn)(\.|$)|(^|\.)(q_proj|k_proj|v_proj|o_proj|query|key|value)$")
_FEED_FORWARD = re.compile(r"(^|\.)(mlp|intermediate|ffn|feed_forward)(\.|$)|(^|\.)(gate_proj|up_proj|down_proj)$")
_LAYER = re.compile(r"(^|\.)(layer|layers|h|block|blocks)\.\d+\.")


def _category(module_name: str, in_dense_head: bool) -> TensorCategory:
    if in_dense_head:
        return "projection"
    if _ATTENTION.search(module_name):
        return "attention"
    # BERT's per-layer "output.dense" is the second feed-forward matrix (not under "attention").
    if _FEED_FORWARD.search(module_name) or _LAYER.search(module_name + "."):
        return "feed_forward"
    return "projection"  # e.g. BERT's pooler.dense


def quantizable_tensors(model: torch.nn.Module) -> tuple[QuantTarget, ...]:
    """The weight tensors :func:`quantize_model` quantizes, with their category.

    Every ``nn.Linear`` weight (a sentence-transformers ``Dense`` head's is a "projection")
    and the token embedding table (``get_input_embeddings()`` of each Hugging Face model
    inside ``model``). A tensor shared by several modules is listed once, under the name
    ``model.named_parameters()`` gives it.
    """
    import torch

    param_names: dict[int, str] = {id(p): n for n, p in model.named_parameters()}
    chosen: dict[int, QuantTarget] = {}

    dense_heads: list[str] = [
        n
        for n, m in model.named_modules()
        if type(m).__name__ == "Dense" and type(m).__module__.startswith("sentence_transformers")
    ]

    for mod_name, mod in model.named_modules():
        get_emb = getattr(mod, "get_input_embeddings", None)
        if callable(get_emb) and hasattr(mod, "config"):
            try:
                emb = get_emb()
            except (NotImplementedError, AttributeError):
                emb = None
            if isinstance(emb, torch.nn.Embedding) and id(emb.weight) in param_names:
                chosen.setdefault(id(emb.weight), QuantTarget(param_names[id(emb.weight)], "embedding"))
        if isinstance(mod, torch.nn.Linear) and id(mod.weight) in param_names:
            in_head = any(mod_name == h or mod_name.startswith(h + ".") for h in dense_heads)
            chosen.setdefault(id(mod.weight), QuantTarget(param_names[id(mod.weight)], _category(mod_name, in_head)))
    order = {n: i for i, n in enumerate(param_names.values())}
    return tuple(sorted(chosen.values(), key=lambda t: order[t.name]))


def _format_of(scheme: str, category: str) -> str:
    if scheme == "mixed":
        return f"int{MIXED_BITS[category]}_per_channel"
    return scheme


def _stored_bytes(fmt: str, shape: tuple[int, ...]) -> int:
    numel = 1
    for s in shape:
        numel *= s
    if fmt in BLOCK_BYTES:
        return numel // BLOCK_SIZE * BLOCK_BYTES[fmt]
    bits = int(fmt[3])  # "int4_per_channel" / "int8_per_channel"
    rows, cols = shape[0], numel // shape[0]
    return rows * ((cols * bits + 7) // 8) + rows * MIXED_SCALE_BYTES


def quantize_model(model: SentenceTransformer | torch.nn.Module, scheme: str) -> QuantReport:
    """Fake-quantize a model's weights IN PLACE and report what was quantized.

    Pass a model loaded for this purpose: its selected weights (see
    :func:`quantizable_tensors`) are replaced by their quantize-dequantize values, keeping
    their dtype; norms, biases and other embeddings are untouched. Every tensor is checked
    before any is modified, so a ConfigError leaves the model unchanged.

    Args:
        model: a ``SentenceTransformer`` or any ``torch.nn.Module``.
        scheme: "q8_0", "q4_0" or "mixed".

    Returns:
        A :class:`QuantReport`.

    Raises:
        ConfigError: unknown scheme; no quantizable tensor; a tensor whose input dimension
            is not a multiple of 32 (block schemes).
    """
    import torch

    scheme = parse_scheme(scheme)
    targets = quantizable_tensors(model)
    if not targets:
        raise ConfigError(f"--quant {scheme}: {type(model).__name__} has no Linear layer or token embedding to quantize")
    params = dict(model.named_parameters())
    formats = tuple(_format_of(scheme, t.category) for t in targets)
    if scheme != "mixed":
        for t in targets:
            if params[t.name].shape[-1] % BLOCK_SIZE:
                _as_blocks(params[t.name], scheme, t.name)  # raises the ConfigError
    float_bytes = sum(p.numel() * p.element_size() for p in params.values())
    n_params = sum(p.numel() for p in params.values())
    quantized_names = {t.name for t in targets}
    weight_bytes = sum(p.numel() * p.element_size() for n, p in params.items() if n not in quantized_names)
    with torch.no_grad():
        for t, fmt in zip(targets, formats, strict=True):
            p = params[t.name]
            weight_bytes += _stored_bytes(fmt, tuple(p.shape))
            if fmt == "q8_0":
                new = quantize_dequantize_q8_0(p, t.name)
            elif fmt == "q4_0":
                new = quantize_dequantize_q4_0(p, t.name)
            else:
                new = quantize_dequantize_per_channel(p, MIXED_BITS[t.category], t.name)
            p.copy_(new)
    return QuantReport(
        scheme=scheme,
        tensors=tuple(t.name for t in targets),
        formats=formats,
        categories=tuple(t.category for t in targets),
        weight_bytes=int(weight_bytes),
        float_bytes=int(float_bytes),
        n_params=int(n_params),
        n_quantized=int(sum(params[t.name].numel() for t in targets)),
    )


# --------------------------------------------------------------------------------------
# QAT checkpoints (tasks/qat_checkpoints.toml) and loading
# --------------------------------------------------------------------------------------


class QatCheckpointEntry(BaseModel):
    """One ``[[checkpoints]]`` entry of ``tasks/qat_checkpoints.toml``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_model: str
    scheme: Quant
    repo: str
    revision: str | None = None

    @field_validator("scheme")
    @classmethod
    def _quantizes(cls, scheme: Quant) -> Quant:
        if scheme is Quant.NONE:
            raise ValueError(f"a QAT checkpoint needs a quantization scheme: {', '.join(QUANT_SCHEMES)}")
        return scheme


class QatCheckpointTable(BaseModel):
    """The whole ``tasks/qat_checkpoints.toml``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_: Literal[1] = Field(alias="schema")
    checkpoints: tuple[QatCheckpointEntry, ...]


def load_qat_table(path: Path | None = None) -> QatCheckpointTable:
    """Read and validate the QAT checkpoint table.

    Raises:
        ConfigError: the file is missing, not TOML, has unknown keys or a duplicate
            (base_model, scheme).
    """
    from evalgemma.catalog.suites import load_toml_model

    p = path or _DEFAULT_QAT_TABLE
    table = load_toml_model(p, QatCheckpointTable, "QAT checkpoint table")
    seen: set[tuple[str, str]] = set()
    for e in table.checkpoints:
        if (e.base_model, e.scheme) in seen:
            raise ConfigError(f"{p}: duplicate QAT checkpoint for {e.base_model!r} scheme {e.scheme.value!r}")
        seen.add((e.base_model, e.scheme))
    return table


def qat_checkpoint(model_id: str, scheme: str, table_path: Path | None = None) -> QatCheckpointEntry:
    """The QAT checkpoint entry of ``model_id`` for ``scheme``.

    Raises:
        ConfigError: unknown scheme, or no QAT checkpoint (the message suggests
            ``--quant-source ptq``).
    """
    scheme = parse_scheme(scheme)
    table = load_qat_table(table_path)
    for e in table.checkpoints:
        if e.base_model == model_id and e.scheme == scheme:
            return e
    have = sorted(e.scheme for e in table.checkpoints if e.base_model == model_id)
    known = f" (it has QAT checkpoints for: {', '.join(have)})" if have else ""
    raise ConfigError(
        f"--quant-source qat: model {model_id!r} has no QAT checkpoint for --quant {scheme}{known} "
        f"in {table_path or _DEFAULT_QAT_TABLE}. Use --quant-source ptq to quantize the base weights "
        f"after training instead."
    )


def resolve_qat_checkpoint(model_id: str, scheme: str, table_path: Path | None = None) -> str:
    """The Hugging Face repo id of ``model_id``'s QAT checkpoint for ``scheme``.

    Raises:
        ConfigError: see :func:`qat_checkpoint`.
    """
    return qat_checkpoint(model_id, scheme, table_path).repo


def default_quant_source(model_id: str, scheme: str | None = None, table_path: Path | None = None) -> QuantSource:
    """"qat" when ``model_id`` has a QAT checkpoint (for ``scheme``, or for any scheme when
    ``scheme`` is None), else "ptq"."""
    if scheme is not None:
        scheme = parse_scheme(scheme)
    table = load_qat_table(table_path)
    for e in table.checkpoints:
        if e.base_model == model_id and (scheme is None or e.scheme == scheme):
            return QuantSource.QAT
    return QuantSource.PTQ


class QuantizedModel(NamedTuple):
    """What :func:`load_quantized_model` returns."""

    model: SentenceTransformer
    report: QuantReport
    checkpoint: str  # the repo id (or local path) the weights came from
    revision: str | None  # pinned commit, None when unpinned
    local_dir: str


def fetch_checkpoint(
    model_id: str, scheme: str, source: str, *, revision: str | None = None, table_path: Path | None = None
) -> tuple[str, str, str | None]:
    """The local directory of the weights a quantized variant starts from.

    ``source="qat"``: ``model_id``'s QAT checkpoint for ``scheme``; ``"ptq"``: ``model_id``
    itself. A local directory is used as is; a hub id goes through
    ``huggingface_hub.snapshot_download`` (offline it resolves the local cache).

    Returns:
        (local directory, checkpoint repo id or path, revision or None)

    Raises:
        ConfigError: no QAT checkpoint for this model and scheme (suggests ``--quant-source ptq``).
        DataError: the checkpoint is neither local nor available from the hub or its cache.
    """
    import huggingface_hub

    if source == "qat":
        entry = qat_checkpoint(model_id, scheme, table_path)
        repo, rev = entry.repo, entry.revision
    else:
        repo, rev = model_id, revision
    if Path(repo).is_dir():
        return str(repo), repo, rev
    try:
        local_dir = huggingface_hub.snapshot_download(repo_id=repo, revision=rev)
    except (OSError, ValueError) as exc:  # every huggingface_hub "not available" error is an OSError
        raise DataError(
            f"--quant-source {source}: cannot get checkpoint {repo!r}"
            f"{f' at revision {rev}' if rev else ''} from the Hugging Face hub or its local cache "
            f"({type(exc).__name__}: {exc}). Download it once with network access, or point "
            f"HF_HOME at a cache that holds it."
        ) from exc
    return str(local_dir), repo, rev


def load_quantized_model(
    model_id: str,
    scheme: str,
    source: str,
    *,
    revision: str | None = None,
    device: str = "cpu",
    table_path: Path | None = None,
    model_kwargs: dict[str, Any] | None = None,
) -> QuantizedModel:
    """Load the weights for a quantized variant and fake-quantize them.

    ``source="qat"`` loads ``model_id``'s QAT checkpoint for ``scheme`` (from
    ``tasks/qat_checkpoints.toml``); ``source="ptq"`` loads ``model_id`` itself at
    ``revision``. A local directory is used as is; a hub id goes through
    ``huggingface_hub.snapshot_download`` (offline, it resolves the local cache) and the
    model is loaded from the returned directory.

    Raises:
        ConfigError: unknown scheme/source; no QAT checkpoint (suggests ``--quant-source ptq``).
        DataError: the checkpoint is neither a local directory nor available from the hub/cache.
    """
    from sentence_transformers import SentenceTransformer

    scheme = parse_scheme(scheme)
    source = parse_source(source)
    local_dir, repo, rev = fetch_checkpoint(model_id, scheme, source, revision=revision, table_path=table_path)
    model = SentenceTransformer(local_dir, device=device, model_kwargs=model_kwargs)
    report = quantize_model(model, scheme)
    return QuantizedModel(model=model, report=report, checkpoint=repo, revision=rev, local_dir=local_dir)
