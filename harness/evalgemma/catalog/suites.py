"""Load and validate ``tasks/*.toml`` (suites, model short names) and resolve names loudly.

Config is data and data is closed: every file becomes a frozen pydantic model with
``extra="forbid"``; unknown keys, wrong types and duplicate keys (``tomllib`` raises) are
``ConfigError`` naming the file.
"""

from __future__ import annotations

import re
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from evalgemma.catalog import TASKS_DIR
from evalgemma.catalog.xtreme_up import Split, Task
from evalgemma.errors import ConfigError, unknown_name

M = TypeVar("M", bound=BaseModel)


def repo_tasks_dir() -> Path:
    """The ``tasks/`` folder of this checkout (next to ``harness/``)."""
    return TASKS_DIR


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SuiteSpec(_Closed):
    """A suite file: an mteb benchmark, the built-in smoke suite, an XTREME-UP language set, or a task list."""

    schema_: int = 1
    name: str
    kind: Literal["mteb", "smoke", "xtreme-up", "tasks"]
    description: str = ""
    benchmark: str | None = None  # kind = "mteb": the mteb benchmark name
    data: str = "smoke"  # kind = "smoke": the built-in data folder tasks/<data>/ (manifest <data>.toml)
    tasks: tuple[str, ...] = ()  # kind = "tasks": mteb task names
    xtreme_task: Task | None = None
    languages: tuple[str, ...] = ()
    split: Split = Split.TEST  # kind = "xtreme-up": the query split the suite scores
    source: str = ""  # the file it came from


class ModelEntry(_Closed):
    """A short model name from ``tasks/models.toml``."""

    name: str
    id: str
    source: Literal["hub", "package"]
    package: str | None = None
    revision: str | None = None
    published_revision: str | None = None
    max_seq_length: int | None = None
    matryoshka_dims: tuple[int, ...] = ()
    gated: bool = False
    description: str = ""


def read_toml(path: Path) -> dict[str, object]:
    """Parse a TOML file; syntax errors and duplicate keys become ConfigError naming the file."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc})") from exc
    except (ValueError, RecursionError) as exc:
        # tomllib lets int() raise ValueError for integers over 4300 digits and recurses per
        # nesting level (RecursionError for deep arrays/tables): both are invalid files, not bugs.
        raise ConfigError(f"{path}: invalid TOML ({type(exc).__name__}: {str(exc)[:200]})") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc})") from exc


def load_toml_model(path: Path, model: type[M], what: str) -> M:
    """Read a TOML data file and validate it as a closed pydantic model.

    Every failure is a ConfigError naming the file: missing (``what`` says which file it
    should have been), invalid TOML or duplicate keys, unknown keys or wrong types.
    """
    if not path.is_file():
        raise ConfigError(f"{path}: {what} not found")
    raw = read_toml(path)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: invalid {what}: " + _validation_details(exc)) from exc


def _validation_details(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]).replace("schema_", "schema") or "(file)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def _validation_message(path: Path, exc: ValidationError) -> str:
    return f"{path}: " + _validation_details(exc)


def load_suite_file(path: Path) -> SuiteSpec:
    """Load and validate one suite file.

    Raises:
        ConfigError: invalid TOML, unknown keys, wrong types or an inconsistent suite.
    """
    raw = dict(read_toml(path))
    if "schema" in raw:
        raw["schema_"] = raw.pop("schema")
    raw.setdefault("name", path.stem)
    try:
        spec = SuiteSpec(**raw, source=str(path))  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(_validation_message(path, exc)) from exc
    except TypeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    if spec.schema_ != 1:
        raise ConfigError(f"{path}: schema {spec.schema_} is not supported (expected 1)")
    if spec.kind == "mteb" and not spec.benchmark:
        raise ConfigError(f"{path}: kind = 'mteb' needs a 'benchmark' name")
    if spec.kind == "smoke":
        _check_builtin_data(path, spec.data)
    elif "data" in raw:
        raise ConfigError(f"{path}: 'data' names the folder of a kind = 'smoke' suite; this suite is kind = {spec.kind!r}")
    if spec.kind == "tasks" and not spec.tasks:
        raise ConfigError(f"{path}: kind = 'tasks' needs a non-empty 'tasks' list")
    if spec.kind == "xtreme-up" and not (spec.xtreme_task and spec.languages):
        # The language set lives in tasks/xtreme_up.toml under the suite's name.
        from evalgemma.catalog.xtreme_up import load_xtreme_up_config

        cfg = load_xtreme_up_config()
        if spec.name not in cfg.suites:
            raise ConfigError(f"{path}: kind = 'xtreme-up' needs [suites.{spec.name}] in tasks/xtreme_up.toml (or 'xtreme_task' and 'languages' here)")
        entry = cfg.suites[spec.name]
        spec = spec.model_copy(update={"xtreme_task": entry.task, "languages": tuple(entry.languages), "split": entry.split})
    return spec


def _check_builtin_data(path: Path, data: str) -> None:
    """A kind = 'smoke' suite's ``data`` must be a folder of ``tasks/`` holding ``<data>.toml``."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", data):
        raise ConfigError(f"{path}: data = {data!r}: must be the name of a folder in tasks/ (letters, digits, '_', '-')")
    manifest = repo_tasks_dir() / data / f"{data}.toml"
    if not manifest.is_file():
        raise ConfigError(f"{path}: data = {data!r}: no built-in suite data there ({manifest} not found)")


@lru_cache(maxsize=8)
def builtin_suites(tasks_dir: Path | None = None) -> dict[str, SuiteSpec]:
    """Every suite in ``tasks/suites/*.toml``, by name (duplicate names are an error)."""
    folder = (tasks_dir or repo_tasks_dir()) / "suites"
    suites: dict[str, SuiteSpec] = {}
    for path in sorted(folder.glob("*.toml")):
        spec = load_suite_file(path)
        if spec.name in suites:
            raise ConfigError(f"{path}: suite name {spec.name!r} already defined in {suites[spec.name].source}")
        suites[spec.name] = spec
    return suites


def resolve_suite(name_or_path: str) -> SuiteSpec:
    """A built-in suite by name, or a suite file by path.

    Raises:
        ConfigError: unknown name (with close matches) or an invalid file.
    """
    suites = builtin_suites()
    if name_or_path in suites:
        return suites[name_or_path]
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise ConfigError(f"--suite {name_or_path}: suite file not found")
        return load_suite_file(path)
    raise unknown_name("suite", name_or_path, suites, where="--suite")


@lru_cache(maxsize=4)
def model_entries(tasks_dir: Path | None = None) -> dict[str, ModelEntry]:
    """Short model names from ``tasks/models.toml``."""
    path = (tasks_dir or repo_tasks_dir()) / "models.toml"
    raw = read_toml(path)
    unknown = set(raw) - {"schema", "models"}
    if unknown:
        raise ConfigError(f"{path}: unknown keys {sorted(unknown)}")
    out: dict[str, ModelEntry] = {}
    models = raw.get("models", {})
    if not isinstance(models, dict):
        raise ConfigError(f"{path}: 'models' must be a table")
    for name, fields in models.items():
        if not isinstance(fields, dict):
            raise ConfigError(f"{path}: models.{name} must be a table")
        try:
            out[name] = ModelEntry(name=name, **fields)
        except ValidationError as exc:
            raise ConfigError(_validation_message(path, exc)) from exc
        except TypeError as exc:  # a 'name' key inside the table clashes with the table's name
            raise ConfigError(f"{path}: models.{name}: {exc}") from exc
    return out


def model_entry_for(name_or_id: str) -> ModelEntry | None:
    """The short-name entry for a short name or for the hub id it stands for, if any."""
    entries = model_entries()
    if name_or_id in entries:
        return entries[name_or_id]
    for entry in entries.values():
        if entry.id == name_or_id:
            return entry
    return None
