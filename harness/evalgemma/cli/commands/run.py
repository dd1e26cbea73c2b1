"""``evalgemma run``, ``evalgemma list`` and ``evalgemma data pull``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from evalgemma.cli.quiet import disable_progress_bars
from evalgemma.errors import ConfigError


def _split_csv(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _dims(value: str | None) -> tuple[int, ...]:
    out = []
    for part in _split_csv(value):
        try:
            out.append(int(part))
        except ValueError as exc:
            raise ConfigError(f"--dim {value}: {part!r} is not an integer (use e.g. --dim 768,512,256,128)") from exc
    return tuple(out)


def variant_flags(
    model: str, revision: str | None, dim: str | None, dtype: str, max_seq_length: int | None, no_prompts: bool,
    quant: str, backend: str, quant_source: str | None, embed_dtype: str,
) -> dict[str, Any]:
    """The variant options of ``run`` (and ``bench``) as ``RunConfig.build`` keywords, from their flag values.

    Raises:
        ConfigError: a malformed ``--dim`` or an unknown ``--quant-source``.
    """
    if quant_source not in (None, "qat", "ptq"):
        raise ConfigError(f"--quant-source {quant_source}: expected qat or ptq")
    return {
        "model": model, "revision": revision, "dims": _dims(dim), "dtype": dtype, "max_seq_length": max_seq_length,
        "prompts": not no_prompts, "quants": _split_csv(quant) or ("none",), "backends": _split_csv(backend) or ("torch",),
        "quant_source": quant_source, "embed_dtypes": _split_csv(embed_dtype) or ("float32",),
    }


def run(
    suite: Annotated[str | None, typer.Option(help="Suite name (mteb-multilingual-v2, mteb-eng-v2, mteb-code-v1, xtreme-up, smoke, ...) or file")] = None,
    model: Annotated[str, typer.Option(help="Short name (minilm, embeddinggemma), HF id or local model directory")] = "google/embeddinggemma-300m",
    revision: Annotated[str | None, typer.Option(help="Hub revision (commit) of --model")] = None,
    tasks: Annotated[str | None, typer.Option(help="Comma-separated task names: restrict the suite, or (without --suite) run these mteb tasks")] = None,
    langs: Annotated[str | None, typer.Option(help="Comma-separated ISO 639-3 codes or subset names (XTREME-UP: language codes)")] = None,
    dim: Annotated[str | None, typer.Option("--dim", help="Matryoshka dims, e.g. 768,512,256,128 (truncate, then L2 re-normalise)")] = None,
    dtype: Annotated[str, typer.Option(help="float32 | bfloat16 (float16 is refused for Gemma 3 models)")] = "float32",
    max_seq_length: Annotated[int | None, typer.Option(help="Max tokens (default: 512 for EmbeddingGemma, the paper's protocol; else the model's own)")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Encode batch size (default: 128 on CUDA, 32 on CPU)")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | mps")] = "auto",
    no_prompts: Annotated[bool, typer.Option("--no-prompts", help="Encode raw texts without the model's prompts")] = False,
    store: Annotated[Path, typer.Option(help="Results store directory")] = Path("results/store"),
    data_dir: Annotated[Path | None, typer.Option(help="Folder of HF dataset snapshots as DIR/<org>/<name>/ (or an XTREME-UP root)")] = None,
    offline: Annotated[bool, typer.Option("--offline", help="Never touch the network; a missing dataset or model is an error")] = False,
    run_name: Annotated[str, typer.Option(help="A name recorded in the run id")] = "",
    force: Annotated[bool, typer.Option("--force", help="Re-evaluate stored units (adds rows; never overwrites)")] = False,
    quant: Annotated[str, typer.Option(
        help="Weight quantization, comma = sweep (torch none|q8_0|q4_0|mixed; onnx none|int8|q4; gguf none|bf16|q8_0|q4_0)")] = "none",
    backend: Annotated[str, typer.Option(help="Runtime that computes the vectors: torch | onnx | gguf (comma = sweep); see `evalgemma parity`")] = "torch",
    artifact_dir: Annotated[Path | None, typer.Option(help="Where exported backend artifacts (.onnx, .gguf) are cached (default: the user cache dir)")] = None,
    quant_source: Annotated[str | None, typer.Option(help="qat (QAT checkpoint, default for EmbeddingGemma) | ptq")] = None,
    embed_dtype: Annotated[str, typer.Option(help="Embedding dtype(s): float32 | int8 | uint8 | binary | ubinary")] = "float32",
    split: Annotated[str | None, typer.Option(help="XTREME-UP split: test | validation (default: the suite's, test)")] = None,
    search_chunk: Annotated[int, typer.Option(help="XTREME-UP exact search: index rows scored at a time")] = 8192,
    cache_dir: Annotated[Path | None, typer.Option(help="On-disk embedding cache directory")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Disable the on-disk embedding cache")] = False,
    trust_remote_code: Annotated[bool, typer.Option("--trust-remote-code", help="Allow model repos to run their own code")] = False,
    allow_pickle_weights: Annotated[bool, typer.Option("--allow-pickle-weights", help="Allow pickle-based (.bin) weights")] = False,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bars")] = False,
    executor: Annotated[str, typer.Option(
        help="local | ray (one Ray task per (weight variant, task) unit; pip install 'evalgemma[ray]') | slurm (one submitit job array; 'evalgemma[slurm]')"
    )] = "local",
    shard: Annotated[str | None, typer.Option(help="Run only shard i of N (0-based) of the full plan: $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT")] = None,
    ray_address: Annotated[str | None, typer.Option(help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")] = None,
    gpus_per_unit: Annotated[float | None, typer.Option(help="Ray/Slurm: GPUs per unit (Ray default: 1 if it has GPUs; Slurm: 1 on cuda)")] = None,
    max_retries: Annotated[int, typer.Option(help="Ray/Slurm: resubmissions of a unit whose worker died or raised unexpectedly")] = 2,
    slurm_partition: Annotated[str | None, typer.Option(help="Slurm: partition of the job array (default: the cluster's)")] = None,
    slurm_time: Annotated[str, typer.Option(help="Slurm: wall time of one unit's job (minutes, H:MM:SS or D-HH:MM:SS)")] = "240",
    slurm_folder: Annotated[Path | None, typer.Option(help="Slurm: submitit's job folder (scripts, logs; default: <store>/../slurm-jobs)")] = None,
    slurm_cluster: Annotated[str, typer.Option(help="Slurm: slurm, or submitit's local (units as local processes, to try a run) | debug")] = "slurm",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan (cells, texts to encode, est. time) and exit; nothing is evaluated or written")
    ] = False,
    texts_per_s: Annotated[
        float | None, typer.Option(help="With --dry-run / plan: encode throughput for the time estimate (default: measured in the store)")
    ] = None,
    output_format: Annotated[str, typer.Option("--format", help="With --dry-run / plan: table | csv | json")] = "table",
) -> None:
    """Evaluate a model's variants on a suite; stores every finished unit at once."""
    if no_progress:
        disable_progress_bars()
    from evalgemma.run.config import RunConfig

    if split not in (None, "test", "validation"):
        raise ConfigError(f"--split {split}: expected test or validation")
    if search_chunk < 1:
        raise ConfigError(f"--search-chunk {search_chunk}: must be positive")
    config = RunConfig.build(
        **variant_flags(model, revision, dim, dtype, max_seq_length, no_prompts, quant, backend, quant_source, embed_dtype),
        suite=suite,
        tasks=_split_csv(tasks),
        langs=_split_csv(langs),
        batch_size=batch_size,
        device=device,
        store=store,
        data_dir=data_dir,
        offline=offline,
        run_name=run_name,
        force=force,
        artifact_dir=artifact_dir,
        split=split,
        search_chunk=search_chunk,
        cache_dir=None if no_cache else _default_cache(cache_dir),
        trust_remote_code=trust_remote_code,
        allow_pickle_weights=allow_pickle_weights,
        show_progress=not no_progress,
        executor=_executor(executor),
        shard=_shard(shard),
        ray_address=ray_address,
        gpus_per_unit=gpus_per_unit,
        max_retries=max_retries,
        slurm_partition=slurm_partition,
        slurm_time_min=_slurm_time(slurm_time),
        slurm_folder=slurm_folder,
        slurm_cluster=_slurm_cluster(slurm_cluster),
    )
    if dry_run:
        from evalgemma.cli.commands.plan import show_plan

        show_plan(config, texts_per_s, output_format)
        return
    from evalgemma.cli.console import run_with_console

    run_with_console(config)


def _slurm_time(value: str) -> int:
    from evalgemma.run.slurm import parse_slurm_time

    return parse_slurm_time(value)


def _slurm_cluster(value: str) -> str:
    from evalgemma.errors import unknown_name
    from evalgemma.run.slurm import CLUSTERS

    if value not in CLUSTERS:
        raise unknown_name("Slurm cluster", value, CLUSTERS, where="--slurm-cluster")
    return value


def _executor(value: str) -> str:
    from evalgemma.run.executors import Executor

    return Executor.parse(value, "--executor")


def _shard(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    from evalgemma.run.executors import parse_shard

    return parse_shard(value)


def _default_cache(cache_dir: Path | None) -> Path | None:
    if cache_dir is not None:
        return cache_dir
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("evalgemma")) / "embeddings"


def list_(
    what: Annotated[str, typer.Argument(help="suites | tasks | models")] = "suites",
    suite: Annotated[str | None, typer.Option(help="with `tasks`: the suite's tasks")] = None,
) -> None:
    """Show the suites, tasks or model short names that exist."""
    from rich.console import Console
    from rich.table import Table

    from evalgemma.catalog.suites import builtin_suites, model_entries

    console = Console()
    if what == "suites":
        table = Table("suite", "kind", "description")
        for s in builtin_suites().values():
            table.add_row(s.name, s.kind, s.description)
        console.print(table)
    elif what == "models":
        table = Table("short name", "model", "source", "description")
        for m in model_entries().values():
            table.add_row(m.name, m.id, m.source, m.description)
        console.print(table)
    elif what == "tasks":
        from evalgemma.benchmarks.suites import plan_tasks

        if suite is None:
            import mteb

            table = Table("task", "type")
            for t in mteb.get_tasks():
                table.add_row(t.metadata.name, str(t.metadata.type))
        else:
            _, planned = plan_tasks(suite, (), (), data_dir=None, offline=True)
            table = Table("task", "type", "cells", "subsets/languages")
            for p in planned:
                subsets = ",".join(dict.fromkeys(c.subset for c in p.cells))
                table.add_row(p.name, p.task_type, str(len(p.cells)), subsets[:80])
        console.print(table)
    else:
        from evalgemma.errors import unknown_name

        raise unknown_name("list target", what, ["suites", "tasks", "models"])


data_app = typer.Typer(help="Fetch and inspect offline datasets.", no_args_is_help=True)


@data_app.command("pull")
def data_pull(
    data_dir: Annotated[Path, typer.Option(help="Where the snapshots go: DIR/<org>/<name>/")],
    suite: Annotated[str | None, typer.Option(help="Suite whose datasets to fetch")] = None,
    tasks: Annotated[str | None, typer.Option(help="Comma-separated mteb task names")] = None,
) -> None:
    """Download the HF dataset snapshots of a suite's tasks (on an online machine) for --offline runs."""
    from rich.progress import track

    from evalgemma.benchmarks.mteb.pull import pull_tasks
    from evalgemma.benchmarks.suites import plan_tasks

    _, planned = plan_tasks(suite, _split_csv(tasks), (), data_dir=None, offline=True)
    from evalgemma.benchmarks.base import has_builtin_data

    objs: list[Any] = [p.obj for p in planned if p.kind == "mteb" and not has_builtin_data(p.obj)]
    if not objs:
        raise ConfigError(
            f"--suite {suite}: nothing to pull, the suite has no hub-hosted mteb datasets "
            "(XTREME-UP data is downloaded on the first online run, or pass --data-dir to an extracted copy)"
        )
    for path in pull_tasks(objs, data_dir, progress=lambda it: track(it, description="pulling datasets")):
        typer.echo(str(path))


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("list")(list_)
    app.add_typer(data_app, name="data")
