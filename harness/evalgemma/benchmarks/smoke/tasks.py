"""The built-in offline ``smoke`` suite: our own short texts, scored by mteb's own evaluators.

The data lives in ``tasks/smoke/`` (``smoke.toml`` plus one JSONL file per task type); every
line holds one item in every language of the suite. Each task here is a real mteb task (a
subclass of mteb's ``AbsTaskRetrieval``, ``AbsTaskSTS``, ``AbsTaskBitextMining``,
``AbsTaskClassification``, ``AbsTaskClustering`` or ``AbsTaskPairClassification``; reranking is
``AbsTaskRetrieval`` with ``top_ranked``), so ``mteb.evaluate(model, smoke_tasks(), cache=None)``
scores it exactly as it scores published tasks, without any network access.

A task's ``metadata.dataset["revision"]`` is the sha256 of its own data files (see
:func:`task_data_sha256`), so a stored score knows which data produced it, and ``load_data``
refuses files that changed after the task object was built.

mteb is imported only inside the functions that build tasks, so ``import evalgemma.benchmarks.smoke.tasks`` is
light (``SMOKE_TASK_NAMES`` is available without mteb).
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
    "smoke_data_dir",
    "smoke_data_sha256",
    "smoke_tasks",
    "task_data_sha256",
]

SmokeType = Literal["Retrieval", "STS", "BitextMining", "Classification", "Clustering", "PairClassification", "Reranking"]

# name -> mteb task type; the order is the suite's order.
_TASK_TYPES: dict[str, SmokeType] = {
    "SmokeRetrieval": "Retrieval",
    "SmokeSTS": "STS",
    "SmokeBitextMining": "BitextMining",
    "SmokeClassification": "Classification",
    "SmokeClustering": "Clustering",
    "SmokePairClassification": "PairClassification",
    "SmokeReranking": "Reranking",
}
SMOKE_TASK_NAMES: tuple[str, ...] = tuple(_TASK_TYPES)

MANIFEST_NAME = "smoke.toml"
_DATA_SUFFIXES = (".jsonl", ".toml")
_SPLIT = "test"
#: Smoke types whose mteb abstask draws from one generator across subsets (see benchmarks.mteb.unit).
_ORDER_DEPENDENT = frozenset({"Clustering"})

# The counts each type's `expect` table must give (per language, since items are translated).
_EXPECT_KEYS: dict[SmokeType, frozenset[str]] = {
    "Retrieval": frozenset({"corpus", "queries"}),
    "STS": frozenset({"pairs"}),
    "BitextMining": frozenset({"pairs"}),
    "Classification": frozenset({"train", "test"}),
    "Clustering": frozenset({"sentences"}),
    "PairClassification": frozenset({"pairs", "positives"}),
    "Reranking": frozenset({"queries", "documents"}),
}


# ---------------------------------------------------------------- manifest


class SmokeTaskEntry(BaseModel):
    """One ``[tasks.<name>]`` table of ``smoke.toml``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: SmokeType
    main_score: str
    files: tuple[str, ...] = Field(min_length=1)
    description: str = Field(min_length=1)
    subtypes: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    expect: dict[str, int]


class SmokeManifest(BaseModel):
    """``tasks/smoke/smoke.toml``: languages, provenance and the tasks of the suite."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    schema_version: Literal[1] = Field(alias="schema")
    suite: Literal["smoke"]
    version: int = Field(ge=1)
    license: str
    created: datetime.date
    languages: tuple[str, ...] = Field(min_length=2)
    script: str
    bitext_pivot: str
    tasks: dict[str, SmokeTaskEntry]


def smoke_data_dir(data_dir: Path | str | None = None) -> Path:
    """The folder holding the smoke suite's data.

    Args:
        data_dir: an explicit folder; else the first ``tasks/smoke`` holding ``smoke.toml`` found
            walking up from this module's file, then from the working directory.

    Raises:
        DataError: the folder (or its ``smoke.toml``) does not exist.
    """
    if data_dir is not None:
        path = Path(data_dir)
        if not (path / MANIFEST_NAME).is_file():
            raise DataError(f"{path}: no {MANIFEST_NAME} there; data_dir must be the smoke suite folder (tasks/smoke in the repository)")
        return path
    from evalgemma.catalog import TASKS_DIR

    candidate = TASKS_DIR / "smoke"
    if (candidate / MANIFEST_NAME).is_file():
        return candidate
    raise DataError(f"cannot find {candidate / MANIFEST_NAME}; run from the evalgemma repository or pass data_dir")


def load_manifest(data_dir: Path | str | None = None) -> SmokeManifest:
    """Read and validate ``smoke.toml``.

    Raises:
        ConfigError: invalid TOML, unknown or missing keys, or a task list that is not
            ``SMOKE_TASK_NAMES`` with their types.
        DataError: the folder cannot be found.
    """
    path = smoke_data_dir(data_dir) / MANIFEST_NAME
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
    _check_manifest(manifest, path)
    return manifest


def _check_manifest(manifest: SmokeManifest, path: Path) -> None:
    for name in manifest.tasks:
        if name not in _TASK_TYPES:
            raise unknown_name("smoke task", name, SMOKE_TASK_NAMES, where=str(path))
    missing = [n for n in SMOKE_TASK_NAMES if n not in manifest.tasks]
    if missing:
        raise ConfigError(f"{path}: no [tasks.{missing[0]}] table; the suite needs {', '.join(SMOKE_TASK_NAMES)}")
    if len(set(manifest.languages)) != len(manifest.languages):
        raise ConfigError(f"{path}: languages lists a language twice: {list(manifest.languages)}")
    if manifest.bitext_pivot not in manifest.languages:
        raise ConfigError(f"{path}: bitext_pivot {manifest.bitext_pivot!r} is not one of languages {list(manifest.languages)}")
    for name, entry in manifest.tasks.items():
        where = f"{path} [tasks.{name}]"
        if entry.type != _TASK_TYPES[name]:
            raise ConfigError(f"{where}: type {entry.type!r}, expected {_TASK_TYPES[name]!r}")
        want = _EXPECT_KEYS[entry.type]
        if set(entry.expect) != want:
            raise ConfigError(f"{where}: expect must give exactly {sorted(want)}, got {sorted(entry.expect)}")
        if entry.type in ("Classification", "Clustering") and len(entry.labels) < 2:
            raise ConfigError(f"{where}: needs `labels` with at least two names")
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
            raise DataError(f"{path}: cannot read smoke data file: {exc}") from None
        lines.append(f"{digest}  {name}\n")
    return hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()


def smoke_data_sha256(data_dir: Path | str | None = None) -> str:
    """sha256 of every ``*.jsonl`` and ``*.toml`` file of the smoke suite.

    Equal to ``cd tasks/smoke && LC_ALL=C sha256sum $(ls *.jsonl *.toml | LC_ALL=C sort) | sha256sum``.
    """
    folder = smoke_data_dir(data_dir)
    names = [p.name for p in folder.iterdir() if p.is_file() and p.suffix in _DATA_SUFFIXES]
    return _files_sha256(folder, names)


def task_data_sha256(name: str, data_dir: Path | str | None = None) -> str:
    """sha256 of one smoke task's data files (its mteb ``dataset["revision"]``)."""
    if name not in _TASK_TYPES:
        raise unknown_name("smoke task", name, SMOKE_TASK_NAMES)
    folder = smoke_data_dir(data_dir)
    return _files_sha256(folder, load_manifest(folder).tasks[name].files)


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
        raise DataError(f"{path}: cannot read smoke data file: {exc}") from None
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


def _expect(entry_name: str, entry: SmokeTaskEntry, key: str, got: int, folder: Path) -> None:
    want = entry.expect[key]
    if got != want:
        raise DataError(
            f"{folder / entry.files[0]}: task {entry_name} has {got} {key} per language, {folder / MANIFEST_NAME} expects {want}; "
            "fix the data or the expect table (and bump version)"
        )


@dataclass(frozen=True)
class _Parsed:
    """One task's items, validated; per-language views are built from these."""

    kind: SmokeType
    items: tuple[Any, ...]
    extra: tuple[Any, ...] = ()


def _parse(name: str, manifest: SmokeManifest, folder: Path) -> _Parsed:
    entry = manifest.tasks[name]
    langs = manifest.languages
    files = [_read_jsonl(folder / f) for f in entry.files]

    if entry.type == "Retrieval":
        if len(files) != 2:
            raise ConfigError(f"{folder / MANIFEST_NAME} [tasks.{name}]: files must be [corpus, queries]")
        corpus_lines, query_lines = files
        for line in corpus_lines:
            _keys(line, {"id", "text"})
        for line in query_lines:
            _keys(line, {"id", "text", "relevant"})
        doc_ids = _ids(corpus_lines)
        corpus = tuple((i, _texts(line.obj["text"], line.where, langs)) for i, line in zip(doc_ids, corpus_lines, strict=True))
        known = set(doc_ids)
        queries = []
        for qid, line in zip(_ids(query_lines), query_lines, strict=True):
            relevant = line.obj["relevant"]
            if not isinstance(relevant, dict) or not relevant:
                raise DataError(f"{line.where}: relevant must map at least one document id to a grade")
            for did, grade in relevant.items():
                if did not in known:
                    raise DataError(f"{line.where}: relevant document {did!r} is not in {entry.files[0]}")
                if not isinstance(grade, int) or isinstance(grade, bool) or grade < 1:
                    raise DataError(f"{line.where}: grade of {did!r} must be an integer >= 1, got {grade!r}")
            queries.append((qid, _texts(line.obj["text"], line.where, langs), dict(relevant)))
        _expect(name, entry, "corpus", len(corpus), folder)
        _expect(name, entry, "queries", len(queries), folder)
        return _Parsed(entry.type, tuple(queries), corpus)

    if len(files) != 1:
        raise ConfigError(f"{folder / MANIFEST_NAME} [tasks.{name}]: files must name exactly one file")
    lines = files[0]
    for line in lines:
        if "id" not in line.obj:
            raise DataError(f"{line.where}: missing key 'id'")
    ids = _ids(lines)

    if entry.type == "STS":
        items: list[Any] = []
        for ident, line in zip(ids, lines, strict=True):
            _keys(line, {"id", "score", "text1", "text2"})
            score = line.obj["score"]
            if not isinstance(score, int | float) or isinstance(score, bool) or not 0 <= score <= 5:
                raise DataError(f"{line.where}: score must be a number from 0 to 5, got {score!r}")
            items.append((ident, float(score), _texts(line.obj["text1"], line.where, langs), _texts(line.obj["text2"], line.where, langs)))
        _expect(name, entry, "pairs", len(items), folder)
        return _Parsed(entry.type, tuple(items))

    if entry.type == "BitextMining":
        items = []
        for ident, line in zip(ids, lines, strict=True):
            _keys(line, {"id", "text"})
            items.append((ident, _texts(line.obj["text"], line.where, langs)))
        _expect(name, entry, "pairs", len(items), folder)
        return _Parsed(entry.type, tuple(items))

    if entry.type in ("Classification", "Clustering"):
        labels = {label: i for i, label in enumerate(entry.labels)}
        needed = {"id", "label", "text"} | ({"split"} if entry.type == "Classification" else set())
        items = []
        for ident, line in zip(ids, lines, strict=True):
            _keys(line, needed)
            label = line.obj["label"]
            if label not in labels:
                raise DataError(str(unknown_name("label", str(label), labels, where=line.where))) from None
            split = line.obj.get("split", _SPLIT)
            if split not in ("train", _SPLIT):
                raise DataError(f"{line.where}: split must be 'train' or 'test', got {split!r}")
            items.append((ident, split, labels[label], _texts(line.obj["text"], line.where, langs)))
        if entry.type == "Classification":
            _expect(name, entry, "train", sum(1 for it in items if it[1] == "train"), folder)
            _expect(name, entry, "test", sum(1 for it in items if it[1] == _SPLIT), folder)
            for split in ("train", _SPLIT):
                per_label = {lab: sum(1 for it in items if it[1] == split and it[2] == i) for lab, i in labels.items()}
                if split == "train" and len(set(per_label.values())) != 1:
                    # mteb trains on samples_per_label items of each label; we set it to this count
                    raise DataError(f"{folder / entry.files[0]}: the train split must have as many items of each label, got {per_label}")
                if 0 in per_label.values():
                    raise DataError(f"{folder / entry.files[0]}: split {split!r} has no item of some label: {per_label}")
        else:
            _expect(name, entry, "sentences", len(items), folder)
        return _Parsed(entry.type, tuple(items))

    if entry.type == "PairClassification":
        items = []
        for ident, line in zip(ids, lines, strict=True):
            _keys(line, {"id", "label", "text1", "text2"})
            label = line.obj["label"]
            if label not in (0, 1) or isinstance(label, bool):
                raise DataError(f"{line.where}: label must be 0 or 1, got {label!r}")
            items.append((ident, int(label), _texts(line.obj["text1"], line.where, langs), _texts(line.obj["text2"], line.where, langs)))
        _expect(name, entry, "pairs", len(items), folder)
        _expect(name, entry, "positives", sum(it[1] for it in items), folder)
        return _Parsed(entry.type, tuple(items))

    # Reranking: a query with its positive and negative candidates.
    items = []
    for ident, line in zip(ids, lines, strict=True):
        _keys(line, {"id", "query", "positive", "negative"})
        cands = []
        for key, grade in (("positive", 1), ("negative", 0)):
            values = line.obj[key]
            if not isinstance(values, list) or not values:
                raise DataError(f"{line.where}: {key} must be a non-empty list of texts by language")
            for n, value in enumerate(values):
                cands.append((f"{ident}-{key[0]}{n}", grade, _texts(value, f"{line.where} ({key}[{n}])", langs)))
        items.append((ident, _texts(line.obj["query"], line.where, langs), tuple(cands)))
    _expect(name, entry, "queries", len(items), folder)
    _expect(name, entry, "documents", sum(len(it[2]) for it in items), folder)
    return _Parsed(entry.type, tuple(items))


# ---------------------------------------------------------------- datasets in mteb's formats


def _subsets(kind: SmokeType, manifest: SmokeManifest) -> dict[str, list[str]]:
    """hf_subset -> languages with script, as mteb's ``eval_langs``."""
    script = manifest.script
    if kind == "BitextMining":
        pivot = manifest.bitext_pivot
        return {f"{lang}-{pivot}": [f"{lang}-{script}", f"{pivot}-{script}"] for lang in manifest.languages if lang != pivot}
    return {lang: [f"{lang}-{script}"] for lang in manifest.languages}


def _build_dataset(parsed: _Parsed, manifest: SmokeManifest) -> dict[str, Any]:
    """``{hf_subset: {split: data}}`` in the format the mteb abstask of ``parsed.kind`` reads."""
    from datasets import Dataset, DatasetDict

    out: dict[str, Any] = {}
    for subset in _subsets(parsed.kind, manifest):
        lang = subset
        if parsed.kind in ("Retrieval", "Reranking"):
            top_ranked: dict[str, list[str]] | None
            if parsed.kind == "Retrieval":
                corpus = [{"id": did, "text": texts[lang]} for did, texts in parsed.extra]
                queries = [{"id": qid, "text": texts[lang]} for qid, texts, _ in parsed.items]
                relevant = {qid: dict(rel) for qid, _, rel in parsed.items}
                top_ranked = None
            else:
                corpus = [{"id": did, "text": texts[lang]} for _, _, cands in parsed.items for did, _, texts in cands]
                queries = [{"id": qid, "text": texts[lang]} for qid, texts, _ in parsed.items]
                # Graded 0 negatives are judged non-relevant; candidates sorted by id so that
                # negatives ("-n") come before positives ("-p") and a tie cannot favour the answer.
                relevant = {qid: {did: grade for did, grade, _ in cands} for qid, _, cands in parsed.items}
                top_ranked = {qid: sorted(did for did, _, _ in cands) for qid, _, cands in parsed.items}
            out[subset] = {_SPLIT: {
                "corpus": Dataset.from_list(corpus),
                "queries": Dataset.from_list(queries),
                "relevant_docs": relevant,
                "top_ranked": top_ranked,
            }}
        elif parsed.kind == "STS":
            out[subset] = DatasetDict({_SPLIT: Dataset.from_dict({
                "sentence1": [t1[lang] for _, _, t1, _ in parsed.items],
                "sentence2": [t2[lang] for _, _, _, t2 in parsed.items],
                "score": [score for _, score, _, _ in parsed.items],
            })})
        elif parsed.kind == "BitextMining":
            source, target = subset.split("-")
            out[subset] = DatasetDict({_SPLIT: Dataset.from_dict({
                "sentence1": [texts[source] for _, texts in parsed.items],
                "sentence2": [texts[target] for _, texts in parsed.items],
            })})
        elif parsed.kind == "Classification":
            out[subset] = DatasetDict({
                split: Dataset.from_dict({
                    "text": [texts[lang] for _, s, _, texts in parsed.items if s == split],
                    "label": [label for _, s, label, _ in parsed.items if s == split],
                })
                for split in ("train", _SPLIT)
            })
        elif parsed.kind == "Clustering":
            out[subset] = DatasetDict({_SPLIT: Dataset.from_dict({
                "sentences": [texts[lang] for _, _, _, texts in parsed.items],
                "labels": [label for _, _, label, _ in parsed.items],
            })})
        else:  # PairClassification
            out[subset] = DatasetDict({_SPLIT: Dataset.from_dict({
                "sentence1": [t1[lang] for _, _, t1, _ in parsed.items],
                "sentence2": [t2[lang] for _, _, _, t2 in parsed.items],
                "labels": [label for _, label, _, _ in parsed.items],
            })})
    return out


# ---------------------------------------------------------------- mteb task classes


class _SmokeLoader:
    """Mixed in before the mteb abstask: ``load_data`` reads ``tasks/smoke`` instead of the hub."""

    smoke_data_dir: str
    metadata: Any
    dataset: Any
    data_loaded: bool

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        """Read this task's files, check them against the revision, build the mteb dataset."""
        if self.data_loaded:
            return
        folder = Path(self.smoke_data_dir)
        name = self.metadata.name
        manifest = load_manifest(folder)
        revision = _files_sha256(folder, manifest.tasks[name].files)
        if revision != self.metadata.dataset["revision"]:
            raise DataError(
                f"{folder}: data of smoke task {name} changed after the task was built "
                f"(sha256 {revision[:12]}, task built for {self.metadata.dataset['revision'][:12]}); call smoke_tasks() again"
            )
        self.dataset = _build_dataset(_parse(name, manifest, folder), manifest)
        self.data_loaded = True


@lru_cache(maxsize=1)
def _mteb_bases() -> dict[SmokeType, type]:
    """The mteb abstask each type subclasses (imports mteb, once)."""
    from mteb.abstasks.classification import AbsTaskClassification
    from mteb.abstasks.clustering import AbsTaskClustering
    from mteb.abstasks.pair_classification import AbsTaskPairClassification
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.abstasks.sts import AbsTaskSTS
    from mteb.abstasks.text.bitext_mining import AbsTaskBitextMining

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

    return {
        "Retrieval": AbsTaskRetrieval,
        "Reranking": AbsTaskRetrieval,
        "STS": AbsTaskSTS,
        "BitextMining": AbsTaskBitextMining,
        "Classification": _SmokeClassification,
        "Clustering": _SmokeClustering,
        "PairClassification": AbsTaskPairClassification,
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
    created = manifest.created.isoformat()
    try:
        metadata = TaskMetadata(
            name=name,
            description=(
                f"{entry.description} Part of evalgemma's offline smoke suite (v{manifest.version}): texts written for "
                "evalgemma, not taken from any dataset; non-English texts are our own translations; not reviewed by native speakers."
            ),
            reference=None,
            dataset={"path": "evalgemma/smoke", "revision": revision},
            type=entry.type,
            category="t2t",
            modalities=["text"],
            eval_splits=[_SPLIT],
            eval_langs=_subsets(entry.type, manifest),
            main_score=entry.main_score,
            date=(created, created),
            domains=["Written"],
            task_subtypes=list(entry.subtypes),  # type: ignore[arg-type]  # checked against mteb's Literal when the manifest loads
            license=manifest.license,
            annotations_creators="LM-generated",
            dialect=[],
            sample_creation="created",
            bibtex_citation="",
            is_public=True,
            contributed_by="evalgemma",
        )
    except ValidationError as exc:
        raise ConfigError(f"{folder / MANIFEST_NAME} [tasks.{name}]: not valid mteb task metadata: {exc}") from None
    attrs: dict[str, Any] = {"metadata": metadata, "smoke_data_dir": str(folder), "__module__": __name__}
    if entry.type == "Clustering":
        attrs["max_documents_per_cluster"] = entry.expect["sentences"]
    if entry.type == "Classification":
        attrs["samples_per_label"] = entry.expect["train"] // len(entry.labels)
    cls = type(name, (_SmokeLoader, _mteb_bases()[entry.type]), attrs)
    _CLASSES[key] = cls
    return cls


def smoke_tasks(names: Sequence[str] | None = None, data_dir: Path | str | None = None) -> list[AbsTask]:
    """Fresh mteb task objects for the smoke suite, ready for ``mteb.evaluate``.

    The data files are read and validated here (so bad data fails before any model is loaded)
    and again in each task's ``load_data``. Nothing touches the network.

    Args:
        names: task names (default: all of ``SMOKE_TASK_NAMES``, in that order).
        data_dir: the smoke data folder (default: ``tasks/smoke`` of the repository).

    Raises:
        ConfigError: an unknown task name, or an invalid ``smoke.toml``.
        DataError: missing or malformed data files, or counts that differ from ``expect``.
    """
    folder = smoke_data_dir(data_dir)
    chosen = list(SMOKE_TASK_NAMES) if names is None else list(dict.fromkeys(names))
    for name in chosen:
        if name not in _TASK_TYPES:
            raise unknown_name("smoke task", name, SMOKE_TASK_NAMES)
    manifest = load_manifest(folder)
    manifest_sha = _files_sha256(folder, [MANIFEST_NAME])
    tasks = []
    for name in chosen:
        _parse(name, manifest, folder)
        revision = _files_sha256(folder, manifest.tasks[name].files)
        tasks.append(_task_class(name, manifest, folder, revision, manifest_sha)())
    return tasks


def smoke_expected(data_dir: Path | str | None = None) -> dict[str, tuple[str, str, tuple[Cell, ...]]]:
    """task → (type, version, expected cells) of the smoke suite, from its manifest alone (no mteb import).

    The version is what ``smoke_tasks`` gives each task (its files' sha256; for the order-dependent
    clustering task also the cell set, as ``benchmarks.mteb.unit.task_version`` does).
    """
    folder = smoke_data_dir(data_dir)
    manifest = load_manifest(folder)
    out = {}
    for name in SMOKE_TASK_NAMES:
        entry = manifest.tasks[name]
        cells = tuple(Cell(_SPLIT, subset) for subset in _subsets(entry.type, manifest))
        revision = _files_sha256(folder, entry.files)
        version = f"{revision}+cells:{cells_sha256(cells)[:12]}" if entry.type in _ORDER_DEPENDENT else revision
        out[name] = (entry.type, version, cells)
    return out


def calibration_texts(data_dir: Path | str | None = None) -> list[str]:
    """The document-side texts of the suite, for calibrating int8 ranges.

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
