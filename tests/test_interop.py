"""mteb's results format both ways, the model-card model-index and Slurm through submitit, on real data.

* export → mteb's own ``ResultCache`` / ``TaskResult`` read it → the main scores equal the store's
  exactly → import into a fresh store → the leaderboard and every stored value are identical;
* a folder written by plain ``mteb.evaluate`` (MiniLM, the offline Tatoeba mirror; STSBenchmark with
  ``-m slow``; ``cache=ResultCache``) imports with the very score mteb reports;
* bad input (not a folder, corrupt JSON, an unknown task) exits 3 naming the file, storing nothing;
* the model-index parses as YAML and validates with huggingface_hub;
* ``--executor slurm`` on submitit's local executor stores the same values as a local run, and a job
  killed once (SIGKILL) is resubmitted (both ``-m slow``: each job process loads torch and the model, ~40 s here).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CLI = [sys.executable, "-c", "from evalgemma.cli.app import main; main()"]
TASKS = ("SmokeSTS", "SmokeBitextMining")
DIMS = (384, 32)
VALUE_KEY = ["variant_key", "variant", "task", "task_version", "split", "hf_subset", "metric"]


def evalgemma(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300, env=env)


def run_smoke(store: Path, tasks: tuple[str, ...] = TASKS, **executor: Any) -> Any:
    from evalgemma.run import RunConfig, execute, plan_run

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # 32 is not a dim MiniLM declares
        plan = plan_run(RunConfig.build(model="minilm", suite="smoke", tasks=tasks, dims=DIMS, store=store, device="cpu",
                                        show_progress=False, batch_size=16, **executor))
    return plan, execute(plan)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real MiniLM smoke store: two tasks at 384d (mteb's default variant) and 32d (an experiment)."""
    path = tmp_path_factory.mktemp("interop") / "store"
    run_smoke(path)
    return path


def values(store: Path) -> dict[tuple[str, ...], float]:
    from evalgemma.store.parquet import load_results

    frame = load_results(store)
    return {tuple(str(r[c]) for c in VALUE_KEY): float(r["value"]) for _, r in frame.iterrows()}


def leaderboard_csv(store: Path) -> str:
    from evalgemma.store.parquet import load_results
    from evalgemma.views.report import leaderboards, to_csv

    return "".join(to_csv(lb) for lb in leaderboards(load_results(store), None, ["smoke"]))


def same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


# ---------------------------------------------------------------- mteb results both ways


def test_export_is_read_by_mteb_with_the_stores_scores_and_imports_back_identically(store: Path, tmp_path: Path) -> None:
    import mteb
    from mteb.results import TaskResult

    from evalgemma.interop.mteb_results import SIDECAR, export_mteb, import_mteb
    from evalgemma.store.parquet import load_results
    from evalgemma.views.scores import task_scores

    out = tmp_path / "mteb"
    summary = export_mteb(store, out)
    assert (summary.variants, summary.tasks, summary.skipped) == (2, 4, [])
    base = out / "results" / "sentence-transformers__all-MiniLM-L6-v2"
    (revision,) = [p.name for p in base.iterdir()]
    default, experiment = base / revision, base / revision / "experiments" / "dim_32"
    assert sorted(p.name for p in default.glob("*.json")) == ["SmokeBitextMining.json", "SmokeSTS.json", "model_meta.json"]
    assert sorted(p.name for p in experiment.glob("*.json")) == ["SmokeBitextMining.json", "SmokeSTS.json", "model_meta.json"]
    assert (default / SIDECAR).is_file()
    assert json.loads((experiment / "model_meta.json").read_text())["experiment_kwargs"] == {"dim": 32}

    scores = task_scores(load_results(store), "smoke").set_index(["dim", "task"])["main_score"]
    # mteb's own reader: ResultCache finds both variants (the experiment with load_experiments) ...
    loaded = mteb.ResultCache(out).load_results(include_remote=False, load_experiments="match_name")
    got = {(mr.model_name, getattr(mr, "experiment_name", None) or "", tr.task_name): tr.get_score() for mr in loaded.model_results for tr in mr.task_results}
    assert len(got) == 4, got
    # ... and every main score is exactly the store's (values are written unrounded)
    for dim, folder in ((384, default), (32, experiment)):
        for task in TASKS:
            result = TaskResult.from_disk(folder / f"{task}.json")
            assert result.get_score() == scores[(dim, task)], (dim, task)
            assert result.mteb_version == mteb.__version__
            assert {e["hf_subset"] for e in result.scores["test"]} == {"deu", "eng", "fra", "ita", "spa"} if task == "SmokeSTS" else True

    fresh = tmp_path / "fresh"
    imported = import_mteb(out, fresh)
    assert (imported.files, len(imported.units), imported.skipped) == (4, 4, [])
    assert values(fresh) == values(store)
    assert leaderboard_csv(fresh) == leaderboard_csv(store)
    frame = load_results(fresh)
    assert {json.loads(x)["source"] for x in frame["extra"]} == {"mteb"}
    # importing the same files again stores nothing new
    again = import_mteb(out, fresh)
    assert (len(again.units), len(again.skipped)) == (0, 4)
    assert len(load_results(fresh, all_runs=True)) == len(frame)


def test_export_leaves_out_incomplete_tasks_unless_allowed(store: Path, tmp_path: Path) -> None:
    from evalgemma.interop.mteb_results import export_mteb
    from evalgemma.store.parquet import load_results, write_unit
    from evalgemma.store.schema import COLUMN_NAMES

    frame = load_results(store)
    part = frame[(frame["task"] == "SmokeSTS") & (frame["dim"] == 384) & (frame["hf_subset"] == "eng")]
    partial = tmp_path / "partial"
    write_unit(partial, [{c: r[c] for c in COLUMN_NAMES if c not in ("schema_version", "unit_id")} for _, r in part.iterrows()])
    summary = export_mteb(partial, tmp_path / "a")
    assert summary.tasks == 0 and "incomplete" in summary.skipped[0]
    summary = export_mteb(partial, tmp_path / "b", allow_partial=True)
    assert summary.tasks == 1


@pytest.mark.parametrize(("name", "subsets"), [
    ("Tatoeba", ("tzl-eng", "swg-eng", "ast-eng")),  # the three smallest pairs (104-127 pairs)
    pytest.param("STSBenchmark", None, marks=pytest.mark.slow),  # 1,379 test pairs: ~1 min here
])
def test_plain_mteb_evaluate_folder_imports_with_mtebs_score(name: str, subsets: tuple[str, ...] | None, minilm_path: Path, hf_mirrors: Path,
                                                             tmp_path: Path) -> None:
    import mteb
    from mteb.models.sentence_transformer_wrapper import SentenceTransformerEncoderWrapper
    from sentence_transformers import SentenceTransformer

    from evalgemma.benchmarks.mteb.adapter import mirror_dir, point_to_mirror
    from evalgemma.interop.mteb_results import import_mteb
    from evalgemma.store.parquet import load_results
    from evalgemma.views.scores import task_scores

    task = mteb.get_task(name)
    if subsets is not None:
        task.hf_subsets = list(subsets)
    local = mirror_dir(hf_mirrors, task)
    assert local is not None
    point_to_mirror(task, local)
    cache = mteb.ResultCache(tmp_path / "plain")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wrapper = SentenceTransformerEncoderWrapper(SentenceTransformer(str(minilm_path), device="cpu"))
        result = mteb.evaluate(wrapper, task, cache=cache, show_progress_bar=False, encode_kwargs={"batch_size": 32, "show_progress_bar": False})
    (reported,) = result.task_results
    (on_disk,) = [mteb.TaskResult.from_disk(p) for p in (tmp_path / "plain").rglob(f"{name}.json")]
    store = tmp_path / "store"
    summary = import_mteb(tmp_path / "plain", store)
    assert len(summary.units) == 1
    frame = load_results(store)
    scores = task_scores(frame, "tasks")
    (score,) = scores["main_score"]
    assert score == on_disk.get_score()  # exactly what mteb's own reader gets from the file it wrote
    assert abs(score - reported.get_score()) < 1e-6  # mteb rounds to 6 places on write
    assert set(frame["model"]) == {str(wrapper.mteb_model_meta.name)} and set(frame["dim"]) == {384}
    assert bool(scores["complete"].iloc[0])


def test_bad_import_input_exits_3_naming_the_file_and_stores_nothing(store: Path, tmp_path: Path) -> None:
    from evalgemma.errors import DataError
    from evalgemma.interop.mteb_results import export_mteb, import_mteb

    out = tmp_path / "mteb"
    export_mteb(store, out)
    target = tmp_path / "target"
    shutil.copytree(store, target)
    before = sorted(p.relative_to(target) for p in target.rglob("*"))
    not_a_folder = tmp_path / "file.json"
    not_a_folder.write_text("{}")
    with pytest.raises(DataError, match="not a folder"):
        import_mteb(not_a_folder, target)
    folder = next((out / "results").iterdir()) / next(p.name for p in next((out / "results").iterdir()).iterdir())
    corrupt = folder / "SmokeSTS.json"
    corrupt.write_text(corrupt.read_text()[:200])
    proc = evalgemma("import", "--from-mteb", str(out), "--store", str(target))
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert f"{corrupt}: not an mteb TaskResult" in proc.stderr and "Traceback" not in proc.stderr
    corrupt.unlink()
    unknown = folder / "NoSuchTask.json"
    data = json.loads((folder / "SmokeBitextMining.json").read_text())
    unknown.write_text(json.dumps({**data, "task_name": "NoSuchTask"}))
    with pytest.raises(DataError, match=f"{unknown}: unknown task 'NoSuchTask'"):
        import_mteb(out, target)
    assert sorted(p.relative_to(target) for p in target.rglob("*")) == before


# ---------------------------------------------------------------- model card


def test_model_index_parses_and_validates_with_huggingface_hub(store: Path, tmp_path: Path) -> None:
    import yaml
    from huggingface_hub import ModelCardData, metadata_load

    from evalgemma.store.parquet import load_results
    from evalgemma.views.scores import task_scores

    card = tmp_path / "README.md"
    proc = evalgemma("export", "--format", "model-index", "--store", str(store), "--variant", "all-MiniLM-L6-v2 · 32d", "--out", str(card))
    assert proc.returncode == 0, proc.stderr[-2000:]
    meta = metadata_load(card)
    assert meta is not None and yaml.safe_load(card.read_text().split("---")[1]) == meta
    data = ModelCardData(**meta)  # huggingface_hub parses model-index into EvalResults (raises on a bad block)
    assert data.model_name == "all-MiniLM-L6-v2 · 32d"
    scores = task_scores(load_results(store), "smoke")
    want = {str(t): float(s) * 100 for t, s, d in zip(scores["task"], scores["main_score"], scores["dim"], strict=True) if d == 32}
    got = {r.dataset_name.removeprefix("MTEB "): r.metric_value for r in data.eval_results or []}
    assert got == want
    assert {r.metric_type for r in data.eval_results or []} == {"cosine_spearman", "f1"}
    bad = evalgemma("export", "--format", "model-index", "--store", str(store), "--variant", "all-MiniLM-L6-v2 · 31d")
    assert bad.returncode == 2 and "unknown variant" in bad.stderr


# ---------------------------------------------------------------- Slurm through submitit


@pytest.mark.slow
def test_slurm_on_submitits_local_executor_equals_a_local_run(store: Path, tmp_path: Path) -> None:
    slurm = tmp_path / "store"
    _, summary = run_smoke(slurm, ("SmokeBitextMining",), executor="slurm", slurm_cluster="local", slurm_folder=tmp_path / "jobs")
    assert summary.encode_stats == {"slurm_units": 1, "slurm_retries": 0}
    local = {k: v for k, v in values(store).items() if k[2] == "SmokeBitextMining"}
    got = values(slurm)
    assert sorted(got) == sorted(local) and all(same(got[k], local[k]) for k in local)
    assert list((tmp_path / "jobs").rglob("*_log.out"))  # submitit's own job folder


@dataclass(frozen=True)
class KillFirstAttempt:
    """A job function whose first attempt is SIGKILLed (as a node failure or the OOM killer does)."""

    marker: str

    def __call__(self, request: Any) -> Any:
        from evalgemma.run.executors import run_unit

        if not os.path.exists(self.marker):
            Path(self.marker).write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return run_unit(request)


@pytest.mark.slow
def test_slurm_job_killed_once_is_resubmitted(store: Path, tmp_path: Path) -> None:
    import cloudpickle

    from evalgemma.run import RunConfig, plan_run
    from evalgemma.run.slurm import execute_slurm

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the job process cannot import this test module
    slurm = tmp_path / "store"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        plan = plan_run(RunConfig.build(model="minilm", suite="smoke", tasks=("SmokeBitextMining",), dims=DIMS, store=slurm, device="cpu",
                                        show_progress=False, batch_size=16, executor="slurm", slurm_cluster="local", slurm_folder=tmp_path / "jobs"))
    events: list[tuple[str, dict[str, Any]]] = []
    summary = execute_slurm(plan, on_event=lambda kind, data: events.append((kind, data)), unit_fn=KillFirstAttempt(str(tmp_path / "killed")))
    assert (tmp_path / "killed").is_file()
    assert [k for k, _ in events].count("unit-retry") == 1 and summary.encode_stats["slurm_retries"] == 1
    assert [d["attempt"] for k, d in events if k == "unit-done"] == [2, 2]
    local = {k: v for k, v in values(store).items() if k[2] == "SmokeBitextMining"}
    got = values(slurm)
    assert sorted(got) == sorted(local) and all(same(got[k], local[k]) for k in local)


def test_slurm_without_slurm_is_a_clear_config_error(tmp_path: Path) -> None:
    proc = evalgemma("run", "--suite", "smoke", "--tasks", "SmokeSTS", "--model", "minilm", "--store", str(tmp_path / "s"), "--executor", "slurm")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Slurm is not available here" in proc.stderr and "--slurm-cluster local" in proc.stderr
    proc = evalgemma("run", "--suite", "smoke", "--model", "minilm", "--store", str(tmp_path / "s"), "--executor", "slurm", "--slurm-time", "soon")
    assert proc.returncode == 2 and "--slurm-time soon" in proc.stderr


def test_slurm_time_forms_and_the_requeue_hook() -> None:
    import submitit

    from evalgemma.errors import ConfigError
    from evalgemma.run.slurm import SlurmUnit, parse_slurm_time

    assert [parse_slurm_time(t) for t in ("90", "6:00:00", "0:30:01", "1-00:00:00")] == [90, 360, 31, 1440]
    for bad in ("0", "1:2", "soon", "-5"):
        with pytest.raises(ConfigError, match="--slurm-time"):
            parse_slurm_time(bad)
    fn = KillFirstAttempt("never")
    delayed = SlurmUnit(fn).checkpoint("the-request")  # what submitit requeues on preemption / time-out
    assert isinstance(delayed, submitit.helpers.DelayedSubmission)
    assert isinstance(delayed.function, SlurmUnit) and delayed.function.fn is fn and delayed.args == ("the-request",)
