"""One evaluation record from the trainer's result to MLflow and back (search/evaluations.py).

The record the live dashboards receive while a search runs must be the record that the report,
export, warm start and resume read back later: the same status, error, cost, size, spend, rung
and node, for every status.
"""

from __future__ import annotations

import math

import pytest

from jointsearch import spaces
from jointsearch.dashboards.records import EvaluationRecord, Status, records_to_json
from jointsearch.search.results import read_search
from jointsearch.search.tracking import SearchTracker

RESULTS = {  # status -> what a trainer returned for it
    Status.OK: {"val_error": 0.25, "cost_s": 1.5, "n_params": 1234, "budget_spent": 2.0, "train_loss": 0.7},
    Status.DIVERGED: {"val_error": 1.0, "status": "diverged", "cost_s": 0.5, "n_params": 99},
    Status.FAILED: {"val_error": float("nan"), "status": "failed"},
    Status.INFEASIBLE: {"val_error": 1.0, "status": "infeasible", "n_params": 10**9, "budget_spent": 0.0},
    Status.INTERRUPTED: {"val_error": float("inf"), "status": "interrupted", "cost_s": 3.0},
}


@pytest.fixture
def tracker(sqlite_uri):
    tracker = SearchTracker(sqlite_uri, "records", step_scale=1)
    space = spaces.get("tiny")
    tracker.start_search({"space": "tiny"}, run_name="round-trip", budget_unit="epochs",
                         artifacts={"space.json": spaces.to_json(space)})
    yield tracker, space


def _sample(space, seed):
    space.seed(seed)
    return spaces.config_dict(space.sample_configuration())


def test_every_status_reads_back_as_the_record_that_was_built(tracker):
    tracker, space = tracker
    built = []
    for k, (status, result) in enumerate(RESULTS.items()):
        trial_id = f"trial-{k}"
        tracker.trial_started(trial_id, _sample(space, k), {"bracket": "2"})
        built.append(tracker.evaluation(trial_id, 1.0, {"val_error": 0.5, "cost_s": 0.1}, rung=0, node="abc123"))
        built.append(tracker.evaluation(trial_id, 3.0, result, rung=1, node="def456"))
        tracker.trial_ended(trial_id, "completed" if status is Status.OK else "failed", kind=status.value)
    tracker.flush()
    read = read_search(tracker.uri, "records").records
    key = lambda r: (r.trial_id, r.budget)  # noqa: E731
    # Compared in their JSON form, where a missing measurement (NaN) is null and so equal to itself.
    assert records_to_json(sorted(read, key=key)) == records_to_json(sorted(built, key=key))
    statuses = {r.trial_id: r.status for r in read if r.budget == 3.0}
    assert statuses == {f"trial-{k}": status for k, status in enumerate(RESULTS)}
    assert all(isinstance(r.status, Status) for r in read)


def test_the_record_holds_what_the_trainer_measured(tracker):
    tracker, space = tracker
    tracker.trial_started("t", _sample(space, 7), {})
    record = tracker.evaluation("t", 3.0, RESULTS[Status.INTERRUPTED], rung=1, node="n1")
    assert record.status is Status.INTERRUPTED and math.isnan(record.val_error)  # inf is no measurement
    assert (record.cost_s, record.rung, record.node, record.bracket) == (3.0, 1, "n1", None)
    assert not record.ok


def test_an_unknown_trainer_status_is_a_failure():
    record = EvaluationRecord("t", {}, 1.0, 0.3, status="exploded")
    assert record.status is Status.FAILED and record.status == "failed"
