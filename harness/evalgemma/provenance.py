"""Provenance recorded with every stored row: versions, device, git commit, timestamps."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from functools import lru_cache
from importlib import metadata

from evalgemma.io import PROJECT_ROOT


def utc_now() -> str:
    """ISO-8601 UTC timestamp with microseconds (sortable as text)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def package_version(name: str) -> str:
    """Installed version of a distribution, or "" if it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return ""


@lru_cache(maxsize=1)
def git_commit() -> str:
    """The checkout's commit (with ``+dirty`` when it has local changes), or ""."""
    root = PROJECT_ROOT
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return commit + ("+dirty" if dirty else "")


def versions() -> dict[str, str]:
    """Versions of the packages that can change a score."""
    return {
        "evalgemma_version": package_version("evalgemma"),
        "mteb_version": package_version("mteb"),
        "torch_version": package_version("torch"),
        "transformers_version": package_version("transformers"),
        "sentence_transformers_version": package_version("sentence-transformers"),
    }
