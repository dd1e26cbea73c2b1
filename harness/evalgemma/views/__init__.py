"""Layer 5 — views: pure functions from store rows (and references) to leaderboards, tables, plots, report."""
