"""Benchmark: evalgemma's exact XTREME-UP top-10 search vs a bare chunked matmul + argpartition.

One run measures, on one random float32 index of the real XTREME-UP size (112,426 x 768):

* wall time (median of ``--reps`` repetitions) of ``evalgemma.benchmarks.xtreme_up.retrieval.search_top_k`` for two
  chunk sizes, and of a bare baseline (pre-normalised inputs, ``q @ chunk.T``, ``argpartition``
  per chunk, final merge; no tie rule, no per-chunk normalisation);
* peak extra memory of each (``tracemalloc``, which sees numpy's buffers; the index and query
  arrays themselves are allocated before tracing starts), to show that memory follows the chunk.

Usage::

    python benchmarks/bench_xtreme_up_search.py                 # ~1-2 min on 2 cores
    python benchmarks/bench_xtreme_up_search.py --queries 5300  # the paper's test size
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import tracemalloc

import numpy as np

from evalgemma.benchmarks.xtreme_up.retrieval import search_top_k


def bare_top_k(qn: np.ndarray, dn: np.ndarray, k: int, chunk: int) -> np.ndarray:
    """Baseline: chunked matmul + argpartition (inputs already unit-norm; ties arbitrary)."""
    cand_s, cand_i = [], []
    for start in range(0, dn.shape[0], chunk):
        s = qn @ dn[start : start + chunk].T
        kk = min(k, s.shape[1])
        part = np.argpartition(s, s.shape[1] - kk, axis=1)[:, s.shape[1] - kk :]
        cand_s.append(np.take_along_axis(s, part, 1))
        cand_i.append(part + start)
    s = np.concatenate(cand_s, axis=1)
    i = np.concatenate(cand_i, axis=1)
    part = np.argpartition(s, s.shape[1] - k, axis=1)[:, s.shape[1] - k :]
    top_s = np.take_along_axis(s, part, 1)
    order = np.argsort(-top_s, axis=1)
    return np.take_along_axis(np.take_along_axis(i, part, 1), order, 1)


def timed(fn, reps: int) -> tuple[float, list[float], object]:
    times, out = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, out


def peak_mib(fn) -> float:
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index-size", type=int, default=112_426)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--chunks", type=int, nargs=2, default=[8192, 1024], metavar=("LARGE", "SMALL"))
    ap.add_argument("--query-chunk", type=int, default=1024)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    d = rng.standard_normal((args.index_size, args.dim), dtype=np.float32)
    q = rng.standard_normal((args.queries, args.dim), dtype=np.float32)
    dn = d / np.linalg.norm(d, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)

    print("machine:", platform.machine(), platform.processor() or "", f"{os.cpu_count()} CPUs,",
          f"load avg {os.getloadavg()[0]:.1f}, numpy {np.__version__}, python {platform.python_version()}")
    print(f"index {args.index_size:,} x {args.dim} float32 ({d.nbytes / 2**20:.0f} MiB), "
          f"{args.queries:,} queries, top-10, median of {args.reps} reps, query_chunk {args.query_chunk}")

    rows = []
    base_t = None
    ours_top = None
    for chunk in args.chunks:
        t_b, all_b, top_b = timed(lambda c=chunk: bare_top_k(qn, dn, 10, c), args.reps)
        t_o, all_o, top_o = timed(
            lambda c=chunk: search_top_k(q, d, 10, search_chunk=c, query_chunk=args.query_chunk), args.reps
        )
        m_b = peak_mib(lambda c=chunk: bare_top_k(qn, dn, 10, c))
        m_o = peak_mib(lambda c=chunk: search_top_k(q, d, 10, search_chunk=c, query_chunk=args.query_chunk))
        same = float((top_o.indices == top_b).mean())  # type: ignore[union-attr]
        if ours_top is None:
            ours_top = top_o
        else:
            assert np.array_equal(ours_top.indices, top_o.indices), "chunk size changed the ranking"  # type: ignore[union-attr]
        base_t = base_t or t_b
        rows.append((chunk, t_o, all_o, t_b, all_b, m_o, m_b, same))

    print(f"{'search_chunk':>12} {'ours s':>8} {'bare s':>8} {'ours/bare':>9} {'ours MiB':>9} {'bare MiB':>9} {'same top10':>10}")
    for chunk, t_o, _, t_b, _, m_o, m_b, same in rows:
        print(f"{chunk:>12} {t_o:>8.2f} {t_b:>8.2f} {t_o / t_b:>9.2f} {m_o:>9.1f} {m_b:>9.1f} {same:>10.4f}")
    for chunk, _, all_o, _, all_b, *_ in rows:
        print(f"  chunk {chunk}: ours reps {[round(x, 2) for x in all_o]}, bare reps {[round(x, 2) for x in all_b]}")
    (c1, _, _, _, _, m1, _, _), (c2, _, _, _, _, m2, _, _) = rows
    print(f"memory ratio ours chunk {c1} / chunk {c2}: {m1 / m2:.2f} (chunk ratio {c1 / c2:.2f})")
    gflop = 2 * args.queries * args.index_size * args.dim / 1e9
    print(f"matmul work {gflop:.0f} GFLOP per search; ours at chunk {c1}: {gflop / rows[0][1]:.1f} GFLOP/s")


if __name__ == "__main__":
    main()
