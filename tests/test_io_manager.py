"""The JSON IO manager: a round trip, stable model names, and files in older layouts still load."""

import json
from pathlib import Path

import dagster as dg
import pytest

from knowledge_assets.defs.io_manager import PydanticJsonIOManager
from knowledge_assets.pipeline.models import Chunk, Span
from knowledge_assets.pipeline.stages import ChunkSet

CHUNKS = ChunkSet(
    chunks=(
        Chunk(id="c1", document_id="d1", index=0, start=0, end=5, text="Hello", sha256="0" * 64),
    )
)


def _contexts() -> tuple[dg.OutputContext, dg.InputContext]:
    output = dg.build_output_context(asset_key=dg.AssetKey("chunks"), partition_key="b1")
    loaded = dg.build_input_context(
        asset_key=dg.AssetKey("chunks"), partition_key="b1", upstream_output=output
    )
    return output, loaded


def _stored(tmp_path: Path, document: dict) -> PydanticJsonIOManager:
    path = tmp_path / "chunks" / "b1.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(document), encoding="utf-8")
    return PydanticJsonIOManager(base_path=str(tmp_path))


def test_round_trip_stores_the_stable_name_not_the_module(tmp_path: Path) -> None:
    manager = PydanticJsonIOManager(base_path=str(tmp_path))
    output, loaded = _contexts()
    manager.handle_output(output, CHUNKS)
    (written,) = tmp_path.rglob("*.json")
    document = json.loads(written.read_text(encoding="utf-8"))
    assert document == {"model": "ChunkSet", "data": CHUNKS.model_dump(mode="json")}
    assert manager.load_input(loaded) == CHUNKS


@pytest.mark.parametrize(
    "old_name",
    [
        "knowledge_assets.pipeline.stages:ChunkSet",  # where the class lived when stored
        "knowledge_assets.somewhere.it.never.was:ChunkSet",  # a module path that moved since
    ],
)
def test_a_value_stored_under_a_module_path_still_loads(tmp_path: Path, old_name: str) -> None:
    manager = _stored(tmp_path, {"model": old_name, "data": CHUNKS.model_dump(mode="json")})
    assert manager.load_input(_contexts()[1]) == CHUNKS


@pytest.mark.parametrize("name", ["os:system", "Span", "builtins:dict"])
def test_a_model_outside_the_registry_is_refused(tmp_path: Path, name: str) -> None:
    manager = _stored(tmp_path, {"model": name, "data": {}})
    with pytest.raises(ValueError, match="no stored model"):
        manager.load_input(_contexts()[1])


def test_an_unregistered_output_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    manager = PydanticJsonIOManager(base_path=str(tmp_path))
    with pytest.raises(TypeError, match="STORED_MODELS"):
        manager.handle_output(_contexts()[0], Span(start=1, end=2))
    assert not list(tmp_path.rglob("*"))
