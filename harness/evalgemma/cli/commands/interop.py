"""``export`` (mteb results folder, model-card model-index) and ``import`` (mteb results into the store)."""

from __future__ import annotations

from pathlib import Path

import typer

from evalgemma.cli.params import one_of

FORMATS = ("mteb", "model-index")


def register(app: typer.Typer) -> None:
    """Add ``export`` and ``import`` to the CLI."""

    @app.command("export")
    def export(
        fmt: str = typer.Option(
            ..., "--format", help="mteb (a ResultCache folder) | model-index (model-card YAML)", callback=one_of("format", lambda: FORMATS)
        ),
        store: Path = typer.Option(Path("results/store"), "--store", help="results store directory"),
        out: Path = typer.Option(None, "--out", help="mteb: the folder to write (mteb.ResultCache(OUT) reads it); model-index: a file (default: stdout)"),
        variants: str = typer.Option(None, "--variants", help="mteb: variant labels or keys, comma-separated (default: all)"),
        variant: str = typer.Option(None, "--variant", help="model-index: the variant (label or key)"),
        allow_partial: bool = typer.Option(False, "--allow-partial", help="mteb: also export incomplete tasks (their stored cells)"),
    ) -> None:
        """Write store results in mteb's results format, or one variant's Hugging Face model-index block."""
        from evalgemma.errors import ConfigError

        if fmt == "mteb":
            from evalgemma.interop.mteb_results import export_mteb

            if out is None:
                raise ConfigError("--format mteb needs --out DIR (the folder mteb.ResultCache(DIR) reads)")
            wanted = tuple(v.strip() for v in variants.split(",") if v.strip()) if variants else ()
            summary = export_mteb(store, out, variants=wanted, allow_partial=allow_partial)
            for line in summary.skipped:
                typer.secho(f"skipped {line}", err=True, fg=typer.colors.YELLOW)
            typer.echo(f"wrote {summary.tasks} task result(s) of {summary.variants} variant(s) to {out}")
            return
        from evalgemma.interop.model_card import model_index_yaml

        if variant is None:
            raise ConfigError("--format model-index needs --variant LABEL (one variant per model card)")
        text = model_index_yaml(store, variant)
        if out is None:
            typer.echo(text, nl=False)
            return
        from evalgemma.io import atomic_write

        atomic_write(out, f"---\n{text}---\n")
        typer.echo(f"wrote {out}")

    @app.command("import")
    def import_cmd(
        from_mteb: Path = typer.Option(..., "--from-mteb", help="an mteb results folder (mteb.evaluate output, or a results-repo checkout)"),
        store: Path = typer.Option(Path("results/store"), "--store", help="results store directory"),
        suite: str = typer.Option(None, "--suite", help="the suite to record the results under (default: the exporter's, else 'tasks')"),
    ) -> None:
        """Store mteb result files as evalgemma rows (nothing is written unless every file is valid)."""
        from evalgemma.interop.mteb_results import import_mteb

        summary = import_mteb(from_mteb, store, suite=suite)
        for line in summary.skipped:
            typer.echo(f"skipped {line}")
        typer.echo(f"imported {len(summary.units)} unit(s) from {summary.files} file(s) into {store}")
