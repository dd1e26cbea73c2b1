"""Layer 2 — variants: frozen specs and their keys; derived views (Matryoshka truncation, embedding
quantization); weight quantization (GGML Q8_0/Q4_0, mixed, QAT checkpoints)."""
