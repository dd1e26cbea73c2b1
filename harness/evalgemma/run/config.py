"""What ``evalgemma run`` is asked to do, split by what each part means for stored results.

* :class:`VariantOptions` and :class:`TaskSelection` identify results: they decide the variant keys
  and the cells (variant, task, task version, split, subset) a run produces.
* :class:`RuntimeOptions` change how the work is done, never what it computes (recorded as
  provenance: batch size, device, chunk sizes, paths, caching, progress).
* :class:`ExecutorOptions` say where the units run (local, a shard of the plan, Ray workers, a Slurm job array).

``RunConfig.build(**flat)`` takes the flat keyword form (as the CLI has it) and sorts every field
into its part; an unknown keyword is an error, so no field can go unclassified.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

DEFAULT_MODEL = "google/embeddinggemma-300m"


@dataclass(frozen=True)
class VariantOptions:
    """The variants to evaluate (identity): model, weights and views."""

    model: str = DEFAULT_MODEL
    revision: str | None = None
    dims: tuple[int, ...] = ()
    dtype: str = "float32"
    max_seq_length: int | None = None
    prompts: bool = True
    quants: tuple[str, ...] = ("none",)
    backends: tuple[str, ...] = ("torch",)  # names in evalgemma.encode.backends.BACKENDS; several = a sweep axis
    quant_source: str | None = None
    embed_dtypes: tuple[str, ...] = ("float32",)


@dataclass(frozen=True)
class TaskSelection:
    """The cells to evaluate (identity): suite, tasks, subsets, XTREME-UP split."""

    suite: str | None = None
    tasks: tuple[str, ...] = ()
    langs: tuple[str, ...] = ()
    split: str | None = None  # XTREME-UP: None = the suite's own split (test)


@dataclass(frozen=True)
class RuntimeOptions:
    """How the work is done (recorded, never part of an identity)."""

    store: Path = Path("results/store")
    data_dir: Path | None = None
    offline: bool = False
    run_name: str = ""
    force: bool = False
    batch_size: int | None = None  # None: 128 on CUDA, 32 elsewhere
    device: str = "auto"
    search_chunk: int = 8192
    cache_dir: Path | None = None
    artifact_dir: Path | None = None  # exported backend artifacts (None: <user cache dir>/evalgemma/onnx)
    trust_remote_code: bool = False
    allow_pickle_weights: bool = False
    show_progress: bool = True


@dataclass(frozen=True)
class ExecutorOptions:
    """Where the units run."""

    executor: str = "local"  # a value of evalgemma.run.executors.Executor
    shard: tuple[int, int] | None = None  # (i, N), 0-based: run only shard i of N of the full plan
    ray_address: str | None = None
    gpus_per_unit: float | None = None  # Ray: GPUs per unit; None = 1 if the cluster has GPUs, else 0
    max_retries: int = 2  # Ray/Slurm: resubmissions of a unit whose worker died or raised unexpectedly
    slurm_partition: str | None = None  # Slurm: the partition of the job array (None: the cluster's default)
    slurm_time_min: int = 240  # Slurm: wall-time limit of one unit's job, minutes
    slurm_folder: Path | None = None  # Slurm: submitit's job folder (scripts, logs, pickles); None: <store>/../slurm-jobs
    slurm_cluster: str = "slurm"  # "slurm", or submitit's "local" (units as local processes) / "debug" (in this process), for tests


_PARTS: dict[str, type] = {"variant": VariantOptions, "selection": TaskSelection, "runtime": RuntimeOptions, "executor": ExecutorOptions}
#: flat field name → the part that holds it (each name is defined in exactly one part).
FIELD_PART: dict[str, str] = {f.name: part for part, cls in _PARTS.items() for f in fields(cls)}


@dataclass(frozen=True)
class RunConfig:
    """Everything ``evalgemma run`` accepts (library form), in four parts."""

    variant: VariantOptions = field(default_factory=VariantOptions)
    selection: TaskSelection = field(default_factory=TaskSelection)
    runtime: RuntimeOptions = field(default_factory=RuntimeOptions)
    executor: ExecutorOptions = field(default_factory=ExecutorOptions)

    @classmethod
    def build(cls, **flat: Any) -> RunConfig:
        """A config from flat keywords (``model=..., suite=..., store=..., executor=...``).

        Raises:
            TypeError: an unknown keyword (a bug in the caller).
        """
        return cls().with_(**flat)

    def with_(self, **flat: Any) -> RunConfig:
        """A copy with some flat fields replaced (see :meth:`build`)."""
        unknown = sorted(set(flat) - set(FIELD_PART))
        if unknown:
            raise TypeError(f"RunConfig: unknown field(s) {unknown}; known: {sorted(FIELD_PART)}")
        parts = {part: {k: v for k, v in flat.items() if FIELD_PART[k] == part} for part in _PARTS}
        return RunConfig(**{part: replace(getattr(self, part), **kw) if kw else getattr(self, part) for part, kw in parts.items()})
