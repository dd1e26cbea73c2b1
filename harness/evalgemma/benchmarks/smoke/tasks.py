"""The built-in offline suites (``smoke``, ``types``): our own short texts, scored by mteb's own evaluators.

A suite's data lives in ``tasks/<suite>/`` (``<suite>.toml`` plus JSONL files); every line holds
one item in every language of its task. Each task is a real mteb task: a subclass of the mteb
abstract task that the benchmark tasks of its kind use (``AbsTaskRetrieval``, ``AbsTaskSTS``,
``AbsTaskBitextMining``, ``AbsTaskClassification``, ``AbsTaskMultilabelClassification``,
``AbsTaskClustering``, ``AbsTaskClusteringLegacy``, ``AbsTaskPairClassification``,
``AbsTaskSummarization``; reranking and instruction reranking are ``AbsTaskRetrieval`` with
``top_ranked``), so ``mteb.evaluate(model, smoke_tasks(), cache=None)`` scores it exactly as it
scores published tasks, without any network access.

A task's kind is its mteb ``type`` and a ``form``: which of the type's evaluation paths it
exercises (``default``; ``ignore_identical_ids`` retrieval as ArguAna; ``max_over_subqueries``
reranking as MindSmallReranking; ``hierarchical`` and ``legacy`` clustering as
ArXivHierarchicalClustering and WikiCitiesClustering; ``parallel`` bitext mining as Flores).

A task's ``metadata.dataset["revision"]`` is the sha256 of its own data files (see
:func:`task_data_sha256`), so a stored score knows which data produced it, and ``load_data``
refuses files that changed after the task object was built.

mteb is imported only inside the functions that build tasks, so ``import evalgemma.benchmarks.smoke.tasks`` is
light (``SMOKE_TASK_NAMES`` and :func:`suite_task_types` are available without mteb).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import random
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evalgemma.benchmarks.base import Cell, cells_sha256
from evalgemma.errors import ConfigError, DataError, unknown_name

if TYPE_CHECKING:
    from mteb.abstasks.abstask import AbsTask

__all__ = [
    "MANIFEST_NAME",
    "SMOKE_TASK_NAMES",
    "SmokeManifest",
    "SmokeTaskEntry",
    "calibration_texts",
    "load_manifest",
    "manifest_name",
    "smoke_data_dir",
    "smoke_data_sha256",
    "smoke_tasks",
    "suite_task_types",
    "task_data_sha256",
]

SmokeType = Literal[
    "Retrieval", "STS", "BitextMining", "Classification", "MultilabelClassification", "Clustering",
    "PairClassification", "Reranking", "InstructionReranking", "Summarization",
]
Form = Literal["default", "ignore_identical_ids", "max_over_subqueries", "hierarchical", "legacy", "parallel"]
Kind = tuple[SmokeType, Form]

# The smoke suite's tasks, pinned (its scores are a committed CI baseline): name -> mteb task
# type; the order is the suite's order. Other suites take their task list from the manifest.
_SMOKE_TYPES: dict[str, SmokeType] = {
    "SmokeRetrieval": "Retrieval",
    "SmokeSTS": "STS",
    "SmokeBitextMining": "BitextMining",
    "SmokeClassification": "Classification",
    "SmokeClustering": "Clustering",
    "SmokePairClassification": "PairClassification",
    "SmokeReranking": "Reranking",
}
SMOKE_TASK_NAMES: tuple[str, ...] = tuple(_SMOKE_TYPES)
_PINNED: dict[str, dict[str, SmokeType]] = {"smoke": _SMOKE_TYPES}

MANIFEST_NAME = "smoke.toml"
_DATA_SUFFIXES = (".jsonl", ".toml")
_SPLIT = "test"
#: Smoke types whose mteb abstask draws from one generator across subsets (see benchmarks.mteb.unit).
_ORDER_DEPENDENT: frozenset[tuple[str, str]] = frozenset(
    {("Clustering", "default"), ("Clustering", "hierarchical"), ("MultilabelClassification", "default")}
)
_SUMMARY_SCALE = (1, 5)  # SummEval's relevance scale; mteb normalises by it (AbsTaskSummarization.min/max_score)

# Every kind a task can be, with the counts its `expect` table must give (per language, since
# items are translated).
_EXPECT_KEYS: dict[Kind, frozenset[str]] = {
    ("Retrieval", "default"): frozenset({"corpus", "queries"}),
    ("Retrieval", "ignore_identical_ids"): frozenset({"corpus", "queries"}),
    ("STS", "default"): frozenset({"pairs"}),
    ("BitextMining", "default"): frozenset({"pairs"}),
    ("BitextMining", "parallel"): frozenset({"pairs"}),
    ("Classification", "default"): frozenset({"train", "test"}),
    ("MultilabelClassification", "default"): frozenset({"train", "test"}),
    ("Clustering", "default"): frozenset({"sentences"}),
    ("Clustering", "hierarchical"): frozenset({"sentences"}),
    ("Clustering", "legacy"): frozenset({"sets", "sentences"}),
    ("PairClassification", "default"): frozenset({"pairs", "positives"}),
    ("Reranking", "default"): frozenset({"queries", "documents"}),
    ("Reranking", "max_over_subqueries"): frozenset({"queries", "subqueries", "documents"}),
    ("InstructionReranking", "default"): frozenset({"queries", "documents", "changed"}),
    ("Summarization", "default"): frozenset({"texts", "human", "machine"}),
}
_LABELLED: frozenset[SmokeType] = frozenset({"Classification", "MultilabelClassification", "Clustering"})
_SEARCH_TYPES: frozenset[SmokeType] = frozenset({"Retrieval", "Reranking", "InstructionReranking"})


# ---------------------------------------------------------------- manifest


class SmokeTaskEntry(BaseModel):
    """One ``[tasks.<name>]`` table of a suite manifest."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: SmokeType
    form: Form = "default"
    main_score: str
    files: tuple[str, ...] = Field(min_length=1)
    description: str = Field(min_length=1)
    subtypes: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()  # default: the suite's languages; one language = mteb's "default" subset
    expect: dict[str, int]

    @property
    def kind(self) -> Kind:
        return (self.type, self.form)


class SmokeManifest(BaseModel):
    """``tasks/<suite>/<suite>.toml``: languages, provenance and the tasks of the suite."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    schema_version: Literal[1] = Field(alias="schema")
    suite: str
    version: int = Field(ge=1)
    license: str
    created: datetime.date
    languages: tuple[str, ...] = Field(min_length=1)
    script: str
    bitext_pivot: str | None = None  # needed by BitextMining tasks of the default form
    tasks: dict[str, SmokeTaskEntry]

    def task_languages(self, name: str) -> tuple[str, ...]:
        """The languages of one task, in suite order."""
        return self.tasks[name].languages or self.languages


def manifest_name(suite: str = "smoke") -> str:
    """The manifest file of a suite's data folder: ``<suite>.toml``."""
    return f"{suite}.toml"


def smoke_data_dir(data_dir: Path | str | None = None, suite: str = "smoke") -> Path:
    """The folder holding a built-in suite's data.

    Args:
        data_dir: an explicit folder; else ``tasks/<suite>`` of the repository.
        suite: the suite whose manifest (``<suite>.toml``) the folder must hold.

    Raises:
        DataError: the folder (or its manifest) does not exist.
    """
    manifest = manifest_name(suite)
    if data_dir is not None:
        path = Path(data_dir)
        if not (path / manifest).is_file():
            raise DataError(f"{path}: no {manifest} there; data_dir must be the {suite} suite folder (tasks/{suite} in the repository)")
        return path
    from evalgemma.catalog import TASKS_DIR

    candidate = TASKS_DIR / suite
    if (candidate / manifest).is_file():
        return candidate
    raise DataError(f"cannot find {candidate / manifest}; run from the evalgemma repository or pass data_dir")


def load_manifest(data_dir: Path | str | None = None, suite: str = "smoke") -> SmokeManifest:
    """Read and validate a suite's manifest (``smoke.toml`` by default).

    Raises:
        ConfigError: invalid TOML, unknown or missing keys, an unknown kind, inconsistent
            languages, or (for ``smoke``) a task list that is not ``SMOKE_TASK_NAMES`` with their types.
        DataError: the folder cannot be found.
    """
    path = smoke_data_dir(data_dir, suite) / manifest_name(suite)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None
    try:
        manifest = SmokeManifest.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ConfigError(f"{path}: {problems}") from None
    _check_manifest(manifest, path, suite)
    return manifest


def suite_task_types(suite: str = "smoke", data_dir: Path | str | None = None) -> dict[str, str]:
    """Task name -> mteb task type of a built-in suite, in suite order (reads the manifest; no mteb)."""
    return {name: entry.type for name, entry in load_manifest(data_dir, suite).tasks.items()}


def _check_manifest(manifest: SmokeManifest, path: Path, suite: str) -> None:
    if manifest.suite != suite:
        raise ConfigError(f"{path}: suite = {manifest.suite!r}, expected {suite!r} (the file's name)")
    pinned = _PINNED.get(suite)
    if pinned is not None:
        for name in manifest.tasks:
            if name not in pinned:
                raise unknown_name(f"{suite} task", name, pinned, where=str(path))
        missing = [n for n in pinned if n not in manifest.tasks]
        if missing:
            raise ConfigError(f"{path}: no [tasks.{missing[0]}] table; the suite needs {', '.join(pinned)}")
    if len(set(manifest.languages)) != len(manifest.languages):
        raise ConfigError(f"{path}: languages lists a language twice: {list(manifest.languages)}")
    if manifest.bitext_pivot is not None and manifest.bitext_pivot not in manifest.languages:
        raise ConfigError(f"{path}: bitext_pivot {manifest.bitext_pivot!r} is not one of languages {list(manifest.languages)}")
    for name, entry in manifest.tasks.items():
        where = f"{path} [tasks.{name}]"
        if pinned is not None and entry.type != pinned[name]:
            raise ConfigError(f"{where}: type {entry.type!r}, expected {pinned[name]!r}")
        if entry.kind not in _EXPECT_KEYS:
            forms = sorted(f for t, f in _EXPECT_KEYS if t == entry.type)
            raise ConfigError(f"{where}: form {entry.form!r} is not available for type {entry.type!r}; valid: {', '.join(forms)}")
        langs = entry.languages
        if len(set(langs)) != len(langs) or not set(langs) <= set(manifest.languages):
            raise ConfigError(f"{where}: languages {list(langs)} must be distinct languages of the suite {list(manifest.languages)}")
        if langs and list(langs) != [lang for lang in manifest.languages if lang in langs]:
            raise ConfigError(f"{where}: languages {list(langs)} must follow the suite's order {list(manifest.languages)}")
        if entry.type == "BitextMining":
            task_langs = manifest.task_languages(name)
            if len(task_langs) < 2:
                raise ConfigError(f"{where}: bitext mining needs at least two languages")
            if entry.form == "default" and manifest.bitext_pivot not in task_langs:
                raise ConfigError(f"{where}: bitext mining (xxx-pivot subsets) needs the suite's bitext_pivot among its languages")
        want = _EXPECT_KEYS[entry.kind]
        if set(entry.expect) != want:
            raise ConfigError(f"{where}: expect must give exactly {sorted(want)}, got {sorted(entry.expect)}")
        if entry.type in _LABELLED and len(entry.labels) < 2:
            raise ConfigError(f"{where}: needs `labels` with at least two names")
        if entry.form == "hierarchical":
            flat = [label for label in entry.labels if len(label.split(".")) < 2 or "" in label.split(".")]
            if flat:
                raise ConfigError(f"{where}: hierarchical labels are dot-separated levels (topic.subtopic), got {flat[0]!r}")
        for file in entry.files:
            if "/" in file or "\\" in file or not file.endswith(".jsonl"):
                raise ConfigError(f"{where}: files must be plain *.jsonl names in {path.parent}, got {file!r}")


# ---------------------------------------------------------------- checksums


def _files_sha256(folder: Path, names: Iterable[str]) -> str:
    """sha256 of ``sha256sum``-style lines of the files, sorted by name (reproducible in a shell)."""
    lines = []
    for name in sorted(set(names)):
        path = folder / name
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError as exc:
            raise DataError(f"{path}: cannot read suite data file: {exc}") from None
        lines.append(f"{digest}  {name}\n")
    return hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()


def smoke_data_sha256(data_dir: Path | str | None = None, suite: str = "smoke") -> str:
    """sha256 of every ``*.jsonl`` and ``*.toml`` file of a built-in suite's folder.

    Equal to ``cd tasks/smoke && LC_ALL=C sha256sum $(ls *.jsonl *.toml | LC_ALL=C sort) | sha256sum``.
    """
    folder = smoke_data_dir(data_dir, suite)
    names = [p.name for p in folder.iterdir() if p.is_file() and p.suffix in _DATA_SUFFIXES]
    return _files_sha256(folder, names)


def task_data_sha256(name: str, data_dir: Path | str | None = None, suite: str = "smoke") -> str:
    """sha256 of one task's data files (its mteb ``dataset["revision"]``)."""
    folder = smoke_data_dir(data_dir, suite)
    manifest = load_manifest(folder, suite)
    if name not in manifest.tasks:
        raise unknown_name(f"{suite} task", name, manifest.tasks)
    return _files_sha256(folder, manifest.tasks[name].files)


# ---------------------------------------------------------------- reading the data files


Texts = dict[str, str]  # language -> text


@dataclass(frozen=True)
class _Line:
    where: str  # "file:line" for messages
    obj: dict[str, Any]


def _read_jsonl(path: Path) -> list[_Line]:
    try:
        content = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read suite data file: {exc}") from None
    lines = []
    for number, text in enumerate(content.splitlines(), start=1):
        if not text.strip():
            continue
        where = f"{path}:{number}"
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: invalid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(obj, dict):
            raise DataError(f"{where}: each line must be a JSON object, got {type(obj).__name__}")
        lines.append(_Line(where, obj))
    if not lines:
        raise DataError(f"{path}: no items")
    return lines


def _keys(line: _Line, required: set[str]) -> None:
    got = set(line.obj)
    if got != required:
        extra, missing = sorted(got - required), sorted(required - got)
        detail = "; ".join(x for x in (f"unknown key(s) {extra}" if extra else "", f"missing key(s) {missing}" if missing else "") if x)
        raise DataError(f"{line.where}: {detail}; expected exactly {sorted(required)}")


def _ids(lines: Sequence[_Line]) -> list[str]:
    seen: dict[str, str] = {}
    out = []
    for line in lines:
        ident = line.obj["id"]
        if not isinstance(ident, str) or not ident:
            raise DataError(f"{line.where}: id must be a non-empty string, got {ident!r}")
        if ident in seen:
            raise DataError(f"{line.where}: duplicate id {ident!r} (first at {seen[ident]})")
        seen[ident] = line.where
        out.append(ident)
    return out


def _texts(value: Any, where: str, languages: Sequence[str]) -> Texts:
    if not isinstance(value, dict):
        raise DataError(f"{where}: expected an object mapping each language to its text, got {type(value).__name__}")
    if set(value) != set(languages):
        extra, missing = sorted(set(value) - set(languages)), sorted(set(languages) - set(value))
        raise DataError(f"{where}: languages must be exactly {list(languages)}; missing {missing}, unknown {extra}")
    out: Texts = {}
    for lang in languages:
        text = value[lang]
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{where}: text for {lang!r} must be a non-empty string")
        out[lang] = text.strip()
    return out


def _text_list(value: Any, where: str, key: str, languages: Sequence[str]) -> tuple[Texts, ...]:
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: {key} must be a non-empty list of texts by language")
    return tuple(_texts(v, f"{where} ({key}[{n}])", languages) for n, v in enumerate(value))


def _flag(value: Any, where: str, key: str) -> int:
    if value not in (0, 1) or isinstance(value, bool):
        raise DataError(f"{where}: {key} must be 0 or 1, got {value!r}")
    return int(value)


def _expect(entry_name: str, entry: SmokeTaskEntry, key: str, got: int, folder: Path, suite: str) -> None:
    want = entry.expect[key]
    if got != want:
        raise DataError(
            f"{folder / entry.files[0]}: task {entry_name} has {got} {key} per language, {folder / manifest_name(suite)} expects {want}; "
            "fix the data or the expect table (and bump version)"
        )


@dataclass(frozen=True)
class _Parsed:
    """One task's items, validated; per-language views are built from these."""

    kind: Kind
    items: tuple[Any, ...]
    extra: tuple[Any, ...] = ()


def _candidates(ident: str, line: _Line, langs: Sequence[str]) -> tuple[tuple[str, int, Texts], ...]:
    """A reranking line's positive (grade 1) and negative (grade 0) candidates, with their ids."""
    cands = []
    for key, grade in (("positive", 1), ("negative", 0)):
        for n, texts in enumerate(_text_list(line.obj[key], line.where, key, langs)):
            cands.append((f"{ident}-{key[0]}{n}", grade, texts))
    return tuple(cands)


def _parse(name: str, manifest: SmokeManifest, folder: Path) -> _Parsed:
    entry = manifest.tasks[name]
    suite = manifest.suite
    langs = manifest.task_languages(name)
    files = [_read_jsonl(folder / f) for f in entry.files]

    def expect(key: str, got: int) -> None:
        _expect(name, entry, key, got, folder, suite)

    if entry.type == "Retrieval":
        if len(files) != 2:
            raise ConfigError(f"{folder / manifest_name(suite)} [tasks.{name}]: files must be [corpus, queries]")
        corpus_lines, query_lines = files
        for line in corpus_lines:
            _keys(line, {"id", "text"})
        # ignore_identical_ids: a query is a corpus document (its id and text), as in ArguAna
        own_text = entry.form == "ignore_identical_ids"
        for line in query_lines:
            _keys(line, {"id", "relevant"} if own_text else {"id", "text", "relevant"})
        doc_ids = _ids(corpus_lines)
        corpus = tuple((i, _texts(line.obj["text"], line.where, langs)) for i, line in zip(doc_ids, corpus_lines, strict=True))
        by_id = dict(corpus)
        queries = []
        for qid, line in zip(_ids(query_lines), query_lines, strict=True):
            relevant = line.obj["relevant"]
            if not isinstance(relevant, dict) or not relevant:
                raise DataError(f"{line.where}: relevant must map at least one document id to a grade")
            for did, grade in relevant.items():
                if did not in by_id:
                    raise DataError(f"{line.where}: relevant document {did!r} is not in {entry.files[0]}")
                if not isinstance(grade, int) or isinstance(grade, bool) or grade < 1:
                    raise DataError(f"{line.where}: grade of {did!r} must be an integer >= 1, got {grade!r}")
            if own_text:
                if qid not in by_id:
                    raise DataError(f"{line.where}: query {qid!r} must be a document of {entry.files[0]} (ignore_identical_ids: queries are corpus documents)")
                if qid in relevant:
                    raise DataError(f"{line.where}: query {qid!r} lists itself as relevant; ignore_identical_ids would drop it")
                texts = by_id[qid]
            else:
                texts = _texts(line.obj["text"], line.where, langs)
            queries.append((qid, texts, dict(relevant)))
        expect("corpus", len(corpus))
        expect("queries", len(queries))
        return _Parsed(entry.kind, tuple(queries), corpus)

    if len(files) != 1:
        raise ConfigError(f"{folder / manifest_name(suite)} [tasks.{name}]: files must name exactly one file")
    lines = files[0]
    for line in lines:
        if "id" not in line.obj:
            raise DataError(f"{line.where}: missing key 'id'")
    ids = _ids(lines)
    labels = {label: i for i, label in enumerate(entry.labels)}

    def label_index(value: Any, where: str) -> int:
        if value not in labels:
            raise DataError(str(unknown_name("label", str(value), labels, where=where))) from None
        return labels[value]

    def split_of(line: _Line) -> str:
        split = line.obj.get("split", _SPLIT)
        if split not in ("train", _SPLIT):
            raise DataError(f"{line.where}: split must be 'train' or 'test', got {split!r}")
        return str(split)

    items: list[Any] = []
    if entry.type == "STS":
        for ident, line in zip(ids, lines, strict=True):
            _keys(line, {"id", "score", "text1", "text2"})
            score = line.obj["score"]
            if not isinstance(score, int | float) or isinstance(score, bool) or not 0 <= score <= 5:
                raise DataError(f"{line.where}: score must be a number from 0 to 5, got {score!r}")
            items.append((ident, float(score), _texts(line.obj["text1"], line.where, langs), _texts(line.obj["text2"], line.where, langs)))
        expect("pairs", len(items))
        return _Parsed(entry.kind, tuple(items))

    if entry.type == "BitextMining":
        for ident, line in zip(ids, lines, strict=True):
            _keys(line, {"id", "text"})
            items.append((ident, _texts(line.obj["text"], line.where, langs)))
        expect("pairs", len(items))
        return _Parsed(entry.kind, tuple(items))

    if entry.kind == ("Clustering", "legacy"):
        sets: dict[str, list[Any]] = {}
        for ident, line in zip(ids, lines, strict=True):
            _keys(line, {"id", "set", "label", "text"})
            name_of_set = line.obj["set"]
            if not isinstance(name_of_set, str) or not name_of_set:
                raise DataError(f"{line.where}: set must be a non-empty string, got {name_of_set!r}")
            sets.setdefault(name_of_set, []).append((ident, label_index(line.obj["label"], line.where), _texts(line.obj["text"], line.where, langs)))
        for name_of_set, members in sets.items():
            if len({label for _, label, _ in members}) < 2:
                # mteb scores a one-label set as V-measure 1.0 without encoding it
                raise DataError(f"{folder / entry.files[0]}: set {name_of_set!r} needs sentences of at least two labels")
        expect("sets", len(sets))
        expect("sentences", len(lines))
        return _Parsed(entry.kind, tuple((s, tuple(m)) for s, m in sets.items()))

    if entry.type in ("Classification", "Clustering"):
        needed = {"id", "label", "text"} | ({"split"} if entry.type == "Classification" else set())
        for ident, line in zip(ids, lines, strict=True):
            _keys(line, needed)
            items.append((ident, split_of(line), label_index(line.obj["label"], line.where), _texts(line.obj["text"], line.where, langs)))
        if entry.type == "Classification":
            expect("train", sum(1 for it in items if it[1] == "train"))
            expect("test", sum(1 for it in items if it[1] == _SPLIT))
            for split in ("train", _SPLIT):
                per_label = {lab: sum(1 for it in items if it[1] == split and it[2] == i) for lab, i in labels.items()}
                if split == "train" and len(set(per_label.values())) != 1:
                    # mteb trains on samples_per_label items of each label; we set it to this count
                    raise DataError(f"{folder / entry.files[0]}: the train split must have as many items of each label, got {per_label}")
                if 0 in per_label.values():
                    raise DataError(f"{folder / entry.files[0]}: split {split!r} has no item of some label: {per_label}")
        else:
            expect("sentences", len(items))
        # hierarchical clustering keeps the label names: their dot-separated levels are the labels
        return _Parsed(entry.kind, tuple(items), entry.labels if entry.form == "hierarchical" else ())

    if entry.type == "MultilabelClassification":
        for ident, line in zip(ids, lines, strict=True):
            _keys(line, {"id", "split", "labels", "text"})
            given = line.obj["labels"]
            if not isinstance(given, list) or not given or len(set(map(str, given))) != len(given):
                raise DataError(f"{line.where}: labels must be a non-empty list of distinct label names")
            items.append((ident, split_of(line), tuple(label_index(v, line.where) for v in given), _texts(line.obj["text"], line.where, langs)))
        expect("train", sum(1 for it in items if it[1] == "train"))
        expect("test", sum(1 for it in items if it[1] == _SPLIT))
        for split in ("train", _SPLIT):
            seen = {i for it in items if it[1] == split for i in it[2]}
            if seen != set(labels.values()):
                # mteb binarises the labels it finds in the test split; a label missing from either split is scored wrongly
                missing = [lab for lab, i in labels.items() if i not in seen]
                raise DataError(f"{folder / entry.files[0]}: split {split!r} has no item with label(s) {missing}")
        return _Parsed(entry.kind, tuple(items))

    if entry.type == "PairClassification":
        for ident, line in zip(ids, lines, strict=True):
            _keys(line, {"id", "label", "text1", "text2"})
            label = _flag(line.obj["label"], line.where, "label")
            items.append((ident, label, _texts(line.obj["text1"], line.where, langs), _texts(line.obj["text2"], line.where, langs)))
        expect("pairs", len(items))
        expect("positives", sum(it[1] for it in items))
        return _Parsed(entry.kind, tuple(items))

    if entry.type == "Summarization":
        low, high = _SUMMARY_SCALE
        for ident, line in zip(ids, lines, strict=True):
            _keys(line, {"id", "text", "human", "machine"})
            human = _text_list(line.obj["human"], line.where, "human", langs)
            machine = []
            if not isinstance(line.obj["machine"], list) or not line.obj["machine"]:
                raise DataError(f"{line.where}: machine must be a non-empty list of {{text, relevance}} objects")
            for n, summary in enumerate(line.obj["machine"]):
                where = f"{line.where} (machine[{n}])"
                if not isinstance(summary, dict) or set(summary) != {"text", "relevance"}:
                    raise DataError(f"{where}: expected exactly the keys ['relevance', 'text']")
                score = summary["relevance"]
                if not isinstance(score, int | float) or isinstance(score, bool) or not low <= score <= high:
                    raise DataError(f"{where}: relevance must be a number from {low} to {high}, got {score!r}")
                machine.append((_texts(summary["text"], where, langs), float(score)))
            if len({score for _, score in machine}) < 2:
                # mteb skips a text whose machine summaries all have the same relevance
                raise DataError(f"{line.where}: machine summaries need at least two different relevance scores")
            items.append((ident, _texts(line.obj["text"], line.where, langs), human, tuple(machine)))
        expect("texts", len(items))
        expect("human", sum(len(it[2]) for it in items))
        expect("machine", sum(len(it[3]) for it in items))
        return _Parsed(entry.kind, tuple(items))

    if entry.type == "InstructionReranking":
        changed = 0
        for ident, line in zip(ids, lines, strict=True):
            _keys(line, {"id", "query", "instruction_og", "instruction_changed", "candidates"})
            if "-" in ident:
                raise DataError(f"{line.where}: id {ident!r} must not contain '-' (queries become '<id>-og' and '<id>-changed')")
            raw = line.obj["candidates"]
            if not isinstance(raw, list) or not raw:
                raise DataError(f"{line.where}: candidates must be a non-empty list of {{text, og, changed}} objects")
            cands = []
            for n, cand in enumerate(raw):
                where = f"{line.where} (candidates[{n}])"
                if not isinstance(cand, dict) or set(cand) != {"text", "og", "changed"}:
                    raise DataError(f"{where}: expected exactly the keys ['changed', 'og', 'text']")
                og, new = _flag(cand["og"], where, "og"), _flag(cand["changed"], where, "changed")
                if new > og:
                    # FollowIR: the changed instruction is narrower, it only makes relevant documents non-relevant
                    raise DataError(f"{where}: relevant under the changed instruction but not under the original one")
                cands.append((f"{ident}-d{n}", og, new, _texts(cand["text"], where, langs)))
            if not any(new for _, _, new, _ in cands) or not any(og and not new for _, og, new, _ in cands):
                raise DataError(f"{line.where}: needs a candidate relevant under both instructions and one that the changed instruction makes non-relevant")
            changed += sum(1 for _, og, new, _ in cands if og and not new)
            items.append((
                ident, _texts(line.obj["query"], line.where, langs), _texts(line.obj["instruction_og"], line.where, langs),
                _texts(line.obj["instruction_changed"], line.where, langs), tuple(cands),
            ))
        expect("queries", len(items))
        expect("documents", sum(len(it[4]) for it in items))
        expect("changed", changed)
        return _Parsed(entry.kind, tuple(items))

    # Reranking: a query (or, max_over_subqueries, several subqueries) with positive and negative candidates.
    subqueries = entry.form == "max_over_subqueries"
    for ident, line in zip(ids, lines, strict=True):
        _keys(line, {"id", "history" if subqueries else "query", "positive", "negative"})
        if subqueries:
            if "_" in ident:
                raise DataError(f"{line.where}: id {ident!r} must not contain '_' (mteb joins subqueries as '<id>_<n>')")
            asked = _text_list(line.obj["history"], line.where, "history", langs)
        else:
            asked = (_texts(line.obj["query"], line.where, langs),)
        items.append((ident, asked, _candidates(ident, line, langs)))
    expect("queries", len(items))
    expect("documents", sum(len(it[2]) for it in items))
    if subqueries:
        expect("subqueries", sum(len(it[1]) for it in items))
    return _Parsed(entry.kind, tuple(items))


# ---------------------------------------------------------------- datasets in mteb's formats


def _subset_langs(name: str, manifest: SmokeManifest) -> dict[str, tuple[str, ...]]:
    """hf_subset -> the languages its data is drawn from.

    One language: mteb's monolingual ``default`` subset. BitextMining: ``xxx-pivot`` pairs, or,
    for parallel tasks, every ordered pair ``xxx_Scrp-yyy_Scrp`` (the columns' names) as Flores does.
    """
    entry = manifest.tasks[name]
    langs = manifest.task_languages(name)
    script = manifest.script
    if entry.kind == ("BitextMining", "parallel"):
        return {f"{a}_{script}-{b}_{script}": (a, b) for a in langs for b in langs if a != b}
    if entry.type == "BitextMining":
        pivot = str(manifest.bitext_pivot)
        return {f"{lang}-{pivot}": (lang, pivot) for lang in langs if lang != pivot}
    if len(langs) == 1:
        return {"default": langs}
    return {lang: (lang,) for lang in langs}


def _eval_langs(name: str, manifest: SmokeManifest) -> dict[str, list[str]] | list[str]:
    """mteb's ``eval_langs``: a list for a monolingual task, else subset -> languages with script."""
    subsets = {s: [f"{lang}-{manifest.script}" for lang in langs] for s, langs in _subset_langs(name, manifest).items()}
    return subsets["default"] if list(subsets) == ["default"] else subsets


def _search_split(parsed: _Parsed, lang: str) -> dict[str, Any]:
    """corpus, queries, relevant_docs and top_ranked of a retrieval-style task in one language."""
    from datasets import Dataset

    top_ranked: dict[str, list[str]] | None = None
    if parsed.kind[0] == "Retrieval":
        corpus = [{"id": did, "text": texts[lang]} for did, texts in parsed.extra]
        queries = [{"id": qid, "text": texts[lang]} for qid, texts, _ in parsed.items]
        relevant = {qid: dict(rel) for qid, _, rel in parsed.items}
    elif parsed.kind[0] == "InstructionReranking":
        # FollowIR's layout: each query twice, '<id>-og' and '<id>-changed', differing only in
        # the instruction (mteb appends it to the query text), over the same candidates.
        corpus = [{"id": did, "text": texts[lang]} for *_, cands in parsed.items for did, _, _, texts in cands]
        queries, relevant, top_ranked = [], {}, {}
        for qid, query, og, new, cands in parsed.items:
            for suffix, instruction, column in (("og", og, 1), ("changed", new, 2)):
                queries.append({"id": f"{qid}-{suffix}", "text": query[lang], "instruction": instruction[lang]})
                relevant[f"{qid}-{suffix}"] = {c[0]: c[column] for c in cands}
                top_ranked[f"{qid}-{suffix}"] = [c[0] for c in cands]
    else:
        corpus = [{"id": did, "text": texts[lang]} for _, _, cands in parsed.items for did, _, texts in cands]
        # Graded 0 negatives are judged non-relevant; candidates sorted by id so that
        # negatives ("-n") come before positives ("-p") and a tie cannot favour the answer.
        # With subqueries (MIND), each subquery '<id>_<n>' carries its query's judgements.
        single = parsed.kind[1] == "default"
        queries, relevant, top_ranked = [], {}, {}
        for ident, subs, cands in parsed.items:
            for n, texts in enumerate(subs):
                qid = ident if single else f"{ident}_{n}"
                queries.append({"id": qid, "text": texts[lang]})
                relevant[qid] = {did: grade for did, grade, _ in cands}
                top_ranked[qid] = sorted(did for did, _, _ in cands)
    return {
        "corpus": Dataset.from_list(corpus),
        "queries": Dataset.from_list(queries),
        "relevant_docs": relevant,
        "top_ranked": top_ranked,
    }


def _split_data(parsed: _Parsed, lang: str) -> Any:
    """The ``DatasetDict`` of one language for the non-search kinds."""
    from datasets import Dataset, DatasetDict

    kind = parsed.kind
    if kind[0] == "STS":
        return DatasetDict({_SPLIT: Dataset.from_dict({
            "sentence1": [t1[lang] for _, _, t1, _ in parsed.items],
            "sentence2": [t2[lang] for _, _, _, t2 in parsed.items],
            "score": [score for _, score, _, _ in parsed.items],
        })})
    if kind[0] in ("Classification", "MultilabelClassification"):
        return DatasetDict({
            split: Dataset.from_dict({
                "text": [texts[lang] for _, s, _, texts in parsed.items if s == split],
                "label": [list(label) if kind[0] == "MultilabelClassification" else label for _, s, label, _ in parsed.items if s == split],
            })
            for split in ("train", _SPLIT)
        })
    if kind == ("Clustering", "legacy"):
        # one row per set of sentences, clustered on its own
        return DatasetDict({_SPLIT: Dataset.from_dict({
            "sentences": [[texts[lang] for _, _, texts in members] for _, members in parsed.items],
            "labels": [[label for _, label, _ in members] for _, members in parsed.items],
        })})
    if kind[0] == "Clustering":
        labels: list[Any]
        if kind[1] == "hierarchical":
            # one label per level, as mteb's ArXivHierarchicalClustering gives them ("cs.AI" -> ["cs", "AI"])
            names = parsed.extra
            labels = [names[label].split(".") for _, _, label, _ in parsed.items]
        else:
            labels = [label for _, _, label, _ in parsed.items]
        return DatasetDict({_SPLIT: Dataset.from_dict({"sentences": [texts[lang] for _, _, _, texts in parsed.items], "labels": labels})})
    if kind[0] == "PairClassification":
        return DatasetDict({_SPLIT: Dataset.from_dict({
            "sentence1": [t1[lang] for _, _, t1, _ in parsed.items],
            "sentence2": [t2[lang] for _, _, _, t2 in parsed.items],
            "labels": [label for _, label, _, _ in parsed.items],
        })})
    # Summarization
    return DatasetDict({_SPLIT: Dataset.from_dict({
        "text": [text[lang] for _, text, _, _ in parsed.items],
        "human_summaries": [[h[lang] for h in human] for _, _, human, _ in parsed.items],
        "machine_summaries": [[m[lang] for m, _ in machine] for _, _, _, machine in parsed.items],
        "relevance": [[score for _, score in machine] for _, _, _, machine in parsed.items],
    })})


def _build_dataset(name: str, parsed: _Parsed, manifest: SmokeManifest) -> Any:
    """The task's dataset in the format its mteb abstask reads.

    Multilingual: ``{hf_subset: ...}``; monolingual: the ``DatasetDict`` itself (retrieval-style:
    ``{"default": ...}``), as mteb's loaders give them.
    """
    from datasets import Dataset, DatasetDict

    subsets = _subset_langs(name, manifest)
    if parsed.kind == ("BitextMining", "parallel"):
        script = manifest.script
        return DatasetDict({_SPLIT: Dataset.from_dict({
            f"{lang}_{script}": [texts[lang] for _, texts in parsed.items] for lang in manifest.task_languages(name)
        })})
    if parsed.kind[0] in _SEARCH_TYPES:
        return {subset: {_SPLIT: _search_split(parsed, langs[0])} for subset, langs in subsets.items()}
    if parsed.kind[0] == "BitextMining":
        out: dict[str, Any] = {}
        for subset, (source, target) in subsets.items():
            out[subset] = DatasetDict({_SPLIT: Dataset.from_dict({
                "sentence1": [texts[source] for _, texts in parsed.items],
                "sentence2": [texts[target] for _, texts in parsed.items],
            })})
        return out
    if list(subsets) == ["default"]:
        return _split_data(parsed, subsets["default"][0])
    return {subset: _split_data(parsed, langs[0]) for subset, langs in subsets.items()}


def _changed_qrels(parsed: _Parsed) -> dict[str, list[str]]:
    """FollowIR's qrel_diff: per query, the candidates the changed instruction makes non-relevant."""
    return {qid: [did for did, og, new, _ in cands if og and not new] for qid, _, _, _, cands in parsed.items}


# ---------------------------------------------------------------- mteb task classes


class _SmokeLoader:
    """Mixed in before the mteb abstask: ``load_data`` reads ``tasks/<suite>`` instead of the hub."""

    smoke_data_dir: str
    smoke_suite: str
    metadata: Any
    dataset: Any
    data_loaded: bool
    changed_qrels: dict[str, list[str]]

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        """Read this task's files, check them against the revision, build the mteb dataset."""
        if self.data_loaded:
            return
        folder = Path(self.smoke_data_dir)
        suite = self.smoke_suite
        name = self.metadata.name
        manifest = load_manifest(folder, suite)
        revision = _files_sha256(folder, manifest.tasks[name].files)
        if revision != self.metadata.dataset["revision"]:
            raise DataError(
                f"{folder}: data of {suite} task {name} changed after the task was built "
                f"(sha256 {revision[:12]}, task built for {self.metadata.dataset['revision'][:12]}); call smoke_tasks() again"
            )
        parsed = _parse(name, manifest, folder)
        self.dataset = _build_dataset(name, parsed, manifest)
        if parsed.kind[0] == "InstructionReranking":
            self.changed_qrels = _changed_qrels(parsed)
        self.data_loaded = True


@lru_cache(maxsize=1)
def _mteb_bases() -> dict[Kind, type]:
    """The mteb abstask each kind subclasses (imports mteb, once)."""
    from mteb.abstasks.classification import AbsTaskClassification
    from mteb.abstasks.clustering import AbsTaskClustering
    from mteb.abstasks.clustering_legacy import AbsTaskClusteringLegacy
    from mteb.abstasks.multilabel_classification import AbsTaskMultilabelClassification
    from mteb.abstasks.pair_classification import AbsTaskPairClassification
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.abstasks.sts import AbsTaskSTS
    from mteb.abstasks.text.bitext_mining import AbsTaskBitextMining
    from mteb.abstasks.text.summarization import AbsTaskSummarization

    class _SmokeClustering(AbsTaskClustering):
        # Embed every sentence (mteb's default embeds 4% of a large corpus) and bootstrap
        # 10 resamples of the subset's size, as mteb's clustering does on a full-size task.
        max_fraction_of_documents_to_embed = None
        max_document_to_embed = None
        n_clusters = 10

        def _evaluate_subset(self, *args: Any, **kwargs: Any) -> Any:
            # mteb draws the bootstrap samples from one Random shared by every subset and every
            # evaluate() call on this object; reseeding per subset makes a subset's score
            # independent of which subsets, variants or runs came before on the same object.
            self.rng_state = random.Random(f"{self.seed}:{kwargs.get('hf_subset', '')}")
            return super()._evaluate_subset(*args, **kwargs)

    class _SmokeClassification(AbsTaskClassification):
        # samples_per_label is set per task to the (balanced) number of training items per
        # label, so each of mteb's default 10 undersampling experiments would train on the same
        # items, only in another order; one experiment gives that score at a tenth of the cost.
        n_experiments = 1

    class _SmokeMultilabelClassification(AbsTaskMultilabelClassification):
        # samples_per_label is set per task to the size of the train split, so mteb's
        # undersampling keeps every training item; one experiment, as for classification.
        n_experiments = 1

    class _SmokeSummarization(AbsTaskSummarization):
        min_score, max_score = _SUMMARY_SCALE

    class _IgnoreIdenticalRetrieval(AbsTaskRetrieval):
        # As ArguAna, FiQA2018, FEVERHardNegatives: a query's own id is not a result.
        ignore_identical_ids = True

    class _SubqueryReranking(AbsTaskRetrieval):
        # As MindSmallReranking: a document's score is its best over a query's subqueries.
        def task_specific_scores(self, scores: Any, qrels: Any, results: Any, hf_split: str, hf_subset: str) -> dict[str, float]:
            from mteb._evaluators.retrieval_metrics import max_over_subqueries

            return max_over_subqueries(qrels, results, self.k_values)

    class _InstructionReranking(AbsTaskRetrieval):
        # As Core17/News21/Robust04InstructionRetrieval: p-MRR from mteb's FollowIR code, with
        # the changed qrels from our data instead of the hub's "qrel_diff" config.
        changed_qrels: dict[str, list[str]]

        def task_specific_scores(self, scores: Any, qrels: Any, results: Any, hf_split: str, hf_subset: str) -> dict[str, Any]:
            from mteb._evaluators.retrieval_metrics import evaluate_p_mrr_change

            return evaluate_p_mrr_change(qrels, results, self.changed_qrels, self.k_values)

    class _ParallelBitextMining(AbsTaskBitextMining):
        # As Flores, NTREX, IN22-Gen: one column per language, every subset a pair of columns.
        parallel_subsets = True

    return {
        ("Retrieval", "default"): AbsTaskRetrieval,
        ("Retrieval", "ignore_identical_ids"): _IgnoreIdenticalRetrieval,
        ("Reranking", "default"): AbsTaskRetrieval,
        ("Reranking", "max_over_subqueries"): _SubqueryReranking,
        ("InstructionReranking", "default"): _InstructionReranking,
        ("STS", "default"): AbsTaskSTS,
        ("BitextMining", "default"): AbsTaskBitextMining,
        ("BitextMining", "parallel"): _ParallelBitextMining,
        ("Classification", "default"): _SmokeClassification,
        ("MultilabelClassification", "default"): _SmokeMultilabelClassification,
        ("Clustering", "default"): _SmokeClustering,
        ("Clustering", "hierarchical"): _SmokeClustering,
        ("Clustering", "legacy"): AbsTaskClusteringLegacy,
        ("PairClassification", "default"): AbsTaskPairClassification,
        ("Summarization", "default"): _SmokeSummarization,
    }


# (task name, data folder, task revision, manifest sha256) -> class; metadata lives on the
# class because mteb's unload_data() drops instance-level metadata.
_CLASSES: dict[tuple[str, str, str, str], type] = {}


def _task_class(name: str, manifest: SmokeManifest, folder: Path, revision: str, manifest_sha: str) -> type:
    key = (name, str(folder), revision, manifest_sha)
    if key in _CLASSES:
        return _CLASSES[key]
    from mteb.abstasks.task_metadata import TaskMetadata

    entry = manifest.tasks[name]
    suite = manifest.suite
    created = manifest.created.isoformat()
    try:
        metadata = TaskMetadata(
            name=name,
            description=(
                f"{entry.description} Part of evalgemma's offline {suite} suite (v{manifest.version}): texts written for "
                "evalgemma, not taken from any dataset; non-English texts are our own translations; not reviewed by native speakers."
            ),
            reference=None,
            dataset={"path": f"evalgemma/{suite}", "revision": revision},
            type=entry.type,
            category="t2t",
            modalities=["text"],
            eval_splits=[_SPLIT],
            eval_langs=_eval_langs(name, manifest),
            main_score=entry.main_score,
            date=(created, created),
            domains=["Written"],
            task_subtypes=list(entry.subtypes),  # type: ignore[arg-type]  # checked against mteb's Literal here
            license=manifest.license,
            annotations_creators="LM-generated",
            dialect=[],
            sample_creation="created",
            bibtex_citation="",
            is_public=True,
            contributed_by="evalgemma",
        )
    except ValidationError as exc:
        raise ConfigError(f"{folder / manifest_name(suite)} [tasks.{name}]: not valid mteb task metadata: {exc}") from None
    attrs: dict[str, Any] = {"metadata": metadata, "smoke_data_dir": str(folder), "smoke_suite": suite, "__module__": __name__}
    if entry.kind in (("Clustering", "default"), ("Clustering", "hierarchical")):
        attrs["max_documents_per_cluster"] = entry.expect["sentences"]
    if entry.type == "Classification":
        attrs["samples_per_label"] = entry.expect["train"] // len(entry.labels)
    if entry.type == "MultilabelClassification":
        attrs["samples_per_label"] = entry.expect["train"]
    cls = type(name, (_SmokeLoader, _mteb_bases()[entry.kind]), attrs)
    _CLASSES[key] = cls
    return cls


def smoke_tasks(names: Sequence[str] | None = None, data_dir: Path | str | None = None, suite: str = "smoke") -> list[AbsTask]:
    """Fresh mteb task objects for a built-in suite, ready for ``mteb.evaluate``.

    The data files are read and validated here (so bad data fails before any model is loaded)
    and again in each task's ``load_data``. Nothing touches the network.

    Args:
        names: task names (default: all of the suite's tasks, in manifest order).
        data_dir: the suite's data folder (default: ``tasks/<suite>`` of the repository).
        suite: the built-in suite (``smoke``, ``types``); its manifest is ``<suite>.toml``.

    Raises:
        ConfigError: an unknown task name, or an invalid manifest.
        DataError: missing or malformed data files, or counts that differ from ``expect``.
    """
    folder = smoke_data_dir(data_dir, suite)
    manifest = load_manifest(folder, suite)
    chosen = list(manifest.tasks) if names is None else list(dict.fromkeys(names))
    for name in chosen:
        if name not in manifest.tasks:
            raise unknown_name(f"{suite} task", name, manifest.tasks)
    manifest_sha = _files_sha256(folder, [manifest_name(suite)])
    tasks = []
    for name in chosen:
        _parse(name, manifest, folder)
        revision = _files_sha256(folder, manifest.tasks[name].files)
        tasks.append(_task_class(name, manifest, folder, revision, manifest_sha)())
    return tasks


def smoke_expected(suite: str = "smoke", data_dir: Path | str | None = None) -> dict[str, tuple[str, str, tuple[Cell, ...]]]:
    """task → (type, version, expected cells) of a built-in suite, from its manifest alone (no mteb import).

    The version is what ``smoke_tasks`` gives each task (its files' sha256; for an order-dependent
    task also the cell set, as ``benchmarks.mteb.unit.task_version`` does).
    """
    folder = smoke_data_dir(data_dir, suite)
    manifest = load_manifest(folder, suite)
    out: dict[str, tuple[str, str, tuple[Cell, ...]]] = {}
    for name, entry in manifest.tasks.items():
        cells = tuple(Cell(_SPLIT, subset) for subset in _subset_langs(name, manifest))
        revision = _files_sha256(folder, entry.files)
        version = f"{revision}+cells:{cells_sha256(cells)[:12]}" if entry.kind in _ORDER_DEPENDENT else revision
        out[name] = (entry.type, version, cells)
    return out


def calibration_texts(data_dir: Path | str | None = None) -> list[str]:
    """The document-side texts of the smoke suite, for calibrating int8 ranges.

    The retrieval corpus and the reranking candidates in every language, in file order
    (languages in manifest order within an item), without duplicates.
    """
    folder = smoke_data_dir(data_dir)
    manifest = load_manifest(folder)
    texts: dict[str, None] = {}
    retrieval = _parse("SmokeRetrieval", manifest, folder)
    for _, by_lang in retrieval.extra:
        texts.update(dict.fromkeys(by_lang[lang] for lang in manifest.languages))
    reranking = _parse("SmokeReranking", manifest, folder)
    for _, _, cands in reranking.items:
        for _, _, by_lang in cands:
            texts.update(dict.fromkeys(by_lang[lang] for lang in manifest.languages))
    return list(texts)
