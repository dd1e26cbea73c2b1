"""Scale-out: ``--shard i/N`` partitions and the Ray executor (``evalgemma.run.executors``).

Shard tests use real plans (the smoke suite and real mteb tasks with mteb's own descriptive
statistics) and a real MiniLM run; Ray tests start a 2-CPU local Ray cluster and are marked
slow (``.ci/run`` runs them too). The worker fault is injected by wrapping ``run_unit`` here,
in the test, not through any hook in the library.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from evalgemma.errors import ConfigError, IncompleteRun
from evalgemma.run import RunConfig, execute, plan_run
from evalgemma.run.executors import (
    Shard,
    UnitRequest,
    check_shard,
    parse_shard,
    partition,
    run_unit,
    shard_units,
    task_cost,
    unit_cost,
    unit_key,
)
from evalgemma.store.parquet import load_results

# The two cheapest smoke tasks, two dims: 2 execution units, 4 store units, ~800 rows.
TASKS = ("SmokeSTS", "SmokeBitextMining")
DIMS = (384, 128)
KEY_COLUMNS = ["variant_key", "task", "hf_subset", "split", "metric"]
# 128 is not a Matryoshka dim MiniLM declares; the runner warns and truncates, as intended here.
pytestmark = pytest.mark.filterwarnings("ignore:--dim 128")


def config(store: Path, **overrides: Any) -> RunConfig:
    base: dict[str, Any] = dict(suite="smoke", tasks=TASKS, dims=DIMS, model="minilm", store=store, device="cpu", show_progress=False)
    base.update(overrides)
    return RunConfig.build(**base)


def assert_same_values(a: Any, b: Any) -> None:
    """Same (variant, task, subset, split, metric) rows with equal values (NaN == NaN) and main scores."""
    assert len(a) == len(b) > 0
    merged = a.merge(b, on=KEY_COLUMNS, suffixes=("_a", "_b"), validate="one_to_one")
    assert len(merged) == len(a)
    both_nan = merged["value_a"].isna() & merged["value_b"].isna()
    assert ((merged["value_a"] == merged["value_b"]) | both_nan).all()
    assert (merged["main_score_a"] == merged["main_score_b"]).all()
    for column in ("variant", "dim", "embed_dtype", "is_main", "task_type", "n_samples"):
        assert (merged[f"{column}_a"] == merged[f"{column}_b"]).all(), column


# ------------------------------------------------------------------ parsing


def test_parse_shard_accepts_zero_based_i_of_n() -> None:
    assert parse_shard("0/4") == (0, 4)
    assert parse_shard(" 3/4 ") == (3, 4)
    assert str(check_shard((2, 5))) == "2/5"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("4/4", "0..3"), ("5/3", "0..2"), ("-1/3", "0..2"), ("0/0", "at least 1"), ("1", "expected i/N"), ("a/b", "expected i/N"), ("1/2/3", "expected i/N")],
)
def test_parse_shard_rejects_bad_values_naming_the_flag(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_shard(text)
    assert str(info.value).startswith(f"--shard {text.strip()}")
    assert fragment in str(info.value)


def test_cli_bad_shard_exits_2_naming_the_flag(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from evalgemma.cli.app import main; main()",
            "run",
            "--suite",
            "smoke",
            "--model",
            "minilm",
            "--store",
            str(tmp_path),
            "--shard",
            "2/2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "--shard 2/2" in done.stderr and "0..1" in done.stderr
    assert "Traceback" not in done.stderr


# ------------------------------------------------------------------ partition


def test_partition_hand_computed_lpt() -> None:
    # Costs a5 b4 c3 d3 e2 f2 g1 into 3 shards, largest first, each to the lightest shard
    # (ties -> lowest index): a->0 (5,0,0), b->1 (5,4,0), c->2 (5,4,3), d->2 (5,4,6),
    # e->1 (5,6,6), f->0 (7,6,6), g->1 (tie 6/6, lower index) (7,7,6).
    costs = {"a": 5, "b": 4, "c": 3, "d": 3, "e": 2, "f": 2, "g": 1}
    items = ["g", "f", "e", "d", "c", "b", "a"]  # plan order is kept inside a shard
    groups = partition(items, 3, key=str, cost=costs.__getitem__)
    assert groups == [["f", "a"], ["g", "e", "b"], ["d", "c"]]
    assert [sum(costs[i] for i in g) for g in groups] == [7, 7, 6]


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_partition_covers_disjoint_balanced(n: int, seed: int) -> None:
    rng = random.Random(seed)
    costs = {f"unit-{i:02d}": rng.choice([1, 1, 2, 3, 50, 400, 1379, 3080, 5483]) for i in range(rng.randint(1, 23))}
    items = list(costs)
    groups = partition(items, n, key=str, cost=costs.__getitem__)
    assert len(groups) == n
    flat = [i for g in groups for i in g]
    assert sorted(flat) == sorted(items) and len(flat) == len(set(flat))
    loads = [sum(costs[i] for i in g) for g in groups]
    assert max(loads) - min(loads) <= max(costs.values())
    # The same items in another order give the same partition (no dependence on input order).
    shuffled = items[:]
    rng.shuffle(shuffled)
    assert [sorted(g) for g in partition(shuffled, n, key=str, cost=costs.__getitem__)] == [sorted(g) for g in groups]


def test_partition_rejects_duplicate_keys_and_zero_shards() -> None:
    with pytest.raises(ValueError, match="unique"):
        partition(["a", "a"], 2, key=str, cost=len)
    with pytest.raises(ConfigError, match="--shard"):
        partition(["a"], 0, key=str, cost=len)


def test_task_cost_reads_mteb_descriptive_stats() -> None:
    # mteb 2.26.24's precomputed statistics (no data loaded): STSBenchmark test has 1379
    # pairs, Banking77 test 3080 texts, SciFact test 5183 documents + 300 queries = 5483.
    plan = plan_run(RunConfig.build(tasks=("STSBenchmark", "Banking77Classification", "SciFact"), model="minilm", store=Path("/nonexistent-store")))
    assert {u.task.name: unit_cost(u) for u in plan.units} == {"STSBenchmark": 1379, "Banking77Classification": 3080, "SciFact": 5483}
    # Three units into two shards: SciFact alone, the other two together (1379 + 3080 = 4459).
    shards = [[u.task.name for u in shard_units(plan.units, (i, 2))] for i in range(2)]
    assert shards == [["SciFact"], ["STSBenchmark", "Banking77Classification"]]
    # The smoke tasks carry no descriptive statistics: each costs 1 (balanced by count).
    smoke = plan_run(config(Path("/nonexistent-store"), tasks=()))
    assert [task_cost(t) for t in smoke.tasks] == [1] * 7


# ------------------------------------------------------------------ real plans


def _partition_keys(store: str) -> dict[str, list[list[str]]]:
    """Shard membership (unit keys) of a 14-unit smoke plan (two weight variants) for several N."""
    plan = plan_run(RunConfig.build(suite="smoke", model="minilm", quants=("none", "q8_0"), quant_source="ptq", store=Path(store)))
    return {str(n): [[unit_key(u) for u in shard_units(plan.units, (i, n))] for i in range(n)] for n in (1, 2, 3, 5, 7)}


def test_shards_of_a_real_plan_cover_it_and_match_in_a_fresh_process(tmp_path: Path) -> None:
    here = _partition_keys(str(tmp_path / "store"))
    plan = plan_run(RunConfig.build(suite="smoke", model="minilm", quants=("none", "q8_0"), quant_source="ptq", store=tmp_path / "store"))
    everything = sorted(unit_key(u) for u in plan.units)
    assert len(everything) == 14  # 2 weight variants x 7 smoke tasks
    for n, groups in here.items():
        flat = [k for g in groups for k in g]
        assert sorted(flat) == everything and len(set(flat)) == len(flat), n
        sizes = [len(g) for g in groups]
        assert max(sizes) - min(sizes) <= 1, n  # every smoke unit costs 1
    # A shard's plan holds only its units and counts only them.
    sub = plan_run(RunConfig.build(suite="smoke", model="minilm", quants=("none", "q8_0"), quant_source="ptq", store=tmp_path / "store", shard=(1, 3)))
    assert [unit_key(u) for u in sub.units] == here["3"][1]
    assert sub.n_total == sub.n_missing == len(here["3"][1])
    # Another process with another hash seed computes the same shards.
    code = (
        f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import test_distributed as t; "
        f"print(json.dumps(t._partition_keys({str(tmp_path / 'store')!r})))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345" if os.environ.get("PYTHONHASHSEED") != "12345" else "54321"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=180, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == here


@pytest.fixture(scope="module")
def local_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ordinary local run of the test plan: the reference every other executor must match."""
    store = tmp_path_factory.mktemp("local") / "store"
    summary = execute(plan_run(config(store)))
    assert len(summary.written) == len(TASKS) * len(DIMS)
    return store


@pytest.mark.slow
def test_all_shards_into_one_store_equal_a_local_run(local_store: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    fresh = [[unit_key(u) for u in plan_run(config(store, shard=(i, 2))).units] for i in range(2)]
    assert sorted(k for g in fresh for k in g) == sorted(unit_key(u) for u in plan_run(config(store)).units)
    for i in range(2):
        plan = plan_run(config(store, shard=(i, 2)))
        # Membership is computed over the full plan: shard 1 is unchanged after shard 0 stored its units.
        assert [unit_key(u) for u in plan.units] == fresh[i]
        assert plan.n_missing == len(fresh[i]) * len(DIMS)
        execute(plan)
    assert_same_values(load_results(local_store), load_results(store))
    # Every shard is now complete: planning again finds nothing to run, with the same membership.
    again = [plan_run(config(store, shard=(i, 2))) for i in range(2)]
    assert [[unit_key(u) for u in p.units] for p in again] == fresh
    assert [p.n_missing for p in again] == [0, 0]


# ------------------------------------------------------------------ Ray


@pytest.fixture(scope="module")
def ray_cluster() -> Any:
    try:
        import ray
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("ray is not installed: CI must install the `ray` extra (pip install -e '.[ray]')")
        pytest.skip("ray is not installed (pip install -e '.[ray]')")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a throwaway local cluster: no token written to ~/.ray
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def kill_first_attempt(marker: Path, task: str) -> Any:
    """A ``run_unit`` wrapper that SIGKILLs its worker on the first attempt of ``task``'s unit.

    The marker file (created with O_EXCL before the kill) is what makes the second attempt
    survive; the closure is pickled by value, so workers need not import this test module.
    """

    def wrapped(request: UnitRequest) -> Any:
        import signal

        if request.task == task:
            try:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass
            else:
                os.kill(os.getpid(), signal.SIGKILL)
        return run_unit(request)

    return wrapped


def always_kill(task: str) -> Any:
    def wrapped(request: UnitRequest) -> Any:
        import signal

        if request.task == task:
            os.kill(os.getpid(), signal.SIGKILL)
        return run_unit(request)

    return wrapped


@dataclass
class Events:
    seen: list[tuple[str, dict[str, Any]]]

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        self.seen.append((kind, data))

    def kinds(self, kind: str) -> list[dict[str, Any]]:
        return [d for k, d in self.seen if k == kind]


@pytest.mark.slow
def test_ray_run_equals_local_run(ray_cluster: Any, local_store: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    events = Events([])
    plan = plan_run(config(store, executor="ray"))
    summary = execute(plan, on_event=events)
    assert len(summary.written) == len(TASKS) * len(DIMS)
    assert summary.encode_stats == {"ray_units": 2, "ray_retries": 0}
    assert sorted((d["task"], d["variant"]) for d in events.kinds("unit-done")) == sorted((t, f"all-MiniLM-L6-v2 · {d}d") for t in TASKS for d in DIMS)
    ray_rows = load_results(store)
    assert_same_values(load_results(local_store), ray_rows)
    # One run id for the whole Ray run (the driver's), the suite recorded, workers' device kept.
    assert set(ray_rows["run_id"]) == {summary.run_id}
    assert set(ray_rows["suite"]) == {"smoke"} and set(ray_rows["device"]) == {"cpu"}
    # Idempotent: a second Ray run finds everything stored and starts no task.
    assert execute(plan_run(config(store, executor="ray"))).written == []


@pytest.mark.slow
def test_ray_worker_killed_mid_unit_is_retried(ray_cluster: Any, local_store: Path, tmp_path: Path) -> None:
    from evalgemma.run.executors import execute_ray

    store = tmp_path / "store"
    events = Events([])
    marker = tmp_path / "killed-once"
    summary = execute_ray(plan_run(config(store, executor="ray")), on_event=events, unit_fn=kill_first_attempt(marker, "SmokeBitextMining"))
    assert marker.exists()
    retries = events.kinds("unit-retry")
    assert [(d["task"], d["attempt"]) for d in retries] == [("SmokeBitextMining", 1)]
    assert "WorkerCrashedError" in retries[0]["error"] or "died" in retries[0]["error"].lower()
    assert summary.encode_stats == {"ray_units": 2, "ray_retries": 1}
    assert {d["attempt"] for d in events.kinds("unit-done") if d["task"] == "SmokeBitextMining"} == {2}
    assert_same_values(load_results(local_store), load_results(store))


@pytest.mark.slow
def test_ray_gives_up_after_max_retries_and_keeps_the_rest(ray_cluster: Any, tmp_path: Path) -> None:
    from evalgemma.run.executors import execute_ray

    store = tmp_path / "store"
    events = Events([])
    plan = plan_run(config(store, tasks=("SmokeBitextMining",), executor="ray", max_retries=1))
    with pytest.raises(IncompleteRun) as info:
        execute_ray(plan, on_event=events, unit_fn=always_kill("SmokeBitextMining"))
    # max_retries=1: attempt 1 dies and is resubmitted once; attempt 2 dies and the unit's
    # two variants (384d, 128d) are reported failed; nothing is stored.
    assert "2 unit(s) failed, 0 stored" in str(info.value)
    assert "gave up after 2 attempt(s)" in str(info.value)
    assert [d["attempt"] for d in events.kinds("unit-retry")] == [1]
    assert sorted(d["variant"] for d in events.kinds("unit-failed")) == ["all-MiniLM-L6-v2 · 128d", "all-MiniLM-L6-v2 · 384d"]
    assert load_results(store).empty


@pytest.mark.slow
def test_ray_rejects_gpus_the_cluster_does_not_have(ray_cluster: Any, tmp_path: Path) -> None:
    plan = plan_run(config(tmp_path / "store", device="auto", executor="ray", gpus_per_unit=1000.0))
    with pytest.raises(ConfigError, match=r"--gpus-per-unit 1000.0: the Ray cluster has \d+ GPU\(s\) in all"):
        execute(plan)
    if ray_cluster.cluster_resources().get("GPU", 0) < 1:
        # --device cuda with the default --gpus-per-unit on a GPU-less cluster: refused up front.
        with pytest.raises(ConfigError, match=r"--device cuda with --executor ray: the Ray cluster has no GPUs"):
            execute(plan_run(config(tmp_path / "store", device="cuda", executor="ray")))
    assert load_results(tmp_path / "store").empty


def test_shard_of_an_empty_plan_is_empty() -> None:
    assert str(Shard(0, 1)) == "0/1"
    assert [shard_units([], (i, 3)) for i in range(3)] == [[], [], []]
