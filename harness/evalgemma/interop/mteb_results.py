"""mteb's results format both ways: export store variants as a ``ResultCache`` folder, import one.

**Export** writes, for every variant, the folder ``mteb.ResultCache(DIR)`` reads:
``DIR/results/<model name, "/" → "__">/<revision>/<task>.json`` (one ``mteb.TaskResult`` per task, with
every stored split and subset and mteb's version fields) and ``model_meta.json`` (an ``mteb.ModelMeta``).
The default variant of a model (full dim, float32 weights and embeddings, torch, no weight
quantization, prompts on) goes in the revision folder; every other variant in an mteb *experiment*
folder, ``<revision>/experiments/<experiment name>/``, whose ``model_meta.json`` carries the variant's
non-default fields as ``experiment_kwargs`` (``dim``, ``dtype``, ``quant``, ``quant_source``, ``backend``,
``embed_dtype``, ``prompts``), so mteb names and filters it (``load_experiments``). Values are written
unrounded (``TaskResult.to_disk`` rounds to 6 places): ``TaskResult.from_disk`` reads them exactly. Next
to the results, ``evalgemma_variant.jsonl`` (not ``*.json``, which mteb would read as a result) holds the
variant's evalgemma identity, so an import restores the very same variant key and label.

**Import** reads a plain ``mteb.evaluate`` output folder or a results-repository checkout (any depth:
``**/<model>/<revision>/[experiments/<name>/]<task>.json``) into store rows, one unit per (variant, task),
each written with ``store.parquet.write_unit``. Every file is parsed and checked before anything is
written; the source (path, sha256, mteb version) is recorded in ``extra``.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalgemma.errors import ConfigError, DataError, StoreError

if TYPE_CHECKING:
    import pandas as pd

#: The sidecar with a variant's evalgemma identity (``.jsonl``: mteb reads every ``*.json`` as a result).
SIDECAR = "evalgemma_variant.jsonl"
#: Store columns that make up a variant's identity (restored exactly by an import of an export).
IDENTITY_COLUMNS = ("model", "revision", "variant_key", "variant", "weight_key", "dim", "dtype", "max_seq_length", "prompt_set", "prompt_hash",
                    "quant", "quant_source", "quant_checkpoint", "embed_dtype", "calibration", "backend", "artifact_sha256")
#: Defaults of the fields a non-default variant names in ``experiment_kwargs``.
_DEFAULTS = {"dtype": "float32", "quant": "none", "quant_source": "none", "backend": "torch", "embed_dtype": "float32"}
_SOURCE = "mteb"


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote."""

    variants: int
    tasks: int
    files: list[Path]
    skipped: list[str]  # "variant / task: why"


@dataclass(frozen=True)
class ImportSummary:
    """What an import stored."""

    files: int
    units: list[Path]
    skipped: list[str]  # files already imported


# ---------------------------------------------------------------- export


def select_variants(frame: pd.DataFrame, wanted: Sequence[str]) -> list[str]:
    """Variant keys of ``frame`` matching ``wanted`` (labels or keys; empty: all), in store order.

    Raises:
        ConfigError: a name matching no variant (with close matches).
    """
    from evalgemma.errors import unknown_name

    keys = list(dict.fromkeys(frame["variant_key"].astype(str)))
    labels = dict(zip(frame["variant_key"].astype(str), frame["variant"].astype(str), strict=True))
    if not wanted:
        return keys
    out: list[str] = []
    for name in wanted:
        hits = [k for k in keys if name in (k, labels[k])]
        if not hits:
            raise unknown_name("variant", name, [*labels.values()], where="--variants")
        out.extend(h for h in hits if h not in out)
    return out


def complete_tasks(frame: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(variant key, task) → task version, for every task that is complete in one of the suites its rows were run for."""
    from evalgemma.views.scores import task_scores

    out: dict[tuple[str, str], str] = {}
    for suite in sorted(set(frame["suite"].astype(str))):
        scores = task_scores(frame, suite)
        for rec in scores[scores["complete"]].itertuples(index=False):
            rows = frame[(frame["variant_key"] == rec.variant_key) & (frame["task"] == rec.task) & frame["is_main"].astype(bool)]
            newest = rows.sort_values("finished_at").iloc[-1]
            out.setdefault((str(rec.variant_key), str(rec.task)), str(newest["task_version"]))
    return out


def _full_dim(model: str, frame: pd.DataFrame) -> int:
    """The model's own output dim: mteb's registry when it knows the model, else the largest stored dim."""
    stored = int(frame[frame["model"] == model]["dim"].max())
    try:
        import mteb

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dim = mteb.get_model_meta(model).embed_dim
    except Exception:  # unknown to mteb's registry (a local model): what the store holds is all we know
        return stored
    if isinstance(dim, int):
        return dim
    if isinstance(dim, Sequence) and dim:
        return max(int(d) for d in dim)
    return stored


def experiment_kwargs(ident: dict[str, Any], full_dim: int) -> dict[str, Any]:
    """The non-default fields of a variant, as mteb ``experiment_kwargs`` (empty: the default variant)."""
    kw: dict[str, Any] = {}
    if int(ident["dim"]) != full_dim:
        kw["dim"] = int(ident["dim"])
    for name, default in _DEFAULTS.items():
        value = str(ident.get(name) or default)
        if value != default:
            kw[name] = value
    if "no-prompts" in str(ident.get("variant", "")).split(" · "):
        kw["prompts"] = "none"
    return kw


def _unflatten(metrics: dict[str, float]) -> dict[str, Any]:
    """``{"a.b": x}`` → ``{"a": {"b": x}}`` (the inverse of the store's flattening of mteb's score dicts)."""
    out: dict[str, Any] = {}
    for name, value in metrics.items():
        node = out
        *parents, leaf = name.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def task_result(rows: pd.DataFrame) -> Any:
    """One ``mteb.TaskResult`` from the stored rows of one (variant, task, task version): every cell, every metric."""
    from collections.abc import Mapping

    from mteb.results import TaskResult

    scores: dict[str, list[Mapping[str, Any]]] = {}
    for (split, subset), cell in rows.groupby(["split", "hf_subset"], sort=False):
        metrics = {str(m): float(v) for m, v in zip(cell["metric"], cell["value"], strict=True)}
        main = cell[cell["is_main"].astype(bool)]
        entry = _unflatten(metrics)
        entry["main_score"] = float(main["value"].iloc[0])
        entry["hf_subset"] = str(subset)
        entry["languages"] = [s for s in str(cell["languages"].iloc[0]).split(",") if s]
        entry["mteb_version"] = str(cell["mteb_version"].iloc[0]) or None
        scores.setdefault(str(split), []).append(entry)
    first = rows.sort_values("finished_at").iloc[-1]
    extra = _json(str(first["extra"]))
    wall = extra.get("mteb_evaluation_time")
    units = rows.drop_duplicates("unit_id")
    finished = max(str(f) for f in units["finished_at"])
    return TaskResult(
        dataset_revision=str(first["data_revision"] or first["task_version"]), task_name=str(first["task"]),
        mteb_version=str(first["mteb_version"]) or None, scores=scores,
        evaluation_time=float(wall) if isinstance(wall, (int, float)) else float(units["wall_s"].sum()),
        date=_parse_time(finished),
    )


def _json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _parse_time(text: str) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
    except ValueError:
        return None


def task_result_json(result: Any) -> str:
    """A TaskResult as ``TaskResult.to_disk`` writes it, but unrounded (``from_disk`` reads it back exactly)."""
    data = result.model_dump()
    data["date"] = result.date.timestamp() if result.date else None
    text = json.dumps(data, indent=2)  # NaN as mteb writes it (json.dump)
    type(result).model_validate_json(text)  # what mteb will read: fail here, not in a reader
    return text


def model_meta(ident: dict[str, Any], full_dim: int, kw: dict[str, Any]) -> Any:
    """The ``mteb.ModelMeta`` of a variant (mteb's empty meta with name, revision, dims and experiment kwargs)."""
    from mteb.models import ModelMeta
    from mteb.models.model_meta import ScoringFunction

    sim = ScoringFunction.CUSTOM if str(ident.get("embed_dtype")) in ("binary", "ubinary") else ScoringFunction.COSINE
    return ModelMeta.create_empty({
        "name": str(ident["model"]), "revision": str(ident["revision"]), "embed_dim": int(ident["dim"]) if kw.get("dim") else full_dim,
        "similarity_fn_name": sim, "framework": ["Sentence Transformers"], "experiment_kwargs": kw or None,
    })


def export_mteb(store: Path, out: Path, *, variants: Sequence[str] = (), allow_partial: bool = False) -> ExportSummary:
    """Write the chosen variants' results as an mteb ``ResultCache`` folder ``out`` (see the module docstring).

    Raises:
        StoreError: the store holds no results; ``out`` cannot be written.
        ConfigError: a ``--variants`` name matches nothing; two variants would share one mteb folder.
    """
    from mteb.cache import ResultCache

    from evalgemma.io import atomic_write
    from evalgemma.store.parquet import newest_runs, scan_store

    frame, problems = scan_store(store)
    for p in problems:
        warnings.warn(f"skipped store file: {p.reason}", UserWarning, stacklevel=2)
    frame = newest_runs(frame)
    if frame.empty:
        raise StoreError(f"--store {store}: no results to export")
    keys = select_variants(frame, variants)
    complete = complete_tasks(frame)
    cache = ResultCache(out)
    files: list[Path] = []
    skipped: list[str] = []
    folders: dict[Path, str] = {}
    n_tasks = 0
    for key in keys:
        mine = frame[frame["variant_key"] == key]
        ident = {c: mine[c].iloc[0] for c in IDENTITY_COLUMNS}
        ident["suite"] = str(mine.sort_values("finished_at")["suite"].iloc[-1])
        full = _full_dim(str(ident["model"]), frame)
        kw = experiment_kwargs(ident, full)
        meta = model_meta(ident, full, kw)
        written_here = 0
        for task, rows in mine.groupby("task", sort=False):
            version = complete.get((key, str(task)))
            if version is None:
                if not allow_partial:
                    skipped.append(f"{ident['variant']} / {task}: incomplete (use --allow-partial to export its stored cells)")
                    continue
                version = str(rows.sort_values("finished_at")["task_version"].iloc[-1])
            cells = rows[rows["task_version"].astype(str) == version]
            path = Path(cache.get_task_result_path(str(task), meta))
            owner = folders.setdefault(path.parent, key)
            if owner != key:
                raise ConfigError(f"variants {owner} and {key} map to one mteb folder {path.parent}; export them separately with --variants")
            try:
                atomic_write(path, task_result_json(task_result(cells)))
            except OSError as exc:
                raise StoreError(f"--out {out}: cannot write {path} ({exc.strerror or exc})") from exc
            files.append(path)
            written_here += 1
        if written_here:
            folder = Path(cache.get_task_result_path("x", meta)).parent
            try:
                atomic_write(folder / "model_meta.json", json.dumps(meta.to_dict(), default=str, indent=4))
                atomic_write(folder / SIDECAR, json.dumps({k: _plain(v) for k, v in ident.items()}, sort_keys=True) + "\n")
            except OSError as exc:
                raise StoreError(f"--out {out}: cannot write {folder} ({exc.strerror or exc})") from exc
            n_tasks += written_here
    return ExportSummary(sum(1 for k in keys if k in set(folders.values())), n_tasks, files, skipped)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


# ---------------------------------------------------------------- import


@dataclass(frozen=True)
class _Parsed:
    path: Path
    sha256: str
    result: Any  # mteb TaskResult
    task: Any  # mteb task object
    ident: dict[str, Any]
    suite: str
    expected_n: int
    version: str


def result_files(folder: Path) -> list[Path]:
    """The TaskResult files of an mteb results folder (``<model>/<revision>/[experiments/<name>/]<task>.json``)."""
    from evalgemma.io import TMP_PREFIX

    return sorted(p for p in folder.rglob("*.json")
                  if p.is_file() and p.name != "model_meta.json" and not p.name.startswith((".", TMP_PREFIX)) and len(p.relative_to(folder).parts) >= 3)


def _folder_identity(path: Path) -> tuple[str, str, dict[str, Any], dict[str, Any] | None]:
    """(model, revision, ModelMeta fields, evalgemma identity or None) of a result file's folder."""
    folder = path.parent
    meta: dict[str, Any] = {}
    meta_path = folder / "model_meta.json"
    if meta_path.is_file():
        try:
            loaded = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(f"{meta_path}: not valid JSON ({exc})") from exc
        if not isinstance(loaded, dict):
            raise DataError(f"{meta_path}: not an mteb ModelMeta (a JSON object expected)")
        meta = loaded
    rev_folder = folder.parent.parent if folder.parent.name == "experiments" else folder
    model = str(meta.get("name") or rev_folder.parent.name.replace("__", "/"))
    revision = str(meta.get("revision") or rev_folder.name)
    ident = None
    sidecar = folder / SIDECAR
    if sidecar.is_file():
        try:
            ident = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(f"{sidecar}: not valid JSON ({exc})") from exc
        if not isinstance(ident, dict) or set(IDENTITY_COLUMNS) - set(ident):
            raise DataError(f"{sidecar}: not an evalgemma variant record (missing {sorted(set(IDENTITY_COLUMNS) - set(ident or {}))[:4]})")
    return model, revision, meta, ident


def _resolve_task(name: str, path: Path) -> Any:
    """A fresh task object for ``name``: a built-in smoke/types task, else mteb's registry."""
    from evalgemma.benchmarks.smoke.tasks import smoke_expected, smoke_tasks

    for suite in ("smoke", "types"):
        if name in smoke_expected(suite):
            return smoke_tasks([name], suite=suite)[0]
    import mteb

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return mteb.get_task(name)
    except (KeyError, ValueError) as exc:
        raise DataError(f"{path}: unknown task {name!r} (neither an mteb task nor a built-in smoke task): {exc}") from None


def plain_identity(model: str, revision: str, meta: dict[str, Any]) -> dict[str, Any]:
    """The variant of a plain mteb result: model, revision, dim and the experiment's fields; a key of its own."""
    from mteb.models.model_meta import _serialize_experiment_kwargs_to_name

    from evalgemma.variants.spec import KEY_VERSION, short_hash

    kw = meta.get("experiment_kwargs") or {}
    kw = kw if isinstance(kw, dict) else {}
    dim = kw.get("dim", meta.get("embed_dim"))
    if isinstance(dim, list):
        dim = max(dim) if dim else 0
    dim = int(dim) if isinstance(dim, (int, float)) and not isinstance(dim, bool) else 0
    experiment = _serialize_experiment_kwargs_to_name(kw) or ""
    weight = {"source": _SOURCE, "model": model, "revision": revision, "experiment": experiment}
    label = " · ".join([model.rsplit("/", 1)[-1], *([experiment] if experiment else []), f"{dim}d" if dim else "dim ?", "mteb"])
    return {
        "model": model, "revision": revision, "variant_key": f"{KEY_VERSION}-" + short_hash({**weight, "dim": dim}),
        "variant": label, "weight_key": f"{KEY_VERSION}-" + short_hash(weight), "dim": dim,
        "dtype": str(kw.get("dtype", "")), "quant": str(kw.get("quant", "none")), "quant_source": str(kw.get("quant_source", "none")),
        "embed_dtype": str(kw.get("embed_dtype", "float32")), "backend": str(kw.get("backend", "")), "prompt_set": "",
    }


def _parse(path: Path, suite: str | None) -> _Parsed:
    from mteb.results import TaskResult

    from evalgemma.benchmarks.mteb.unit import is_order_dependent, task_cells, task_version
    from evalgemma.benchmarks.suites import expected_cells

    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: unreadable ({exc.strerror or exc})") from exc
    try:
        json.loads(raw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = TaskResult.from_disk(path)
    except Exception as exc:  # json and pydantic raise several types; all mean "not an mteb result"
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: not an mteb TaskResult ({type(exc).__name__}: {first})") from None
    task = _resolve_task(result.task_name, path)
    model, revision, meta, ident = _folder_identity(path)
    chosen = suite or (str(ident["suite"]) if ident and ident.get("suite") else "tasks")
    from evalgemma.benchmarks.base import Cell

    present = {Cell(str(s), str(e.get("hf_subset", "default"))) for s, entries in result.scores.items() for e in entries}
    order = [c for c in task_cells(task) if c in present] + sorted(present - set(task_cells(task)))
    expected = expected_cells(chosen)
    e = expected.get(result.task_name) if expected else None
    version = e.version if e is not None and e.version and set(e.cells) == present else task_version(task, order, is_order_dependent(task))
    return _Parsed(path, hashlib.sha256(raw).hexdigest(), result, task, ident or plain_identity(model, revision, meta),
                   chosen, len(e.cells) if e is not None else len(present), version)


def import_mteb(folder: Path, store: Path, *, suite: str | None = None) -> ImportSummary:
    """Store every TaskResult under ``folder`` as evalgemma rows (one unit per file); files already imported are skipped.

    Every file is parsed and checked first: one bad file (corrupt JSON, not a TaskResult, an unknown task)
    stops the import before anything is written, naming the file.

    Raises:
        DataError: ``folder`` is not a folder, holds no results, or a file is bad.
        StoreError: the store cannot be written.
    """
    import numpy as np

    from evalgemma.benchmarks.mteb.adapter import task_result_rows
    from evalgemma.provenance import utc_now
    from evalgemma.store.parquet import ensure_writable, scan_store, write_unit

    if not folder.is_dir():
        raise DataError(f"--from-mteb {folder}: not a folder (give an mteb results folder: <model>/<revision>/<task>.json)")
    files = result_files(folder)
    if not files:
        raise DataError(f"--from-mteb {folder}: no mteb result files (<model>/<revision>/<task>.json) found")
    parsed = [_parse(p, suite) for p in files]
    ensure_writable(store)
    frame, _ = scan_store(store)
    seen = {(str(k), str(_json(str(x)).get("source_sha256", ""))) for k, x in zip(frame["variant_key"], frame["extra"], strict=True)}
    run_id = "import-" + hashlib.sha256(f"{folder.resolve()}{utc_now()}".encode()).hexdigest()[:12]
    units: list[Path] = []
    skipped: list[str] = []
    for item in parsed:
        if (str(item.ident["variant_key"]), item.sha256) in seen:
            skipped.append(f"{item.path}: already imported")
            continue
        rows = task_result_rows(item.task, item.result)
        cells = {(r["split"], r["hf_subset"]) for r in rows}
        main = [r["value"] for r in rows if r["is_main"]]
        finished = item.result.date.isoformat() if item.result.date else utc_now()
        common = {
            **{k: _plain(v) for k, v in item.ident.items() if k in IDENTITY_COLUMNS}, "run_id": run_id, "status": "ok",
            "started_at": finished, "finished_at": finished, "suite": item.suite, "task": item.result.task_name,
            "task_type": str(item.task.metadata.type), "task_version": item.version, "data_revision": item.result.dataset_revision,
            "main_score": float(np.mean(main)) if len(cells) == item.expected_n and main else math.nan,
            "suite_cells_n": item.expected_n, "wall_s": float(item.result.evaluation_time or 0.0),
            "mteb_version": str(item.result.mteb_version or ""),
            "extra": json.dumps({"source": _SOURCE, "source_path": str(item.path), "source_sha256": item.sha256}),
        }
        units.append(write_unit(store, [{**common, **r} for r in rows]))
        seen.add((str(item.ident["variant_key"]), item.sha256))
    return ImportSummary(len(files), units, skipped)
