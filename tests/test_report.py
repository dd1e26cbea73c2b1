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
    # decision (1) + this store's suites demo, mteb-code-v1, xtreme-up (3) + per-task detail of 3 variants (3)
    # + provenance (1) + reference leaderboards: the store suites and mteb-multilingual-v2, mteb-eng-v2 (5)
    assert c.tags["table"] == 13
    # Pareto; store charts: dim (768d/256d on demo), xtreme-up; reference: dim, quant, xtreme-up, vs-reference
    assert len(c.srcs) == 7
    # the one skipped chart: the store has no weight-quantization pair
    assert text.count("Chart skipped") == 1 and "Chart skipped: score vs quantization" in text
    # the store's EmbeddingGemma 768d has 2 of 12 Code tasks: shown as incomplete, not as a mean
    assert re.search(r"embeddinggemma-300m · 768d</td><td>run</td><td class=\"inc\">incomplete \(2/12\)", text)
    # XTREME-UP: the 768d store row's mean over 20 languages = 0.30 + 0.01·mean(0..19) = 0.395 → 39.50
    assert re.search(r"embeddinggemma-300m · 768d</td><td>run</td><td>39.50</td>", text)
    assert re.search(r"all-MiniLM-L6-v2 · 384d</td><td>run</td><td class=\"inc\">incomplete \(3/20\)", text)


def test_report_opens_with_the_decision(report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    first_table = text.index("<table")
    assert text.index('<h2 id="decision">Decision</h2>') < first_table == text.index('<table class="decision">')
    order = [text.index(m) for m in ('id="decision"', 'id="pareto"', 'id="leaderboards"', 'id="detail"', 'id="provenance"', '<details id="reference"')]
    assert order == sorted(order)
    # every published (reference) row is inside the collapsed <details>, none above it
    details = text.index('<details id="reference">')
    assert '<tr class="ref">' not in text[:details] and text.count('<tr class="ref">') > 0
    assert "<details id=\"reference\" open" not in text
    # decision rows: the only task the 3 variants all have complete is demo/STSBenchmark (0.88 − dim/1e5; MiniLM 0.8203)
    # → 768d 87.23 (baseline by default: largest-dim float32 torch), 256d 87.74 (Δ +0.51), MiniLM 82.03 (Δ −5.20)
    decision = text[first_table:text.index("</table>", first_table)]
    rows = re.findall(r"<tr class=\"run[^\"]*\"><td[^>]*>([^<]+)</td>.*?</tr>", decision)
    assert rows == ["embeddinggemma-300m · 256d", "embeddinggemma-300m · 768d", "all-MiniLM-L6-v2 · 384d"]
    assert re.search(r"256d</td>.*?<td>87\.74</td><td class=\"pos\">\+0\.51</td>", decision)
    assert re.search(r"768d</td>.*?<td>87\.23</td><td>baseline</td>", decision)
    assert re.search(r"384d</td>.*?<td>82\.03</td><td class=\"neg\">-5\.20</td>", decision)
    assert "1 task(s) of demo: STSBenchmark" in text and "the store has no per-sample scores" in text and "run <code>evalgemma bench</code>" in text
    # Pareto chart drawn; per-task detail (cells, task versions) and provenance present
    assert '<img alt="Pareto charts"' in text
    # STS17 768d: mean(0.90 − 0.00768, 0.86 − 0.00768, 0.75) = 0.83155; 256d: mean(0.89744, 0.85744, 0.75) = 0.83496
    detail = text[text.index('id="detail"'):text.index('id="provenance"')]
    assert re.search(r"embeddinggemma-300m · 768d <small.*?<td>demo</td><td>STS17</td><td>STS</td><td>3/3</td><td>83\.15</td>", detail)
    assert re.search(r"embeddinggemma-300m · 256d <small.*?<td>demo</td><td>STS17</td><td>STS</td><td>3/3</td><td>83\.50</td>", detail)
    assert "<th>mteb</th>" in text and "<th>git commit</th>" in text and "run-test" in text
    # captions say how to read a chart, not its title again
    for cap in re.findall(r"<figcaption>([^<]+)</figcaption>", text):
        assert cap not in ("Score vs embedding dimension", "Pareto charts", "XTREME-UP MRR@10 per language")


def test_report_file_is_world_readable(report: Path) -> None:
    import stat

    assert stat.S_IMODE(report.stat().st_mode) == 0o644


def test_report_css_scrolls_wide_tables_and_prints() -> None:
    from evalgemma.views.report import _CSS

    assert "max-width:1400px" not in _CSS and ".wrap{overflow-x:auto" in _CSS and "@media print" in _CSS


def test_report_skips_charts_without_data(tmp_path: Path) -> None:
    store = tmp_path / "store"
    _unit(store, model="m", variant="m · 8d", key="v1-m", dim=8, suite="demo", task="STSBenchmark", task_type="STS",
          metric="cosine_spearman", cells={("test", "default"): 0.5})
    out = tmp_path / "r.html"
    proc = _cli("report", "--store", str(store), "--out", str(out), "--reference", "none")
    assert proc.returncode == 0, proc.stderr
    text = out.read_text(encoding="utf-8")
    # dim, quant and XTREME-UP of the store have nothing to draw; without a reference there is no reference section
    assert text.count("Chart skipped") == 3 and "<details" not in text
    assert "score vs dim: no model has complete suite means at two or more dimensions" in text
    assert "<td>50.00</td>" in text  # the one task: 0.5 → 50.00
    assert '<img alt="Pareto charts"' in text  # one variant is its own front


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
    assert dom.tags.get("table") == 13
    assert dom.tags.get("img") == 7
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


def _front_brute_force(pts: list[tuple[float, float]], lower_x_is_better: bool) -> list[bool]:
    """Definition: optimal iff no other point is at least as good on both axes and strictly better on one."""
    def better_eq(a: tuple[float, float], b: tuple[float, float]) -> bool:  # a at least as good as b on both axes
        return (a[0] <= b[0] if lower_x_is_better else a[0] >= b[0]) and a[1] >= b[1]
    out = []
    for i, p in enumerate(pts):
        if any(math.isnan(v) for v in p):
            out.append(False)
            continue
        dominated = any(better_eq(q, p) and q != p for j, q in enumerate(pts) if j != i and not any(math.isnan(v) for v in q))
        out.append(not dominated)
    return out


def test_pareto_front_matches_brute_force() -> None:
    import numpy as np

    from evalgemma.views.plots import pareto_front

    rng = np.random.default_rng(7)
    for trial in range(300):
        n = int(rng.integers(0, 12))
        # small integer grids make ties in x, in y and whole duplicate points common
        pts = [(float(rng.integers(0, 5)), float(rng.integers(0, 5))) for _ in range(n)]
        if n and trial % 5 == 0:
            pts[0] = (math.nan, pts[0][1])
        for lower in (True, False):
            got = pareto_front(np.array(pts).reshape(-1, 2), lower_x_is_better=lower).tolist()
            assert got == _front_brute_force(pts, lower), (pts, lower)
    # by hand: (1, 5) and (3, 9) are optimal; (2, 4) is beaten by (1, 5); (3, 9) twice: neither dominates the other
    assert pareto_front([(1, 5), (2, 4), (3, 9), (3, 9)]).tolist() == [True, False, True, True]
    assert pareto_front([(1, 5), (2, 4), (3, 9)], lower_x_is_better=False).tolist() == [False, False, True]


def test_decision_table_uses_comparison_and_cost(results_store: Path) -> None:
    from dataclasses import replace

    import pandas as pd

    import evalgemma
    from evalgemma.errors import ConfigError
    from evalgemma.views.decision import SuiteVerdict, decision_table
    from evalgemma.views.report import decision_html

    frame = evalgemma.load_results(results_store)
    comparison = pd.DataFrame([
        {"level": "suite", "suite": "demo", "variant": "embeddinggemma-300m · 768d", "variant_key": "v1-gemma768",
         "baseline": "embeddinggemma-300m · 256d", "baseline_key": "v1-gemma256", "task": "Mean(Task)", "task_type": "",
         "score": 87.23, "baseline_score": 87.74, "delta": -0.51, "ci_low": -0.9, "ci_high": -0.1, "p_value": 0.01,
         "verdict": "worse", "n_samples": 100, "n_resamples": 1000, "seed": 0, "reason": ""},
        {"level": "task", "suite": "demo", "variant": "embeddinggemma-300m · 768d", "variant_key": "v1-gemma768",
         "baseline": "embeddinggemma-300m · 256d", "baseline_key": "v1-gemma256", "task": "STSBenchmark", "task_type": "STS",
         "score": 87.23, "baseline_score": 87.74, "delta": -0.51, "ci_low": -0.9, "ci_high": -0.1, "p_value": 0.01,
         "verdict": "worse", "n_samples": 100, "n_resamples": 1000, "seed": 0, "reason": ""},
    ])
    cost = pd.DataFrame([
        {"variant_key": k, "variant": "", "device": "cpu", "backend": "torch", "weight_bytes": w, "embedding_bytes": e,
         "index_bytes_per_million": e * 1e6, "texts_per_s_long": s, "texts_per_s_short": 2 * s, "latency_p50_ms": 1.0,
         "latency_p95_ms": 2.0, "load_s": 1.0, "peak_rss_bytes": 1}
        for k, w, e, s in (("v1-gemma768", 1_200_000_000, 3072, 20.0), ("v1-gemma256", 1_200_000_000, 1024, 25.0),
                           ("v1-minilm", 90_000_000, 1536, 300.0))
    ])
    d = decision_table(frame, comparison=comparison, cost=cost)
    t = d.table.set_index("variant_key")
    # the baseline comes from the comparison (256d); the 768d row takes Δ, CI and verdict from its suite row
    assert d.baseline_key == "v1-gemma256" and d.baseline_reason == "the baseline of `evalgemma compare`"
    assert t.loc["v1-gemma768", ["delta", "ci_low", "ci_high"]].tolist() == [-0.51, -0.9, -0.1]
    assert t.loc["v1-gemma768", "verdict"] == "worse" and t.loc["v1-minilm", "verdict"] == ""
    # MiniLM has no comparison row: Δ is the difference of means, 82.03 − 87.744 (×100 of 0.8203 − 0.87744)
    assert t.loc["v1-minilm", "delta"] == pytest.approx(100 * (0.8203 - 0.87744))
    # Pareto (mean, cost): 256d 87.744 @1024 B beats 768d 87.232 @3072 B on bytes; MiniLM 82.03 is smallest and fastest
    assert t["pareto_bytes"].to_dict() == {"v1-gemma256": True, "v1-gemma768": False, "v1-minilm": False}
    assert t["pareto_weight"].to_dict() == {"v1-gemma256": True, "v1-gemma768": False, "v1-minilm": True}
    assert t["pareto_speed"].to_dict() == {"v1-gemma256": True, "v1-gemma768": False, "v1-minilm": True}
    assert t.loc["v1-minilm", "texts_per_s"] == 300.0
    html_text = decision_html(d)
    assert "[-0.90, -0.10]" in html_text and '<td class="worse">worse</td>' in html_text and "300.0 / 600.0" in html_text
    assert "not computed here" not in html_text and "not measured" not in html_text
    # one backend for every variant: a note, not a column; two backends: the column is back
    assert "Backend: torch for every variant." in html_text and ">backend</th>" not in html_text
    mixed = replace(d, table=d.table.assign(backend=["torch", "onnx", "torch"]))
    assert ">backend</th>" in decision_html(mixed) and "<td class=\"txt\">onnx</td>" in decision_html(mixed)
    assert "Backend:" not in decision_html(mixed)
    # several suites: one line per suite in the CI and verdict cells, in the same order
    two = replace(d, verdicts={"v1-gemma768": (SuiteVerdict("demo", -0.51, -0.9, -0.1, 0.01, "worse", ""),
                                               SuiteVerdict("xtreme-up", 0.2, -0.3, 0.7, 0.4, "indistinguishable", ""))})
    html_two = decision_html(two)
    assert "<td>demo: -0.51 [-0.90, -0.10]<br>xtreme-up: +0.20 [-0.30, +0.70]</td>" in html_two
    assert "worse<br>indistinguishable</td>" in html_two
    with pytest.raises(ConfigError, match=r"--baseline: unknown variant 'embeddinggemma-300m · 768'.*Did you mean"):
        decision_table(frame, baseline="embeddinggemma-300m · 768")


def test_plot_pareto_writes_a_png(results_store: Path, tmp_path: Path) -> None:
    import stat

    out = tmp_path / "figs" / "pareto.png"
    proc = _cli("plot", "pareto", "--store", str(results_store), "--out", str(out), "--reference", "none")
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and stat.S_IMODE(out.stat().st_mode) == 0o644
    from PIL import Image

    with Image.open(out) as img:
        assert img.size == (1500, 480)  # three panels, 15 × 4.8 in at 100 dpi


@pytest.fixture(scope="module")
def minilm_report(smoke_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of a real MiniLM store: the shared smoke run (384d, 32d) plus an int8-embedding 384d variant."""
    from evalgemma.run import RunConfig, execute, plan_run

    root = tmp_path_factory.mktemp("minilm-report")
    store = root / "store"
    shutil.copytree(smoke_store, store)
    # four of the seven smoke tasks keep this fixture short; int8 reranking is covered in tests/test_embedding_quant.py
    tasks = ("SmokeSTS", "SmokeRetrieval", "SmokeClassification", "SmokePairClassification")
    execute(plan_run(RunConfig.build(model="minilm", suite="smoke", tasks=tasks, dims=(384,), embed_dtypes=("int8",),
                                     store=store, device="cpu", show_progress=False)))
    out = root / "report.html"
    proc = _cli("report", "--store", str(store), "--out", str(out), "--reference", "none")
    assert proc.returncode == 0, proc.stderr
    return out


def decision_box(page: Path, tmp_path: Path) -> tuple[int, int]:
    """(bottom, right) in CSS px of the decision table in a 1400×900 Chromium window, measured by the browser."""
    probe = tmp_path / "probe.html"
    js = ("<script>const r=document.querySelector('table.decision').getBoundingClientRect();"
          "document.body.setAttribute('data-bottom', Math.round(r.bottom));document.body.setAttribute('data-right', Math.round(r.right));</script>")
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", js + "</body>"), encoding="utf-8")
    proc = _run_chromium(probe, tmp_path / "profile-probe", "--dump-dom", "--window-size=1400,900", "--hide-scrollbars")
    bottom = re.search(r'data-bottom="(\d+)"', proc.stdout)
    right = re.search(r'data-right="(\d+)"', proc.stdout)
    assert bottom and right, proc.stderr[-2000:]
    return int(bottom.group(1)), int(right.group(1))


def test_report_decision_fits_the_first_screen(report: Path, tmp_path: Path) -> None:
    bottom, right = decision_box(report, tmp_path)
    assert 0 < bottom < 900 and right <= 1400


@pytest.mark.slow
def test_real_store_report_has_the_decision_on_the_first_screen(minilm_report: Path, tmp_path: Path) -> None:
    text = minilm_report.read_text(encoding="utf-8")
    assert "3 variant(s) of all-MiniLM-L6-v2 on smoke" in text and "4 task(s) of smoke" in text
    assert "Baseline: <b>all-MiniLM-L6-v2 · 384d</b>" in text
    bottom, right = decision_box(minilm_report, tmp_path)
    assert 0 < bottom < 900 and right <= 1400
    shot = tmp_path / "first-screen.png"
    proc = _run_chromium(minilm_report, tmp_path / "profile2", f"--screenshot={shot}", "--window-size=1400,900", "--hide-scrollbars")
    assert shot.is_file() and console_errors(proc.stderr) == []
    keep = os.environ.get("EVALGEMMA_KEEP_FIRST_SCREEN")
    if keep:
        shutil.copy(shot, keep)
