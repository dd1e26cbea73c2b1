"""Every data file in tasks/ validates; config errors name the file; variant identities are stable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from evalgemma.catalog.suites import builtin_suites, load_suite_file, model_entries, resolve_suite
from evalgemma.errors import ConfigError
from evalgemma.variants.spec import VariantSpec, WeightSpec, unclassified_fields


def test_every_task_file_validates() -> None:
    from evalgemma.benchmarks.smoke.tasks import load_manifest
    from evalgemma.catalog.xtreme_up import load_xtreme_up_config
    from evalgemma.variants.weight_quant import load_qat_table

    suites = builtin_suites()
    assert set(suites) == {"mteb-multilingual-v2", "mteb-eng-v2", "mteb-code-v1", "smoke", "types", "xtreme-up", "xtreme-up-official", "xtreme-up-in-lang"}
    assert (suites["smoke"].data, suites["types"].data) == ("smoke", "types")
    assert suites["mteb-eng-v2"].benchmark == "MTEB(eng, v2)"
    # XTREME-UP language sets come from tasks/xtreme_up.toml: 20 (papers, hi in) and 21 (official, bn/te in, hi out).
    assert len(suites["xtreme-up"].languages) == 20 and "hi" in suites["xtreme-up"].languages
    official = suites["xtreme-up-official"].languages
    assert len(official) == 21 and "hi" not in official and {"bn", "te"} <= set(official)
    assert suites["xtreme-up-in-lang"].xtreme_task == "retrieval_in_lang"
    assert model_entries()["embeddinggemma"].max_seq_length == 512
    assert load_qat_table().checkpoints[0].base_model == "google/embeddinggemma-300m"
    assert set(load_xtreme_up_config().suites) == {"xtreme-up", "xtreme-up-official", "xtreme-up-in-lang"}
    assert len(load_manifest().tasks) == 7
    assert len(load_manifest(suite="types").tasks) == 8


def test_suite_file_errors_name_the_file(tmp_path: Path) -> None:
    typo = tmp_path / "typo.toml"
    typo.write_text('schema = 1\nname = "x"\nkind = "tasks"\ntaks = ["STS12"]\n')
    with pytest.raises(ConfigError, match=r"typo\.toml: taks: Extra inputs are not permitted"):
        load_suite_file(typo)
    dup = tmp_path / "dup.toml"
    dup.write_text('schema = 1\nname = "x"\nname = "y"\nkind = "smoke"\n')
    with pytest.raises(ConfigError, match=r"dup\.toml: invalid TOML"):
        load_suite_file(dup)
    kind = tmp_path / "kind.toml"
    kind.write_text('schema = 1\nkind = "mteb"\n')
    with pytest.raises(ConfigError, match=r"kind\.toml: kind = 'mteb' needs a 'benchmark' name"):
        load_suite_file(kind)
    ok = tmp_path / "mine.toml"
    ok.write_text('schema = 1\nkind = "tasks"\ntasks = ["STSBenchmark"]\n')
    assert resolve_suite(str(ok)).tasks == ("STSBenchmark",)


def test_every_variant_field_is_classified() -> None:
    assert unclassified_fields() == set()


def _spec() -> VariantSpec:
    weight = WeightSpec(
        "google/embeddinggemma-300m",
        "64614b0b8b64f0c6c1e52b07e4e9a4e8fe4d2da2",
        "bfloat16",
        512,
        "q4_0",
        "qat",
        "google/embeddinggemma-300m-qat-q4_0-unquantized",
    )
    return VariantSpec(weight, "embeddinggemma-300m", (("query", "task: search result | query: "),), 128, "int8", "smoke-texts-v1")


def test_keys_are_stable_across_processes_and_change_with_identity() -> None:
    spec = _spec()
    code = "import sys; sys.path.insert(0, 'tests'); from test_catalog import _spec; print(_spec().key, _spec().weight.key)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
        env={"PYTHONHASHSEED": "123", "PATH": ""},
        timeout=60,
    )
    assert out.stdout.split() == [spec.key, spec.weight.key]
    assert spec.label == "embeddinggemma-300m · bf16 · q4_0(qat) · 128d · int8"
    from dataclasses import replace

    assert replace(spec, dim=256).key != spec.key and replace(spec, dim=256).weight.key == spec.weight.key
    assert replace(spec, prompts=()).key != spec.key
    assert replace(spec, weight=replace(spec.weight, dtype="float32")).weight.key != spec.weight.key
