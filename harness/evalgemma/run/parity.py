"""``evalgemma parity`` and the quick check ``run`` makes of every non-torch backend.

Both encode the probe set (``tasks/parity_probe.toml``; each text with the model's prompt of its
prompt name, rendered here once, so every backend is given the same strings) with the backend and
with the torch float32 model, and compare with :func:`evalgemma.encode.parity.parity`. ``parity``
uses every text and every bound of ``tasks/parity_thresholds.toml`` and stores its figures as one
unit (task ``Parity``, one row per metric) under the candidate's own variant key; the quick check
uses the first few texts and the cosine and norm bounds only, and warns.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evalgemma.encode.backends import Loaded, LoadRequest, get_backend
from evalgemma.encode.models import ResolvedModel
from evalgemma.encode.parity import ParityReport, ParityThresholds, parity
from evalgemma.errors import ConfigError
from evalgemma.run.config import RunConfig
from evalgemma.variants.spec import VariantSpec, WeightSpec

log = logging.getLogger(__name__)

TASK = "Parity"
#: Stored metrics: (row metric name, ParityReport attribute, bound name, higher is better).
METRICS: tuple[tuple[str, str, str, bool], ...] = (
    ("cosine_min", "cosine_min", "min_cosine", True),
    ("cosine_mean", "cosine_mean", "min_mean_cosine", True),
    ("top10_overlap_mean", "top10_overlap_mean", "min_top10_overlap", True),
    ("max_norm_delta", "max_norm_delta", "max_norm_delta", False),
)


@dataclass
class ParityOutcome:
    """What ``evalgemma parity`` measured and decided."""

    report: ParityReport
    bounds: ParityThresholds
    failures: list[str]
    variant: VariantSpec
    reference: str
    artifact_sha256: str
    thresholds_path: Path
    probe_version: str
    stored: Path | None = None
    wall_s: float = 0.0
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def metric_rows(self) -> list[tuple[str, float, float, bool, bool]]:
        """(metric, value, bound, higher is better, within) per bound."""
        out = []
        for name, attr, bound, higher in METRICS:
            value, limit = float(getattr(self.report, attr)), float(getattr(self.bounds, bound))
            out.append((name, value, limit, higher, value >= limit if higher else value <= limit))
        return out


def reference_encoder(reference: str, max_seq_length: int, device: str) -> Any:
    """The torch float32 encoder of the sentence-transformers directory (or model name) ``reference``."""
    from evalgemma.encode.models import resolve_model

    model = resolve_model(reference)
    weight = WeightSpec(model.model_id, model.revision, "float32", max_seq_length)  # type: ignore[arg-type]
    return get_backend("torch").load(LoadRequest(model, weight, device=device)).encoder


def _bounds(backend: str, quant: str, path: Path | None) -> tuple[ParityThresholds, Path]:
    from evalgemma.catalog.parity import load_thresholds

    table, where = load_thresholds(path)
    b = table.bounds(backend, quant, where)
    return ParityThresholds(b.min_cosine, b.min_mean_cosine, b.min_top10_overlap, b.max_norm_delta), where


def quick_probe(model: ResolvedModel, weight: WeightSpec, loaded: Loaded, *, device: str) -> ParityReport | None:
    """Warn when a backend's vectors disagree with the torch float32 model on the probe set's first texts.

    Cheap: a handful of texts, the cosine and norm bounds of the backend's quantization (neighbour
    overlap means little on so few). None when there is no torch model to compare with.
    """
    from evalgemma.catalog.parity import QUICK_PROBE_TEXTS, load_probe_set
    from evalgemma.encode.encoder import Encoder

    artifact = loaded.artifact
    assert artifact is not None
    what = f"--backend {weight.backend} --quant {weight.quant} ({artifact.path}, sha256 {artifact.sha256[:12]})"
    if artifact.reference is None:
        warnings.warn(f"{what}: no torch model beside the artifact to check its vectors against; "
                      "check it with `evalgemma parity --reference DIR`", RuntimeWarning, stacklevel=2)
        return None
    try:
        bounds, _ = _bounds(weight.backend, weight.quant, None)
    except ConfigError as exc:
        warnings.warn(f"{what}: not checked against torch ({exc})", RuntimeWarning, stacklevel=2)
        return None
    started = time.perf_counter()
    texts = load_probe_set().rendered(model.prompts, QUICK_PROBE_TEXTS)
    ref = reference_encoder(artifact.reference, weight.max_seq_length, device)
    candidate = Encoder(loaded.encoder.st_model, weight.key, batch_size=loaded.encoder.batch_size)
    report = parity(ref, candidate, texts, prompt="")
    del ref
    failures = report.failures(ParityThresholds(bounds.min_cosine, bounds.min_mean_cosine, 0.0, bounds.max_norm_delta))
    log.info("quick parity probe of %s: cosine min %.6f in %.1f s", what, report.cosine_min, time.perf_counter() - started)
    if failures:
        warnings.warn(
            f"{what}: its vectors disagree with the torch float32 model ({artifact.reference}) on {len(texts)} probe texts: "
            f"{'; '.join(failures)}. Its scores are not the model's: run `evalgemma parity --backend {weight.backend} "
            f"--quant {weight.quant} --model ...` for the full check.", RuntimeWarning, stacklevel=2,
        )
    return report


def run_parity(config: RunConfig, *, thresholds: Path | None = None, reference: str | None = None, store: Path | None = None,
               device: str = "cpu") -> ParityOutcome:
    """Compare one (backend, quant) of ``config``'s model with its torch float32 reference on the probe set.

    Stores the figures (when ``store``) before returning; the caller turns failures into exit 4.

    Raises:
        ConfigError: a sweep (one backend and one quant only), no bounds for the pair, no reference known.
        DataError: a corrupt artifact, a missing model.
    """
    from evalgemma.catalog.parity import load_probe_set
    from evalgemma.run.plan import plan_weights

    opts = config.variant
    if len(opts.backends) != 1 or len(opts.quants) != 1:
        raise ConfigError(f"--backend {','.join(opts.backends)} --quant {','.join(opts.quants)}: parity checks one backend and one quantization at a time")
    backend_name, quant = opts.backends[0], opts.quants[0]
    backend = get_backend(backend_name)
    backend.check_quant(quant)
    bounds, where = _bounds(backend_name, quant, thresholds)  # a bad thresholds file fails before any export
    probe = load_probe_set()
    started = time.perf_counter()
    model, weights, _ = plan_weights(config)
    weight = weights[0]
    loaded = backend.load(LoadRequest(model, weight, device=device, allow_pickle_weights=config.runtime.allow_pickle_weights,
                                      artifact_dir=config.runtime.artifact_dir))
    ref_name = reference or (loaded.artifact.reference if loaded.artifact is not None else model.load_path)
    if ref_name is None:
        raise ConfigError(f"--model {opts.model}: no torch model is known for this artifact; pass --reference DIR (the model it came from)")
    prompts = dict(model.prompts) if opts.prompts else {}
    texts = probe.rendered(prompts)
    report = parity(reference_encoder(ref_name, weight.max_seq_length, device), loaded.encoder, texts, prompt="")
    variant = VariantSpec(weight, model.short_name, tuple(sorted(prompts.items())), report.dim, prompts_disabled=not opts.prompts and bool(model.prompts))
    outcome = ParityOutcome(report, bounds, report.failures(bounds), variant, ref_name,
                            loaded.artifact.sha256 if loaded.artifact is not None else "", where, probe.task_version)
    outcome.wall_s = time.perf_counter() - started
    outcome.rows = _rows(outcome, probe, loaded, device, started)
    if store is not None:
        from evalgemma.run.persist import write_result

        outcome.stored = write_result(store, outcome.rows)
    return outcome


def _rows(outcome: ParityOutcome, probe: Any, loaded: Loaded, device: str, started: float) -> list[dict[str, Any]]:
    from evalgemma.benchmarks.base import BenchTask, Cell, UnitResult
    from evalgemma.provenance import git_commit, versions
    from evalgemma.run.local import new_run_id
    from evalgemma.run.persist import unit_rows

    cell = Cell("probe", "default")
    languages = ",".join(dict.fromkeys(t.lang for t in probe.texts))
    now = datetime.now(UTC).isoformat(timespec="microseconds")
    rows = [{"hf_subset": cell.subset, "split": cell.split, "languages": languages, "metric": name, "value": value,
             "is_main": name == "cosine_min", "n_samples": outcome.report.n_texts} for name, value, _, _, _ in outcome.metric_rows()]
    rows.append({"hf_subset": cell.subset, "split": cell.split, "languages": languages, "metric": "within_bounds",
                 "value": float(outcome.ok), "is_main": False, "n_samples": outcome.report.n_texts})
    extra = {"reference": outcome.reference, "thresholds": str(outcome.thresholds_path), "bounds": outcome.bounds.__dict__,
             "failures": outcome.failures, "worst_text": outcome.report.worst_text, "top10_overlap_min": outcome.report.top10_overlap_min,
             "k": outcome.report.k}
    result = UnitResult(
        TASK, TASK, outcome.variant.key, (cell,), tuple(rows),
        {"task_version": probe.task_version, "data_sha256": probe.sha256, "data_revision": f"tasks/parity_probe.toml v{probe.version}",
         "prompts": json.dumps(sorted({t.prompt for t in probe.texts})), "extra": json.dumps(extra, sort_keys=True)},
        outcome.report.cosine_min, datetime.fromtimestamp(time.time() - (time.perf_counter() - started), UTC).isoformat(timespec="microseconds"),
        now, outcome.wall_s,
    )
    task = BenchTask(TASK, TASK, "parity", probe.task_version, (cell,))
    provenance = {**versions(), "git_commit": git_commit(), "device": device, "run_id": new_run_id("parity"), "suite": "parity",
                  "batch_size": int(getattr(loaded.encoder, "batch_size", 32)), **loaded.info}
    return unit_rows(result, outcome.variant, task, provenance)
