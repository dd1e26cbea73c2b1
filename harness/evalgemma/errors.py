"""The exception hierarchy of evalgemma and the exit code of each class.

Only ``cli.py`` maps these to process exit codes; library code raises them with a
message that says what failed, where (file, flag, task, variant) and what to do next.

| code | meaning |
|---|---|
| 0 | success, including "already complete, nothing to do" |
| 1 | unexpected error (a bug); traceback shown |
| 2 | usage or config error: bad flag, invalid TOML, unknown name |
| 3 | data or store integrity: missing/corrupt file, unwritable store, unknown schema version |
| 4 | ``check`` found a regression against the baseline, or ``parity`` a backend outside its bounds |
| 5 | the run finished but some units failed; the others are saved |
| 130 | interrupted; every unit that finished is already saved |
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from enum import StrEnum
from typing import Self


class EvalgemmaError(Exception):
    """Base class of every error evalgemma reports to a user (no traceback)."""

    exit_code: int = 1


class ConfigError(EvalgemmaError):
    """A bad flag, an invalid suite/task/variant file or an unknown name."""

    exit_code = 2


class DataError(EvalgemmaError):
    """Input data is missing, malformed or does not match its recorded checksum."""

    exit_code = 3


class StoreError(EvalgemmaError):
    """The results store cannot be written or read safely."""

    exit_code = 3


class RegressionFound(EvalgemmaError):
    """``evalgemma check`` found a score below the baseline by more than the tolerance."""

    exit_code = 4


class ParityFailed(EvalgemmaError):
    """``evalgemma parity``: a backend's vectors miss a bound of its thresholds (results are stored first).

    The same code as a regression: in both a measured artifact is worse than what it must match."""

    exit_code = RegressionFound.exit_code


class IncompleteRun(EvalgemmaError):
    """The run finished but some units failed; every finished unit is stored."""

    exit_code = 5


def unknown_name(kind: str, name: str, valid: Iterable[str], where: str = "") -> ConfigError:
    """Build a ConfigError for an unknown name, with close matches and the valid names.

    Args:
        kind: what the name is of ("suite", "task", "model", ...).
        name: the name the user gave.
        valid: every valid name.
        where: optional location (flag or file) to prefix the message with.
    """
    names = sorted({str(v) for v in valid})  # str(): Choice members read as their values
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    if not close:
        lowered = {n.lower(): n for n in names}
        close = [lowered[c] for c in difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.6)]
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    shown = ", ".join(names[:25]) + (f", … ({len(names)} in all)" if len(names) > 25 else "")
    prefix = f"{where}: " if where else ""
    return ConfigError(f"{prefix}unknown {kind} {name!r}.{hint} Valid: {shown}")


class Choice(StrEnum):
    """A closed set of names, defined once; ``parse`` is the one loud lookup for it.

    Members are ``str``, so they compare, hash and serialise (JSON, Parquet) as their values.
    Subclasses set ``kind`` (what the names are of, for the message).
    """

    @classmethod
    def kind(cls) -> str:
        """What the names are of: the docstring's first line, its initial lowered unless it starts an acronym."""
        first = cls.__doc__.splitlines()[0].strip().rstrip(".") if cls.__doc__ else cls.__name__
        return first if first[:2].isupper() else first[:1].lower() + first[1:]

    @classmethod
    def values(cls) -> tuple[str, ...]:
        """Every name, in definition order."""
        return tuple(m.value for m in cls)

    @classmethod
    def parse(cls, value: str, where: str = "") -> Self:
        """The member named ``value``.

        Raises:
            ConfigError: an unknown name, with close matches and the valid names (prefixed by ``where``).
        """
        try:
            return cls(value)
        except ValueError:
            raise unknown_name(cls.kind(), str(value), cls.values(), where=where) from None
