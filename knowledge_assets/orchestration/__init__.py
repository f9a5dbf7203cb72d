"""Control of batches on the Dagster platform: orchestrator, batch state, run health and fencing.

Everything here reads Dagster's own run and event records; no table of ours stores workflow state.
"""
