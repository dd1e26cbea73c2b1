"""Interoperability: mteb's results format both ways (export, import) and the Hugging Face model card.

Sits above ``views`` and ``benchmarks`` (it reads task scores and resolves task objects), beside ``run``
and ``gate``; only the CLI imports it.
"""
