"""``tasks/xtreme_up.toml``: where the XTREME-UP tarball comes from and the named language sets."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from evalgemma.catalog import TASKS_DIR
from evalgemma.errors import Choice, ConfigError, unknown_name

DEFAULT_CONFIG_PATH = TASKS_DIR / "xtreme_up.toml"


class Task(Choice):
    """XTREME-UP task."""

    CROSS_LANG = "retrieval_cross_lang"
    IN_LANG = "retrieval_in_lang"


class Split(Choice):
    """XTREME-UP split."""

    TRAIN = "train"
    VALIDATION = "validation"
    TEST = "test"


class DownloadConfig(BaseModel):
    """Where the tarball comes from (``[download]`` in ``tasks/xtreme_up.toml``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    version: str
    url: str
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


class SuiteConfig(BaseModel):
    """One named language set (``[suites.<name>]``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    task: Task
    split: Split = Split.TEST
    languages: tuple[str, ...] = Field(min_length=1)


class XtremeUpConfig(BaseModel):
    """``tasks/xtreme_up.toml``: the download source and the language sets."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    schema_: Literal[1] = Field(alias="schema")
    download: DownloadConfig
    suites: dict[str, SuiteConfig]

    def suite(self, name: str) -> SuiteConfig:
        """The suite called ``name``; ``ConfigError`` with close matches otherwise."""
        if name not in self.suites:
            raise unknown_name("XTREME-UP suite", name, self.suites, where="tasks/xtreme_up.toml")
        return self.suites[name]


def load_xtreme_up_config(path: Path | None = None) -> XtremeUpConfig:
    """Read and validate ``tasks/xtreme_up.toml`` (or ``path``).

    Raises:
        ConfigError: the file is missing, is not valid TOML, or does not match the schema
            (unknown keys, duplicate languages, ...).
    """
    from evalgemma.catalog.suites import load_toml_model  # suites.py imports this module's choices

    p = DEFAULT_CONFIG_PATH if path is None else Path(path)
    cfg = load_toml_model(p, XtremeUpConfig, "XTREME-UP config")
    for name, s in cfg.suites.items():
        if len(set(s.languages)) != len(s.languages):
            raise ConfigError(f"{p}: suite {name!r} lists a language twice: {list(s.languages)}")
    return cfg
