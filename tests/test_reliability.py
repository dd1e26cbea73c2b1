"""Reliability and security, fast part: full disks, read-only stores, corrupt store files,
model-loading safety, archive extraction. Kill and concurrency tests are in ``test_faults.py``.

No test here loads a model or touches the network.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import pickle
import re
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import evalgemma.store.parquet as store_mod
from evalgemma.errors import ConfigError, DataError, StoreError
from evalgemma.store.parquet import ensure_writable, load_results, scan_store, write_unit
from evalgemma.store.schema import SCHEMA_VERSION

sys.path.insert(0, str(Path(__file__).parent))
from fault_worker import make_rows

PACKAGE = Path(__file__).resolve().parents[1] / "harness" / "evalgemma"


def cli(args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    """Run ``evalgemma ARGS`` in-process through ``cli.main``; (exit code, stdout, stderr)."""
    from evalgemma.cli.app import main

    monkeypatch.setattr(sys, "argv", ["evalgemma", *args])
    capsys.readouterr()
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


def digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------ read-only store, full disk


@contextmanager
def readonly_mount(path: Path) -> Iterator[bool]:
    """A read-only tmpfs at ``path`` (root ignores chmod, so a real read-only filesystem is needed).

    Yields False when this machine does not allow mounting (no privilege); the caller then skips.
    """
    path.mkdir(parents=True, exist_ok=True)
    ok = os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(path)], capture_output=True).returncode == 0
    try:
        yield ok
    finally:
        if ok:
            subprocess.run(["umount", str(path)], check=True)


def test_ensure_writable_refuses_a_read_only_filesystem(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    with readonly_mount(ro) as mounted:
        if not mounted:
            pytest.skip("cannot mount a read-only tmpfs here; test_ensure_writable_refuses_a_full_disk covers the same path")
        for target in (ro, ro / "sub" / "store"):
            with pytest.raises(StoreError, match=re.escape(f"--store {target}: not writable (Read-only file system)")):
                ensure_writable(target)
        assert list(ro.iterdir()) == []  # nothing was created


def test_ensure_writable_refuses_a_full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class FullDisk:
        @staticmethod
        def mkstemp(**kwargs: Any) -> tuple[int, str]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(store_mod, "tempfile", FullDisk)
    with pytest.raises(StoreError, match=re.escape(f"--store {tmp_path / 's'}: not writable (No space left on device)")):
        ensure_writable(tmp_path / "s")


def test_store_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match=re.escape(f"--store {blocker / 'store'}: not writable")):
        ensure_writable(blocker / "store")


def test_full_disk_during_a_write_fails_that_unit_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "store"
    first = write_unit(store, make_rows("vA", 1, 50))
    before = first.read_bytes()
    real_replace = os.replace

    def full(src: Any, dst: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(StoreError, match=r"cannot write unit \(No space left on device\); earlier units are intact"):
        write_unit(store, make_rows("vA", 2, 50, task="Other"))
    monkeypatch.setattr(os, "replace", real_replace)
    # The failed unit left no file at all (its temp file was removed), the earlier one is untouched.
    files = sorted(p for p in store.rglob("*") if p.is_file())
    assert files == [first]
    assert first.read_bytes() == before
    frame = load_results(store)
    assert len(frame) == 50 and frame["value"].tolist() == [1_000_000.0 + i for i in range(50)]


def test_cli_run_on_a_read_only_store_exits_3_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    class ReadOnly:
        @staticmethod
        def mkstemp(**kwargs: Any) -> tuple[int, str]:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    ro = tmp_path / "ro"
    with readonly_mount(ro) as mounted:
        if not mounted:  # simulate the same errno where mounting is not allowed
            monkeypatch.setattr(store_mod, "tempfile", ReadOnly)
        loaded: list[str] = []
        import evalgemma.encode.encoder as encoder_mod

        monkeypatch.setattr(encoder_mod, "load_sentence_transformer", lambda *a, **k: loaded.append("model") or pytest.fail("model loaded"))
        code, out, err = cli(
            ["run", "--model", "minilm", "--suite", "smoke", "--tasks", "SmokeSTS", "--store", str(ro), "--no-progress", "--no-cache"], capsys, monkeypatch
        )
    assert code == 3
    assert f"error: --store {ro}: not writable (Read-only file system)" in " ".join(err.split())
    assert "Traceback" not in err + out
    assert loaded == []  # refused before any model was loaded


# ------------------------------------------------------------------ corrupt store files


def good_table(unit: int, **fields: Any) -> pa.Table:
    from evalgemma.store.schema import arrow_schema, complete_row

    rows = [complete_row({**r, "unit_id": f"u{unit}"}) for r in make_rows("vX", unit, 3, **fields)]
    return pa.Table.from_pylist(rows, schema=arrow_schema())


def _whole_smoke_task(variant_key: str, unit: int, task: str, task_type: str) -> list[dict[str, Any]]:
    """A unit holding every cell the smoke suite expects of ``task`` (at its task version), each cell's
    main metric = ``unit``, so the task's score is ``unit`` (``make_rows`` supplies the other columns)."""
    from evalgemma.benchmarks.suites import expected_cells

    expected = (expected_cells("smoke") or {})[task]
    rows = make_rows(variant_key, unit, 2 * len(expected.cells), task=task, suite="smoke", task_type=task_type,
                     task_version=expected.version, dtype="float32", quant="none", embed_dtype="float32")
    for i, row in enumerate(rows):
        cell = expected.cells[i // 2]
        row.update(split=cell.split, hf_subset=cell.subset, is_main=i % 2 == 0, metric="main" if i % 2 == 0 else "other")
        row["value"] = float(unit) if row["is_main"] else row["value"]
    return rows


@pytest.fixture
def corrupt_store(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    """Two good units plus one file of each kind of damage."""
    store = tmp_path / "store"
    write_unit(store, _whole_smoke_task("vGood", 1, "SmokeSTS", "STS"))
    good2 = write_unit(store, _whole_smoke_task("vGood", 2, "SmokeRetrieval", "Retrieval"))
    bad_dir = store / "vBad" / "T"
    bad_dir.mkdir(parents=True)
    bad = {
        "truncated": bad_dir / "truncated.parquet",
        "future": bad_dir / "future.parquet",
        "foreign": bad_dir / "foreign.parquet",
        "not_parquet": bad_dir / "text.parquet",
        "empty": bad_dir / "empty.parquet",
        "string_version": bad_dir / "string_version.parquet",
        "wrong_types": bad_dir / "wrong_types.parquet",
    }
    data = good2.read_bytes()
    bad["truncated"].write_bytes(data[: len(data) // 2])
    future = good_table(3)
    future = future.set_column(0, "schema_version", pa.array([SCHEMA_VERSION + 1] * 3, pa.int32()))
    pq.write_table(future, bad["future"])
    pq.write_table(pa.table({"a": [1, 2], "b": ["x", "y"]}), bad["foreign"])
    bad["not_parquet"].write_text("this is not a parquet file\n")
    bad["empty"].write_bytes(b"")
    t = good_table(4)
    pq.write_table(t.set_column(0, "schema_version", pa.array(["1"] * 3)), bad["string_version"])
    t = good_table(5)
    pq.write_table(t.set_column(t.schema.get_field_index("value"), "value", pa.array(["0.5"] * 3)), bad["wrong_types"])
    return store, bad


def test_corrupt_files_are_reported_with_their_path_and_skipped(corrupt_store: tuple[Path, dict[str, Path]]) -> None:
    store, bad = corrupt_store
    before = digests(store)
    frame, problems = scan_store(store)
    reasons = {p.path: p.reason for p in problems}
    assert set(reasons) == set(bad.values())
    for path, reason in reasons.items():
        assert reason.startswith(f"{path}: ")
    assert "unreadable Parquet" in reasons[bad["truncated"]]
    assert "unreadable Parquet" in reasons[bad["not_parquet"]]
    assert "unreadable Parquet" in reasons[bad["empty"]]
    assert f"schema_version [{SCHEMA_VERSION + 1}] is newer than this evalgemma ({SCHEMA_VERSION})" in reasons[bad["future"]]
    assert "no schema_version column" in reasons[bad["foreign"]]
    assert "schema_version is string, expected an integer" in reasons[bad["string_version"]]
    assert "value is string, expected double" in reasons[bad["wrong_types"]]
    # The two good units (5 cells x 2 metrics each) are all that is read.
    assert sorted(frame["task"].unique()) == ["SmokeRetrieval", "SmokeSTS"] and len(frame) == 20
    with pytest.warns(UserWarning) as record:
        results = load_results(store)
    assert len([w for w in record if "skipped store file" in str(w.message)]) == len(bad)
    assert len(results) == 20 and results["value"].dtype == "float64"
    assert {(k, t) for k, t, *_ in store_mod.stored_cells(results)} == {("vGood", "SmokeSTS"), ("vGood", "SmokeRetrieval")}
    assert digests(store) == before  # nothing deleted, moved or rewritten


def test_leaderboard_cli_survives_corrupt_files(
    corrupt_store: tuple[Path, dict[str, Path]], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import pandas as pd

    store, bad = corrupt_store
    before = digests(store)
    shown = {}
    for fmt in ("csv", "table"):
        code, out, err = cli(["leaderboard", "--store", str(store), "--reference", "none", "--format", fmt], capsys, monkeypatch)
        assert code == 0, err
        assert "Traceback" not in out + err
        flat = " ".join(err.split())
        for path in bad.values():
            assert f"warning: skipped store file: {path}:" in flat
        shown[fmt] = out
    # the two good units are shown: SmokeSTS main score 1.0, SmokeRetrieval 2.0 (make_rows: unit number), 2 of 7 smoke tasks
    board = pd.read_csv(io.StringIO(shown["csv"]))
    assert board["variant"].tolist() == ["fault · vGood"]
    assert (board.loc[0, "STS"], board.loc[0, "Retrieval"], board.loc[0, "n_tasks"], board.loc[0, "n_expected"]) == (1.0, 2.0, 2, 7)
    assert "incomplete (2/7)" in shown["table"]
    assert digests(store) == before


def test_folder_named_like_a_parquet_file_is_not_read_as_a_dataset(tmp_path: Path) -> None:
    # A task called "X.parquet" gives a folder <store>/<variant>/X.parquet/; pyarrow would read the
    # folder as a dataset of both unit files and double every row (bug fixed in store._store_files).
    store = tmp_path / "store"
    write_unit(store, make_rows("vA", 1, 3, task="X.parquet"))
    write_unit(store, make_rows("vA", 2, 3, task="X.parquet"))
    frame, problems = scan_store(store)
    assert problems == [] and len(frame) == 6
    newest = load_results(store)
    assert newest["value"].tolist() == [2_000_000.0, 2_000_001.0, 2_000_002.0]  # unit 2 is newer (finished 1 s later)


def test_temp_files_are_never_read(tmp_path: Path) -> None:
    store = tmp_path / "store"
    write_unit(store, make_rows("vA", 1, 3))
    # What a write killed before its rename leaves: a temp file, here a complete one of a newer unit.
    tmp = store / "vA" / "FaultTask" / f"{store_mod.TMP_PREFIX}abc.parquet"
    pq.write_table(good_table(9), tmp)
    frame, problems = scan_store(store)
    assert problems == [] and frame["unit_id"].str.startswith("FaultTask-").all() and len(frame) == 3
    assert tmp.exists()


# ------------------------------------------------------------------ model loading safety


def _model_dir(root: Path, weights: dict[str, bytes]) -> Path:
    root.mkdir(parents=True)
    (root / "config.json").write_text('{"model_type": "bert", "hidden_size": 8}')
    (root / "modules.json").write_text('[{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}]')
    for name, data in weights.items():
        (root / name).write_bytes(data)
    return root


class _Payload:
    """Unpickling this creates ``marker``: proof that a pickle was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def test_pickle_only_weights_are_refused_without_opt_in(tmp_path: Path) -> None:
    from evalgemma.encode.encoder import load_sentence_transformer
    from evalgemma.encode.models import describe_local
    from evalgemma.variants.spec import WeightSpec

    marker = tmp_path / "pwned"
    model_dir = _model_dir(tmp_path / "m", {"pytorch_model.bin": pickle.dumps(_Payload(marker))})
    model = describe_local(model_dir)
    weight = WeightSpec(model.model_id, model.revision, "float32", 128)
    with pytest.raises(ConfigError, match=re.escape(f"--model {model_dir}: only pickle-based weight files (.bin/.pt) were found")) as info:
        load_sentence_transformer(model, weight, device="cpu")
    assert "--allow-pickle-weights" in str(info.value)
    assert not marker.exists()


class _Recorder:
    calls: ClassVar[list[tuple[str, dict[str, Any]]]] = []

    def __init__(self, path: str, **kwargs: Any) -> None:
        _Recorder.calls.append((path, kwargs))
        self.max_seq_length = 0

    def eval(self) -> _Recorder:
        return self


@pytest.mark.parametrize("trust", [False, True])
def test_remote_code_and_pickle_flags_reach_the_loader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trust: bool) -> None:
    import sentence_transformers

    from evalgemma.encode.encoder import load_sentence_transformer
    from evalgemma.encode.models import describe_local
    from evalgemma.variants.spec import WeightSpec

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", _Recorder)
    _Recorder.calls = []
    model_dir = _model_dir(tmp_path / "m", {"model.safetensors": b"not loaded: the loader is replaced"})
    model = describe_local(model_dir)
    st = load_sentence_transformer(model, WeightSpec(model.model_id, model.revision, "float32", 77), device="cpu", trust_remote_code=trust)
    assert st.max_seq_length == 77
    ((path, kwargs),) = _Recorder.calls
    assert path == str(model_dir.resolve())
    assert kwargs["trust_remote_code"] is trust
    assert kwargs["model_kwargs"]["use_safetensors"] is True  # pickle weights stay off without --allow-pickle-weights


@pytest.mark.parametrize(
    ("flags", "trust", "pickle_ok"),
    [([], False, False), (["--trust-remote-code"], True, False), (["--allow-pickle-weights"], False, True)],
)
def test_cli_security_flags_default_off(
    flags: list[str], trust: bool, pickle_ok: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import evalgemma.cli.console as console

    seen: list[Any] = []
    monkeypatch.setattr(console, "run_with_console", lambda config: seen.append(config))
    code, _, err = cli(["run", "--suite", "smoke", "--store", str(tmp_path), *flags], capsys, monkeypatch)
    assert code == 0, err
    (config,) = seen
    assert (config.runtime.trust_remote_code, config.runtime.allow_pickle_weights) == (trust, pickle_ok)


def test_no_pickle_in_the_package() -> None:
    """No code path of evalgemma unpickles: caches are .npy/Parquet, results Parquet, configs TOML/JSON."""
    forbidden = [
        (re.compile(r"^\s*(import|from)\s+(pickle|cPickle|dill|cloudpickle|joblib|shelve|marshal)\b", re.M), "pickle-family import"),
        (re.compile(r"allow_pickle\s*=\s*True"), "allow_pickle=True"),
        (re.compile(r"read_pickle|to_pickle"), "pandas pickle I/O"),
        (re.compile(r"torch\.load\((?![^)]*weights_only\s*=\s*True)"), "torch.load without weights_only=True"),
        (re.compile(r"trust_remote_code\s*=\s*True"), "trust_remote_code=True hard-coded"),
    ]
    sources = sorted(PACKAGE.rglob("*.py"))
    assert len(sources) > 20  # the whole package is scanned
    hits = [f"{path.relative_to(PACKAGE)}: {what}" for path in sources for pattern, what in forbidden if pattern.search(path.read_text(encoding="utf-8"))]
    assert hits == []
    # np.load is only ever called with allow_pickle=False.
    for path in sources:
        for call in re.findall(r"np\.load\([^)]*\)", path.read_text(encoding="utf-8")):
            assert "allow_pickle=False" in call, f"{path}: {call}"


# ------------------------------------------------------------------ archive extraction (XTREME-UP)


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


def _info(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


@pytest.mark.parametrize(
    ("member", "message"),
    [
        (_info("/etc/evil"), "member with an absolute path: '/etc/evil'"),
        (_info("data/../../evil"), "member with a '..' component: 'data/../../evil'"),
        (_info("../evil"), "member with a '..' component: '../evil'"),
        (_info("data/link", tarfile.SYMTYPE, "/etc/passwd"), "link member 'data/link' -> '/etc/passwd'"),
        (_info("data/hard", tarfile.LNKTYPE, "data/ok.txt"), "link member 'data/hard' -> 'data/ok.txt'"),
        (_info("data/fifo", tarfile.FIFOTYPE), "special member 'data/fifo'"),
        (_info("data/dev", tarfile.CHRTYPE), "special member 'data/dev'"),
    ],
)
def test_unsafe_archive_members_are_refused_before_anything_is_written(tmp_path: Path, member: tarfile.TarInfo, message: str) -> None:
    from evalgemma.benchmarks.xtreme_up.retrieval import safe_extract

    archive = _tar(tmp_path / "a.tgz", [(_info("data/ok.txt"), b"fine"), (member, b"evil" if member.isreg() else None)])
    dest = tmp_path / "out" / "dest"
    with pytest.raises(DataError, match=re.escape(f"{archive}: refusing to extract {message}")):
        safe_extract(archive, dest)
    # Checked before extraction: not even the safe member was written, nothing escaped.
    assert [p for p in (tmp_path / "out").rglob("*") if p.is_file()] == []
    assert not (tmp_path / "evil").exists()


def test_safe_archive_extracts(tmp_path: Path) -> None:
    from evalgemma.benchmarks.xtreme_up.retrieval import safe_extract

    archive = _tar(
        tmp_path / "a.tgz", [(_info("root/retrieval_cross_lang", tarfile.DIRTYPE), None), (_info("root/retrieval_cross_lang/index.jsonl"), b'{"id": "1"}\n')]
    )
    safe_extract(archive, tmp_path / "dest")
    assert (tmp_path / "dest" / "root" / "retrieval_cross_lang" / "index.jsonl").read_bytes() == b'{"id": "1"}\n'


def test_garbage_archive_is_a_data_error(tmp_path: Path) -> None:
    from evalgemma.benchmarks.xtreme_up.retrieval import safe_extract

    archive = tmp_path / "a.tgz"
    archive.write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(DataError, match=re.escape(f"{archive}: cannot extract")):
        safe_extract(archive, tmp_path / "dest")
