"""The JSON IO manager: a round trip through a file, and files in the older layout still load."""

import json
from pathlib import Path

import dagster as dg
import pytest

from knowledge_assets.io_managers import PydanticJsonIOManager
from knowledge_assets.pipeline.models import Span


def _contexts() -> tuple[dg.OutputContext, dg.InputContext]:
    output = dg.build_output_context(asset_key=dg.AssetKey("spans"), partition_key="b1")
    loaded = dg.build_input_context(
        asset_key=dg.AssetKey("spans"), partition_key="b1", upstream_output=output
    )
    return output, loaded


def test_round_trip_and_the_file_is_one_json_document(tmp_path: Path) -> None:
    manager = PydanticJsonIOManager(base_path=str(tmp_path))
    output, loaded = _contexts()
    span = Span(start=3, end=7)
    manager.handle_output(output, span)
    (written,) = tmp_path.rglob("*.json")
    document = json.loads(written.read_text(encoding="utf-8"))
    assert document == {"model": "knowledge_assets.pipeline.models:Span", "data": span.model_dump()}
    assert manager.load_input(loaded) == span


def test_a_file_written_by_json_dump_loads(tmp_path: Path) -> None:
    manager = PydanticJsonIOManager(base_path=str(tmp_path))
    _, loaded = _contexts()
    path = tmp_path / "spans" / "b1.json"
    path.parent.mkdir(parents=True)
    document = {"model": "knowledge_assets.pipeline.models:Span", "data": {"start": 1, "end": 2}}
    path.write_text(json.dumps(document), encoding="utf-8")
    assert manager.load_input(loaded) == Span(start=1, end=2)


def test_a_foreign_model_is_refused(tmp_path: Path) -> None:
    manager = PydanticJsonIOManager(base_path=str(tmp_path))
    _, loaded = _contexts()
    path = tmp_path / "spans" / "b1.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"model": "os:system", "data": {}}), encoding="utf-8")
    with pytest.raises(ValueError, match="refusing"):
        manager.load_input(loaded)
