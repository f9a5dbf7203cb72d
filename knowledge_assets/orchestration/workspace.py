"""Our code location loaded in this process, under the name the daemon knows it by.

Runs created from it carry the location name of ``workspace.yaml``, so the daemon that dequeues
them launches them from its own code server: this process only builds run records.
"""

from __future__ import annotations

import sys
from pathlib import Path

import dagster as dg
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.remote_representation.code_location import CodeLocation
from dagster._core.remote_representation.external import RemoteJob
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import BaseWorkspaceRequestContext, WorkspaceProcessContext
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget

PROJECT_ROOT = Path(__file__).resolve().parents[2]
LOCATION = "knowledge_assets"  # the location_name in workspace.yaml
REPOSITORY = "__repository__"  # the repository a Definitions object becomes
JOB = "extract_batch"


class Workspace:
    """An in-process workspace with our one code location; close it when done."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        origin = InProcessCodeLocationOrigin(
            LoadableTargetOrigin(
                executable_path=sys.executable,
                module_name="knowledge_assets.definitions",
                attribute="defs",
                working_directory=str(PROJECT_ROOT),
            ),
            location_name=LOCATION,
        )
        self._process = WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget(origin))

    def request(self) -> BaseWorkspaceRequestContext:
        """A request context (cheap; one per operation)."""
        return self._process.create_request_context()

    def location(self, request: BaseWorkspaceRequestContext) -> CodeLocation:
        """Our code location."""
        return request.get_code_location(LOCATION)

    def job(self, request: BaseWorkspaceRequestContext) -> RemoteJob:
        """The batch job as the daemon sees it."""
        return self.location(request).get_repository(REPOSITORY).get_full_job(JOB)

    def close(self) -> None:
        """Release the workspace."""
        self._process.__exit__(None, None, None)
