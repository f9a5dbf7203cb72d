"""The batch state machine: the derivation from run records, and the transition table."""

from __future__ import annotations

import random
from itertools import pairwise, product

import pytest

from knowledge_assets.orchestration.state import (
    LEGAL_TRANSITIONS,
    BatchState,
    IllegalTransition,
    RunView,
    check_transition,
    derive_state,
)
from knowledge_assets.pipeline.progress import STAGES

S = BatchState


def done(*stages: str, running: str | None = None) -> dict[str, str]:
    steps = dict.fromkeys(stages, "success")
    if running:
        steps[running] = "in_progress"
    return steps


@pytest.mark.parametrize(
    ("runs", "expected", "stage"),
    [
        ([], S.PENDING, None),
        ([RunView("a", "QUEUED")], S.PENDING, None),
        ([RunView("a", "STARTED", done(running="documents"))], S.PREPROCESSING, "documents"),
        ([RunView("a", "STARTED", done("documents"))], S.PREPROCESSING, "chunks"),
        ([RunView("a", "STARTED", done(*STAGES[:2]))], S.EXTRACTING, "extractions"),
        ([RunView("a", "STARTED", done(*STAGES[:3]))], S.RESOLVING, "resolved_entities"),
        ([RunView("a", "STARTED", done(*STAGES[:4]))], S.VALIDATING, "validated_graph"),
        ([RunView("a", "STARTED", done(*STAGES[:5]))], S.INGESTING, "ingested_graph"),
        ([RunView("a", "SUCCESS", done(*STAGES))], S.COMPLETE, None),
    ],
)
def test_each_state_comes_from_the_latest_run_and_its_steps(
    runs: list[RunView], expected: BatchState, stage: str | None
) -> None:
    derived = derive_state(runs)
    assert (derived.state, derived.stage) == (expected, stage)


def test_a_failure_names_the_failed_and_the_last_successful_stage() -> None:
    failed = RunView("a", "FAILURE", {**done(*STAGES[:2]), "extractions": "failure"}, error="boom")
    derived = derive_state([failed])
    assert derived.state == S.FAILED
    assert (derived.failed_stage, derived.last_successful_stage) == ("extractions", "chunks")
    assert derived.error == "boom"


def test_a_failure_that_dagster_will_retry_is_still_in_its_stage() -> None:
    failed = RunView("a", "FAILURE", done(*STAGES[:2]), will_retry=True)
    assert derive_state([failed]).state == S.EXTRACTING
    retry = RunView("b", "QUEUED")
    assert derive_state([failed, retry]).state == S.EXTRACTING


def test_a_failure_whose_retry_verdict_is_not_recorded_yet_is_not_final() -> None:
    failed = RunView("a", "FAILURE", done(*STAGES[:2]), will_retry=None)
    assert derive_state([failed]).state == S.EXTRACTING
    decided = RunView("a", "FAILURE", done(*STAGES[:2]), will_retry=False)
    assert derive_state([decided]).state == S.FAILED


def test_an_interrupted_batch_is_failed_with_the_reason_and_resumes_where_it_stopped() -> None:
    stopped = RunView("a", "CANCELED", done(*STAGES[:3]), interrupted=True)
    assert (derive_state([stopped]).state, derive_state([stopped]).error) == (
        S.FAILED,
        "interrupted",
    )
    resumed = RunView("b", "STARTED", done(running="resolved_entities"))
    assert derive_state([stopped, resumed]).state == S.RESOLVING


def test_a_retry_of_a_batch_that_failed_before_any_stage_is_not_pending_again() -> None:
    failed = RunView("a", "FAILURE")
    assert derive_state([failed, RunView("b", "QUEUED")]).state == S.PREPROCESSING


def test_complete_is_final_even_when_the_batch_is_materialised_again() -> None:
    first = RunView("a", "SUCCESS", done(*STAGES))
    again = RunView("b", "STARTED", done(running="documents"))
    assert derive_state([first, again]).state == S.COMPLETE


@pytest.mark.parametrize(("before", "after"), list(product(BatchState, BatchState)))
def test_the_transition_table_allows_exactly_its_moves(
    before: BatchState, after: BatchState
) -> None:
    order = [S.PENDING, S.PREPROCESSING, S.EXTRACTING, S.RESOLVING, S.VALIDATING, S.INGESTING]
    if before == after:
        legal = True
    elif before == S.COMPLETE:
        legal = False
    elif before == S.FAILED:
        legal = after not in (S.PENDING, S.FAILED)
    elif after in (S.FAILED, S.COMPLETE):
        legal = True
    else:
        legal = after != S.PENDING and order.index(after) > order.index(before)
    assert (after in LEGAL_TRANSITIONS[before] or before == after) == legal
    if legal:
        assert check_transition(before, after) == after
    else:
        with pytest.raises(IllegalTransition):
            check_transition(before, after)


def simulate(rng: random.Random) -> list[BatchState]:
    """A random life of a batch as Dagster records it; the states an observer would see."""
    runs: list[RunView] = []
    completed: list[str] = []
    seen = [derive_state(runs).state]
    runs.append(RunView("r0", "QUEUED"))
    for _ in range(60):
        latest = runs[-1]
        move = rng.random()
        if latest.status == "QUEUED":
            runs[-1] = RunView(latest.run_id, "STARTED")
        elif latest.status == "STARTED":
            remaining = [s for s in STAGES if s not in completed]
            if move < 0.15:
                runs[-1] = RunView(latest.run_id, "FAILURE", latest.steps, will_retry=move < 0.1)
            elif move < 0.2:
                runs[-1] = RunView(latest.run_id, "CANCELED", latest.steps, interrupted=True)
            elif not remaining:
                runs[-1] = RunView(latest.run_id, "SUCCESS", latest.steps)
            else:
                completed.append(remaining[0])
                runs[-1] = RunView(
                    latest.run_id, "STARTED", {**latest.steps, remaining[0]: "success"}
                )
        elif latest.status in ("FAILURE", "CANCELED"):
            if latest.will_retry or move < 0.5:  # the retry daemon, or a user's resume
                runs.append(RunView(f"r{len(runs)}", "QUEUED"))
        else:
            break
        seen.append(derive_state(runs).state)
    return seen


def test_no_life_of_a_batch_makes_an_illegal_transition() -> None:
    rng = random.Random(20261125)
    visited: set[tuple[BatchState, BatchState]] = set()
    for _ in range(3000):
        states = simulate(rng)
        for before, after in pairwise(states):
            check_transition(before, after)
            visited.add((before, after))
    single_steps = {(a, b) for a, targets in LEGAL_TRANSITIONS.items() for b in targets}
    # Every move a batch can really make step by step shows up in the simulation.
    assert {
        (S.PENDING, S.PREPROCESSING),
        (S.INGESTING, S.COMPLETE),
        (S.FAILED, S.EXTRACTING),
    } <= visited
    assert visited <= single_steps | {(s, s) for s in BatchState}
