"""The definitions load, and the asset graph is the one the design names."""

from __future__ import annotations

import dagster as dg

from knowledge_assets.defs.definitions import defs
from knowledge_assets.defs.extraction.assets import BATCH_ASSETS as BATCH_ASSET_DEFS
from knowledge_assets.defs.extraction.partitions import BATCHES
from knowledge_assets.defs.lifecycle.partitions import DELETIONS
from knowledge_assets.pipeline.progress import STAGES

BATCH_ASSETS = {
    "documents": set(),
    "chunks": {"documents"},
    "extractions": {"documents", "chunks"},
    "resolved_entities": {"documents", "chunks", "extractions"},
    "validated_graph": {"resolved_entities"},
    "ingested_graph": {"documents", "chunks", "extractions", "validated_graph"},
}


def test_asset_graph_keys_dependencies_and_partitions() -> None:
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == {*BATCH_ASSETS, "canonical_entities", "document_deletions"}
    for name, parents in BATCH_ASSETS.items():
        node = graph.get(dg.AssetKey(name))
        assert {p.to_user_string() for p in node.parent_keys} == parents
        assert isinstance(node.partitions_def, dg.DynamicPartitionsDefinition)
        assert node.partitions_def.name == BATCHES
    canonical = graph.get(dg.AssetKey("canonical_entities"))
    assert canonical.partitions_def is None
    assert {p.to_user_string() for p in canonical.parent_keys} == {"ingested_graph"}
    deletions = graph.get(dg.AssetKey("document_deletions"))
    assert isinstance(deletions.partitions_def, dg.DynamicPartitionsDefinition)
    assert deletions.partitions_def.name == DELETIONS
    assert not deletions.parent_keys


def test_asset_checks_give_red_lights() -> None:
    graph = defs.resolve_asset_graph()
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert checks == {
        ("resolved_entities", "mention_spans_match"),
        ("validated_graph", "no_shacl_violations"),
        ("validated_graph", "nothing_quarantined"),
    }


def test_job_sensors_and_resources() -> None:
    job = defs.resolve_job_def("extract_batch")
    assert job.partitions_def is not None
    deleting = defs.resolve_job_def("delete_documents")
    assert deleting.partitions_def is not None
    assert set(deleting.graph.node_names()) == {"document_deletions"}
    sensors = {s.name: s for s in defs.get_repository_def().sensor_defs}
    assert set(sensors) == {"inbox_sensor", "registry_automation"}
    assert all(s.default_status == dg.DefaultSensorStatus.RUNNING for s in sensors.values())


def test_the_batch_assets_are_the_pipelines_stages_in_order() -> None:
    assert tuple(a.key.to_user_string() for a in BATCH_ASSET_DEFS) == STAGES
    job_steps = (
        defs.resolve_job_def("extract_batch").get_subset(op_selection=None).graph.node_names()
    )
    assert set(job_steps) == set(STAGES)
