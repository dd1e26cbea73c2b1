"""XTREME-UP cross-/in-language retrieval with the official semantics (reader, exact search, MRR@10)."""
