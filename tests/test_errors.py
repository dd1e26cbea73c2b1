"""Closed sets (``evalgemma.errors.Choice``): defined once, one loud lookup with close matches."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import evalgemma
from evalgemma.errors import Choice, ConfigError, unknown_name


def _all_choices() -> list[type[Choice]]:
    for info in pkgutil.walk_packages(evalgemma.__path__, "evalgemma."):
        importlib.import_module(info.name)
    out: list[type[Choice]] = []
    todo = list(Choice.__subclasses__())
    while todo:
        cls = todo.pop()
        out.append(cls)
        todo += cls.__subclasses__()
    return sorted(out, key=lambda c: f"{c.__module__}.{c.__qualname__}")


def test_every_choice_parses_its_values_and_suggests_close_matches() -> None:
    choices = _all_choices()
    names = {f"{c.__module__}.{c.__qualname__}" for c in choices}
    # The closed sets this project defines (a new one joins the check automatically).
    assert {
        "evalgemma.variants.spec.Quant", "evalgemma.variants.spec.EmbedDtype", "evalgemma.variants.views.Similarity",
        "evalgemma.catalog.reference.ReferenceKind", "evalgemma.catalog.xtreme_up.Split", "evalgemma.views.plots.PlotKind",
        "evalgemma.views.report.LeaderboardFormat", "evalgemma.benchmarks.xtreme_up.retrieval.PassageStyle",
    } <= names
    for cls in choices:
        for value in cls.values():
            assert cls.parse(value) is cls(value) and str(cls(value)) == value  # a member reads as its value
        first = cls.values()[0]
        typo = first[:-1] + ("x" if first[-1] != "x" else "y")
        with pytest.raises(ConfigError) as info:
            cls.parse(typo, "--flag")
        message = str(info.value)
        assert message.startswith(f"--flag: unknown {cls.kind()} {typo!r}.")
        assert f"Did you mean '{first}'" in message
        assert message.endswith("Valid: " + ", ".join(sorted(cls.values())))


def test_kind_is_the_docstring_lowered_unless_an_acronym() -> None:
    from evalgemma.catalog.xtreme_up import Split
    from evalgemma.variants.spec import Dtype, EmbedDtype

    assert (Dtype.kind(), EmbedDtype.kind(), Split.kind()) == ("model dtype", "embedding dtype", "XTREME-UP split")


def test_unknown_name_shows_members_as_values() -> None:
    from evalgemma.variants.spec import Quant

    err = unknown_name("weight quantization scheme", "q8", (Quant.Q8_0, Quant.Q4_0), where="--quant")
    assert str(err) == "--quant: unknown weight quantization scheme 'q8'. Did you mean 'q8_0'? Valid: q4_0, q8_0"


def test_sets_spelled_elsewhere_derive_from_their_choice() -> None:
    from evalgemma.gate.regression import CHECK_REFERENCES
    from evalgemma.variants.spec import Quant
    from evalgemma.variants.weight_quant import QUANT_SCHEMES, QUANT_SOURCES
    from evalgemma.views.plots import PLOTS, QUANT_ORDER, PlotKind
    from evalgemma.views.report import _CHART_TITLES

    assert QUANT_ORDER == (Quant.NONE, Quant.Q8_0, Quant.MIXED, Quant.Q4_0)  # most to fewest bits per weight
    assert QUANT_SCHEMES == ("q8_0", "mixed", "q4_0") and QUANT_SOURCES == ("qat", "ptq")
    assert set(PLOTS) == set(_CHART_TITLES) == set(PlotKind)
    assert CHECK_REFERENCES == ("paper", "mteb", "mteb-all")
