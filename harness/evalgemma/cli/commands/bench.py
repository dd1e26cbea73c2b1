"""``evalgemma bench``: measured cost per variant (bytes, throughput, latency, load time, peak memory)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from evalgemma.cli.commands.run import variant_flags
from evalgemma.cli.quiet import disable_progress_bars


def bench(
    model: Annotated[str, typer.Option(help="Short name (minilm, embeddinggemma), HF id or local model directory")] = "google/embeddinggemma-300m",
    revision: Annotated[str | None, typer.Option(help="Hub revision (commit) of --model")] = None,
    dim: Annotated[str | None, typer.Option("--dim", help="Matryoshka dims, e.g. 768,512,256,128 (as for run)")] = None,
    dtype: Annotated[str, typer.Option(help="float32 | bfloat16")] = "float32",
    max_seq_length: Annotated[int | None, typer.Option(help="Max tokens (default as for run: 512 for EmbeddingGemma, else the model's own)")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Encode batch size (default as for run: 128 on CUDA, 32 on CPU)")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | mps")] = "auto",
    no_prompts: Annotated[bool, typer.Option("--no-prompts", help="Encode raw texts without the model's prompts")] = False,
    quant: Annotated[str, typer.Option(help="Weight quantization, comma = sweep (as for run)")] = "none",
    backend: Annotated[str, typer.Option(help="torch | onnx | gguf (comma = sweep)")] = "torch",
    quant_source: Annotated[str | None, typer.Option(help="qat | ptq (as for run)")] = None,
    embed_dtype: Annotated[str, typer.Option(help="Embedding dtype(s): float32 | int8 | uint8 | binary | ubinary")] = "float32",
    artifact_dir: Annotated[Path | None, typer.Option(help="Where exported backend artifacts (.onnx, .gguf) are cached")] = None,
    store: Annotated[Path, typer.Option(help="Results store directory (figures go to <store>/_bench/)")] = Path("results/store"),
    offline: Annotated[bool, typer.Option("--offline", help="Never touch the network; a missing model is an error")] = False,
    repeat: Annotated[int, typer.Option(help="Timed repetitions of each text set (the median is stored)")] = 3,
    warmup: Annotated[int, typer.Option(help="Untimed batches before each timed set (and single calls before the latency calls)")] = 1,
    latency_n: Annotated[int, typer.Option(help="Single-text calls for latency p50/p95")] = 50,
    long_n: Annotated[int, typer.Option(help="Long texts (each over 4096 characters, encoded up to max_seq_length)")] = 64,
    short_n: Annotated[int, typer.Option(help="Short texts (the smoke suite's document texts, up to 360)")] = 256,
    trust_remote_code: Annotated[bool, typer.Option("--trust-remote-code", help="Allow model repos to run their own code")] = False,
    allow_pickle_weights: Annotated[bool, typer.Option("--allow-pickle-weights", help="Allow pickle-based (.bin) weights")] = False,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bars")] = False,
) -> None:
    """Measure each variant's cost (one fresh process each) and store it beside its results; prints the figures."""
    if no_progress:
        disable_progress_bars()
    from evalgemma.run.bench import BenchOptions, run_bench
    from evalgemma.run.config import RunConfig

    config = RunConfig.build(
        **variant_flags(model, revision, dim, dtype, max_seq_length, no_prompts, quant, backend, quant_source, embed_dtype),
        batch_size=batch_size, device=device, store=store, offline=offline, artifact_dir=artifact_dir,
        trust_remote_code=trust_remote_code, allow_pickle_weights=allow_pickle_weights, show_progress=not no_progress,
    )
    options = BenchOptions(repeat=repeat, warmup=warmup, latency_n=latency_n, long_n=long_n, short_n=short_n)
    rows = _with_progress(config, options, run_bench, show=not no_progress)
    _print(rows, store)


def _with_progress(config: Any, options: Any, run_bench: Any, *, show: bool) -> list[dict[str, Any]]:
    """Run the bench with a rich progress bar over the variants; failures are printed as they happen."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    progress = Progress(TextColumn("[bold]bench[/bold] {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console, disable=not show)
    rows: list[dict[str, Any]] = []
    with progress:
        task = progress.add_task("planning", total=None)

        def on_event(kind: str, data: dict[str, Any]) -> None:
            if kind == "plan":
                progress.update(task, total=len(data["variants"]))
            elif kind == "note":
                console.print(f"[dim]{data['text']}[/dim]")
            elif kind == "variant-start":
                progress.update(task, description=data["variant"])
            elif kind == "variant-done":
                rows.append(data["row"])
                progress.advance(task)
            elif kind == "variant-failed":
                console.print(f"[red]failed[/red] {data['variant']}: {data['error']}")
                progress.advance(task)

        run_bench(config, options, on_event=on_event)
    return rows


def _print(rows: list[dict[str, Any]], store: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    from evalgemma.views.cost import SHOWN, cost_text

    console = Console(width=200)
    table = Table(title=f"cost per variant (stored in {store}/_bench)")
    table.add_column("variant", justify="left")
    for name, *_ in SHOWN:
        table.add_column(name, justify="right")
    for row in rows:
        table.add_row(row["variant"], *[cost_text(row[col], scale, fmt) for _, col, scale, fmt in SHOWN])
    console.print(table)
    if rows:
        r = rows[0]
        console.print(f"[dim]batch {r['batch_size']} · {r['repetitions']} repetitions ({r['throughput_stat']}) after {r['warmup']} warm-up batch(es) · "
                      f"latency over {r['latency_n']} single-text calls · long set {r['long_texts_n']} texts ({r['long_tokens_mean']:.0f} tokens "
                      f"as encoded) sha256 {r['long_texts_sha256'][:12]} · short set {r['short_texts_n']} texts sha256 {r['short_texts_sha256'][:12]}[/dim]")


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
