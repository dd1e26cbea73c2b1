"""Load a sentence-transformers model for a weight variant and encode texts once.

Two ways to encode, both returning the model's full-dimension float32 vectors (after every
module of the pipeline, Normalize included):

* ``Encoder.encode(texts, prompt)`` remembers each vector by the sha256 of (weight key,
  prompt, text): every distinct input is encoded once, whatever task or view asks again
  (XTREME-UP, calibration).
* ``Encoder.encode_call(texts, prompt, side)`` returns exactly what one sentence-transformers
  call on this list returns, bit for bit: the call mteb's own wrapper makes. A float32 vector
  depends on the batch its text was padded with (BLAS blocking and reductions change with the
  padded shape; on all-MiniLM-L6-v2 about one STSBenchmark vector in eight changes in its last
  bits when the batches change), so a text's vector from another call is not the vector this
  call computes. The cache unit is therefore the call: row ``i`` is keyed by the sha256 of
  (weight key, side, prompt, batch size, the whole ordered text list) and ``i``. Every view
  (dims, embedding dtypes) of a unit and every rerun makes the same calls and hits; a text
  repeated by another call is encoded again.

torch and sentence-transformers are imported here only.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from evalgemma.encode.models import ResolvedModel
from evalgemma.errors import ConfigError
from evalgemma.variants.spec import WeightSpec

log = logging.getLogger(__name__)

FP16_REFUSAL = (
    "--dtype float16 is refused for Gemma 3 based models such as EmbeddingGemma: their activations "
    "reach ~8e5, beyond float16's maximum 65504, so outputs overflow to inf/NaN (the model card: "
    "'activations do not support float16'). Use --dtype bfloat16 (the paper's protocol) or float32."
)


def input_key(weight_key: str, prompt: str | None, text: str) -> str:
    """Content address of one encoder input: everything that changes its vector."""
    h = hashlib.sha256()
    for part in (weight_key, prompt or "", text):
        h.update(part.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()


#: The side of an asymmetric encode: ``encode_query``, ``encode_document``, or plain ``encode``.
Side = Literal["query", "document"] | None


def call_key(weight_key: str, side: Side, prompt: str | None, batch_size: int, texts: Sequence[str]) -> str:
    """Content address of one whole encode call: everything that changes any of its vectors.

    The batch size and the complete ordered list decide which texts share a padded batch,
    so both are part of the address (see the module docstring).
    """
    h = hashlib.sha256()
    for part in ("call/v1", weight_key, side or "", prompt or "", str(batch_size), str(len(texts))):
        h.update(part.encode("utf-8"))
        h.update(b"\x00")
    for text in texts:
        h.update(hashlib.sha256(text.encode("utf-8")).digest())
    return h.hexdigest()


def call_row_keys(key: str, n: int) -> list[str]:
    """The cache key of each row of a call (duplicates in a call may differ, so rows are keyed by position)."""
    return [hashlib.sha256(f"{key}:{i}".encode("ascii")).hexdigest() for i in range(n)]


class VectorCache(Protocol):
    """A persistent store of full vectors by input key (see ``embedding_cache``)."""

    def get_many(self, namespace: str, keys: Sequence[str]) -> dict[str, np.ndarray]: ...

    def put_many(self, namespace: str, items: dict[str, np.ndarray]) -> None: ...


def resolve_device(device: str) -> str:
    """``auto`` → cuda, then mps, then cpu; an unavailable explicit device is a ConfigError."""
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available (use --device cpu or auto)")
    if device == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise ConfigError("--device mps: MPS is not available (use --device cpu or auto)")
    if device not in ("cpu", "cuda", "mps") and not device.startswith("cuda:"):
        raise ConfigError(f"--device {device}: expected auto, cpu, cuda, cuda:N or mps")
    return device


def set_determinism(seed: int = 42) -> None:
    """Fixed seeds and deterministic kernels, so two CPU runs give identical scores."""
    import random

    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def _has_pickle_only_weights(directory: Path) -> bool:
    """True if any folder of the model (root or a module folder such as ``2_Dense``) has
    pickle-based weight files and no safetensors file of its own."""
    folders = {p.parent for p in directory.rglob("*") if p.is_file() and p.suffix in _PICKLE_SUFFIXES}
    return any(not any(folder.glob("*.safetensors")) for folder in folders)


def load_sentence_transformer(
    model: ResolvedModel,
    weight: WeightSpec,
    *,
    device: str,
    load_path: str | None = None,
    trust_remote_code: bool = False,
    allow_pickle_weights: bool = False,
) -> Any:
    """Load the sentence-transformers pipeline for a weight variant (all modules, in order).

    Raises:
        ConfigError: float16 on a Gemma 3 model; pickle-only weights without opt-in.
    """
    import torch
    from sentence_transformers import SentenceTransformer

    if weight.dtype == "float16" and model.is_gemma3:
        raise ConfigError(FP16_REFUSAL)
    path = load_path or model.load_path
    local = Path(path)
    if local.is_dir() and _has_pickle_only_weights(local) and not allow_pickle_weights:
        raise ConfigError(
            f"--model {path}: only pickle-based weight files (.bin/.pt) were found; loading them can run "
            "arbitrary code. Convert to safetensors, or pass --allow-pickle-weights if you trust the source."
        )
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[weight.dtype]
    kwargs: dict[str, Any] = {
        "device": device,
        "trust_remote_code": trust_remote_code,
        "model_kwargs": {"dtype": torch_dtype, "use_safetensors": not allow_pickle_weights},
    }
    if not model.is_local and not local.is_dir():
        kwargs["revision"] = model.revision
    st = SentenceTransformer(path, **kwargs)
    st.max_seq_length = weight.max_seq_length
    st.eval()
    return st


@dataclass
class EncodeStats:
    """Counts for progress and benchmarks."""

    texts_requested: int = 0
    texts_encoded: int = 0
    cache_hits_memory: int = 0
    cache_hits_disk: int = 0
    encode_seconds: float = 0.0


@dataclass
class Encoder:
    """Encode texts once per (weight variant, prompt, text); serve every view from that vector."""

    st_model: Any
    weight_key: str
    batch_size: int = 32
    disk_cache: VectorCache | None = None
    show_progress: bool = False
    stats: EncodeStats = field(default_factory=EncodeStats)
    _memory: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    on_encode: Callable[[list[str], str | None], None] | None = None  # test hook: sees every batch sent to the model
    checkpoint_rows: int = 4096  # runtime: texts encoded between two disk-cache writes

    @property
    def full_dim(self) -> int:
        dim = self.st_model.get_embedding_dimension() if hasattr(self.st_model, "get_embedding_dimension") else self.st_model.get_sentence_embedding_dimension()
        return int(dim)

    def encode(self, texts: Sequence[str], prompt: str | None) -> np.ndarray:
        """Full-dimension float32 vectors of ``prompt + text`` for each text, in order."""
        keys = [input_key(self.weight_key, prompt, t) for t in texts]
        self.stats.texts_requested += len(texts)
        missing = [k for k in dict.fromkeys(keys) if k not in self._memory]
        self.stats.cache_hits_memory += len(keys) - len(missing)
        if missing and self.disk_cache is not None:
            found = self.disk_cache.get_many(self.weight_key, missing)
            self._memory.update(found)
            self.stats.cache_hits_disk += len(found)
            missing = [k for k in missing if k not in found]
        if missing:
            by_key = dict(zip(keys, texts, strict=True))
            # Longest first, as sentence-transformers orders batches; chunks in this global order
            # (a multiple of batch_size) give the same batches as one call, and each chunk reaches
            # the disk cache as it finishes, so a killed run keeps what it encoded.
            missing.sort(key=lambda k: -len(by_key[k]))
            step = max(1, self.checkpoint_rows // self.batch_size) * self.batch_size if self.disk_cache is not None else len(missing)
            for start in range(0, len(missing), step):
                chunk = missing[start : start + step]
                vectors = self._encode_model([by_key[k] for k in chunk], prompt)
                fresh = {k: vectors[i] for i, k in enumerate(chunk)}
                self._memory.update(fresh)
                if self.disk_cache is not None:
                    self.disk_cache.put_many(self.weight_key, fresh)
        if not keys:
            return np.zeros((0, self.full_dim), dtype=np.float32)
        return np.stack([self._memory[k] for k in keys]).astype(np.float32, copy=False)

    def encode_call(self, texts: Sequence[str], prompt: str | None, side: Side = None) -> np.ndarray:
        """The float32 vectors one sentence-transformers call returns for ``texts``, bit for bit.

        The call is ``encode_query`` / ``encode_document`` / ``encode`` (by ``side``) on the whole
        list with ``prompt`` and ``batch_size``: what mteb's ``SentenceTransformerEncoderWrapper``
        does. Served from memory or the disk cache only when every row of this exact call is
        there; otherwise the whole call is encoded again (a subset would be batched differently).
        A killed run loses at most the call in progress.
        """
        key = call_key(self.weight_key, side, prompt, self.batch_size, texts)
        keys = call_row_keys(key, len(texts))
        self.stats.texts_requested += len(texts)
        if not keys:
            return np.zeros((0, self.full_dim), dtype=np.float32)
        found = {k: self._memory[k] for k in keys if k in self._memory}
        if len(found) == len(keys):
            self.stats.cache_hits_memory += len(keys)
            return np.stack([found[k] for k in keys]).astype(np.float32, copy=False)
        if self.disk_cache is not None:
            on_disk = self.disk_cache.get_many(self.weight_key, keys)
            if len(on_disk) == len(keys):
                self._memory.update(on_disk)
                self.stats.cache_hits_disk += len(keys)
                return np.stack([on_disk[k] for k in keys]).astype(np.float32, copy=False)
        vectors = self._encode_model(list(texts), prompt, side)
        fresh = {k: vectors[i] for i, k in enumerate(keys)}
        self._memory.update(fresh)
        if self.disk_cache is not None:
            self.disk_cache.put_many(self.weight_key, fresh)
        return vectors

    def clear_memory(self) -> None:
        """Drop the in-memory vectors (kept per unit: every dim and dtype of a task shares them;
        across tasks the on-disk cache serves repeats, so memory stays bounded by one task)."""
        self._memory.clear()

    def _encode_model(self, texts: list[str], prompt: str | None, side: Side = None) -> np.ndarray:
        import torch

        if self.on_encode is not None:
            self.on_encode(texts, prompt)
        # encode_query / encode_document route Router models and fall back to the model's own
        # "query" / "document" prompt when ``prompt`` is None, as mteb's wrapper relies on.
        method = self.st_model.encode if side is None else getattr(self.st_model, f"encode_{side}")
        start = time.perf_counter()
        with torch.inference_mode():
            out = method(
                texts,
                prompt=prompt,
                batch_size=self.batch_size,
                convert_to_numpy=True,
                show_progress_bar=self.show_progress,
            )
        elapsed = time.perf_counter() - start
        self.stats.encode_seconds += elapsed
        self.stats.texts_encoded += len(texts)
        log.info("encoded %d texts in %.1f s (%.0f texts/s)", len(texts), elapsed, len(texts) / max(elapsed, 1e-9))
        return np.asarray(out, dtype=np.float32)
