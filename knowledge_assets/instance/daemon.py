"""``dagster-daemon``, with the fork server warming up before the first run is dequeued.

Dagster creates the run launcher lazily, on the first launch, so a fork server started by the
launcher itself would warm up while the first run waits. This entry point starts it first, when
the instance's launcher asks for warm workers, and then hands over to Dagster's own daemon CLI
with the same arguments (``python -m knowledge_assets.instance.daemon run -w workspace.yaml``).
"""

from __future__ import annotations

from dagster import DagsterInstance

from knowledge_assets.instance.dagster_internals import run_dagster_daemon_cli
from knowledge_assets.instance.forkserver import shared_client
from knowledge_assets.instance.launcher import HealthCheckedRunLauncher


def prewarm() -> bool:
    """Start the process's fork server if dagster.yaml enables warm workers; whether it did."""
    with DagsterInstance.get() as instance:
        launcher = instance.run_launcher
        if not (isinstance(launcher, HealthCheckedRunLauncher) and launcher.warm_workers):
            return False
        preload = launcher.preload
    assert preload is not None  # warm_workers implies a preload hook
    shared_client(preload).start()
    return True


def main() -> None:
    """Pre-warm, then run ``dagster-daemon`` with this process's arguments."""
    prewarm()
    run_dagster_daemon_cli()


if __name__ == "__main__":
    main()
