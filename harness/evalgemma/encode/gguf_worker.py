"""The process llama.cpp runs in: ``python -m evalgemma.encode.gguf_worker``.

llama.cpp stops the whole process on an internal check (``GGML_ASSERT`` → ``abort()``), e.g. on
some small model shapes or a damaged file. It therefore never runs in evalgemma's own process:
``gguf_backend.GgufWorker`` starts this module, talks to it over its stdin/stdout (length-prefixed
frames: a JSON message, numpy arrays carried beside it as raw little-endian bytes, never pickles),
and turns a dead worker into a ``DataError``
carrying the last lines llama.cpp wrote to stderr.

Requests (``{"op": ...}``) and their answers:

* ``load`` (path, n_ctx, n_batch, n_threads) → metadata, n_embd, pooling, sequences per batch, special tokens;
* ``tokenize`` (texts) → token ids per text, without special tokens (the caller truncates and adds them);
* ``embed`` (token lists, each already a whole sequence) → float32 ``[n, n_embd]`` (pooled, not normalised);
* ``quantize`` (src, dst, ftype, threads) → llama.cpp's ``llama_model_quantize`` return code;
* ``exit``.

Only numpy and llama_cpp are imported here (no evalgemma module), so the worker starts quickly.
"""

from __future__ import annotations

import ctypes
import json
import os
import struct
import sys
from typing import Any, BinaryIO

_LEVELS_KEPT = (2, 3)  # GGML_LOG_LEVEL_WARN, GGML_LOG_LEVEL_ERROR: written to stderr; info/debug dropped
_last_level = 0


def _encode(message: Any, blobs: list[bytes]) -> Any:
    """``message`` with each numpy array replaced by a reference to its bytes in ``blobs``."""
    if hasattr(message, "dtype") and hasattr(message, "tobytes"):
        if getattr(message, "shape", ()) == ():
            return message.item()  # a numpy scalar
        blobs.append(message.astype(message.dtype.newbyteorder("<"), copy=False).tobytes(order="C"))
        return {"__ndarray__": len(blobs) - 1, "dtype": message.dtype.newbyteorder("<").str, "shape": list(message.shape)}
    if isinstance(message, dict):
        return {str(k): _encode(v, blobs) for k, v in message.items()}
    if isinstance(message, (list, tuple)):
        return [_encode(v, blobs) for v in message]
    return message


def _decode(message: Any, blobs: list[bytes]) -> Any:
    if isinstance(message, dict):
        if "__ndarray__" in message:
            import numpy as np

            return np.frombuffer(blobs[message["__ndarray__"]], dtype=np.dtype(message["dtype"])).reshape(message["shape"]).copy()
        return {k: _decode(v, blobs) for k, v in message.items()}
    if isinstance(message, list):
        return [_decode(v, blobs) for v in message]
    return message


def send(stream: BinaryIO, message: Any) -> None:
    """One frame: ``<Q>`` JSON length, the JSON, ``<Q>`` array count, then ``<Q>`` length + bytes per array."""
    blobs: list[bytes] = []
    head = json.dumps(_encode(message, blobs), ensure_ascii=False).encode("utf-8")
    parts = [struct.pack("<Q", len(head)), head, struct.pack("<Q", len(blobs))]
    for blob in blobs:
        parts += [struct.pack("<Q", len(blob)), blob]
    stream.write(b"".join(parts))
    stream.flush()


def _read(stream: BinaryIO, size: int) -> bytes | None:
    data = stream.read(size)
    return data if len(data) == size else None


def receive(stream: BinaryIO) -> Any:
    """The next message, or None at end of stream (the other side is gone)."""
    head = _read(stream, 8)
    if head is None:
        return None
    body = _read(stream, struct.unpack("<Q", head)[0])
    count = _read(stream, 8) if body is not None else None
    if body is None or count is None:
        return None
    blobs: list[bytes] = []
    for _ in range(struct.unpack("<Q", count)[0]):
        size = _read(stream, 8)
        blob = _read(stream, struct.unpack("<Q", size)[0]) if size is not None else None
        if blob is None:
            return None
        blobs.append(blob)
    return _decode(json.loads(body.decode("utf-8")), blobs)


class _Runtime:
    def __init__(self) -> None:
        import llama_cpp

        self.lib = llama_cpp
        self.llm: Any = None
        self._install_log()

    def _install_log(self) -> None:
        lib = self.lib

        @lib.llama_log_callback  # type: ignore[untyped-decorator]
        def callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
            global _last_level
            level = _last_level if level == 5 else level  # GGML_LOG_LEVEL_CONT continues the previous line
            _last_level = level
            if level in _LEVELS_KEPT:
                sys.stderr.write(text.decode("utf-8", "replace"))
                sys.stderr.flush()

        self._callback = callback  # keep a reference: llama.cpp holds the pointer
        lib.llama_log_set(callback, ctypes.c_void_p(0))

    def load(self, path: str, n_ctx: int, n_batch: int, n_threads: int | None) -> dict[str, Any]:
        lib = self.lib
        self.llm = None
        llm = lib.Llama(
            model_path=path, embedding=True, n_ctx=n_ctx, n_batch=n_batch, n_ubatch=n_batch,
            n_threads=n_threads, n_threads_batch=n_threads, n_gpu_layers=0, use_mmap=True, verbose=True,
            logits_all=False,
        )
        self._install_log()  # Llama(verbose=True) leaves llama-cpp-python's logger in place; ours filters it
        self.llm = llm
        vocab = llm._model.vocab
        return {
            "metadata": dict(llm.metadata),
            "n_embd": int(llm.n_embd()),
            "pooling": int(llm.pooling_type()),
            "n_ctx_train": int(llm._model.n_ctx_train()),
            "n_seq_max": int(llm.context_params.n_seq_max),
            "add_bos": bool(lib.llama_vocab_get_add_bos(vocab)),
            "add_eos": bool(lib.llama_vocab_get_add_eos(vocab)),
            "specials_empty": list(llm._model.tokenize(b"", True, False)),
            "bos": int(lib.llama_vocab_bos(vocab)),
            "eos": int(lib.llama_vocab_eos(vocab)),
            "sep": int(lib.llama_vocab_sep(vocab)),
        }

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        model = self.llm._model
        return [list(model.tokenize(t.encode("utf-8"), False, False)) for t in texts]

    def embed(self, sequences: list[list[int]]) -> Any:
        import numpy as np

        llm, lib = self.llm, self.lib
        n_embd = llm.n_embd()
        out = np.empty((len(sequences), n_embd), dtype=np.float32)
        batch = llm._batch
        batch.reset()
        for i, tokens in enumerate(sequences):
            batch.add_sequence(tokens, i, True)
        llm._ctx.kv_cache_clear()
        llm._ctx.decode(batch)
        for i in range(len(sequences)):
            ptr = lib.llama_get_embeddings_seq(llm._ctx.ctx, i)
            if not ptr:
                raise RuntimeError(f"llama_get_embeddings_seq returned no vector for sequence {i} (the model has no pooling)")
            out[i] = np.ctypeslib.as_array(ptr, shape=(n_embd,))
        batch.reset()
        return out

    def quantize(self, src: str, dst: str, ftype: int, threads: int) -> int:
        lib = self.lib
        params = lib.llama_model_quantize_default_params()
        params.ftype = ftype
        params.nthread = threads
        return int(lib.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params)))


def main() -> None:
    # The protocol owns the original stdout; anything llama.cpp or Python prints goes to stderr.
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    requests = sys.stdin.buffer
    try:
        runtime = _Runtime()
    except ImportError as exc:
        send(channel, {"error": f"llama_cpp cannot be imported ({exc})", "kind": "import"})
        return
    send(channel, {"ok": True, "version": getattr(runtime.lib, "__version__", "?")})
    while True:
        request = receive(requests)
        if request is None or request.get("op") == "exit":
            return
        op = request.pop("op")
        try:
            result = getattr(runtime, op)(**request)
        except Exception as exc:  # llama-cpp-python raises ValueError/RuntimeError; report every kind to the parent
            send(channel, {"error": f"{type(exc).__name__}: {exc}"})
            continue
        send(channel, {"ok": True, "result": result})


if __name__ == "__main__":
    main()
