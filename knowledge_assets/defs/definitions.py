"""The one ``Definitions`` object: assets, checks, the batch and deletion jobs, sensors, resources.

``workspace.yaml`` loads ``defs`` from here; ``warm_up`` is the hook dagster.yaml names for the
run launcher's warm workers (``knowledge worker`` calls it before forking its pool).
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from knowledge_assets.defs.extraction.assets import BATCH_ASSETS
from knowledge_assets.defs.extraction.job import extract_batch
from knowledge_assets.defs.extraction.sensor import inbox_sensor
from knowledge_assets.defs.io_manager import PydanticJsonIOManager
from knowledge_assets.defs.lifecycle.assets import document_deletions
from knowledge_assets.defs.lifecycle.job import delete_documents
from knowledge_assets.defs.registry.assets import canonical_entities
from knowledge_assets.defs.resources import KnowledgeResource, warm_up_extractor
from knowledge_assets.instance.queues import REGISTRY, RUN_KIND_TAG
from knowledge_assets.settings import Settings

__all__ = ["defs", "warm_up"]

# Running by default: cross-batch resolution follows every newly ingested batch on its own.
registry_automation = dg.AutomationConditionSensorDefinition(
    "registry_automation",
    target=dg.AssetSelection.assets(canonical_entities),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=5,
    run_tags={RUN_KIND_TAG: REGISTRY},  # its queue, and Dagster's limit of one merge at a time
)

defs = dg.Definitions(
    assets=[*BATCH_ASSETS, canonical_entities, document_deletions],
    jobs=[extract_batch, delete_documents],
    sensors=[inbox_sensor, registry_automation],
    resources={"knowledge": KnowledgeResource(), "json_io": PydanticJsonIOManager()},
    # Every job in the run's process: Celery's pool children are daemonic and may not start
    # processes (the registry's asset job failed with the multiprocess executor, measured).
    executor=dg.in_process_executor,
)


def warm_up() -> dict[str, Any]:
    """Build the asset graph and load the extractor, so processes forked afterwards start warm."""
    defs.get_repository_def()
    return warm_up_extractor(Settings())
