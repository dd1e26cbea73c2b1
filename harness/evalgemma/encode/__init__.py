"""Layer 3 — encoding: model resolution, the ``Encoder`` that turns texts into full float32 vectors, and
the content-addressed on-disk embedding cache."""
