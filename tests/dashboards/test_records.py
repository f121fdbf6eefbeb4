"""EvaluationRecord and its JSON form."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from jointsearch.dashboards.records import (
    is_ok,
    records_from_json,
    records_to_json,
)


class TestEvaluationRecord:
    def test_is_frozen_and_copies_its_config(self, make_record):
        """Mutating the caller's dict afterwards must not change the record."""
        config = {"lr": 0.1}
        r = make_record(config=config)
        config["lr"] = 99.0
        assert r.config == {"lr": 0.1}
        with pytest.raises(AttributeError):
            r.val_error = 0.0  # type: ignore[misc]

    def test_defaults_are_nan_and_none(self, make_record):
        r = make_record()
        assert r.status == "ok"
        assert math.isnan(r.cost_s) and math.isnan(r.finished_at)
        assert r.bracket is None and r.n_params is None

    @pytest.mark.parametrize("budget", [-1.0, float("nan"), float("inf")])
    def test_rejects_a_negative_or_non_finite_budget(self, make_record, budget):
        with pytest.raises(ValueError, match="budget must be a finite number >= 0"):
            make_record(budget=budget)

    def test_budget_zero_marks_a_trial_that_failed_before_any_budget(self, make_record):
        r = make_record(budget=0, val_error=float("nan"), status="failed")
        assert r.budget == 0.0 and not r.ok

    @pytest.mark.parametrize(
        "status, val_error, expected",
        [("ok", 0.2, True), ("failed", 0.2, False), ("ok", float("nan"), False),
         ("diverged", float("nan"), False)],
    )
    def test_ok_needs_status_ok_and_a_finite_error(self, make_record, status, val_error, expected):
        r = make_record(status=status, val_error=val_error)
        assert is_ok(r) is expected and r.ok is expected


class TestJson:
    def test_round_trip_keeps_every_field(self, make_record):
        records = [
            make_record("a", 3.0, 0.25, {"lr": 0.1, "opt": "sgd"}, cost_s=12.5,
                        finished_at=1.7e9, bracket=2, n_params=1234),
            make_record("b", 9.0, float("nan"), {"lr": 0.2}, status="failed"),
        ]
        data = records_to_json(records)
        text = json.dumps(data, allow_nan=False)  # strict JSON: NaN written as null
        back = records_from_json(json.loads(text))
        assert back[0] == records[0]
        assert back[1].trial_id == "b" and back[1].status == "failed"
        assert math.isnan(back[1].val_error) and math.isnan(back[1].cost_s)
        assert data[1]["val_error"] is None

    def test_numpy_values_from_configspace_become_plain(self, make_record):
        r = make_record(config={"blocks": np.int64(3), "opt": np.str_("adam"), "lr": np.float64(0.5)})
        data = records_to_json([r])
        assert json.dumps(data)  # would raise on np.int64
        assert type(data[0]["config"]["blocks"]) is int

    def test_missing_required_key_is_one_clear_error(self):
        with pytest.raises(ValueError, match=r"#0 lacks required key\(s\) \['val_error'\]"):
            records_from_json([{"trial_id": "a", "config": {}, "budget": 1.0}])

    def test_optional_keys_may_be_missing(self):
        (r,) = records_from_json([{"trial_id": 7, "config": {}, "budget": 1, "val_error": 0.3}])
        assert r.trial_id == "7" and r.budget == 1.0 and r.status == "ok"


def test_budget_spent_round_trips_and_defaults_to_the_budget(make_record):
    """A continued rung records what it trained; without a record, an evaluation counts its budget."""
    from jointsearch.dashboards.records import EvaluationRecord, spent

    continued = EvaluationRecord("a", {}, 9.0, 0.2, cost_s=1.0, finished_at=2.0, budget_spent=6.0)
    assert records_from_json(records_to_json([continued]))[0] == continued
    assert spent(continued) == 6.0
    assert spent(make_record("b", 9.0, 0.3)) == 9.0
