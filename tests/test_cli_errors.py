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
    (("--dtype", "float64"), "--dtype: unknown model dtype 'float64'"),
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


# ---------------------------------------------------------------- usage errors (typer/click) exit 2


@pytest.mark.parametrize(
    ("args", "usage", "needles"),
    [
        (("run", "--bogus"), "Usage: evalgemma run [OPTIONS]", ("error: evalgemma run: unknown option '--bogus'.", "Valid: --allow-pickle-weights,")),
        (("run", "--forse"), "Usage: evalgemma run [OPTIONS]", ("unknown option '--forse'. Did you mean '--force'",)),
        (
            ("leaderbord",),
            "Usage: evalgemma [OPTIONS] COMMAND [ARGS]...",
            (
                "error: evalgemma: unknown command 'leaderbord'. Did you mean 'leaderboard'?",
                "Valid: baseline, bench, check, compare, data, export, import, leaderboard, list, parity, plan, plot, report, run",
            ),
        ),
        (("data", "pul"), "Usage: evalgemma data [OPTIONS] COMMAND [ARGS]...", ("unknown command 'pul'. Did you mean 'pull'?",)),
        (
            ("check", "--tolerance", "x"),
            "Usage: evalgemma check [OPTIONS]",
            ("error: Invalid value for '--tolerance': Input should be a valid number", "(got 'x')"),
        ),
        (
            ("plot", "dims"),
            "Usage: evalgemma plot [OPTIONS] {KIND}",
            ("error: Invalid value for 'KIND': unknown plot kind 'dims'. Did you mean 'dim'? Valid: dim, pareto, quant, vs-reference, xtreme-up",),
        ),
        (("plot",), "Usage: evalgemma plot [OPTIONS] {KIND}", ("error: Missing argument 'KIND'.",)),
        (("leaderboard", "--format", "tabel"), "Usage: evalgemma leaderboard [OPTIONS]", ("unknown format 'tabel'. Did you mean 'table'?",)),
        (("report", "--reference", "papr"), "Usage: evalgemma report [OPTIONS]", ("unknown reference 'papr'. Did you mean 'paper'?",)),
        # click raises this one without a context: the usage line comes from re-parsing the command line
        (("run", "--suite"), "Usage: evalgemma run [OPTIONS]", ("error: Option '--suite' requires an argument.",)),
        (("data", "pull"), "Usage: evalgemma data pull [OPTIONS]", ("error: Missing option '--data-dir'.",)),
    ],
)
def test_usage_errors_exit_2_with_usage_and_close_matches(args: tuple[str, ...], usage: str, needles: tuple[str, ...]) -> None:
    proc = evalgemma(*args)
    assert_clean_error(proc, 2, usage, *needles)
    assert proc.stderr.startswith(usage), proc.stderr[:500]  # the usage line comes first
    assert proc.stdout == ""


def test_a_bad_choice_fails_before_the_store_is_read(tmp_path: Path) -> None:
    # the store does not exist: only the parse-time check can produce this message
    proc = evalgemma("plot", "dims", "--store", str(tmp_path / "missing"), "--out", str(tmp_path / "f.png"))
    assert_clean_error(proc, 2, "unknown plot kind 'dims'")
    assert not (tmp_path / "f.png").exists()


def test_no_command_prints_the_help_and_exits_2() -> None:
    proc = evalgemma()
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    shown = proc.stdout + proc.stderr  # typer prints its rich help on stdout
    assert "Usage: evalgemma [OPTIONS] COMMAND [ARGS]..." in shown and "leaderboard" in shown and "error:" not in shown


def test_interrupt_exits_130_with_its_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # typer turns Ctrl-C into Exit(130) and, outside standalone mode, returns 130 instead of exiting
    from evalgemma.cli import console
    from evalgemma.cli.app import main

    def interrupted(config: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(console, "run_with_console", interrupted)
    monkeypatch.setattr(sys, "argv", ["evalgemma", "run", "--suite", "smoke", "--model", "minilm", "--store", str(tmp_path), "--no-cache"])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 130
    assert "interrupted: every finished unit is already saved" in capsys.readouterr().err


def test_a_usage_error_of_click_itself_is_handled_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # typer 0.29 vendors click (typer._click); code that raises click's own UsageError must exit 2 the same way
    import click

    from evalgemma.cli import console
    from evalgemma.cli.app import main

    def bad(config: object) -> None:
        raise click.UsageError("a usage error raised with click's own class")

    monkeypatch.setattr(console, "run_with_console", bad)
    monkeypatch.setattr(sys, "argv", ["evalgemma", "run", "--suite", "smoke", "--model", "minilm", "--store", str(tmp_path), "--no-cache"])
    with pytest.raises(SystemExit) as info:
        main()
    err = capsys.readouterr().err
    assert info.value.code == 2
    # no context on the exception: the usage line comes from re-parsing the command line
    assert err.startswith("Usage: evalgemma run [OPTIONS]") and "error: a usage error raised with click's own class" in err
