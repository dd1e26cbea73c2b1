"""Files: the checkout's root, and the one atomic writer. Every file evalgemma writes (store units,
cache shards, baselines, reports, plots, downloads, markers) goes through :func:`atomic_write`, so a
file is either complete or absent."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

#: The checkout this package runs from (``harness/evalgemma/io.py`` → the repository root).
PROJECT_ROOT = Path(__file__).resolve().parents[2]

#: Prefix of temporary files; readers skip them.
TMP_PREFIX = ".tmp-"


def fsync_dir(path: Path) -> None:
    """Flush a directory entry to disk (best effort: some filesystems refuse to open a directory)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(
    path: Path | str, data: bytes | str | Callable[[BinaryIO], object], *, mode: int = 0o644, exclusive: bool = False
) -> Path:
    """Write ``path`` atomically: a temp file in the same folder, fsync, chmod ``mode``, then rename.

    A crash at any point leaves either the old file (or none) or the whole new file, never a
    partial one; the temp file is removed on any error (including one raised by ``data``).

    Args:
        path: the target file (its folder is created).
        data: the bytes (``str`` is written as UTF-8), or a function that writes to the open binary file.
        mode: permission bits of the result (``mkstemp`` creates 0600; results are shared read-only).
        exclusive: create ``path`` only if it does not exist: the last step is a hard link, which
            fails if the target exists, so two concurrent writers cannot clobber each other. On a
            filesystem without hard links it falls back to an existence check, then a rename.

    Raises:
        FileExistsError: ``exclusive`` and ``path`` exists (nothing was written).
        OSError: the folder or file cannot be written (the caller names what it was writing).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=target.suffix, dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            os.fsync(fh.fileno())
        if exclusive:
            _link_new(tmp, target)
        else:
            os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(target.parent)
    return target


def file_sha256(path: Path | str) -> str:
    """sha256 (64 hex digits) of one file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write_by(path: Path | str, write: Callable[[Path], object], *, mode: int = 0o644) -> Path:
    """Like :func:`atomic_write` for a library that only writes to a path it is given (ONNX Runtime's
    quantizers, llama.cpp's converter): ``write(tmp)`` writes a temp file in the target's folder, which
    is then fsynced, given ``mode`` and renamed onto ``path``; on any error the temp file is removed.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=target.suffix, dir=target.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(target.parent)
    return target


def _link_new(tmp: str, target: Path) -> None:
    """Give ``tmp`` the name ``target`` only if ``target`` does not exist, then drop ``tmp``."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise
    except OSError:  # no hard links here (some network and FUSE filesystems): check, then rename
        if target.exists():
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(target)) from None
        os.replace(tmp, target)
        return
    with contextlib.suppress(OSError):  # a leftover temp name is harmless: readers skip it
        os.unlink(tmp)
