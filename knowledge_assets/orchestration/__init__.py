"""The control plane: the Orchestrator, the batch state machine and the batch event feed.

Everything here reads Dagster's own run and event records; no table of ours stores workflow state.
"""
