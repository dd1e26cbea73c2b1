"""Variant specs and their identities.

A *weight variant* (``WeightSpec``) is everything that changes a full-dimension vector:
model, revision, dtype, max length, weight quantization. A *variant* (``VariantSpec``)
adds what is derived from the vectors (Matryoshka dim, embedding dtype and its
calibration) and the prompts. Keys are hashes of the identity fields in canonical JSON;
runtime fields (batch size, device, search chunk) are recorded but never part of a key.
The key prefix (``v1-``) is bumped whenever the identity field list changes.

The runtime that computes the vectors (``backend``) and the sha256 of the file it runs
(``artifact_sha256``) are identity too. They joined the list with the torch backend as their
default, and a torch weight variant hashes exactly the fields it hashed before (so stored keys and
the committed baselines still match); any other backend adds both fields to the hash, so an ONNX
variant never shares a key, a cache namespace or a stored cell with its torch twin.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from evalgemma.errors import Choice

KEY_VERSION = "v1"
#: The backend whose weight keys hash only ``WEIGHT_IDENTITY_FIELDS`` (the keys stored before backends existed).
TORCH_BACKEND = "torch"



class Dtype(Choice):
    """Model dtype."""

    FLOAT32 = "float32"
    BFLOAT16 = "bfloat16"
    FLOAT16 = "float16"  # accepted for non-Gemma models; refused for Gemma 3 (activations overflow)


class Quant(Choice):
    """Weight quantization format."""

    # From most to fewest bits per weight (charts draw them in this order).
    NONE = "none"
    Q8_0 = "q8_0"
    MIXED = "mixed"
    Q4_0 = "q4_0"


class QuantSource(Choice):
    """Weight quantization source."""

    NONE = "none"
    QAT = "qat"
    PTQ = "ptq"


class EmbedDtype(Choice):
    """Embedding dtype."""

    FLOAT32 = "float32"
    INT8 = "int8"
    UINT8 = "uint8"
    BINARY = "binary"
    UBINARY = "ubinary"


#: Every field is identity or runtime; tests fail on an unclassified field.
WEIGHT_IDENTITY_FIELDS = ("model", "revision", "dtype", "max_seq_length", "quant", "quant_source", "quant_checkpoint")
#: Identity fields hashed only when ``backend`` is not torch (see the module docstring).
BACKEND_IDENTITY_FIELDS = ("backend", "artifact_sha256")
VARIANT_IDENTITY_FIELDS = ("weight_key", "prompt_hash", "dim", "embed_dtype", "calibration")
RUNTIME_FIELDS = ("batch_size", "device", "search_chunk", "label", "short_name", "prompts", "prompts_disabled")


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: the input of every identity hash."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def short_hash(value: Any, n: int = 12) -> str:
    """First ``n`` hex digits of sha256 of the canonical JSON of ``value``."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()[:n]


def prompt_hash(prompts: dict[str, str]) -> str:
    """Identity of a prompt dictionary (empty dict = no prompts)."""
    return short_hash(prompts, 16) if prompts else "none"


@dataclass(frozen=True)
class WeightSpec:
    """Everything that changes a full vector (the embedding-cache namespace)."""

    model: str
    revision: str
    dtype: Dtype
    max_seq_length: int
    quant: str = Quant.NONE  # a format of ``backend`` (torch: a ``Quant``; see ``evalgemma.encode.backends``)
    quant_source: QuantSource = QuantSource.NONE
    quant_checkpoint: str = ""  # the checkpoint id (and revision) the weights came from when it is not `model`
    backend: str = TORCH_BACKEND  # a name in ``evalgemma.encode.backends.BACKENDS``
    artifact_sha256: str = ""  # sha256 of the file a non-torch backend runs ("" for torch)

    @property
    def key(self) -> str:
        """``v1-`` + 12 hex digits over the identity fields (the backend fields only when not torch)."""
        names = WEIGHT_IDENTITY_FIELDS + (BACKEND_IDENTITY_FIELDS if self.backend != TORCH_BACKEND else ())
        return f"{KEY_VERSION}-" + short_hash({f: getattr(self, f) for f in names})


@dataclass(frozen=True)
class VariantSpec:
    """One row-group of the store: a weight variant viewed at a dim and an embedding dtype."""

    weight: WeightSpec
    short_name: str
    prompts: tuple[tuple[str, str], ...]  # the model's prompt dict as sorted pairs ((), = none)
    dim: int
    embed_dtype: EmbedDtype = EmbedDtype.FLOAT32
    calibration: str = ""  # name of the calibration set for int8/uint8
    prompts_disabled: bool = False  # --no-prompts on a model that has prompts (identity: prompt_hash)

    @property
    def prompt_hash(self) -> str:
        return prompt_hash(dict(self.prompts))

    @property
    def key(self) -> str:
        ident = {
            "weight_key": self.weight.key,
            "prompt_hash": self.prompt_hash,
            "dim": self.dim,
            "embed_dtype": self.embed_dtype,
            "calibration": self.calibration,
        }
        return f"{KEY_VERSION}-" + short_hash(ident)

    @property
    def label(self) -> str:
        """Readable label, e.g. ``embeddinggemma-300m · bf16 · q4_0(qat) · 128d · int8`` or
        ``all-MiniLM-L6-v2 · onnx int8 · 384d`` (a non-torch backend is named, with its quantization)."""
        parts = [self.short_name]
        if self.weight.dtype != "float32":
            parts.append({"bfloat16": "bf16", "float16": "fp16"}[self.weight.dtype])
        if self.weight.backend != TORCH_BACKEND:
            parts.append(self.weight.backend + (f" {self.weight.quant}" if self.weight.quant != "none" else ""))
        elif self.weight.quant != "none":
            parts.append(f"{self.weight.quant}({self.weight.quant_source})")
        if self.prompts_disabled:
            parts.append("no-prompts")
        parts.append(f"{self.dim}d")
        if self.embed_dtype != "float32":
            parts.append(self.embed_dtype)
        return " · ".join(parts)

    def identity(self) -> dict[str, Any]:
        """The fields stored with every row of this variant."""
        w = asdict(self.weight)
        return {
            **w,
            "weight_key": self.weight.key,
            "variant_key": self.key,
            "variant": self.label,
            "dim": self.dim,
            "embed_dtype": self.embed_dtype,
            "prompt_hash": self.prompt_hash,
            "prompt_set": "model" if self.prompts else "none",
        }


def unclassified_fields() -> set[str]:
    """Dataclass fields that are neither identity nor runtime (must be empty)."""
    names = {f.name for f in fields(WeightSpec)} | {f.name for f in fields(VariantSpec)}
    classified = set(WEIGHT_IDENTITY_FIELDS) | set(BACKEND_IDENTITY_FIELDS) | set(VARIANT_IDENTITY_FIELDS) | set(RUNTIME_FIELDS) | {"weight"}
    return names - classified
