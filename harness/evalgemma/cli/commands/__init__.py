"""Sub-commands of the ``evalgemma`` CLI, one module each, each exposing ``register(app)``.

Modules here import only typer/rich at import time; heavy libraries are imported inside
the command functions so ``evalgemma --help`` stays instant.
"""

from __future__ import annotations

#: Modules under ``evalgemma.cli.commands`` whose ``register(app)`` is called by ``cli.py``.
COMMAND_MODULES: tuple[str, ...] = ("run", "plan", "gate", "views", "compare", "bench", "parity", "interop")
