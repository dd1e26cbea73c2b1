"""Fetch HF dataset snapshots of mteb tasks into ``DIR/<org>/<name>/`` for offline runs."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from evalgemma.errors import ConfigError, DataError


def snapshot_target(data_dir: Path, repo_id: str) -> Path:
    """Where a dataset repo's snapshot goes; the repo id must be ``org/name`` (no ``..``, no absolute path)."""
    parts = repo_id.split("/")
    if len(parts) != 2 or any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        raise ConfigError(f"dataset repo id {repo_id!r}: expected 'org/name'")
    return data_dir / parts[0] / parts[1]


def write_marker(target: Path, repo_id: str, revision: str) -> None:
    """Record which repo and revision a snapshot holds (read by ``adapter.snapshot_revision``), atomically."""
    import json

    from evalgemma.benchmarks.mteb.adapter import SNAPSHOT_MARKER
    from evalgemma.io import atomic_write

    atomic_write(target / SNAPSHOT_MARKER, json.dumps({"repo_id": repo_id, "revision": revision}) + "\n")


def pull_tasks(tasks: list[Any], data_dir: Path, progress: Callable[[Iterable[Any]], Iterable[Any]] = lambda x: x) -> list[Path]:
    """``huggingface_hub.snapshot_download`` of each task's dataset at its pinned revision.

    Returns:
        the snapshot folders, in task order (each repo fetched once).

    Raises:
        DataError: a download fails (message names the task and the repo).
    """
    from huggingface_hub import snapshot_download

    done: dict[tuple[str, str], Path] = {}
    out = []
    for task in progress(tasks):
        ds = task.metadata.dataset
        repo_id, revision = str(ds["path"]), str(ds.get("revision") or "main")
        key = (repo_id, revision)
        if key not in done:
            target = snapshot_target(data_dir, repo_id)
            try:
                snapshot_download(repo_id=repo_id, repo_type="dataset", revision=revision, local_dir=str(target))
                write_marker(target, repo_id, revision)
            except Exception as exc:
                raise DataError(f"task {task.metadata.name}: cannot download dataset {repo_id}@{revision} ({type(exc).__name__}: {exc})") from exc
            done[key] = target
        out.append(done[key])
    return out
