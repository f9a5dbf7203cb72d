"""Stores asset outputs as JSON of their pydantic models where every worker can read them."""

from __future__ import annotations

import importlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import BaseModel

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
        document = {
            "model": f"{kind.__module__}:{kind.__qualname__}",
            "data": obj.model_dump(mode="json"),
        }
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(document, out)
        os.replace(tmp, path)

    def load_input(self, context: dg.InputContext) -> BaseModel:
        """Read the upstream partition's JSON back into its model."""
        path = self._path(context)
        document = json.loads(path.read_text(encoding="utf-8"))
        return _model_class(document["model"]).model_validate(document["data"])


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
