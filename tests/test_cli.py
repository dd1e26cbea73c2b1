"""`evalgemma list`, start-up cost, the warm rerun path and quiet output (--no-progress) of the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

CLI = [sys.executable, "-c", "from evalgemma.cli.app import main; main()"]


def evalgemma(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "250"})


def test_list_suites_and_models() -> None:
    suites = evalgemma("list", "suites")
    assert suites.returncode == 0
    for name in ("mteb-multilingual-v2", "mteb-eng-v2", "mteb-code-v1", "xtreme-up", "xtreme-up-official", "xtreme-up-in-lang", "smoke"):
        assert name in suites.stdout
    models = evalgemma("list", "models")
    assert "minilm" in models.stdout and "google/embeddinggemma-300m" in models.stdout


def test_list_tasks_of_a_suite() -> None:
    proc = evalgemma("list", "tasks", "--suite", "smoke")
    assert proc.returncode == 0
    for name in ("SmokeRetrieval", "SmokeSTS", "SmokeBitextMining", "SmokeClassification", "SmokeClustering", "SmokePairClassification", "SmokeReranking"):
        assert name in proc.stdout
    assert "deu-eng" in proc.stdout  # bitext subsets


def test_list_unknown_target() -> None:
    proc = evalgemma("list", "suits")
    assert proc.returncode == 2 and "Did you mean 'suites'" in proc.stderr


def test_warm_rerun_skips_without_importing_mteb(smoke_store: Path) -> None:
    """Everything stored: the plan is decided from the store alone (no mteb import, no model)."""
    code = (
        "import sys; from evalgemma.run import RunConfig, plan_run\n"
        f"plan = plan_run(RunConfig.build(model='minilm', suite='smoke', dims=(384, 32), store={str(smoke_store)!r}))\n"
        "print('MISSING', plan.n_missing, 'TOTAL', plan.n_total, 'MTEB', 'mteb' in sys.modules, 'TORCH', 'torch' in sys.modules)"
    )
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert "MISSING 0 TOTAL 14 MTEB False TORCH False" in out, out
    print(f"warm plan in a fresh process: {time.perf_counter() - start:.2f} s")
    proc = evalgemma("run", "--suite", "smoke", "--model", "minilm", "--dim", "384,32", "--store", str(smoke_store))
    assert proc.returncode == 0 and "nothing to do: every cell is already stored" in proc.stdout



def test_sweep_summary_has_one_row_per_variant_even_in_a_narrow_log(tmp_path: Path) -> None:
    """A 4-variant sweep on one task: variants are rows, labels and scores whole, not squeezed into 80 columns."""
    env = {**os.environ, "COLUMNS": "80"}
    proc = subprocess.run([*CLI, "run", "--suite", "smoke", "--tasks", "SmokeSTS", "--model", "minilm", "--offline", "--device", "cpu",
                           "--no-progress", "--dim", "384,256,128,64", "--store", str(tmp_path / "store")],
                          capture_output=True, text=True, timeout=600, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [" ".join(line.split()) for line in proc.stdout.splitlines()]
    assert "┃ variant ┃ SmokeSTS ┃ Mean(Task) ┃" in lines, proc.stdout[-3000:]
    rows = [line for line in lines if line.startswith("│ all-MiniLM-L6-v2 · ")]
    assert [r.split(" │ ")[0] for r in rows] == [f"│ all-MiniLM-L6-v2 · {d}d" for d in (384, 256, 128, 64)], rows
    for r in rows:  # the task score and Mean(Task) (one task: equal), as numbers
        _, score, mean = r.strip("│ ").split(" │ ")
        assert float(score) == float(mean) > 0

# ---------------------------------------------------------------- quiet output


def test_no_progress_run_prints_no_bar_and_no_library_noise(tmp_path: Path) -> None:
    """The whole smoke suite, fresh, with --no-progress: stderr stays empty.

    Without the fix, stderr holds tqdm bars from transformers ("Loading weights"), datasets
    ("Standardizing text corpus format"), mteb ("Matching sentences" and its subset loop) and
    torch's "To copy construct from a tensor" UserWarning from mteb's bitext evaluator.
    """
    from evalgemma.cli.quiet import PROGRESS_ENV

    env = {k: v for k, v in os.environ.items() if k not in PROGRESS_ENV}  # the CLI must set them itself
    env["COLUMNS"] = "250"
    proc = subprocess.run([*CLI, "run", "--suite", "smoke", "--model", "minilm", "--offline", "--device", "cpu", "--no-progress",
                           "--no-cache", "--store", str(tmp_path / "store")], capture_output=True, text=True, timeout=900, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    shown = proc.stdout + proc.stderr
    for bar in ("it/s]", "s/it]", "%|", "examples/s]"):
        assert bar not in shown, (bar, shown[-3000:])
    assert "To copy construct from a tensor" not in shown
    assert proc.stderr == "", proc.stderr[-3000:]
    # the run itself is the README's: Mean(Task) 59.29 over the 7 smoke tasks
    assert "│ Mean(Task) │ │ 59.29 │" in [" ".join(line.split()) for line in proc.stdout.splitlines()]


def test_library_noise_is_hidden_and_real_warnings_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    import warnings

    from evalgemma.cli.quiet import filter_library_noise

    def shown(category: type[Warning], text: str, module: str, warnoptions: list[str]) -> bool:
        monkeypatch.setattr(sys, "warnoptions", warnoptions)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            filter_library_noise()
            warnings.warn_explicit(text, category, f"{module.replace('.', '/')}.py", 1, module=module)
        return [str(w.message) for w in caught] == [text]

    torch_copy = "To copy construct from a tensor, it is recommended to use sourceTensor.detach().clone()"
    hidden = [
        (UserWarning, torch_copy, "mteb._evaluators.text.bitext_mining_evaluator"),
        (FutureWarning, "`x` is deprecated", "mteb.abstasks.abstask"),
        (FutureWarning, "`y` is deprecated", "datasets.load"),
    ]
    kept = [
        (UserWarning, "--dim 32: not a Matryoshka dimension declared by all-MiniLM-L6-v2 (384); truncating anyway", "evalgemma.run.plan"),
        (UserWarning, torch_copy, "evalgemma.benchmarks.xtreme_up.retrieval"),  # in our own code it is a real problem
        (RuntimeWarning, "invalid value encountered in divide", "mteb._evaluators.text.sts_evaluator"),
        (FutureWarning, "`z` is deprecated", "evalgemma.encode.encoder"),
        (UserWarning, "skipped store file: x.parquet", "evalgemma.store.parquet"),
    ]
    assert [shown(*case, []) for case in hidden] == [False] * len(hidden)
    assert [shown(*case, []) for case in kept] == [True] * len(kept)
    # the user's own filters (-W, PYTHONWARNINGS) win: nothing is hidden
    assert [shown(*case, ["default"]) for case in hidden] == [True] * len(hidden)


def test_disable_progress_bars_after_the_libraries_were_imported() -> None:
    """In-process callers import the libraries first: their own switches are used, and tqdm's default."""
    code = (
        "import io, datasets, huggingface_hub.utils, transformers.utils.logging as tl, tqdm.auto\n"
        "from evalgemma.cli.quiet import disable_progress_bars\n"
        "before = (huggingface_hub.utils.are_progress_bars_disabled(), datasets.is_progress_bar_enabled(), tl.is_progress_bar_enabled())\n"
        "disable_progress_bars(); disable_progress_bars()\n"
        "after = (huggingface_hub.utils.are_progress_bars_disabled(), datasets.is_progress_bar_enabled(), tl.is_progress_bar_enabled())\n"
        "quiet, forced = io.StringIO(), io.StringIO()\n"
        "list(tqdm.auto.tqdm(range(3), file=quiet)); list(tqdm.auto.tqdm(range(3), file=forced, disable=False))\n"
        "print(before, after, repr(quiet.getvalue()), '3/3' in forced.getvalue())\n"
    )
    from evalgemma.cli.quiet import PROGRESS_ENV

    env = {k: v for k, v in os.environ.items() if k not in PROGRESS_ENV}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # before: bars on (hub not disabled, datasets and transformers enabled); after: all off; an explicit disable=False still shows
    assert proc.stdout.split("\n")[-2] == "(False, True, True) (True, False, False) '' True"
