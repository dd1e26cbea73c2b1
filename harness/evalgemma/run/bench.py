"""Measured cost per variant (``evalgemma bench``): bytes, throughput, latency, load time, peak memory.

The variants are exactly those ``evalgemma run`` builds from the same options
(:func:`evalgemma.run.plan.plan_variants`), so a bench row has the identity of the variant's result rows.
Each variant is measured in a fresh process (``multiprocessing`` forkserver, see ``_process_context``), so one variant's peak memory
and warm caches never reach the next; the encoder is built by the backend's loader as ``run`` builds it,
without the embedding cache, and the timed path is encode + the variant's view (truncation, then
int8/binary quantization: ``evalgemma.variants.views.make_view``, the function ``run`` scores with).

Text sets are fixed and recorded by count and sha256 (``bench_texts``): *short* = the smoke suite's
document texts (``calibration_texts``: 360 real sentences in 12 languages, 84 characters on average);
*long* = consecutive short texts joined until each exceeds ``LONG_MIN_CHARS`` characters (over 512
tokens for any of the tokenizers evalgemma runs), encoded up to the variant's ``max_seq_length``.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from evalgemma.errors import ConfigError, EvalgemmaError, IncompleteRun
from evalgemma.run.config import RunConfig
from evalgemma.variants.spec import VariantSpec

#: A long text is consecutive short texts joined (with a space) until it has more than this many characters.
LONG_MIN_CHARS = 4096
#: How repetitions combine into the stored throughput.
THROUGHPUT_STAT = "median"

Event = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class BenchOptions:
    """How much to measure (recorded with every row; never part of an identity)."""

    repeat: int = 3  # timed repetitions of each text set; the median is stored
    warmup: int = 1  # untimed batches before each timed set (and untimed single calls before the latency calls)
    latency_n: int = 50  # single-text calls for p50/p95
    long_n: int = 64  # long texts (over LONG_MIN_CHARS characters each)
    short_n: int = 256  # short texts (the first of the smoke suite's document texts)

    def check(self) -> BenchOptions:
        """``self`` if every count is in range, else a ConfigError naming the flag."""
        for flag, value, low in (("--repeat", self.repeat, 1), ("--warmup", self.warmup, 0), ("--latency-n", self.latency_n, 2),
                                 ("--long-n", self.long_n, 1), ("--short-n", self.short_n, 1)):
            if value < low:
                raise ConfigError(f"{flag} {value}: must be at least {low}")
        return self


class BenchTexts(NamedTuple):
    """A fixed text set and its identity."""

    texts: tuple[str, ...]
    sha256: str


class BenchResult(NamedTuple):
    """One stored measurement."""

    row: dict[str, Any]
    path: Path


def texts_sha256(texts: Sequence[str]) -> str:
    """sha256 of the canonical JSON list of ``texts`` (order matters)."""
    return hashlib.sha256(json.dumps(list(texts), ensure_ascii=False, separators=(",", ":")).encode("utf-8")).hexdigest()


def bench_texts(long_n: int, short_n: int) -> tuple[BenchTexts, BenchTexts]:
    """The long and short text sets (see the module docstring).

    Long text ``i`` starts at short text ``7·i`` (mod 360) and takes the next ones, wrapping around,
    until it exceeds ``LONG_MIN_CHARS`` characters; so the long texts differ from one another.

    Raises:
        ConfigError: ``short_n`` exceeds the texts there are.
    """
    from evalgemma.benchmarks.smoke.tasks import calibration_texts

    pool = calibration_texts()
    if short_n > len(pool):
        raise ConfigError(f"--short-n {short_n}: the short set has {len(pool)} texts")
    short = tuple(pool[:short_n])
    long: list[str] = []
    for i in range(long_n):
        parts: list[str] = []
        j = 7 * i
        while sum(len(p) + 1 for p in parts) - 1 <= LONG_MIN_CHARS:
            parts.append(pool[j % len(pool)])
            j += 1
        long.append(" ".join(parts))
    return BenchTexts(tuple(long), texts_sha256(long)), BenchTexts(short, texts_sha256(short))


def plan_bench(config: RunConfig, options: BenchOptions) -> tuple[Any, list[VariantSpec], list[str]]:
    """The resolved model, the variants ``run`` would build from ``config`` and the planning notes.

    Raises:
        ConfigError: a bad variant option or count (as ``run`` reports it).
        StoreError: the store is not writable.
    """
    from evalgemma.run.plan import plan_variants
    from evalgemma.store.parquet import ensure_writable

    options.check()
    model, _, variants, notes = plan_variants(config)
    ensure_writable(config.runtime.store)
    return model, variants, notes


def run_bench(config: RunConfig, options: BenchOptions, *, on_event: Event | None = None) -> list[BenchResult]:
    """Measure every variant of ``config`` in its own fresh process and store each row as it finishes.

    Raises:
        ConfigError, StoreError: as :func:`plan_bench`.
        IncompleteRun: some variants failed (the others are stored).
    """
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    from evalgemma.provenance import git_commit, utc_now, versions
    from evalgemma.run.persist import IDENTITY_COLUMNS
    from evalgemma.store.bench import new_bench_id, write_bench

    emit = on_event or (lambda kind, data: None)
    model, variants, notes = plan_bench(config, options)
    for note in notes:
        emit("note", {"text": note})
    emit("plan", {"variants": [v.label for v in variants]})
    provenance = {**versions(), "git_commit": git_commit()}
    out: list[BenchResult] = []
    failures: list[str] = []
    context = _process_context(variants)
    for variant in variants:
        emit("variant-start", {"variant": variant.label})
        started = utc_now()
        try:
            with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
                figures = pool.submit(measure_variant, config, model, variant, options).result()
        except (EvalgemmaError, BrokenProcessPool, OSError, RuntimeError, ValueError) as exc:
            failures.append(f"{variant.label}: {type(exc).__name__}: {exc}")
            emit("variant-failed", {"variant": variant.label, "error": f"{type(exc).__name__}: {exc}"})
            continue
        finished = utc_now()
        ident = variant.identity()
        row = {
            **{k: ident[k] for k in IDENTITY_COLUMNS}, **provenance, **figures,
            "calibration": variant.calibration, "started_at": started, "finished_at": finished, "bench_id": new_bench_id(finished),
        }
        path = write_bench(config.runtime.store, row)
        out.append(BenchResult(row, path))
        emit("variant-done", {"variant": variant.label, "row": row, "path": path})
    if failures:
        raise IncompleteRun(f"{len(failures)} of {len(variants)} variant(s) failed, {len(out)} stored: " + "; ".join(failures[:5]))
    return out


def _process_context(variants: Sequence[VariantSpec]) -> Any:
    """Where each variant is measured: a fresh process forked from a server that has imported the
    backends' libraries and nothing else (no model, no tensor), so a variant starts in a second
    instead of re-importing torch, and no variant's memory reaches the next; plain spawn where
    fork servers do not exist (Windows)."""
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    modules = ["torch", "evalgemma.run.bench", "evalgemma.encode.encoder", "evalgemma.encode.backends"]
    if any(v.weight.backend == "torch" for v in variants):
        modules.append("sentence_transformers")
    context.set_forkserver_preload(modules)
    return context


def measure_variant(config: RunConfig, model: Any, variant: VariantSpec, options: BenchOptions) -> dict[str, Any]:
    """The figures of one variant, measured in this process (``run_bench`` calls it in a fresh one).

    Returns the runtime and figure columns of a bench row (identity and provenance are the caller's).
    """
    import resource

    import numpy as np

    from evalgemma.benchmarks.smoke.tasks import calibration_texts
    from evalgemma.encode.backends import LoadRequest, get_backend
    from evalgemma.run.local import effective_batch_size
    from evalgemma.variants.embedding_quant import embedding_bytes
    from evalgemma.variants.views import make_view

    weight = variant.weight
    import torch

    from evalgemma.encode.encoder import resolve_device, set_determinism

    device = resolve_device(config.runtime.device)
    set_determinism()
    cuda = device.startswith("cuda")
    batch = effective_batch_size(config.runtime.batch_size, device)
    runtime = config.runtime
    request = LoadRequest(model, weight, device=device, batch_size=batch, disk_cache=None, show_progress=False,
                          trust_remote_code=runtime.trust_remote_code, allow_pickle_weights=runtime.allow_pickle_weights,
                          artifact_dir=runtime.artifact_dir)

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    t0 = time.perf_counter()
    loaded = get_backend(weight.backend).load(request)
    sync()
    load_s = time.perf_counter() - t0
    encoder = loaded.encoder
    calibration = encoder.encode(calibration_texts(), None) if variant.embed_dtype in ("int8", "uint8") else None
    view, _ = make_view(variant, encoder.full_dim, calibration)
    prompt = dict(variant.prompts).get("document")
    long, short = bench_texts(options.long_n, options.short_n)

    def encode(texts: Sequence[str]) -> float:
        encoder.clear_memory()  # every timed call encodes: nothing is served from memory
        start = time.perf_counter()
        vectors = view(encoder.encode(list(texts), prompt))
        sync()
        elapsed = time.perf_counter() - start
        if len(vectors) != len(texts):
            raise RuntimeError(f"{variant.label}: {len(vectors)} vectors for {len(texts)} texts")
        return elapsed

    def throughput(texts: Sequence[str]) -> float:
        if options.warmup:
            encode(texts[: batch * options.warmup])
        seconds = [encode(texts) for _ in range(options.repeat)]
        return len(texts) / float(np.median(seconds))

    texts_per_s_long = throughput(long.texts)
    texts_per_s_short = throughput(short.texts)
    for i in range(options.warmup):
        encode([short.texts[i % len(short.texts)]])
    latencies = [1000.0 * encode([short.texts[i % len(short.texts)]]) for i in range(options.latency_n)]
    dim_bytes = embedding_bytes(variant.dim, variant.embed_dtype)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "device": device, "batch_size": batch, "torch_threads": torch.get_num_threads(), "prompt": prompt or "",
        "quant_tensors": str(loaded.info.get("quant_tensors", "[]")), "weight_bytes": int(loaded.info["weight_bytes"]),
        "embedding_bytes": int(dim_bytes), "index_bytes_per_million": int(dim_bytes) * 1_000_000,
        "texts_per_s_long": texts_per_s_long, "texts_per_s_short": texts_per_s_short, "throughput_stat": THROUGHPUT_STAT,
        "latency_p50_ms": float(np.percentile(latencies, 50)), "latency_p95_ms": float(np.percentile(latencies, 95)),
        "latency_n": options.latency_n, "load_s": load_s,
        "peak_rss_bytes": int(rss) * (1 if sys.platform == "darwin" else 1024),  # ru_maxrss: KiB on Linux, bytes on macOS
        "peak_gpu_bytes": float(torch.cuda.max_memory_allocated(device)) if cuda else math.nan,
        "repetitions": options.repeat, "warmup": options.warmup,
        "long_texts_n": len(long.texts), "long_texts_sha256": long.sha256, "long_tokens_mean": _tokens_mean(encoder, long.texts, prompt),
        "short_texts_n": len(short.texts), "short_texts_sha256": short.sha256, "short_tokens_mean": _tokens_mean(encoder, short.texts, prompt),
    }


def _tokens_mean(encoder: Any, texts: Sequence[str], prompt: str | None) -> float:
    """Mean tokens per text as the model sees them (prompt included, truncated at max_seq_length); NaN
    when the backend has no sentence-transformers tokenizer to ask."""
    model = encoder.st_model
    tokenize = getattr(model, "preprocess", None) or getattr(model, "tokenize", None)
    if tokenize is None:
        return math.nan
    features = tokenize([(prompt or "") + t for t in texts])
    return float(features["attention_mask"].sum(dim=1).float().mean())
