"""The ``evalgemma`` command line: parses, calls the library, prints, maps errors to exit codes."""

from __future__ import annotations

import importlib
import sys

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


def _format_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int, line: str | None = None) -> str:
    return f"warning: {message}\n"


def main() -> None:
    """Console entry point: run the app and map evalgemma errors to their exit codes."""
    import warnings

    warnings.formatwarning = _format_warning
    try:
        app(standalone_mode=False)
    except EvalgemmaError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.secho("interrupted: every finished unit is already saved", err=True)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # click usage errors carry their own exit code
        import click

        if isinstance(exc, click.exceptions.Exit):
            sys.exit(exc.exit_code)
        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(130)
        raise
