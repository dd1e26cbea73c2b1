"""Layer 6 — the ``evalgemma`` command line: parse flags, call the library, print, map errors to exit codes."""

from __future__ import annotations

from evalgemma.cli.app import app, main

__all__ = ["app", "main"]
