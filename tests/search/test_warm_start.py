"""Warm start from an earlier search (issue 15, item 3): what is taken, what is left out, and a
real search seeded by another through the resume path's warm start."""

from __future__ import annotations

import json

import mlflow
import pytest

from jointsearch.dashboards.records import EvaluationRecord
from jointsearch.search import UsageError, read_search, run_search
from jointsearch.search.warm_start import fits, parse_source, top_configs
from jointsearch.spaces import load_space


class TestPieces:
    def test_source_names_an_experiment_and_optionally_a_search_run(self):
        assert parse_source("cifar") == ("cifar", None)
        assert parse_source("cifar:abc123") == ("cifar", "abc123")
        assert parse_source("team:cifar:abc123") == ("team:cifar", "abc123")
        with pytest.raises(UsageError):
            parse_source("cifar:")

    def test_top_configs_rank_by_highest_budget_then_error_and_skip_failures(self):
        def rec(tid, budget, err, status="ok"):
            return EvaluationRecord(trial_id=tid, config={"x": tid}, budget=budget, val_error=err, status=status)

        records = [rec("a", 1, 0.1), rec("b", 1, 0.3), rec("b", 3, 0.25), rec("c", 3, 0.2),
                   rec("d", 9, float("nan"), "failed"), rec("a", 3, 0.4)]
        assert top_configs(records, 2) == [{"x": "c"}, {"x": "b"}]
        assert top_configs(records, 10) == [{"x": "c"}, {"x": "b"}, {"x": "a"}]

    def test_a_configuration_fits_only_a_space_with_its_names_and_ranges(self):
        tiny = load_space("tiny")
        config = dict(tiny.get_default_configuration())
        assert fits(tiny, config) is not None
        assert fits(tiny, {**config, "learning_rate": 50.0}) is None  # outside the range
        assert fits(tiny, {**config, "unknown": 1}) is None
        assert fits(load_space("resnet18"), config) is None  # architecture fixed otherwise


@pytest.mark.slow
def test_a_search_starts_from_another_and_evaluates_its_best_first(ray_runtime, make_settings, sqlite_uri):
    first = run_search(make_settings(experiment="earlier", num_samples=6, seed=4))
    earlier = read_search(sqlite_uri, "earlier", first.search_run_id)
    ok = [r for r in earlier.records if r.status == "ok"]
    best_two = top_configs(earlier.records, 2)

    second = run_search(make_settings(experiment="later", num_samples=4, seed=5, scheduler="bohb",
                                      warm_start_from=f"earlier:{first.search_run_id}", warm_start_top=2))
    client = mlflow.MlflowClient(tracking_uri=sqlite_uri)
    parent = client.get_run(second.search_run_id)
    assert parent.data.metrics["warm_start_observations"] == len(ok)
    assert parent.data.tags["jointsearch.warm_start_from"] == first.search_run_id
    later = read_search(sqlite_uri, "later", second.search_run_id)
    assert len(later.trial_runs) == 4
    # The earlier search's records stay out of this search's own results.
    assert {r.trial_id for r in later.records}.isdisjoint({r.trial_id for r in earlier.records})
    # The two best come first: they are the first two trials started (two slots start them
    # together, so their own order may swap) and the ones tagged as warm-start proposals.
    configs = {r.trial_id: r.config for r in later.records}
    warm = {t for t, tags in later.trial_tags.items() if tags.get("proposal") == "warm_start"}
    trials = client.search_runs([parent.info.experiment_id], filter_string="tags.`jointsearch.kind` = 'trial'",
                                order_by=["attributes.start_time ASC"])
    assert {t.data.tags["jointsearch.trial_id"] for t in trials[:2]} == warm

    def key(config):
        return json.dumps(dict(config), sort_keys=True)

    assert sorted(key(configs[t]) for t in warm) == sorted(key(c) for c in best_two)


@pytest.mark.slow
def test_nothing_compatible_or_another_budget_unit_is_a_usage_error_that_writes_nothing(
        ray_runtime, make_settings, sqlite_uri):
    run_search(make_settings(experiment="earlier", num_samples=3, max_budget=3))
    with pytest.raises(UsageError, match="fits this search's space"):
        run_search(make_settings(experiment="other-space", space="resnet18", warm_start_from="earlier"))
    with pytest.raises(UsageError, match="cannot be compared"):
        run_search(make_settings(experiment="other-unit", budget_unit="seconds", warm_start_from="earlier"))
    with pytest.raises(UsageError, match="needs --warm-start-from"):
        run_search(make_settings(experiment="no-source", warm_start_top=2))
    client = mlflow.MlflowClient(tracking_uri=sqlite_uri)
    assert all(client.get_experiment_by_name(n) is None for n in ("other-space", "other-unit", "no-source"))
