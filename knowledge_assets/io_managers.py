"""Stores asset outputs as JSON of their pydantic models where every worker can read them."""

from __future__ import annotations

import functools
import importlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import BaseModel, TypeAdapter

from knowledge_assets.settings import Settings

_ALLOWED_MODULES = ("knowledge_assets.",)


class PydanticJsonIOManager(dg.ConfigurableIOManager):
    """One JSON file per asset and partition: ``<base>/<asset key>/<partition>.json``.

    The file names the model class so loading needs no pickles; only classes from our own
    package may be named, so a tampered file cannot import arbitrary code.
    """

    base_path: str | None = None

    def _root(self) -> Path:
        return Path(self.base_path) if self.base_path else Settings().storage_dir / "assets"

    def _path(self, context: dg.OutputContext | dg.InputContext) -> Path:
        key = "/".join(context.asset_key.path)
        partition = context.asset_partition_key if context.has_asset_partitions else "all"
        return self._root() / key / f"{partition}.json"

    def handle_output(self, context: dg.OutputContext, obj: BaseModel) -> None:
        """Write atomically, so a killed step never leaves half a file behind."""
        path = self._path(context)
        path.parent.mkdir(parents=True, exist_ok=True)
        kind = type(obj)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as out:
            out.write(_head(f"{kind.__module__}:{kind.__qualname__}"))
            out.write(_adapter(kind).dump_json(obj))
            out.write(b"}")
        os.replace(tmp, path)

    def load_input(self, context: dg.InputContext) -> BaseModel:
        """Read the upstream partition's JSON back into its model."""
        model, data = _open_envelope(bytearray(self._path(context).read_bytes()))
        return _model_class(model).model_validate_json(data)


# pydantic's own JSON encoder and parser are several times faster than ``json`` plus
# ``model_validate`` on a batch's graph (0.47 s -> 0.13 s to read 200 documents' validated graph),
# so the file is assembled around pydantic's JSON and its data parsed by pydantic alone. The
# layout is exactly what ``json.dump`` writes, so older files read the same way.
#
# Memory: the run worker holds the batch's values while a step runs, and the file's text is the
# one transient copy on top. Bytes go straight from pydantic to the file, and are read into one
# buffer trimmed in place; slicing a str (read, partition, strip the brace) held three copies of
# the text at once, each as large as the file.
_HEAD = b'{"model": '
_DATA = b', "data": '
_HEAD_LIMIT = 1000  # the model's name comes first: the data starts within these bytes


def _head(model: str) -> bytes:
    return _HEAD + json.dumps(model).encode("utf-8") + _DATA


def _open_envelope(buffer: bytearray) -> tuple[str, bytearray]:
    """The model's name, and the buffer trimmed to the data's JSON (in place, not copied)."""
    found = buffer.find(_DATA, 0, _HEAD_LIMIT)
    if not (buffer.startswith(_HEAD) and found > 0 and buffer.endswith(b"}")):
        raise ValueError("not an asset file written by PydanticJsonIOManager")
    model = json.loads(bytes(buffer[len(_HEAD) : found]))
    del buffer[-1:]
    del buffer[: found + len(_DATA)]  # bytearray drops a prefix by moving its start: no copy
    return str(model), buffer


@functools.cache
def _adapter(kind: type[BaseModel]) -> TypeAdapter[BaseModel]:
    """Serialises ``kind`` straight to UTF-8 bytes (``model_dump_json`` returns a str)."""
    return TypeAdapter(kind)


def _model_class(name: str) -> type[BaseModel]:
    module_name, _, qualname = name.partition(":")
    if not module_name.startswith(_ALLOWED_MODULES):
        raise ValueError(f"refusing to load a model from {module_name!r}")
    kind: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        kind = getattr(kind, part)
    if not (isinstance(kind, type) and issubclass(kind, BaseModel)):
        raise ValueError(f"{name} is not a pydantic model")
    return kind
