"""Layer 5 — the regression gate: baselines and references → verdicts, exit code, JUnit."""
