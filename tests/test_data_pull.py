"""`evalgemma data pull`: the real download code, against a local mirror standing in for the Hub."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from evalgemma.benchmarks.mteb.adapter import SNAPSHOT_MARKER, mirror_dir, named_tasks, snapshot_revision
from evalgemma.benchmarks.mteb.pull import pull_tasks, snapshot_target
from evalgemma.errors import ConfigError, DataError


@pytest.fixture
def fake_hub(hf_mirrors: Path, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """huggingface_hub.snapshot_download served from the shared mirrors (revision checked)."""
    import huggingface_hub

    mirrors = json.loads((hf_mirrors / "mirrors.json").read_text())
    by_repo = {m["hub_path"]: m for m in mirrors.values()}
    calls: list[dict[str, Any]] = []

    def snapshot_download(*, repo_id: str, repo_type: str, revision: str, local_dir: str) -> str:
        calls.append({"repo_id": repo_id, "repo_type": repo_type, "revision": revision, "local_dir": local_dir})
        entry = by_repo.get(repo_id)
        if entry is None or entry["hub_revision"] != revision:
            raise huggingface_hub.errors.RevisionNotFoundError(f"{repo_id}@{revision}")
        shutil.copytree(hf_mirrors / entry["local_path"], local_dir, dirs_exist_ok=True)
        return local_dir

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    return calls


def test_pull_writes_snapshots_that_offline_runs_use(fake_hub: list[dict[str, Any]], tmp_path: Path) -> None:
    tasks = named_tasks(["STSBenchmark", "Banking77Classification"])
    paths = pull_tasks(tasks, tmp_path)
    assert paths == [tmp_path / "mteb" / "stsbenchmark-sts", tmp_path / "mteb" / "banking77"]
    assert fake_hub == [
        {"repo_id": "mteb/stsbenchmark-sts", "repo_type": "dataset", "revision": "b0fddb56ed78048fa8b90373c8a3cfc37b684831", "local_dir": str(paths[0])},
        {"repo_id": "mteb/banking77", "repo_type": "dataset", "revision": "0fd18e25b25c072e09e0d92ab615fda904d66300", "local_dir": str(paths[1])},
    ]
    marker = json.loads((paths[0] / SNAPSHOT_MARKER).read_text())
    assert marker == {"repo_id": "mteb/stsbenchmark-sts", "revision": "b0fddb56ed78048fa8b90373c8a3cfc37b684831"}
    assert snapshot_revision(paths[1]) == "0fd18e25b25c072e09e0d92ab615fda904d66300"
    # The pulled folder is what a later --data-dir run loads (same revision as the task pins).
    assert mirror_dir(tmp_path, named_tasks(["STSBenchmark"])[0]) == paths[0]
    # ... and not for a task that pins another revision of the same repo.
    assert mirror_dir(tmp_path, named_tasks(["Banking77Classification.v2"])[0]) is None


def test_pull_failure_names_task_and_repo(fake_hub: list[dict[str, Any]], tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"task Banking77Classification.v2: cannot download dataset mteb/banking77@18072d2685ea"):
        pull_tasks(named_tasks(["Banking77Classification.v2"]), tmp_path)


def test_repo_ids_cannot_escape_the_data_dir(tmp_path: Path) -> None:
    assert snapshot_target(tmp_path, "org/name") == tmp_path / "org" / "name"
    for bad in ("../x", "org/..", "/abs", "a/b/c", ".hidden/x", "noslash"):
        with pytest.raises(ConfigError):
            snapshot_target(tmp_path, bad)
