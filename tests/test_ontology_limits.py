"""Ontologies are read with bounded work: iterative walks, a depth limit, cheap comparison."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from knowledge_assets.pipeline.ontology import OntologyError, load_ontology, parse_ontology
from knowledge_assets.pipeline.ontology_check import (
    ExpectedOntology,
    OntologyLimits,
    OntologyVerdict,
    check_submitted,
    fingerprint,
)
from tests.conftest import PROJECT_ROOT
from tests.hostile import HEAD, blank_node_rings, subclass_chain


def test_a_3000_deep_subclass_chain_is_refused_by_the_depth_limit_not_a_recursion_error() -> None:
    with pytest.raises(OntologyError, match=r"subclass chain.*deeper than 128"):
        parse_ontology(subclass_chain(3000), source="deep.ttl")


def test_the_same_limit_guards_knowledge_ontology(tmp_path: Path) -> None:
    path = tmp_path / "deep.ttl"
    path.write_text(subclass_chain(3000), encoding="utf-8")
    with pytest.raises(OntologyError, match=r"deep\.ttl: subclass chain"):
        load_ontology(path)


def test_a_chain_at_the_limit_is_accepted_with_every_ancestor() -> None:
    ontology = parse_ontology(subclass_chain(128), source="ok.ttl")
    assert len(ontology.ancestors("C0")) == 128
    assert ontology.root_of("C0") == "C127"


def test_a_cycle_is_still_named() -> None:
    text = (
        HEAD
        + "ex:A a owl:Class ; rdfs:subClassOf ex:B .\nex:B a owl:Class ; rdfs:subClassOf ex:A ."
    )
    with pytest.raises(OntologyError, match="subclass cycle: A → B → A"):
        parse_ontology(text)


def test_fingerprint_ignores_blank_node_labels_and_formatting() -> None:
    one = HEAD + "ex:A a owl:Class .\n_:x ex:p ex:A ."
    two = HEAD + "\n\n_:other  ex:p ex:A .  ex:A a owl:Class ."
    assert fingerprint(one) == fingerprint(two)
    assert fingerprint(one) != fingerprint(HEAD + "ex:A a owl:Class .")


def test_a_blank_node_bomb_is_refused_as_a_mismatch_in_milliseconds() -> None:
    configured = load_ontology()
    started = time.monotonic()
    verdict = check_submitted(
        blank_node_rings(8, 4), ExpectedOntology.of(configured), OntologyLimits()
    )
    assert time.monotonic() - started < 1.0
    assert verdict.code == "ontology_mismatch"


def test_the_configured_ontology_itself_is_accepted() -> None:
    configured = load_ontology()
    path = PROJECT_ROOT / "knowledge_assets" / "pipeline" / "data" / "default_ontology.ttl"
    text = path.read_text(encoding="utf-8")
    assert (
        check_submitted(text, ExpectedOntology.of(configured), OntologyLimits())
        == OntologyVerdict.accepted()
    )


@pytest.mark.parametrize(
    ("limits", "code"),
    [
        (OntologyLimits(max_triples=10), "ontology_too_complex"),
        (OntologyLimits(max_blank_nodes=3), "ontology_too_complex"),
    ],
)
def test_limits_on_triples_and_blank_nodes(limits: OntologyLimits, code: str) -> None:
    verdict = check_submitted(blank_node_rings(3, 4), ExpectedOntology.of(load_ontology()), limits)
    assert verdict.code == code
    assert "limit" in verdict.message
