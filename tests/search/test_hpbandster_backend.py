"""The hpbandster preset: hpbandster's own BOHB master and workers, tracked into a real MLflow store.

Pure bracket arithmetic first, then real searches on the fake trainer (about a second each), read
back with ``read_search`` and the ``MlflowClient`` exactly as the rest of jointsearch reads them.
"""

import os
import sys
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pytest
from ConfigSpace import Categorical, ConfigurationSpace, Float, Integer

from jointsearch import spaces
from jointsearch.search.budgets import rung_budgets
from jointsearch.search.hpbandster_backend import (bracket_of, bracket_size, plan_brackets, rung_index,
                                                   run_hpbandster, stage_sizes, trial_id_of)
from jointsearch.search.results import read_search
from jointsearch.search.tracking import SearchTracker

pytestmark = pytest.mark.timeout(120)  # a Pyro call that cannot be delivered hangs instead of failing


@dataclass(frozen=True)
class Outcome:
    """What one backend run left behind: its return value, the MLflow record, and leftovers."""

    counts: dict
    results: object  # read_search's SearchResults
    wall_s: float
    threads_left: list  # names of threads it started that were still alive afterwards (MLflow's excepted)
    sockets_left: int  # sockets it opened and did not close (-1 where /proc is not there)


def open_sockets() -> set:
    fd_dir = Path("/proc/self/fd")
    if not fd_dir.is_dir():
        return set()
    found = set()
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:"):
            found.add(target)
    return found


def run_search(settings, space=None, tracker_class=SearchTracker) -> Outcome:
    """Open the parent run as ``run_search`` does, run the backend, close it, read it back."""
    space = space if space is not None else spaces.get(settings.space)
    tracker = tracker_class(settings.tracking_uri, settings.experiment, 1)
    tracker.start_search(settings.as_params(), run_name="t", budget_unit="epochs",
                         artifacts={"space.json": spaces.to_json(space)})
    threads_before, sockets_before = set(threading.enumerate()), open_sockets()
    started = time.monotonic()
    try:
        counts = run_hpbandster(settings, space, tracker, "t")
    finally:
        wall_s = time.monotonic() - started
        time.sleep(0.1)
        threads_left = [t.name for t in threading.enumerate()
                        if t not in threads_before and t.is_alive() and not t.name.startswith("MLflow")]
        sockets_left = len(open_sockets() - sockets_before) if Path("/proc/self/fd").is_dir() else -1
        tracker.end_search()
    results = read_search(settings.tracking_uri, settings.experiment, tracker.parent_run_id)
    return Outcome(counts, results, wall_s, threads_left, sockets_left)


def history(settings, run_id, metric):
    client = mlflow.MlflowClient(settings.tracking_uri)
    return {m.step: m.value for m in client.get_metric_history(run_id, metric)}


class TestBrackets:
    def test_our_rungs_are_hpbandsters_budgets_where_both_are_exact(self):
        """hpbandster puts its budgets at max * eta**-k; for these settings they are exactly our rungs."""
        for low, high, eta in [(1, 9, 3), (400, 10800, 3), (1, 27, 3), (0.5, 4.5, 3), (1, 8, 2)]:
            n = -int(np.log(low / high) / np.log(eta)) + 1  # hpbandster's max_SH_iter
            theirs = (high * np.power(eta, -np.linspace(n - 1, 0, n))).tolist()
            assert theirs == pytest.approx(rung_budgets(low, high, eta), rel=1e-12)

    def test_rung_index_snaps_float_noise_to_the_nearest_rung(self):
        rungs = [400.0, 1200.0, 3600.0, 10800.0]
        assert [rung_index(b, rungs) for b in (400.0000001, 1199.9999999, 3600.0, 10800.0)] == [0, 1, 2, 3]

    def test_bracket_sizes_follow_hpbandster(self):
        """Iterations start from the largest bracket: s = 3, 2, 1, 0 with 27, 9, 6, 4 configurations."""
        assert [bracket_of(i, 4) for i in range(6)] == [3, 2, 1, 0, 3, 2]
        assert [bracket_size(s, 4, 3) for s in (3, 2, 1, 0)] == [27, 9, 6, 4]
        assert [bracket_size(s, 3, 3.0) for s in (2, 1, 0)] == [9, 3, 3]
        assert stage_sizes(9, 2, 3) == [9, 3, 1]
        assert stage_sizes(5, 2, 3) == [5, 1, 1]

    def test_plan_samples_exactly_num_samples_cutting_the_last_bracket(self):
        assert plan_brackets(9, 3, 3) == [9]
        assert plan_brackets(6, 3, 3) == [6]
        assert plan_brackets(20, 3, 3) == [9, 3, 3, 5]
        assert plan_brackets(1, 1, 3) == [1]
        for n in range(1, 60):
            assert sum(plan_brackets(n, 4, 3)) == n

    def test_trial_ids_name_hpbandsters_config_ids(self):
        assert trial_id_of((0, 0, 3)) == "hb-0-0-3"
        assert trial_id_of((np.int64(2), 1, 0)) == "hb-2-1-0"


@pytest.fixture(scope="module")
def store(tmp_path_factory, fresh_store):
    """One SQLite store for the module (creating one costs seconds); each test has its own experiment."""
    return fresh_store(tmp_path_factory.mktemp('store') / 'mlflow.db')


@pytest.fixture
def settings_in_store(make_settings, store, request):
    """``make_settings`` writing into the module's store, in an experiment named after the test."""
    def make(**overrides):
        return make_settings(**{"mlflow_uri": store, "experiment": request.node.name, **overrides})

    return make


@pytest.fixture(scope="module")
def nine_configurations(tmp_path_factory, store):
    """One search shared by the tests that only read it: num_samples=9 (one s=2 bracket), 2 workers.

    The settings are those of conftest's ``make_settings``, which is per test."""
    from jointsearch.search import SearchSettings

    tmp = tmp_path_factory.mktemp("hpbandster")
    settings = SearchSettings(space="tiny", dataset="digits", min_budget=1, max_budget=9, eta=3, num_samples=9,
                              mlflow_uri=store, experiment="nine",
                              storage_path=str(tmp / "ray_results"), trainer="jointsearch.search.testing:fake_trainer",
                              seed=1, max_concurrent=2)
    return settings, run_search(settings)


class TestSearch:
    def test_every_configuration_is_a_child_run_with_its_budgets(self, nine_configurations):
        """One s=2 bracket of 9: 9 evaluations at 1, 3 at 3, 1 at 9; one completed trial, 8 stopped."""
        settings, outcome = nine_configurations
        results = outcome.results
        assert outcome.counts == {"trials": 9, "errors": 0}
        assert len(results.trial_runs) == 9
        assert sorted(results.trial_runs) == [f"hb-0-0-{i}" for i in range(9)]
        per_budget = {}
        for record in results.records:
            per_budget[record.budget] = per_budget.get(record.budget, 0) + 1
        assert per_budget == {1.0: 9, 3.0: 3, 9.0: 1}
        finals = sorted(tags["final_status"] for tags in results.trial_tags.values())
        assert finals == ["completed"] + ["stopped"] * 8
        client = mlflow.MlflowClient(settings.tracking_uri)
        for trial_id, run_id in results.trial_runs.items():
            run = client.get_run(run_id)
            assert run.info.status == "FINISHED"
            assert run.data.tags["bracket"] == "2" and run.data.tags["band"] == "0"
            assert set(run.data.params) == set(spaces.get("tiny").keys())
            steps = sorted(history(settings, run_id, "val_error"))
            assert steps == [1, 3, 9][:len(steps)]
            assert run.data.tags["rung"] == str(len(steps) - 1)

    def test_promoted_configurations_continue_from_their_state(self, nine_configurations):
        """The fake trainer records what it trained: 1 -> 3 trains 2 more, 3 -> 9 trains 6 more."""
        settings, outcome = nine_configurations
        results = outcome.results
        promotions = 0
        for run_id in results.trial_runs.values():
            trained = history(settings, run_id, "trained_budget")
            resumed = history(settings, run_id, "resumed_from")
            assert trained[1] == 1 and resumed[1] == 0
            budgets = sorted(trained)
            for lower, higher in zip(budgets, budgets[1:]):
                assert resumed[higher] == lower
                assert trained[higher] == higher - lower
                promotions += 1
        assert promotions == 4  # 3 promoted to budget 3, 1 of them to budget 9

    def test_threads_sockets_and_state_are_cleaned_up(self, nine_configurations):
        """No Pyro thread or socket (nameserver, dispatcher, worker daemons, proxies) outlives the search."""
        settings, outcome = nine_configurations
        assert outcome.threads_left == []
        assert outcome.sockets_left <= 0
        assert list(Path(settings.storage_path).iterdir()) == []  # continuation states are removed

    def test_several_brackets_and_workers(self, settings_in_store):
        """num_samples=20 runs brackets of 9, 3, 3 and a cut one of 5 on 3 workers."""
        settings = settings_in_store(num_samples=20, max_concurrent=3)
        outcome = run_search(settings)
        results = outcome.results
        assert outcome.counts == {"trials": 20, "errors": 0}
        assert outcome.threads_left == [] and outcome.sockets_left <= 0
        brackets = {}
        for tags in results.trial_tags.values():
            key = (tags["band"], tags["bracket"])
            brackets[key] = brackets.get(key, 0) + 1
        assert brackets == {("0", "2"): 9, ("0", "1"): 3, ("0", "0"): 3, ("1", "2"): 5}
        assert {r.budget for r in results.records} == {1.0, 3.0, 9.0}

    def test_numpy_values_cross_pyro_as_plain_python(self, settings_in_store):
        """ConfigSpace 1.x samples categoricals as numpy.str_ and hpbandster's budgets are numpy
        floats; serpent refuses the one and garbles the other, which used to hang the search."""
        space = ConfigurationSpace(seed=0)
        space.add([Categorical("optimizer", ["sgd", "adam"]), Integer("batch_size", (16, 64), log=True),
                   Float("learning_rate", (0.001, 1.0), log=True)])
        settings = settings_in_store(num_samples=9)
        outcome = run_search(settings, space)
        results = outcome.results
        assert outcome.counts == {"trials": 9, "errors": 0}
        assert {r.config["optimizer"] for r in results.records} <= {"sgd", "adam"}
        assert {r.budget for r in results.records} == {1.0, 3.0, 9.0}

    def test_same_seed_same_configurations(self, settings_in_store):
        def configs(experiment):
            settings = settings_in_store(num_samples=4, seed=5, experiment=experiment)
            return {r.trial_id: r.config for r in run_search(settings).results.records}

        assert configs("a") == configs("b")


FAILING_TRAINER = """
from jointsearch.search.testing import fake_trainer

def fit(config, budget, **context):
    if budget >= 3:
        raise ValueError(f"diverged at budget {budget:g}")
    return fake_trainer(config, budget, **context)
"""


class TestFailures:
    def test_a_raising_trainer_fails_its_trial_and_the_search_goes_on(self, settings_in_store, tmp_path, monkeypatch):
        """All 3 promotions to budget 3 raise; hpbandster then samples a fresh configuration for the
        empty budget-9 slot (config id (0, 2, 0)), which raises too."""
        (tmp_path / "hb_failing_trainer.py").write_text(textwrap.dedent(FAILING_TRAINER))
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.delitem(sys.modules, "hb_failing_trainer", raising=False)
        settings = settings_in_store(num_samples=9, trainer="hb_failing_trainer:fit")
        outcome = run_search(settings)
        results = outcome.results
        assert outcome.counts == {"trials": 10, "errors": 4}
        failed = {t: tags for t, tags in results.trial_tags.items() if tags["final_status"] == "failed"}
        assert sorted(failed) != [] and "hb-0-2-0" in failed and len(failed) == 4
        for trial_id, tags in failed.items():
            assert tags["failure_reason"].startswith("ValueError: diverged at budget")
            assert tags["failure_kind"] == "exception"
            run = mlflow.MlflowClient(settings.tracking_uri).get_run(results.trial_runs[trial_id])
            assert run.info.status == "FAILED"
        promoted_then_failed = [t for t in failed if t != "hb-0-2-0"]
        for trial_id in promoted_then_failed:  # the budget-1 result stays recorded
            assert sorted(history(settings, results.trial_runs[trial_id], "val_error")) == [1]
        assert sum(tags["final_status"] == "stopped" for tags in results.trial_tags.values()) == 6

    @pytest.mark.parametrize("fault, kind, text", [
        ("raise", "exception", "injected failure"),
        ("nan", "diverged", "not finite"),
        ("oom", "oom", "out of memory"),
    ])
    def test_failures_are_recorded_with_their_kind_like_the_ray_presets(self, settings_in_store, fault, kind, text):
        """The shared fault injector (``testing.faulty_trainer``): every third configuration fails."""
        settings = settings_in_store(num_samples=6, trainer="jointsearch.search.testing:faulty_trainer",
                                     trainer_kwargs={"fault": fault, "fault_every": 3})
        outcome = run_search(settings)
        tags = outcome.results.trial_tags
        failed = [t for t in tags.values() if t["final_status"] == "failed"]
        assert 1 <= len(failed) < len(tags)
        for trial in failed:
            assert trial["failure_kind"] == kind and text in trial["failure_reason"]
        assert outcome.counts["errors"] == (0 if fault == "nan" else len(failed))  # diverging is no exception
        assert any(r.budget == 9.0 for r in outcome.results.records)  # the search went on

    def test_a_tracking_error_aborts_the_search_instead_of_hanging(self, settings_in_store):
        class BrokenTracker(SearchTracker):
            def evaluation(self, trial_id, budget, metrics, rung=None):
                raise OSError("tracking store unreachable")

        settings = settings_in_store(num_samples=9)
        before = set(threading.enumerate())
        with pytest.raises(RuntimeError, match="tracking store unreachable"):
            run_search(settings, tracker_class=BrokenTracker)
        time.sleep(0.1)
        assert [t.name for t in threading.enumerate() if t not in before and not t.name.startswith("MLflow")] == []
