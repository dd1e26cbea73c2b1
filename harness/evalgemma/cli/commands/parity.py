"""``evalgemma parity``: does a backend's artifact compute the torch float32 model's vectors?"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from evalgemma.cli.quiet import disable_progress_bars


def parity(
    model: Annotated[str, typer.Option(help="Short name, HF id, model directory, ONNX model folder or .gguf file")] = "google/embeddinggemma-300m",
    backend: Annotated[str, typer.Option(help="The backend to check: onnx | gguf | torch")] = "onnx",
    quant: Annotated[str, typer.Option(help="Its quantization (onnx: none | int8 | q4; gguf: none | bf16 | q8_0 | q4_0; torch: none)")] = "none",
    thresholds: Annotated[Path | None, typer.Option(help="Bounds per backend and quantization (default: tasks/parity_thresholds.toml)")] = None,
    reference: Annotated[str | None, typer.Option(help="The torch model to compare with (default: --model, or the folder beside a given .onnx/.gguf)")] = None,
    junit: Annotated[Path | None, typer.Option("--junit", help="Also write JUnit XML here (one testcase per bound)")] = None,
    store: Annotated[Path | None, typer.Option(help="Store the figures as a unit (task Parity) in this results store")] = None,
    max_seq_length: Annotated[int | None, typer.Option(help="Max tokens (default as for `run`)")] = None,
    no_prompts: Annotated[bool, typer.Option("--no-prompts", help="Encode the probe texts without the model's prompts")] = False,
    artifact_dir: Annotated[Path | None, typer.Option(help="Where exported artifacts are cached (default: the user cache dir)")] = None,
    allow_pickle_weights: Annotated[bool, typer.Option("--allow-pickle-weights", help="Allow pickle-based (.bin) weights")] = False,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bars")] = False,
) -> None:
    """Encode the recorded probe set with a backend and with torch float32; exit 4 when a bound is missed."""
    if no_progress:
        disable_progress_bars()
    from evalgemma.errors import ParityFailed
    from evalgemma.run.config import RunConfig
    from evalgemma.run.parity import run_parity

    config = RunConfig.build(model=model, backends=(backend,), quants=(quant,), max_seq_length=max_seq_length, prompts=not no_prompts,
                             artifact_dir=artifact_dir, allow_pickle_weights=allow_pickle_weights, show_progress=not no_progress)
    outcome = run_parity(config, thresholds=thresholds, reference=reference, store=store)
    _print(outcome)
    if junit is not None:
        write_junit(outcome, junit)
        typer.echo(f"wrote {junit}")
    if outcome.stored is not None:
        typer.echo(f"stored {outcome.stored}")
    if not outcome.ok:
        raise ParityFailed(f"{outcome.variant.label}: outside the bounds of {outcome.thresholds_path} ({'; '.join(outcome.failures)})")


def _print(outcome: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    r = outcome.report
    console = Console()
    table = Table(title=f"parity: {outcome.variant.label} vs torch float32 · {r.n_texts} probe texts (v{outcome.probe_version}) · {r.dim}d")
    for col, justify in (("metric", "left"), ("value", "right"), ("bound", "right"), ("", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for name, value, bound, higher, ok in outcome.metric_rows():
        mark = "[green]ok[/green]" if ok else "[red]FAIL[/red]"
        table.add_row(name, f"{value:.7f}" if higher else f"{value:.3g}", f"{'≥' if higher else '≤'} {bound:g}", mark)
    console.print(table)
    console.print(f"variant key {outcome.variant.key} · artifact sha256 {outcome.artifact_sha256 or '-'} · reference {outcome.reference} · "
                  f"worst text {r.worst_text} · top-{r.k} overlap min {r.top10_overlap_min:.3f} · {outcome.wall_s:.1f} s")
    verdict = "[green]within every bound[/green]" if outcome.ok else f"[red]{len(outcome.failures)} bound(s) missed[/red]"
    console.print(f"{verdict} ({outcome.thresholds_path})")


def write_junit(outcome: Any, path: Path) -> Path:
    """JUnit XML of one parity check (atomically): one testcase per bound, ``<failure>`` where missed.

    Raises:
        StoreError: the file cannot be written.
    """
    import xml.etree.ElementTree as ET

    from evalgemma.errors import StoreError
    from evalgemma.io import atomic_write

    rows = outcome.metric_rows()
    failed = sum(1 for *_, ok in rows if not ok)
    root = ET.Element("testsuites", tests=str(len(rows)), failures=str(failed), errors="0", skipped="0")
    suite = ET.SubElement(root, "testsuite", name="evalgemma-parity", tests=str(len(rows)), failures=str(failed), errors="0", skipped="0")
    props = ET.SubElement(suite, "properties")
    for name, value in (("variant_key", outcome.variant.key), ("artifact_sha256", outcome.artifact_sha256), ("reference", outcome.reference),
                        ("probe", outcome.probe_version), ("thresholds", str(outcome.thresholds_path))):
        ET.SubElement(props, "property", name=name, value=value)
    for name, value, bound, higher, ok in rows:
        case = ET.SubElement(suite, "testcase", classname=outcome.variant.label, name=name)
        detail = f"{name}={value!r} bound={'>=' if higher else '<='}{bound!r}"
        if not ok:
            ET.SubElement(case, "failure", message=f"{name} {value:.6g} outside {bound:g}", type="parity").text = detail
        else:
            ET.SubElement(case, "system-out").text = detail
    ET.indent(root)
    try:
        atomic_write(path, ET.tostring(root, encoding="utf-8", xml_declaration=True))
    except OSError as exc:
        raise StoreError(f"--junit {path}: cannot write ({exc.strerror or exc})") from exc
    return path


def register(app: typer.Typer) -> None:
    app.command("parity")(parity)
