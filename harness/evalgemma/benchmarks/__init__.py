"""Layer 4 — benchmarks: one subpackage each (``mteb/``, ``smoke/``, ``xtreme_up/``), each planning its
cells and evaluating a set of cells with an encoder and a variant into a ``UnitResult``, with no I/O
to the store (``base.py`` holds the shared types, ``suites.py`` the cells a suite expects).

A benchmark kind is one entry of :data:`EVALUATORS`: the module whose ``evaluate(task, cells,
encoder, variant, ctx) -> UnitResult`` scores it (imported lazily; ``smoke`` tasks are mteb tasks).
"""

from __future__ import annotations

#: benchmark kind → module with ``evaluate(task, cells, encoder, variant, ctx) -> UnitResult``.
EVALUATORS: dict[str, str] = {
    "mteb": "evalgemma.benchmarks.mteb.unit",
    "xtreme-up": "evalgemma.benchmarks.xtreme_up.unit",
}
