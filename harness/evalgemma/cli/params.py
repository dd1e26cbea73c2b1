"""Checks typer runs while it parses the command line, so a bad value fails before any work."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import typer


def one_of(kind: str, names: Callable[[], Iterable[str]]) -> Callable[[typer.Context, typer.CallbackParam, str | None], str | None]:
    """A typer ``callback`` accepting only a value in ``names()``.

    Anything else is a usage error (exit 2, with the command's usage line) that names the
    flag or argument, suggests close matches and lists the valid names.

    Args:
        kind: what the value names ("plot kind", "format", ...).
        names: the valid names; called only when the parameter is given, so its imports stay lazy.
    """

    def check(ctx: typer.Context, param: typer.CallbackParam, value: str | None) -> str | None:
        if value is None or ctx.resilient_parsing:
            return value
        valid = tuple(names())
        if value not in valid:
            from evalgemma.errors import unknown_name

            raise typer.BadParameter(str(unknown_name(kind, value, valid)))
        return value

    return check
