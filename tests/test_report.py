"""The HTML report: self-contained, loads in headless Chromium without console errors.

The browser checks use Debian's ``chromium`` (``.ci/run`` installs it). In CI (``CI=true``) a
missing browser fails the test; elsewhere it skips with that message.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from evalgemma.benchmarks.suites import expected_cells
from evalgemma.store.parquet import write_unit

CHROMIUM = "/usr/bin/chromium"
XTREME_LANGS = ["as", "bho", "brx", "gbm", "gom", "gu", "hi", "hne", "kn", "mai", "ml", "mni", "mr", "mwr", "or", "pa", "ps", "sa", "ta", "ur"]


def _unit(store: Path, *, model: str, variant: str, key: str, dim: int, suite: str, task: str, task_type: str,
          metric: str, cells: dict[tuple[str, str], float], quant: str = "none", finished_at: str = "2026-01-01T00:00:00.000000+00:00") -> None:
    """One stored unit as a run writes it: ``cells`` maps (split, hf_subset) -> main metric value; ``task_version``
    is the one the suite expects (an mteb task's dataset revision); main_score is the cells' flat mean only when
    they are every cell the suite expects of the task (else NaN, as schema 2 stores a partial task)."""
    expected = (expected_cells(suite) or {}).get(task)
    whole = expected is None or {(c.split, c.subset) for c in expected.cells} == set(cells)
    main = sum(cells.values()) / len(cells) if whole else math.nan
    rows = []
    for (split, subset), v in cells.items():
        base = dict(run_id="run-test", model=model, variant_key=key, variant=variant, dim=dim, quant=quant, dtype="float32",
                    suite=suite, task=task, task_type=task_type, task_version=expected.version if expected else "",
                    hf_subset=subset, split=split, languages=subset,
                    main_score=main, finished_at=finished_at, started_at=finished_at, status="ok")
        rows.append({**base, "metric": metric, "value": v, "is_main": True})
        rows.append({**base, "metric": "recall_at_100" if metric != "cosine_spearman" else "cosine_pearson", "value": min(1.0, v + 0.1), "is_main": False})
    write_unit(store, rows)


def make_store(store: Path) -> Path:
    """A small realistic store: EmbeddingGemma at two dims on two MTEB(Code, v1) tasks (incomplete suite),
    STS tasks of a smoke-like suite, and XTREME-UP per language for two variants (one with only 3 languages)."""
    gemma = "google/embeddinggemma-300m"
    for dim, key, apps, cosqa in ((768, "v1-gemma768", 0.8431, 0.4372), (256, "v1-gemma256", 0.8221, 0.4260)):
        label = f"embeddinggemma-300m · {dim}d"
        _unit(store, model=gemma, variant=label, key=key, dim=dim, suite="mteb-code-v1", task="AppsRetrieval", task_type="Retrieval",
              metric="ndcg_at_10", cells={("test", "default"): apps})
        _unit(store, model=gemma, variant=label, key=key, dim=dim, suite="mteb-code-v1", task="CosQA", task_type="Retrieval",
              metric="ndcg_at_10", cells={("test", "default"): cosqa})
        _unit(store, model=gemma, variant=label, key=key, dim=dim, suite="demo", task="STS17", task_type="STS", metric="cosine_spearman",
              cells={("test", "en-en"): 0.90 - dim / 1e5, ("test", "es-es"): 0.86 - dim / 1e5, ("test", "ar-ar"): 0.75})
        _unit(store, model=gemma, variant=label, key=key, dim=dim, suite="demo", task="STSBenchmark", task_type="STS", metric="cosine_spearman",
              cells={("test", "default"): 0.88 - dim / 1e5})
    _unit(store, model=gemma, variant="embeddinggemma-300m · 768d", key="v1-gemma768", dim=768, suite="xtreme-up", task="xtreme-up-cross-lang",
          task_type="Retrieval", metric="mrr_at_10", cells={("test", lang): 0.30 + 0.01 * i for i, lang in enumerate(XTREME_LANGS)})
    mini = "sentence-transformers/all-MiniLM-L6-v2"
    _unit(store, model=mini, variant="all-MiniLM-L6-v2 · 384d", key="v1-minilm", dim=384, suite="xtreme-up", task="xtreme-up-cross-lang",
          task_type="Retrieval", metric="mrr_at_10", cells={("test", "as"): 0.02, ("test", "hi"): 0.05, ("test", "ur"): 0.03})
    _unit(store, model=mini, variant="all-MiniLM-L6-v2 · 384d", key="v1-minilm", dim=384, suite="demo", task="STSBenchmark", task_type="STS",
          metric="cosine_spearman", cells={("test", "default"): 0.8203})
    return store


@pytest.fixture
def results_store(tmp_path: Path) -> Path:
    """A store to report on (swap for a real smoke run's store when one exists)."""
    return make_store(tmp_path / "store")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-c", "from evalgemma.cli.app import main; main()", *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report")
    store = make_store(root / "store")
    out = root / "report.html"
    proc = _cli("report", "--store", str(store), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


class _Counter(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: dict[str, int] = {}
        self.srcs: list[str] = []
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        d = dict(attrs)
        if d.get("src"):
            self.srcs.append(d["src"] or "")
        if tag == "link" and d.get("href"):
            self.hrefs.append(d["href"] or "")


def _parse(text: str) -> _Counter:
    c = _Counter()
    c.feed(text)
    return c


def test_report_is_self_contained_with_tables_and_charts(report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    c = _parse(text)
    # every image is an inline PNG; no external script, stylesheet or image
    assert c.srcs and all(s.startswith("data:image/png;base64,") for s in c.srcs)
    assert c.hrefs == [] and c.tags.get("script", 0) == 0
    # store suites (demo, mteb-code-v1, xtreme-up) + reference-only suites (mteb-multilingual-v2, mteb-eng-v2)
    assert c.tags["table"] == 5
    # the four charts: dim (paper per-dim means), quant (paper QAT means), xtreme-up, vs-reference
    assert len(c.srcs) == 4
    assert "Chart skipped" not in text
    # the store's EmbeddingGemma 768d has 2 of 12 Code tasks: shown as incomplete, not as a mean
    assert re.search(r"embeddinggemma-300m · 768d</td><td>run</td><td class=\"inc\">incomplete \(2/12\)", text)
    # XTREME-UP: the 768d store row's mean over 20 languages = 0.30 + 0.01·mean(0..19) = 0.395 → 39.50
    assert re.search(r"embeddinggemma-300m · 768d</td><td>run</td><td>39.50</td>", text)
    assert re.search(r"all-MiniLM-L6-v2 · 384d</td><td>run</td><td class=\"inc\">incomplete \(3/20\)", text)


def test_report_skips_charts_without_data(tmp_path: Path) -> None:
    store = tmp_path / "store"
    _unit(store, model="m", variant="m · 8d", key="v1-m", dim=8, suite="demo", task="STSBenchmark", task_type="STS",
          metric="cosine_spearman", cells={("test", "default"): 0.5})
    out = tmp_path / "r.html"
    proc = _cli("report", "--store", str(store), "--out", str(out), "--reference", "none")
    assert proc.returncode == 0, proc.stderr
    text = out.read_text(encoding="utf-8")
    assert text.count("Chart skipped") == 4
    assert "score vs dim: no model has complete suite means at two or more dimensions" in text
    assert "<td>50.00</td>" in text  # the one task: 0.5 → 50.00


def test_report_empty_store_without_reference_is_a_data_error(tmp_path: Path) -> None:
    proc = _cli("report", "--store", str(tmp_path / "nothing"), "--out", str(tmp_path / "r.html"), "--reference", "none")
    assert proc.returncode == 3
    assert "no results" in proc.stderr and "Traceback" not in proc.stderr


def _chromium() -> str:
    if Path(CHROMIUM).is_file():
        return CHROMIUM
    if os.environ.get("CI") == "true":
        pytest.fail(f"{CHROMIUM} not found: the browser test needs Debian's chromium (apt-get install -y chromium)")
    pytest.skip(f"{CHROMIUM} not found (apt-get install -y chromium)")


def _run_chromium(page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    args = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
            "--enable-logging=stderr", "--v=0", *extra, page.resolve().as_uri()]
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def console_errors(stderr: str) -> list[str]:
    """Console errors and uncaught exceptions in Chromium's stderr log."""
    out = []
    for line in stderr.splitlines():
        if "Uncaught" in line or re.search(r":(ERROR|WARNING):CONSOLE", line) or ("CONSOLE" in line and "error" in line.lower()):
            out.append(line)
    return out


def test_console_error_detector_catches_a_thrown_error(tmp_path: Path) -> None:
    # the check below is only meaningful if a real page error shows up in the log
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><body><p>x</p><script>throw new Error('boom-evalgemma')</script></body></html>")
    proc = _run_chromium(page, tmp_path / "profile", "--dump-dom")
    errors = console_errors(proc.stderr)
    assert any("boom-evalgemma" in e for e in errors), proc.stderr[-2000:]


def test_report_renders_in_chromium(report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    proc = _run_chromium(report, tmp_path / "profile1", f"--screenshot={shot}", "--window-size=1400,2200", "--hide-scrollbars")
    assert shot.is_file(), proc.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as img:
        assert img.size == (1400, 2200)
        colours = img.convert("RGB").getcolors(maxcolors=1_000_000)
    # a rendered page with tables and charts has many colours; a blank or error page has a handful
    assert colours is None or len(colours) > 50
    assert console_errors(proc.stderr) == []
    keep = os.environ.get("EVALGEMMA_KEEP_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)

    proc = _run_chromium(report, tmp_path / "profile2", "--dump-dom")
    assert console_errors(proc.stderr) == []
    dom = _parse(proc.stdout)
    assert dom.tags.get("table") == 5
    assert dom.tags.get("img") == 4
    assert all(s.startswith("data:image/png;base64,") for s in dom.srcs)
    assert "incomplete (2/12)" in proc.stdout


def test_save_figure_writes_the_suffix_format_atomically(tmp_path: Path) -> None:
    import stat

    from matplotlib.figure import Figure

    from evalgemma.errors import ConfigError
    from evalgemma.views.plots import save_figure

    fig = Figure(figsize=(2, 2))
    fig.subplots().plot([0, 1], [0, 1])
    png = save_figure(fig, tmp_path / "figs" / "f.png")
    svg = save_figure(fig, tmp_path / "figs" / "f.svg")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and b"<svg" in svg.read_bytes()[:400]
    assert {stat.S_IMODE(p.stat().st_mode) for p in (png, svg)} == {0o644}  # world-readable, like the store
    with pytest.raises(ConfigError, match=r"--out .*f\.pnj: unknown image format 'pnj'\. Did you mean 'png'"):
        save_figure(fig, tmp_path / "figs" / "f.pnj")
    with pytest.raises(ConfigError, match=r"--out .*/figure: no file suffix"):
        save_figure(fig, tmp_path / "figs" / "figure")
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["f.png", "f.svg"]  # nothing else, no temp file
