"""The one ``Definitions`` object: assets, checks, the batch job, the inbox sensor, resources."""

from __future__ import annotations

import dagster as dg

from knowledge_assets.assets.batch import BATCH_ASSETS
from knowledge_assets.assets.canonical import canonical_entities
from knowledge_assets.io_managers import PydanticJsonIOManager
from knowledge_assets.jobs import extract_batch
from knowledge_assets.resources import KnowledgeResource
from knowledge_assets.sensors.inbox import inbox_sensor

# Running by default: cross-batch resolution follows every newly ingested batch on its own.
registry_automation = dg.AutomationConditionSensorDefinition(
    "registry_automation",
    target=dg.AssetSelection.assets(canonical_entities),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=5,
)

defs = dg.Definitions(
    assets=[*BATCH_ASSETS, canonical_entities],
    jobs=[extract_batch],
    sensors=[inbox_sensor, registry_automation],
    resources={"knowledge": KnowledgeResource(), "json_io": PydanticJsonIOManager()},
)
