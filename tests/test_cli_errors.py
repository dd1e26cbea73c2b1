"""Bad input gets a clear message naming the flag/task and a documented exit code (no traceback)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CLI = [sys.executable, "-c", "from evalgemma.cli.app import main; main()"]


def evalgemma(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300, env=env, cwd=cwd)


def assert_clean_error(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in proc.stderr, (needle, proc.stderr[-2000:])


def test_unknown_suite_suggests_close_match(tmp_path: Path) -> None:
    proc = evalgemma("run", "--suite", "mteb-eng-v3", "--model", "minilm", "--store", str(tmp_path))
    assert_clean_error(proc, 2, "--suite: unknown suite 'mteb-eng-v3'", "Did you mean 'mteb-eng-v2'")


def test_unknown_model_suggests_close_match(tmp_path: Path) -> None:
    proc = evalgemma("run", "--suite", "smoke", "--model", "minlm", "--store", str(tmp_path))
    assert_clean_error(proc, 2, "--model: unknown model 'minlm'", "Did you mean 'minilm'")


def test_unknown_task_suggests_close_match(tmp_path: Path) -> None:
    proc = evalgemma("run", "--tasks", "STSBenchmarkk", "--model", "minilm", "--store", str(tmp_path))
    assert_clean_error(proc, 2, "--tasks: unknown task 'STSBenchmarkk'", "Did you mean 'STSBenchmark'")


def test_unknown_smoke_task(tmp_path: Path) -> None:
    proc = evalgemma("run", "--suite", "smoke", "--tasks", "SmokeSTSS", "--model", "minilm", "--store", str(tmp_path))
    assert_clean_error(proc, 2, "unknown task of suite smoke 'SmokeSTSS'", "SmokeSTS")


def test_dim_too_large(tmp_path: Path) -> None:
    proc = evalgemma("run", "--suite", "smoke", "--model", "minilm", "--dim", "384,512", "--store", str(tmp_path))
    assert_clean_error(proc, 2, "--dim 512: larger than all-MiniLM-L6-v2's output dimension 384")


def test_bad_dim_value(tmp_path: Path) -> None:
    proc = evalgemma("run", "--suite", "smoke", "--model", "minilm", "--dim", "12x", "--store", str(tmp_path))
    assert_clean_error(proc, 2, "--dim 12x: '12x' is not an integer")


def test_missing_offline_dataset(tmp_path: Path, hf_mirrors: Path) -> None:
    # Banking77Classification.v2 (in MTEB(eng, v2)) reads mteb/banking77 at another revision than
    # the v1 mirror in the shared data holds: the mirror must not be used for it.
    proc = evalgemma("run", "--tasks", "Banking77Classification.v2", "--model", "minilm", "--offline", "--data-dir", str(hf_mirrors), "--store", str(tmp_path))
    assert_clean_error(
        proc, 3, "--offline: dataset not available locally",
        f"Banking77Classification.v2 (mteb/banking77, {hf_mirrors / 'mteb/banking77'} holds revision 0fd18e25b25c, the task pins 18072d2685ea)",
    )
    assert not any(tmp_path.iterdir())


def test_unwritable_store(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    proc = evalgemma("run", "--suite", "smoke", "--model", "minilm", "--store", str(blocker / "store"), "--tasks", "SmokeSTS")
    assert_clean_error(proc, 3, f"--store {blocker / 'store'}: not writable")
    assert blocker.read_text() == "x"


def test_fp16_refused_for_gemma(tiny_gemma: Path, tmp_path: Path) -> None:
    proc = evalgemma("run", "--suite", "smoke", "--model", str(tiny_gemma), "--dtype", "float16", "--store", str(tmp_path))
    assert_clean_error(proc, 2, "--dtype float16 is refused for Gemma 3", "bfloat16")


@pytest.mark.parametrize(("args", "needle"), [
    (("--dtype", "float64"), "--dtype float64: expected float32 or bfloat16"),
    (("--quant", "q3_k"), "unknown weight quantization format 'q3_k'"),
    (("--embed-dtype", "int4"), "unknown embedding dtype 'int4'"),
    (("--split", "train"), "--split train: expected test or validation"),
])
def test_bad_option_values(tmp_path: Path, args: tuple[str, ...], needle: str) -> None:
    proc = evalgemma("run", "--suite", "smoke", "--model", "minilm", "--store", str(tmp_path), *args)
    assert_clean_error(proc, 2, needle)


def test_help_does_not_import_torch_or_mteb() -> None:
    code = (
        "import sys; sys.argv=['evalgemma','--help']\nfrom evalgemma.cli.app import main\ntry:\n main()\nexcept SystemExit: pass\n"
        "print('HEAVY', sorted(m for m in ('torch','mteb','sentence_transformers','transformers','pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert "HEAVY []" in out
