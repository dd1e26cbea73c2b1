"""GPU checks for a CUDA machine (not a test: CI has no GPU). Prints one JSON line per check.

1. XTREME-UP exact search on CUDA vs the CPU path on the real index size (112,426 × 768,
   5,300 queries = the paper's test size): identical top-10, timings, peak GPU memory per chunk.
2. EmbeddingGemma's real architecture at full size (random weights, 307.6M parameters, real
   tokenizer and prompts): bf16 vs float32 on CUDA (cosine of the vectors), encode throughput
   at 512 tokens, and the float16 refusal.

Usage: python benchmarks/gpu_check.py --config-dir ../shared/data/embeddinggemma_config
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "harness"), str(REPO / "tests")]


def emit(**fields: object) -> None:
    print(json.dumps(fields, default=str), flush=True)


def check_search(n_index: int, n_queries: int) -> None:
    import torch

    from evalgemma.benchmarks.xtreme_up.retrieval import search_top_k

    rng = np.random.default_rng(0)
    index = rng.standard_normal((n_index, 768), dtype=np.float32)
    queries = rng.standard_normal((n_queries, 768), dtype=np.float32)
    t = time.perf_counter()
    cpu = search_top_k(queries, index, search_chunk=8192)
    cpu_s = time.perf_counter() - t
    for chunk in (8192, 32768, n_index):
        search_top_k(queries[:64], index, search_chunk=chunk, device="cuda")  # warm-up
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(3):
            t = time.perf_counter()
            gpu = search_top_k(queries, index, search_chunk=chunk, device="cuda")
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
        emit(
            check="xtreme_up_search", device=torch.cuda.get_device_name(), n_index=n_index, n_queries=n_queries,
            search_chunk=chunk, cpu_s=round(cpu_s, 3), gpu_s_median=round(float(np.median(times)), 4),
            speedup=round(cpu_s / float(np.median(times)), 1),
            top10_indices_equal=float((cpu.indices == gpu.indices).mean()),
            max_score_diff=float(np.abs(cpu.scores - gpu.scores).max()),
            peak_gpu_mib=round(torch.cuda.max_memory_allocated() / 2**20, 1),
        )


def full_size_gemma(config_dir: Path, dest: Path) -> Path:
    """EmbeddingGemma's pipeline at full size with random weights (no real weights here)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Pooling, Transformer
    from transformers import AutoTokenizer, Gemma3TextConfig, Gemma3TextModel

    raw = json.loads((config_dir / "config.json").read_text())
    for key in ("architectures", "transformers_version", "dtype", "_sliding_window_pattern"):
        raw.pop(key, None)
    config = Gemma3TextConfig(**raw)
    config.architectures = ["Gemma3TextModel"]
    torch.manual_seed(0)
    backbone = dest / "backbone"
    model = Gemma3TextModel(config)
    model.save_pretrained(backbone)
    AutoTokenizer.from_pretrained(config_dir).save_pretrained(backbone)
    prompts = json.loads((config_dir / "config_sentence_transformers.json").read_text())["prompts"]
    st = SentenceTransformer(
        modules=[Transformer(str(backbone), max_seq_length=2048), Pooling(768, pooling_mode="mean", include_prompt=True),
                 Dense(768, 3072, bias=False, activation_function=torch.nn.Identity()),
                 Dense(3072, 768, bias=False, activation_function=torch.nn.Identity()), Normalize()],
        prompts=prompts, similarity_fn_name="cosine",
    )
    out = dest / "embeddinggemma-random"
    st.save(str(out))
    return out


def check_encoder(config_dir: Path, work: Path) -> None:
    import torch

    from evalgemma.encode.encoder import Encoder, load_sentence_transformer
    from evalgemma.encode.models import describe_local
    from evalgemma.errors import ConfigError
    from evalgemma.variants.spec import WeightSpec
    from evalgemma.variants.views import truncate

    path = full_size_gemma(config_dir, work)
    model = describe_local(path)
    texts = [f"sentence number {i}: " + "the quick brown fox jumps over the lazy dog " * (1 + i % 40) for i in range(2048)]
    prompt = model.prompts["STS"]
    vectors = {}
    for dtype in ("float32", "bfloat16"):
        weight = WeightSpec(model.model_id, model.revision, dtype, 512)  # type: ignore[arg-type]
        st = load_sentence_transformer(model, weight, device="cuda")
        enc = Encoder(st, weight.key, batch_size=128)
        enc.encode(texts[:128], prompt)  # warm-up (cached afterwards, so use the rest for timing)
        torch.cuda.synchronize()
        t = time.perf_counter()
        v = enc.encode(texts[128:], prompt)
        torch.cuda.synchronize()
        seconds = time.perf_counter() - t
        vectors[dtype] = v
        emit(check="encode_throughput", dtype=dtype, params=sum(p.numel() for p in st.parameters()), texts=len(texts) - 128,
             seconds=round(seconds, 3), texts_per_s=round((len(texts) - 128) / seconds, 1), finite=bool(np.isfinite(v).all()))
        del st, enc
        torch.cuda.empty_cache()
    a, b = vectors["float32"], vectors["bfloat16"]
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    cos128 = (truncate(a, 128) * truncate(b, 128)).sum(1)
    emit(check="bf16_vs_fp32", min_cosine=float(cos.min()), mean_cosine=float(cos.mean()), min_cosine_128d=float(cos128.min()))
    try:
        load_sentence_transformer(model, WeightSpec(model.model_id, model.revision, "float16", 512), device="cuda")
        emit(check="fp16_refused", ok=False)
    except ConfigError as exc:
        emit(check="fp16_refused", ok=True, message=str(exc)[:80])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config-dir", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/evalgemma-gpu"))
    parser.add_argument("--index-size", type=int, default=112_426)
    parser.add_argument("--queries", type=int, default=5_300)
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        sys.exit("no CUDA device")
    args.work.mkdir(parents=True, exist_ok=True)
    emit(check="machine", device=torch.cuda.get_device_name(), torch=torch.__version__)
    check_search(args.index_size, args.queries)
    check_encoder(args.config_dir, args.work)


if __name__ == "__main__":
    main()
