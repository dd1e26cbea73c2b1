"""The data of ``evalgemma parity``: the probe set (``tasks/parity_probe.toml``) and the bounds a
backend must meet per quantization (``tasks/parity_thresholds.toml``), both closed pydantic models
read with the project's one TOML loader (:func:`evalgemma.catalog.suites.load_toml_model`).
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from evalgemma.catalog import TASKS_DIR
from evalgemma.catalog.suites import load_toml_model
from evalgemma.errors import ConfigError

PROBE_PATH = TASKS_DIR / "parity_probe.toml"
THRESHOLDS_PATH = TASKS_DIR / "parity_thresholds.toml"
#: Texts of the quick check ``evalgemma run`` makes of a non-torch backend (the probe set's first ones).
QUICK_PROBE_TEXTS = 8


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProbeText(_Closed):
    """One probe text: its language, the name of the prompt it is encoded with, the text."""

    lang: str = Field(pattern=r"^[a-z]{3}$")
    prompt: str
    text: str = Field(min_length=1)


class ProbeSet(_Closed):
    """``tasks/parity_probe.toml``."""

    schema_: int = Field(1, alias="schema")
    name: str
    version: int
    texts: tuple[ProbeText, ...] = Field(min_length=12)

    @property
    def sha256(self) -> str:
        """sha256 of the canonical JSON of the texts (lang, prompt, text): the probe set's identity."""
        payload = json.dumps([t.model_dump() for t in self.texts], sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    @property
    def task_version(self) -> str:
        """``<version>@sha256:<16 hex>``: what a stored Parity result records as its task version."""
        return f"{self.version}@sha256:{self.sha256[:16]}"

    def rendered(self, prompts: dict[str, str], n: int | None = None) -> list[str]:
        """``prompt + text`` of the first ``n`` texts (all when None), with the model's prompt of each
        text's prompt name ("" when the model has no such prompt), as every backend is given them."""
        return [prompts.get(t.prompt, "") + t.text for t in self.texts[:n]]


class Bounds(_Closed):
    """Bounds of one (backend, quantization); see ``evalgemma.encode.parity.ParityThresholds``."""

    min_cosine: float = Field(ge=-1, le=1)
    min_mean_cosine: float = Field(ge=-1, le=1)
    min_top10_overlap: float = Field(ge=0, le=1)
    max_norm_delta: float = Field(ge=0)
    note: str = ""


class ThresholdFile(_Closed):
    """``tasks/parity_thresholds.toml``: ``[<backend>.<quant>]`` tables of bounds."""

    schema_: int = Field(1, alias="schema")
    backends: dict[str, dict[str, Bounds]]

    def bounds(self, backend: str, quant: str, path: Path) -> Bounds:
        """The bounds of (backend, quant).

        Raises:
            ConfigError: the file has none for this pair (naming the file and the pairs it has).
        """
        found = self.backends.get(backend, {}).get(quant)
        if found is None:
            have = ", ".join(f"{b} {q}" for b, qs in self.backends.items() for q in qs) or "none"
            raise ConfigError(f"--thresholds {path}: no bounds for --backend {backend} --quant {quant} (it has: {have})")
        return found


@lru_cache(maxsize=4)
def load_probe_set(path: Path = PROBE_PATH) -> ProbeSet:
    """The probe set (cached per path).

    Raises:
        ConfigError: a missing or invalid file, or duplicate texts.
    """
    probe = load_toml_model(path, ProbeSet, "parity probe set")
    if probe.schema_ != 1:
        raise ConfigError(f"{path}: schema {probe.schema_} is not supported (expected 1)")
    seen = [t.text for t in probe.texts]
    if len(set(seen)) != len(seen):
        raise ConfigError(f"{path}: duplicate probe texts")
    return probe


def load_thresholds(path: Path | None = None) -> tuple[ThresholdFile, Path]:
    """The thresholds file (``tasks/parity_thresholds.toml`` when ``path`` is None) and its path.

    Raises:
        ConfigError: missing, invalid TOML, unknown keys, wrong types.
    """
    where = path or THRESHOLDS_PATH
    raw = load_toml_model(where, _RawThresholds, "parity thresholds file")
    if raw.schema_ != 1:
        raise ConfigError(f"{where}: schema {raw.schema_} is not supported (expected 1)")
    tables = {k: v for k, v in raw.model_extra.items()} if raw.model_extra else {}
    try:
        return ThresholdFile.model_validate({"schema": raw.schema_, "backends": tables}), where
    except ValueError as exc:
        raise ConfigError(f"{where}: invalid parity thresholds file: {exc}") from exc


class _RawThresholds(BaseModel):
    """The file as written: ``schema`` and one table per backend (validated by ``ThresholdFile``)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    schema_: int = Field(1, alias="schema")
