"""Plain names for every registered method and the glossary the pages use."""

from __future__ import annotations

import pytest

from metarec_core import glossary
from metarec_core.methods.registry import available_methods, describe, display_name


def test_every_registered_method_has_a_plain_name_and_description():
    names = [display_name(m) for m in available_methods()]
    assert display_name("mf_foldin_levels") == "MF fold-in, rounded to stars"
    assert len(set(names)) == len(names)  # no two methods look alike
    for method, name in zip(available_methods(), names, strict=True):
        assert "_" not in name, f"{method}: {name!r} is still a code name"
        text = describe(method)
        assert text and text.endswith(".") and "\n" not in text, method


def test_other_names_are_shown_as_they_are():
    assert display_name("metasgd #2") == "metasgd #2"
    assert display_name("my model.pt") == "my model.pt" and describe("my model.pt") == ""


@pytest.mark.parametrize(
    "term",
    [
        "support set",
        "query set",
        "inner step",
        "outer loss",
        "k-shot",
        "nDCG@5",
        "MSE",
        "PCA",
        "fold-in",
        "meta-learning",
        "MAE",
    ],
)
def test_the_glossary_explains_the_jargon_in_plain_words(term):
    e = glossary.lookup(term)
    assert e.plain and e.meaning.endswith(".")
    assert e.plain.lower() != e.term.lower()
    tip = glossary.help_text(term, "What it does.")
    assert tip.startswith("What it does. Technical term: ") and e.term in tip


def test_glossary_terms_are_unique_and_unknown_terms_are_named():
    terms = [e.term.lower() for e in glossary.GLOSSARY]
    assert len(set(terms)) == len(terms)
    with pytest.raises(KeyError, match="no glossary entry 'flux'"):
        glossary.lookup("flux")
