"""Property-based tests (hypothesis) over hostile input: suite and model TOML files, XTREME-UP
JSONL files, store files, CLI options and user-supplied names.

The property is always the same: a valid result, or an evalgemma error with a message naming the
file or flag — never another exception (that would be a bug, exit code 1). No test here loads a
model or touches the network: the CLI tests replace ``execute`` (the only step that loads one).
"""

from __future__ import annotations

import gzip
import json
import os
import re
import string
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from evalgemma.catalog.suites import SuiteSpec, load_suite_file, model_entries
from evalgemma.errors import ConfigError, DataError
from evalgemma.store.parquet import TMP_PREFIX, safe_component, scan_store, unit_path, write_unit

sys.path.insert(0, str(Path(__file__).parent))
from fault_worker import make_rows

EXAMPLES = 50
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

SUITE_KEYS = ["schema", "name", "kind", "description", "benchmark", "tasks", "xtreme_task", "languages", "source", "schema_"]
MODEL_KEYS = ["id", "source", "package", "revision", "published_revision", "max_seq_length", "matryoshka_dims", "gated", "description", "name"]

# TOML values we can render ourselves (no TOML writer is installed): strings, ints, floats, bools, arrays.
scalars = st.one_of(
    st.text(max_size=30),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.sampled_from(["mteb", "smoke", "xtreme-up", "tasks", "hub", "package", "retrieval_cross_lang", "retrieval_in_lang", "MTEB(eng, v2)"]),
)
toml_values = st.one_of(scalars, st.lists(scalars, max_size=4), st.lists(st.text(max_size=8), max_size=4))


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # JSON basic-string escapes are TOML escapes (lone surrogates are invalid TOML: a ConfigError)
    return "[" + ", ".join(toml_value(x) for x in v) + "]"


def render(table: dict[str, Any]) -> str:
    return "".join(f"{json.dumps(k)} = {toml_value(v)}\n" for k, v in table.items())


# Hand-picked hostile files, tried on top of the generated ones.
EDGE_TOML = [
    "", "\ufeffname = 'x'", "kind = 'smoke'\nkind = 'smoke'\n", "a = " + "[" * 3000 + "]" * 3000, "a = " + "9" * 5000,
    "kind = 'mteb'", "kind = 'tasks'\ntasks = []", "kind = 'xtreme-up'\nlanguages = ['sw']", "schema = 2\nkind = 'smoke'",
    "kind = 'smoke'\nsource = '/etc/passwd'", "kind = 'smoke'\n[extra]\nx = 1", "\x00", "kind = \"\\ud800\"", "name = 1\nkind = 'smoke'",
    "kind = 'smoke'\nname = '../../etc'",
]


def check_suite(path: Path) -> None:
    try:
        spec = load_suite_file(path)
    except ConfigError as exc:
        assert str(exc).startswith(f"{path}"), str(exc)
        return
    # Valid: a closed, consistent spec.
    assert isinstance(spec, SuiteSpec) and spec.schema_ == 1 and spec.source == str(path)
    assert spec.kind in ("mteb", "smoke", "xtreme-up", "tasks")
    if spec.kind == "mteb":
        assert spec.benchmark
    if spec.kind == "xtreme-up":
        assert spec.xtreme_task and spec.languages


@SETTINGS
@given(text=st.one_of(st.text(max_size=200), st.sampled_from(EDGE_TOML)))
def test_suite_file_from_random_text(text: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "suite.toml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        check_suite(path)


@SETTINGS
@given(raw=st.binary(max_size=200))
def test_suite_file_from_random_bytes(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "suite.toml"
        path.write_bytes(raw)
        check_suite(path)


@SETTINGS
@given(table=st.dictionaries(st.one_of(st.sampled_from(SUITE_KEYS), st.text(max_size=10)), toml_values, max_size=7))
@example(table={"kind": "smoke"})
@example(table={"kind": "xtreme-up", "xtreme_task": "retrieval_in_lang", "languages": ["sw", "yo"]})
@example(table={"kind": "tasks", "tasks": ["STSBenchmark"], "source": "x"})
def test_suite_file_from_random_tables(table: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "suite.toml"
        path.write_text(render(table), encoding="utf-8", errors="surrogatepass")
        check_suite(path)


def test_the_valid_examples_are_accepted(tmp_path: Path) -> None:
    # The property above must not pass by rejecting everything: these are valid suites.
    path = tmp_path / "s.toml"
    path.write_text(render({"kind": "xtreme-up", "xtreme_task": "retrieval_in_lang", "languages": ["sw", "yo"]}))
    spec = load_suite_file(path)
    assert (spec.name, spec.kind, spec.languages) == ("s", "xtreme-up", ("sw", "yo"))
    path.write_text("a = " + "[" * 3000 + "]" * 3000)
    with pytest.raises(ConfigError, match=re.escape(f"{path}: invalid TOML (RecursionError")):
        load_suite_file(path)
    path.write_text("a = " + "9" * 5000)
    with pytest.raises(ConfigError, match=re.escape(f"{path}: invalid TOML (ValueError: Exceeds the limit (4300 digits)")):
        load_suite_file(path)


@SETTINGS
@given(
    models=st.dictionaries(
        st.text(min_size=1, max_size=10), st.dictionaries(st.one_of(st.sampled_from(MODEL_KEYS), st.text(max_size=6)), toml_values, max_size=6), max_size=3
    ),
    top=st.dictionaries(st.sampled_from(["schema", "other", "models"]), scalars, max_size=2),
)
@example(models={"x": {"id": "org/m", "source": "hub"}}, top={})
@example(models={"x": {"name": "y", "id": "org/m", "source": "hub"}}, top={})
def test_model_file_from_random_tables(models: dict[str, dict[str, Any]], top: dict[str, Any]) -> None:
    text = render(top) + "".join(f"[models.{json.dumps(name)}]\n{render(fields)}" for name, fields in models.items())
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "models.toml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            entries = model_entries.__wrapped__(Path(d))  # bypass the lru_cache: one fresh file per example
        except ConfigError as exc:
            assert str(exc).startswith(str(path)), str(exc)
            return
    assert set(entries) == set(models) or "models" in top
    for name, entry in entries.items():
        assert entry.name == name and entry.source in ("hub", "package") and isinstance(entry.id, str)


# ------------------------------------------------------------------ XTREME-UP JSONL reader

GOOD_INDEX = b'{"id": "p1", "title": "T", "context": "passage one"}\n{"id": "p2", "title": "T", "context": "passage two"}\n'
GOOD_QUERY = b'{"id": "p1", "title": "T", "context": "passage one", "question": "which one?"}\n'

json_lines = st.lists(
    st.one_of(
        st.just(GOOD_INDEX.split(b"\n")[0].decode()),
        st.builds(
            lambda d: json.dumps(d),
            st.dictionaries(
                st.sampled_from(["id", "title", "context", "question", "x"]),
                st.one_of(st.text(max_size=10), st.integers(), st.none(), st.lists(st.integers(), max_size=2)),
                max_size=5,
            ),
        ),
        st.text(max_size=30),
        st.sampled_from(["", "  ", "[]", "null", "1", '"s"', "{", '{"id": NaN, "title": "", "context": ""}']),
    ),
    max_size=6,
).map(lambda lines: "\n".join(lines).encode("utf-8", "surrogatepass"))


def _xtreme_layout(root: Path, index: bytes, query: bytes, gz: bool) -> None:
    task = root / "retrieval_cross_lang"
    (task / "test").mkdir(parents=True)
    suffix = ".jsonl.gz" if gz else ".jsonl"
    wrap = gzip.compress if gz else (lambda b: b)
    (task / f"index{suffix}").write_bytes(wrap(index))
    (task / "test" / f"sw{suffix}").write_bytes(wrap(query))


def check_xtreme(index: bytes, query: bytes, gz: bool = False, raw_gz: bytes | None = None) -> None:
    from evalgemma.benchmarks.xtreme_up.retrieval import XtremeUpData, load_xtreme_up

    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        _xtreme_layout(root, index, query, gz)
        if raw_gz is not None:
            (root / "retrieval_cross_lang" / "index.jsonl.gz").write_bytes(raw_gz)
        try:
            data = load_xtreme_up(root, "retrieval_cross_lang", "test", ["sw"])
        except DataError as exc:
            assert str(exc).startswith(str(root)), str(exc)  # names the file
            return
        assert isinstance(data, XtremeUpData)
        assert len(data.index_ids) == len(set(data.index_ids)) > 0
        assert len(data.queries["sw"]) > 0
        assert all({"id", "title", "context", "question"} <= set(q) for q in data.queries["sw"])


@SETTINGS
@given(index=st.one_of(json_lines, st.binary(max_size=120)), query=st.one_of(json_lines, st.binary(max_size=120), st.just(GOOD_QUERY)), gz=st.booleans())
@example(index=GOOD_INDEX, query=GOOD_QUERY, gz=False)
@example(index=GOOD_INDEX + GOOD_INDEX, query=GOOD_QUERY, gz=True)
@example(index=b"\xff\xfe", query=GOOD_QUERY, gz=False)
def test_xtreme_up_reader_on_random_lines(index: bytes, query: bytes, gz: bool) -> None:
    check_xtreme(index, query, gz)


def test_xtreme_up_reader_valid_example_is_read() -> None:
    from evalgemma.benchmarks.xtreme_up.retrieval import load_xtreme_up

    with tempfile.TemporaryDirectory() as d:
        _xtreme_layout(Path(d), GOOD_INDEX, GOOD_QUERY, gz=True)
        data = load_xtreme_up(Path(d), "retrieval_cross_lang", "test", ["sw"])
    assert data.index_ids == ["p1", "p2"] and data.queries["sw"][0]["question"] == "which one?"


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("deep_nesting", "retrieval_cross_lang/index.jsonl: line 1: invalid JSON: RecursionError"),
        ("huge_int", "retrieval_cross_lang/index.jsonl: line 1: invalid JSON: ValueError"),
        ("corrupt_gzip", "retrieval_cross_lang/index.jsonl.gz: not a valid gzip file"),
    ],
)
def test_xtreme_up_reader_hostile_edge_cases(case: str, message: str) -> None:
    from evalgemma.benchmarks.xtreme_up.retrieval import load_xtreme_up

    good = gzip.compress(GOOD_INDEX * 20)
    if case == "deep_nesting":
        index, gz, raw_gz = b"[" * 100_000 + b"\n", False, None
    elif case == "huge_int":
        index, gz, raw_gz = b'{"id": ' + b"9" * 5000 + b', "title": "", "context": ""}\n', False, None
    else:  # flip bytes inside the deflate stream, keep the gzip header
        index, gz, raw_gz = b"", True, good[:12] + bytes(b ^ 0x55 for b in good[12:30]) + good[30:]
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        _xtreme_layout(root, index, GOOD_QUERY, gz)
        if raw_gz is not None:
            (root / "retrieval_cross_lang" / "index.jsonl.gz").write_bytes(raw_gz)
        # each of these once escaped as a traceback (RecursionError, ValueError, zlib.error)
        with pytest.raises(DataError, match=re.escape(f"{root}/{message}")):
            load_xtreme_up(root, "retrieval_cross_lang", "test", ["sw"])


# ------------------------------------------------------------------ store files and names


@SETTINGS
@given(data=st.binary(max_size=400), cut=st.floats(min_value=0, max_value=1))
def test_store_scan_never_raises_on_random_or_truncated_files(data: bytes, cut: float) -> None:
    with tempfile.TemporaryDirectory() as d:
        store = Path(d)
        good = write_unit(store, make_rows("vA", 1, 5))
        whole = good.read_bytes()
        (store / "vA" / "random.parquet").write_bytes(data)
        (store / "vA" / "cut.parquet").write_bytes(whole[: int(cut * len(whole))])
        frame, problems = scan_store(store)
        bad = {p.path.name for p in problems}
        assert "random.parquet" in bad  # random bytes are never a valid store file
        # A cut file is readable only when nothing was cut; then it is a second copy of the unit.
        assert ("cut.parquet" in bad) == (int(cut * len(whole)) < len(whole))
        assert len(frame) == 5 * (1 + ("cut.parquet" not in bad))
        assert all(p.reason.startswith(str(p.path)) for p in problems)


names = st.one_of(
    st.text(max_size=300),
    st.sampled_from(["..", ".", "../../etc/passwd", "/abs/path", "org/model", "a\\b", "..\\..", "\x00", "~", ".tmp-x", "CON", "a" * 1000, "é/../ü", "💥" * 50]),
)


@SETTINGS
@given(variant_key=names, task=names, unit_id=names)
def test_unit_path_never_escapes_the_store(variant_key: str, task: str, unit_id: str) -> None:
    store = Path("/srv/store")
    path = unit_path(store, variant_key, task, unit_id)
    resolved = Path(os.path.normpath(path))
    assert resolved.parent.parent.parent == store  # exactly <store>/<variant>/<task>/<file>
    assert path == resolved  # no "." or ".." component survives
    for part in path.relative_to(store).parts:
        assert part and not part.startswith(".") and len(part) <= 128 and re.fullmatch(r"[A-Za-z0-9._-]+", part)
    assert not path.name.startswith(TMP_PREFIX)


@SETTINGS
@given(name=names)
def test_safe_component_is_one_safe_name(name: str) -> None:
    c = safe_component(name)
    assert c not in ("", ".", "..") and "/" not in c and "\\" not in c and not c.startswith(".")
    assert set(c) <= set(string.ascii_letters + string.digits + "._-") and len(c) <= 120


@SETTINGS
@given(namespace=names)
def test_embedding_cache_namespace_never_escapes(namespace: str) -> None:
    from evalgemma.encode.cache import check_namespace

    try:
        ok = check_namespace(namespace)
    except ValueError as exc:
        assert "invalid namespace" in str(exc)
        return
    root = Path("/srv/cache")
    assert Path(os.path.normpath(root / ok)).parent == root and not ok.startswith(".")


def test_written_units_stay_inside_the_store(tmp_path: Path) -> None:
    store = tmp_path / "store"
    for hostile in ("../../escape", "/etc/x", "..", "a/b/../../.."):
        path = write_unit(store, make_rows(hostile, 1, 2, task=hostile))
        assert path.resolve().is_relative_to(store.resolve())
    assert [p for p in tmp_path.rglob("*") if p.is_file() and not p.resolve().is_relative_to(store.resolve())] == []
    assert len(scan_store(store)[0]) == 8


# ------------------------------------------------------------------ CLI options

DOCUMENTED_EXITS = {0, 2, 3}  # success (execute replaced), usage/config error, data/store error
dims = st.one_of(
    st.lists(st.integers(min_value=-5, max_value=2000), min_size=1, max_size=3).map(lambda v: ",".join(map(str, v))),
    st.text(max_size=12),
    st.sampled_from(["384", "384,256,128,64", "0", "-1", "1e3", "384,", ",", "abc", "99999999999999999999"]),
)
choice = st.one_of(
    st.text(max_size=10), st.sampled_from(["float32", "bfloat16", "float16", "none", "q8_0", "int8", "binary", "ubinary", "uint8", "FLOAT32", "", ","])
)
suites = st.one_of(
    st.sampled_from(["smoke", "xtreme-up", "xtreme-up-in-lang", "nosuch", "smok", "", "x.toml", "/etc/passwd", "../tasks/suites/smoke.toml"]),
    st.text(max_size=12),
)


@SETTINGS
@given(
    dim=dims,
    dtype=choice,
    quant=choice,
    embed=choice,
    suite=suites,
    langs=st.one_of(st.none(), st.text(max_size=10), st.sampled_from(["eng", "sw,yo", "zzz", ","])),
)
@example(dim="384", dtype="float32", quant="none", embed="float32", suite="smoke", langs="eng")
@example(dim="384,256", dtype="bfloat16", quant="none", embed="int8,binary", suite="smoke", langs=None)
@example(dim="385", dtype="float32", quant="none", embed="binary", suite="smoke", langs=None)
def test_cli_run_options(
    dim: str,
    dtype: str,
    quant: str,
    embed: str,
    suite: str,
    langs: str | None,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import evalgemma.cli.console as console
    from evalgemma.cli.app import main
    from evalgemma.run import RunSummary

    plans: list[Any] = []

    def fake_execute(plan: Any, **kwargs: Any) -> RunSummary:
        plans.append(plan)  # the only step that would load a model: stop here
        return RunSummary("fake", [], [], 0, 0.0)

    monkeypatch.setattr(console, "execute", fake_execute)
    store = tmp_path_factory.mktemp("cli-store")
    args = [
        "evalgemma",
        "run",
        "--model",
        "minilm",
        "--store",
        str(store),
        "--no-progress",
        "--no-cache",
        "--offline",
        "--dim",
        dim,
        "--dtype",
        dtype,
        "--quant",
        quant,
        "--embed-dtype",
        embed,
        "--suite",
        suite,
    ]
    if langs is not None:
        args += ["--langs", langs]
    monkeypatch.setattr(sys, "argv", args)
    capsys.readouterr()
    try:
        main()
        code: Any = 0
    except SystemExit as exc:
        code = exc.code
    except BaseException as exc:
        pytest.fail(f"{args[1:]}: {type(exc).__name__}: {exc}")
    out, err = capsys.readouterr()
    assert code in DOCUMENTED_EXITS, f"{args[1:]} -> exit {code}\n{err[-2000:]}"
    assert "Traceback" not in out + err
    if code == 0:
        (plan,) = plans  # a valid command reached execution with a checked plan
        assert {v.dim for v in plan.variants} == {int(d) for d in dim.split(",") if d.strip()}
    else:
        assert plans == [] and err.strip(), "an error exit must say why"
    assert list(store.rglob("*.parquet")) == []


def test_cli_option_errors_name_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from evalgemma.cli.app import main

    cases = [
        (["--dim", "abc"], 2, "--dim abc: 'abc' is not an integer"),
        (["--dim", "0"], 2, "--dim 0: must be a positive integer"),
        (["--dim", "100", "--embed-dtype", "binary"], 2, "--embed-dtype binary: needs dims divisible by 8 (got [100])"),
        (["--dim", "385"], 2, "--dim 385: larger than all-MiniLM-L6-v2's output dimension 384"),
        (["--dtype", "int4"], 2, "--dtype: unknown model dtype 'int4'"),
        (["--quant", "q3"], 2, "--quant: unknown weight quantization format 'q3'"),
        (["--embed-dtype", "int9"], 2, "--embed-dtype: unknown embedding dtype 'int9'. Did you mean 'int8'"),
        (["--suite", "smok"], 2, "--suite: unknown suite 'smok'. Did you mean 'smoke'"),
    ]
    for extra, want_code, want in cases:
        monkeypatch.setattr(sys, "argv", ["evalgemma", "run", "--model", "minilm", "--suite", "smoke", "--store", str(tmp_path), *extra])
        capsys.readouterr()
        with pytest.raises(SystemExit) as info:
            main()
        err = " ".join(capsys.readouterr().err.split())
        assert info.value.code == want_code, (extra, err)
        assert want in err, (extra, err)
