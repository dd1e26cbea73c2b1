"""The ``evalgemma`` command line: parses, calls the library, prints, maps errors to exit codes."""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Sequence
from typing import Any

import typer

from evalgemma.cli.commands import COMMAND_MODULES
from evalgemma.errors import EvalgemmaError

app = typer.Typer(
    name="evalgemma",
    help="Evaluate EmbeddingGemma variants (and any sentence-transformers model) on MTEB and XTREME-UP.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _module in COMMAND_MODULES:
    importlib.import_module(f"evalgemma.cli.commands.{_module}").register(app)

#: The program name in usage lines (``sys.argv[0]`` is ``-c`` or a path when run as a module).
PROG = "evalgemma"

#: The exit code of an interrupted run (typer turns Ctrl-C into ``Exit(130)``).
INTERRUPTED = 130

# typer >= 0.22 vendors click as ``typer._click`` (its exceptions do not derive from click's);
# older typer and code that raises click's own exceptions use ``click``.
_CLICK_MODULES = ("typer._click.exceptions", "click.exceptions")

_NO_SUCH_COMMAND = re.compile(r"No such command (?P<name>'[^']*'|\"[^\"]*\")")


def _format_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int, line: str | None = None) -> str:
    return f"warning: {message}\n"


def _click_classes(name: str) -> tuple[type[BaseException], ...]:
    """The exception class ``name`` of typer's vendored click and of click, where importable."""
    found: list[type[BaseException]] = []
    for module in _CLICK_MODULES:
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
        found.append(cls)
    return tuple(found)


def _option_names(command: Any, ctx: Any) -> list[str]:
    names = [o for p in getattr(command, "params", []) for o in (*p.opts, *p.secondary_opts) if o.startswith("-")]
    return names + list(getattr(ctx, "help_option_names", []))


def usage_error_message(exc: BaseException) -> str:
    """One line for a click/typer usage error; unknown options and commands get close matches.

    Args:
        exc: a ``UsageError`` of typer's vendored click or of click.
    """
    from evalgemma.errors import unknown_name

    ctx = getattr(exc, "ctx", None)
    command = getattr(ctx, "command", None)
    where = getattr(ctx, "command_path", "") if ctx is not None else ""
    message = str(getattr(exc, "message", "") or exc)
    option = getattr(exc, "option_name", None)
    if option is not None and isinstance(exc, _click_classes("NoSuchOption")):
        return str(unknown_name("option", option, _option_names(command, ctx), where=where))
    found = _NO_SUCH_COMMAND.match(message)
    if found and command is not None and hasattr(command, "list_commands"):
        import ast

        name = ast.literal_eval(found["name"])
        return str(unknown_name("command", name, command.list_commands(ctx), where=where))
    text: str = exc.format_message()  # type: ignore[attr-defined]
    errors = getattr(exc.__cause__, "errors", None)  # typer checks typed values with pydantic
    if callable(errors):
        given = next((e.get("input") for e in errors() if "input" in e), None)
        if given is not None:
            text = f"{text} (got {given!r})"
    return text


def command_context(args: Sequence[str], *, resilient: bool = False) -> Any:
    """Parse ``args`` as ``evalgemma ARGS`` would, without running a command.

    Returns the click context of the innermost (sub)command that ``args`` name, after its
    options and arguments were checked (typed values, choices) as a real call checks them.

    Args:
        args: the command line after ``evalgemma``.
        resilient: parse leniently (no errors, no callbacks), as shell completion does.

    Raises:
        click/typer ``UsageError``: unless ``resilient``, the error the real call would report.
    """
    ctx = typer.main.get_command(app).make_context(PROG, list(args), resilient_parsing=resilient)
    while hasattr(ctx.command, "resolve_command"):
        rest = [*getattr(ctx, "_protected_args", getattr(ctx, "protected_args", [])), *ctx.args]
        if not rest:
            break
        name, sub, rest = ctx.command.resolve_command(ctx, rest)
        if sub is None:
            break
        ctx = sub.make_context(name, rest, parent=ctx, resilient_parsing=resilient)
    return ctx


def _context_of(args: list[str]) -> Any | None:
    """The context for the usage line of an error click raised without one (parsed leniently)."""
    try:
        return command_context(args, resilient=True)
    except Exception:
        return None


def _exit_usage(exc: BaseException, args: list[str]) -> None:
    ctx = getattr(exc, "ctx", None) or _context_of(args)
    if isinstance(exc, _click_classes("NoArgsIsHelpError")):
        exc.show()  # type: ignore[attr-defined]  # the help (typer's rich help is printed when the error is made)
        sys.exit(2)
    if ctx is not None:
        typer.echo(ctx.get_usage(), err=True)
        if ctx.command.get_help_option(ctx) is not None:
            typer.echo(f"Try '{ctx.command_path} {ctx.help_option_names[0]}' for help.", err=True)
    typer.secho(f"error: {usage_error_message(exc)}", err=True, fg=typer.colors.RED)
    sys.exit(2)


def _interrupted() -> None:
    typer.secho("interrupted: every finished unit is already saved", err=True)
    sys.exit(INTERRUPTED)


def main() -> None:
    """Console entry point: run the app and map errors to their exit codes (README "Exit codes").

    Usage errors (unknown option or command, bad or missing value) print the usage line and
    ``error: ...`` with close matches and exit 2; evalgemma errors exit with their class's code;
    anything else is a bug and keeps its traceback.
    """
    import warnings

    from evalgemma.cli.quiet import filter_library_noise

    warnings.formatwarning = _format_warning
    filter_library_noise()
    args = sys.argv[1:]
    try:
        code = app(args=args, prog_name=PROG, standalone_mode=False)
    except EvalgemmaError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _interrupted()
    except SystemExit:
        raise
    except Exception as exc:
        if isinstance(exc, _click_classes("UsageError")):
            _exit_usage(exc, args)
        if isinstance(exc, (typer.Exit, *_click_classes("Exit"))):
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        if isinstance(exc, _click_classes("ClickException")):
            typer.secho(f"error: {exc.format_message()}", err=True, fg=typer.colors.RED)  # type: ignore[attr-defined]
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        if isinstance(exc, (typer.Abort, *_click_classes("Abort"))):
            _interrupted()
        raise
    # without standalone mode typer returns the code of an ``Exit`` (Ctrl-C included) instead of exiting
    if code == INTERRUPTED:
        _interrupted()
    if isinstance(code, int) and code:
        sys.exit(code)
