"""Every ``evalgemma`` example in README.md that can run offline here runs, with the exit code shown.

Examples come from fenced ``bash`` blocks (one command a line, ``\\`` continues it) and from
transcripts in any fenced block (``$ evalgemma ...`` followed by its output, ``(exit N)`` at the
end of the output gives the expected code). Each command runs in a fresh folder that holds
``results/store`` (a copy of the smoke store: MiniLM, dims 384 and 32) and the repository's
``results/baselines``, so the README's relative paths work unchanged and nothing shared is written.
A transcript's output lines must appear in the real output (whitespace collapsed).

A command that cannot run here is listed in ``SKIPPED`` with its reason, by its exact text: a new
or edited example is run (and fails loudly if it needs the Hub) until it is listed. A skipped
command is still parsed as the CLI parses it, so a wrong flag or value fails here too.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
CLI = [sys.executable, "-c", "from evalgemma.cli.app import main; main()"]

_HUB_GEMMA = "google/embeddinggemma-300m is gated on the Hugging Face Hub (unreachable here) and the suite's datasets are downloaded from it"

#: Exact README commands that cannot run on this machine, with the reason.
SKIPPED: dict[str, str] = {
    "evalgemma run --suite mteb-multilingual-v2 --dim 128": _HUB_GEMMA,
    "evalgemma run --suite mteb-eng-v2 --dim 768,512,256,128 --dtype bfloat16": _HUB_GEMMA,
    "evalgemma run --suite mteb-code-v1 --quant q8_0,q4_0 --dim 768,128": _HUB_GEMMA + "; the QAT checkpoints too",
    "evalgemma run --suite xtreme-up --data-dir ~/xtreme_up_v1.1 --dim 768,128": _HUB_GEMMA + "; the XTREME-UP v1.1 data is not here",
    "evalgemma run --model minilm --tasks STSBenchmark --backend torch,onnx --quant none,int8":
        "STSBenchmark is downloaded from the Hub; tests/test_backends.py runs this sweep on the offline mirror (tiny model, -m slow)",
    "evalgemma parity --model minilm --backend onnx --quant int8 --junit parity.xml --store results/store":
        "exports MiniLM into the user cache (~20 s); tests/test_backends.py runs the same command with --artifact-dir",
    "evalgemma parity --model DIR/embeddinggemma-300m --backend onnx --quant none --artifact-dir artifacts --junit parity.xml --store results/store":
        "the real EmbeddingGemma is not here (1.15 GB; never in tests); tests/test_backends.py runs parity on MiniLM",
    "evalgemma import --from-mteb mteb-results --store results/imported":
        "reads the folder the export example writes (each example runs in a fresh folder); tests/test_interop.py runs the round trip",
    "evalgemma run --suite mteb-eng-v2 --dim 768,128 --device cuda --executor slurm --slurm-partition gpu --gpus-per-unit 1 --slurm-time 6:00:00":
        _HUB_GEMMA + "; no Slurm cluster or GPU here (tests/test_interop.py runs --executor slurm on submitit's local executor)",
    "evalgemma run --model minilm --tasks STSBenchmark --backend torch,gguf --quant none,q8_0":
        "STSBenchmark is downloaded from the Hub; tests/test_gguf_backend.py runs this sweep on the offline mirror (-m slow)",
    "evalgemma parity --model path/to/embeddinggemma-300m --backend gguf --quant q8_0 --junit parity.xml":
        "the real EmbeddingGemma is not here; tests/test_gguf_backend.py runs parity on the tiny model (-m slow)",
    "evalgemma bench --model minilm --offline --device cpu --dim 384,256,128,64 --embed-dtype float32,int8,binary --store results/store":
        "12 variants at the default counts (about 10 min on 2 shared cores); tests/test_bench.py runs bench on 6 of them with tiny counts",
    "evalgemma bench --model minilm --offline --device cpu --dim 384,128 --embed-dtype float32,binary "
    "--quant q8_0,q4_0 --quant-source ptq --store results/store":
        "8 variants at the default counts (minutes on 2 cores); tests/test_bench.py runs bench with tiny counts",
}

_EXIT = re.compile(r"\(exit (\d+)\)\s*$")


@dataclass(frozen=True)
class Example:
    """One README command: where it is, its words after ``evalgemma``, the exit code and output lines it shows."""

    line: int
    args: tuple[str, ...]
    exit_code: int = 0
    output: tuple[str, ...] = ()

    @property
    def command(self) -> str:
        """The words joined by spaces (quotes dropped), as ``SKIPPED`` lists them."""
        return " ".join(("evalgemma", *self.args))


def _logical_lines(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Join ``\\``-continued lines; keep the number of the first."""
    out: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, text in lines:
        if pending is not None:
            number, text = pending[0], pending[1] + " " + text.strip()
        if text.rstrip().endswith("\\"):
            pending = (number, text.rstrip()[:-1].rstrip())
            continue
        pending = None
        out.append((number, text))
    return out


def _args(command: str) -> tuple[str, ...]:
    words = shlex.split(command, comments=True)
    assert words[0] == "evalgemma", command
    return tuple(words[1:])


def readme_examples(text: str) -> list[Example]:
    """Every ``evalgemma`` command of fenced bash blocks and ``$ evalgemma`` transcripts."""
    examples: list[Example] = []
    fence: str | None = None
    block: list[tuple[int, str]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            if fence is None:
                fence, block = line[3:].strip(), []
                continue
            examples += _block_examples(fence, _logical_lines(block))
            fence = None
            continue
        if fence is not None:
            block.append((number, line))
    assert fence is None, "README.md: unclosed code fence"
    return examples


def _block_examples(lang: str, lines: list[tuple[int, str]]) -> list[Example]:
    out: list[Example] = []
    if lang in ("bash", "sh", "shell"):
        out += [Example(n, _args(t)) for n, t in lines if t.startswith("evalgemma ")]
    starts = [i for i, (_, t) in enumerate(lines) if t.startswith("$ evalgemma ")]
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(lines)
        shown = [t for _, t in lines[start + 1:end] if t.strip()]
        code = next((int(m[1]) for t in shown if (m := _EXIT.search(t))), 0)
        output = tuple(" ".join(_EXIT.sub("", t).split()) for t in shown)
        out.append(Example(lines[start][0], _args(lines[start][1][2:]), code, output))
    return out


EXAMPLES = readme_examples(README.read_text())


@pytest.fixture(scope="module")
def workdir(smoke_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("readme")
    shutil.copytree(smoke_store, root / "results" / "store")
    (root / "results" / "baselines").symlink_to(REPO / "results" / "baselines", target_is_directory=True)
    return root


def test_readme_has_the_examples_this_test_relies_on() -> None:
    commands = [e.command for e in EXAMPLES]
    assert len(commands) == len(set(commands)) >= 10, commands
    assert {"leaderboard", "report", "check", "run", "list", "plot"} <= {e.args[0] for e in EXAMPLES}
    assert sorted({e.exit_code for e in EXAMPLES}) == [0, 4]  # the gate's failing transcript is checked too
    stale = sorted(set(SKIPPED) - set(commands))
    assert not stale, f"SKIPPED lists commands no longer in README.md: {stale}"


def test_the_parser_reads_continuations_comments_and_exit_codes() -> None:
    text = "```bash\nevalgemma list suites   # comment\n```\n```\n$ evalgemma check --store S \\\n      --pair \"a · 1=b\"\nrow  two   (exit 4)\n```\n"
    assert readme_examples(text) == [
        Example(2, ("list", "suites")),
        Example(5, ("check", "--store", "S", "--pair", "a · 1=b"), 4, ("row two",)),
    ]


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"L{e.line}:{e.command[10:60]}" for e in EXAMPLES])
def test_readme_example(example: Example, workdir: Path) -> None:
    from evalgemma.cli.app import command_context

    args = list(example.args)
    if example.command in SKIPPED:
        command_context(args)  # a wrong flag, value or command fails here even when it cannot run
        pytest.skip(f"README.md:{example.line}: {SKIPPED[example.command]}")
    outputs = [Path(args[i + 1]) for i, a in enumerate(args[:-1]) if a == "--out"]
    for out in outputs:
        (workdir / out).unlink(missing_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "COLUMNS": "250"}
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=600, env=env, cwd=workdir, check=False)
    where = f"README.md:{example.line}: {example.command}"
    assert proc.returncode == example.exit_code, (where, proc.stdout[-3000:], proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr, (where, proc.stderr[-3000:])
    got = {" ".join(line.split()) for line in proc.stdout.splitlines()}
    missing = [line for line in example.output if line not in got]
    assert not missing, (where, "output lines the README shows but the command did not print:", missing, proc.stdout[-3000:])
    for out in outputs:
        assert (workdir / out).stat().st_size > 0, (where, f"{out} was not written")
