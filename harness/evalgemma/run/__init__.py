"""Layer 5 — running: plan = cells(suite × variants) − stored cells; executors (local, shard, Ray) that
schedule the pure evaluation of each unit and persist its result."""
