"""Graph queries over what the completed batch ingested: entities, evidence spans, exports."""

from __future__ import annotations

import json
import time

import httpx
import rdflib

from knowledge_assets.demo import corpus_files
from tests.service.conftest import Stack
from tests.service.server import auth


def test_entities_can_be_searched_by_name_and_type(stack: Stack) -> None:
    everything = httpx.get(f"{stack.url}/entities", params={"limit": 200}, headers=auth()).json()
    assert everything["items"]
    first = everything["items"][0]
    part = first["name"][1:4]
    found = httpx.get(f"{stack.url}/entities", params={"q": part}, headers=auth()).json()["items"]
    assert first["id"] in {e["id"] for e in found}
    assert all(
        part.lower() in e["name"].lower() or any(part.lower() in a.lower() for a in e["aliases"])
        for e in found
    )
    kind = first["types"][0]
    typed = httpx.get(f"{stack.url}/entities", params={"type": kind}, headers=auth()).json()
    assert typed["items"] and all(kind in e["types"] for e in typed["items"])


def test_an_entity_has_mentions_that_point_at_its_source_text(stack: Stack) -> None:
    texts = {p.name: p.read_text(encoding="utf-8") for p in corpus_files()}
    items = httpx.get(f"{stack.url}/entities", params={"limit": 200}, headers=auth()).json()[
        "items"
    ]
    with_relations = checked = 0
    for summary in items:
        detail = httpx.get(f"{stack.url}/entities/{summary['id']}", headers=auth()).json()
        assert detail["mentions"]
        for mention in detail["mentions"]:
            if mention["document"] in texts:  # other tests' batches share this graph store
                source = texts[mention["document"]]
                assert source[mention["start"] : mention["end"]] == mention["text"]
                checked += 1
        with_relations += bool(detail["relations_out"] or detail["relations_in"])
        for relation in detail["relations_out"]:
            assert relation["subject_id"] == summary["id"]
    assert with_relations > 0 and checked > 0
    missing = httpx.get(f"{stack.url}/entities/no-such-entity", headers=auth())
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "entity_not_found"


def test_the_graph_exports_as_turtle_and_json_ld(stack: Stack) -> None:
    turtle = httpx.get(f"{stack.url}/graph", params={"format": "ttl"}, headers=auth())
    assert turtle.headers["content-type"].startswith("text/turtle")
    graph = rdflib.Graph().parse(data=turtle.text, format="turtle")
    jsonld = httpx.get(f"{stack.url}/graph", params={"format": "jsonld"}, headers=auth())
    assert jsonld.headers["content-type"].startswith("application/ld+json")
    json.loads(jsonld.text)
    assert len(rdflib.Graph().parse(data=jsonld.text, format="json-ld")) == len(graph) > 0


def test_relations_name_both_ends_and_quote_their_evidence(stack: Stack) -> None:
    texts = {p.name: p.read_text(encoding="utf-8") for p in corpus_files()}
    items = httpx.get(f"{stack.url}/entities", params={"limit": 200}, headers=auth()).json()
    quoted = 0
    for summary in items["items"]:
        assert summary["mention_count"] >= 1
        detail = httpx.get(f"{stack.url}/entities/{summary['id']}", headers=auth()).json()
        for relation in detail["relations_out"] + detail["relations_in"]:
            assert relation["subject"]["id"] == relation["subject_id"]
            assert relation["subject"]["name"] and relation["subject"]["types"]
            if relation["object_id"]:
                other = relation["object"]
                assert other["id"] == relation["object_id"]
                assert other["name"] and other["types"]
            assert relation["evidence"]
            for evidence in relation["evidence"]:
                if evidence["document"] in texts:
                    source = texts[evidence["document"]]
                    assert source[evidence["start"] : evidence["end"]] == evidence["text"]
                    quoted += 1
    assert quoted > 0


def test_an_entity_names_its_canonical_entity_once_merged(stack: Stack) -> None:
    def merged() -> dict | None:
        page = httpx.get(f"{stack.url}/entities", params={"limit": 20}, headers=auth()).json()
        for summary in page["items"]:
            detail = httpx.get(f"{stack.url}/entities/{summary['id']}", headers=auth()).json()
            if detail["canonical"]:
                return detail
        return None

    deadline = time.monotonic() + 180
    while (detail := merged()) is None:
        assert time.monotonic() < deadline, "canonical_entities never merged the demo batch"
        time.sleep(2)
    canonical = detail["canonical"]
    assert canonical["members"] >= 1 and canonical["mention_count"] >= len(detail["mentions"])
    assert canonical["name"] and canonical["types"]


def test_a_document_gives_its_text_and_every_mention_in_it(stack: Stack) -> None:
    texts = {p.name: p.read_text(encoding="utf-8") for p in corpus_files()}
    summary = httpx.get(f"{stack.url}/entities", headers=auth()).json()["items"][0]
    detail = httpx.get(f"{stack.url}/entities/{summary['id']}", headers=auth()).json()
    mention = detail["mentions"][0]
    document = httpx.get(f"{stack.url}/documents/{mention['document_id']}", headers=auth()).json()
    assert document["name"] == mention["document"]
    if document["name"] in texts:
        assert document["text"] == texts[document["name"]]
    spans = {(m["start"], m["end"], m["entity_id"]) for m in document["mentions"]}
    assert (mention["start"], mention["end"], summary["id"]) in spans
    assert all(document["text"][m["start"] : m["end"]] == m["text"] for m in document["mentions"])
    missing = httpx.get(f"{stack.url}/documents/doc_nothing", headers=auth())
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "document_not_found"
    types = httpx.get(f"{stack.url}/types", headers=auth()).json()
    assert summary["types"][0] in {t["name"] for t in types}
    assert all(t["entities"] >= 1 for t in types)
