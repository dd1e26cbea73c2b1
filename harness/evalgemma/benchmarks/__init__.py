"""Layer 4 — benchmarks: one subpackage each (``mteb/``, ``smoke/``, ``xtreme_up/``), each planning its
cells and evaluating a set of cells with an encoder and a variant, without I/O to the store."""
