"""``evalgemma.io.atomic_write``, the one writer of every file evalgemma produces.

A file is complete or absent (temp file in the same folder, fsync, rename), world-readable
(0644, like the store), and with ``exclusive=True`` created only if it does not exist (hard link;
an existence check then a rename where hard links are refused). A source scan keeps every other
module from writing a final path by hand.
"""

from __future__ import annotations

import ast
import errno
import os
import stat
import threading
from pathlib import Path
from typing import BinaryIO

import pytest

from evalgemma.io import PROJECT_ROOT, TMP_PREFIX, atomic_write


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_bytes_text_and_writer_functions_land_whole_and_world_readable(tmp_path: Path) -> None:
    old = os.umask(0o077)  # a strict umask must not make results private: the mode is set explicitly
    try:
        a = atomic_write(tmp_path / "new" / "dir" / "a.bin", b"\x00\x01")
        b = atomic_write(tmp_path / "b.txt", "é\n")
        c = atomic_write(tmp_path / "c.dat", lambda fh: fh.write(b"chunk" * 3))
    finally:
        os.umask(old)
    assert (a.read_bytes(), b.read_bytes(), c.read_bytes()) == (b"\x00\x01", "é\n".encode(), b"chunkchunkchunk")
    assert {stat.S_IMODE(p.stat().st_mode) for p in (a, b, c)} == {0o644}
    assert stat.S_IMODE(atomic_write(tmp_path / "private", b"x", mode=0o600).stat().st_mode) == 0o600
    assert _names(tmp_path) == ["b.txt", "c.dat", "new", "private"]  # no temp file left behind


def test_a_failing_writer_leaves_the_old_file_and_no_temp_file(tmp_path: Path) -> None:
    target = atomic_write(tmp_path / "result.json", '{"v": 1}')

    def half_then_crash(fh: BinaryIO) -> None:
        fh.write(b'{"v": 2, "trunc')
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        atomic_write(target, half_then_crash)
    assert target.read_text() == '{"v": 1}'
    assert _names(tmp_path) == ["result.json"]


def test_replace_overwrites_but_exclusive_refuses_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "baseline.parquet"
    atomic_write(target, b"first", exclusive=True)
    atomic_write(target, b"second")  # the default replaces
    with pytest.raises(FileExistsError):
        atomic_write(target, b"third", exclusive=True)
    assert target.read_bytes() == b"second"
    assert _names(tmp_path) == ["baseline.parquet"]


def test_exclusive_without_hard_links_falls_back_to_check_then_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(src: str, dst: str) -> None:
        raise OSError(errno.EPERM, "hard links not supported here")

    monkeypatch.setattr(os, "link", no_links)
    target = atomic_write(tmp_path / "b.parquet", b"one", exclusive=True)
    assert target.read_bytes() == b"one"
    with pytest.raises(FileExistsError, match=r"b\.parquet"):
        atomic_write(target, b"two", exclusive=True)
    assert target.read_bytes() == b"one" and _names(tmp_path) == ["b.parquet"]


def test_concurrent_exclusive_writers_create_the_file_once(tmp_path: Path) -> None:
    target = tmp_path / "accepted.parquet"
    start = threading.Barrier(8)
    outcomes: list[str] = []

    def writer(i: int) -> None:
        start.wait()
        try:
            atomic_write(target, f"writer {i}".encode() * 1000, exclusive=True)
            outcomes.append(f"won {i}")
        except FileExistsError:
            outcomes.append("refused")

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [o for o in outcomes if o.startswith("won")]
    assert len(winners) == 1 and outcomes.count("refused") == 7
    assert target.read_bytes() == f"writer {winners[0].split()[1]}".encode() * 1000
    assert _names(tmp_path) == ["accepted.parquet"]


#: Calls that write a file by hand. ``(module, call)`` pairs allowed elsewhere, and why.
_WRITERS = {"write_text", "write_bytes", "mkstemp", "NamedTemporaryFile", "touch"}
_OS_WRITERS = {"replace", "rename", "link"}
_ALLOWED = {
    ("evalgemma/store/parquet.py", "mkstemp"): "ensure_writable's probe: written, fsynced and deleted at once, never a result",
    ("evalgemma/encode/gguf_backend.py", "replace"): "publishes the extracted converter folder: a directory, renamed once complete",
    ("evalgemma/encode/gguf_worker.py", "fdopen"): "the worker's protocol channel is its original stdout pipe, not a file",
}


def _hand_writers(path: Path) -> list[str]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        is_os = isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "os"
        opened_for_write = name in ("open", "fdopen") and any(
            isinstance(a, ast.Constant) and isinstance(a.value, str) and set(a.value) & set("wax+")
            for a in [*node.args[1:2], *(k.value for k in node.keywords if k.arg == "mode")]
        )
        if name in _WRITERS or (is_os and name in _OS_WRITERS) or opened_for_write:
            found.append((node.lineno, name))
    return [f"{name}:{line}" for line, name in sorted(found)]


def test_no_module_but_io_writes_a_file_by_hand() -> None:
    package = PROJECT_ROOT / "harness"
    offenders = []
    for path in sorted((package / "evalgemma").rglob("*.py")):
        rel = path.relative_to(package).as_posix()
        if rel == "evalgemma/io.py":
            continue
        for hit in _hand_writers(path):
            if (rel, hit.split(":")[0]) not in _ALLOWED:
                offenders.append(f"{rel}:{hit.split(':')[1]} {hit.split(':')[0]}")
    assert offenders == [], f"write through evalgemma.io.atomic_write instead: {offenders}"


def test_the_scan_finds_hand_written_writers(tmp_path: Path) -> None:
    # The check above can fail: each pattern it looks for is found in a sample module.
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import os, tempfile\nfrom pathlib import Path\n"
        "Path('a').write_text('x')\nPath('b').write_bytes(b'x')\nopen('c', 'w')\nPath('d').open(mode='ab')\n"
        "os.replace('e', 'f')\ntempfile.mkstemp()\nopen('g')\nPath('h').read_text()\n'x'.replace('a', 'b')\n"
    )
    assert [h.split(":")[0] for h in _hand_writers(sample)] == ["write_text", "write_bytes", "open", "open", "replace", "mkstemp"]
    assert TMP_PREFIX == ".tmp-"  # readers (store, cache) skip files with this prefix
