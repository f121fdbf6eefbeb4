"""Asynchronous BOHB's parts (search/ray_async.py), decision by decision.

The scheduler's rules are checked on plain trials and a stand-in for the two methods of Tune's
controller it calls (``get_trials``, ``stop_trial``), so each rule is one short test; the preset
contract (test_presets.py), resume (test_resume.py) and the overlap test (test_slots.py) run
the same scheduler in real searches.
"""

import math

import pytest
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from jointsearch.search.ray_async import AsyncSuccessiveHalving, KDESearcher
from jointsearch.spaces import get


class _Trial:
    def __init__(self, trial_id, status=Trial.RUNNING):
        self.trial_id, self.status = trial_id, status


class _Controller:
    """The part of Tune's controller the scheduler uses."""

    def __init__(self, trials):
        self.trials, self.stopped = trials, []

    def get_trials(self):
        return self.trials

    def stop_trial(self, trial):
        trial.status = Trial.TERMINATED
        self.stopped.append(trial.trial_id)


def make_scheduler(slots=2, num_samples=9, n_rungs=3):
    return AsyncSuccessiveHalving(n_rungs=n_rungs, eta=3, num_samples=num_samples, slots=lambda: slots)


def report(scheduler, controller, trial, rung, value, status="ok"):
    return scheduler.on_trial_result(controller, trial, {"rung": rung, "val_error": value, "status": status})


class TestPromotionRule:
    def test_top_third_of_a_rung_is_promotable_once(self):
        s = make_scheduler()
        for i, v in enumerate([0.5, 0.1, 0.9, 0.3, 0.7, 0.2]):
            s._record(0, f"t{i}", v)
        assert [t for t in s.rungs[0] if s.promotable(t, 0)] == ["t1", "t5"]  # 6 / 3 = 2
        s.promoted[0].add("t1")
        assert not s.promotable("t1", 0)

    def test_a_rung_of_n_results_promotes_at_most_n_over_eta(self):
        """The quota: a configuration that enters the top third once a third of the rung has gone
        on waits until the rung has grown (ASHA's rule alone promotes it at once)."""
        s, trials = make_scheduler(slots=3, num_samples=20), [_Trial(f"t{i}") for i in range(6)]
        c = _Controller(trials)
        for t in trials:
            s.on_trial_add(c, t)

        def paused(t, value):
            action = report(s, c, t, 0, value)
            t.status = Trial.PAUSED if action == TrialScheduler.PAUSE else Trial.RUNNING
            return action

        assert [paused(t, v) for t, v in zip(trials[:3], [0.5, 0.6, 0.4])] == [
            TrialScheduler.PAUSE, TrialScheduler.PAUSE, TrialScheduler.CONTINUE]  # best of 3 goes on
        assert s.promotions[0] == 1
        assert paused(trials[3], 0.1) == TrialScheduler.PAUSE  # the best of 4, but floor(4/3) = 1 went on
        assert paused(trials[4], 0.7) == TrialScheduler.PAUSE
        assert not s.promotable("t3", 0) and s.wants_new_trial()  # 5 results: still 1
        assert paused(trials[5], 0.8) == TrialScheduler.PAUSE
        assert s.promotable("t3", 0) and not s.wants_new_trial()  # 6 results: a second may go on
        assert s.choose_trial_to_run(c) is trials[3]
        assert s.promotions[0] == 2 and not any(s.promotable(t.trial_id, 0) for t in trials)

    def test_once_every_configuration_has_been_added_the_quota_is_that_of_the_rungs_final_size(self):
        """The end game: 6 configurations added, 4 reported at rung 0 and one gone on (floor(4/3)).
        The best of the 4 goes on at once, since the rung will hold 6 (quota 2) and no new
        configuration is left to start; with a 7th still to come it waits for the rung to grow.
        The quota itself stays: when the last two report, better than all, neither goes on."""
        def four_reported(num_samples):
            s, trials = make_scheduler(slots=3, num_samples=num_samples), [_Trial(f"t{i}") for i in range(6)]
            c = _Controller(trials)
            for t in trials:
                s.on_trial_add(c, t)
            for t, v in zip(trials, [0.5, 0.6, 0.4, 0.1]):
                action = report(s, c, t, 0, v)
                t.status = Trial.PAUSED if action == TrialScheduler.PAUSE else Trial.RUNNING
            return s, c, trials

        s, c, trials = four_reported(7)
        assert s.promotions[0] == 1 and trials[3].status == Trial.PAUSED
        s, c, trials = four_reported(6)
        assert s.promotions[0] == 2 and trials[3].status == Trial.RUNNING
        for t, v in zip(trials[4:], [0.05, 0.01]):
            assert report(s, c, t, 0, v) == TrialScheduler.PAUSE
        assert s.promotions[0] == 2 == s.quota(0)

    def test_a_resumed_searchs_promotions_use_up_the_quota(self):
        s = make_scheduler()
        s.warm_start([("a", 0, 0.1), ("b", 0, 0.2), ("c", 0, 0.3), ("a", 1, 0.05)])  # a went on
        assert s.promotions == [1, 0, 0]
        for t, v in [("n1", 0.01), ("n2", 0.5)]:
            s._record(0, t, v)
        assert not s.promotable("n1", 0)  # 5 results, 1 promotion: the quota is used
        s._record(0, "n3", 0.6)
        assert s.promotable("n1", 0)

    def test_failures_and_the_last_rung_are_never_promotable(self):
        s = make_scheduler()
        for t in "abc":
            s._record(0, t, math.inf)
        assert not any(s.promotable(t, 0) for t in "abc")
        for t, v in {"x": 0.1, "y": 0.2, "z": 0.3}.items():
            s._record(2, t, v)
        assert not s.promotable("x", 2)

    def test_a_trial_that_is_promotable_when_it_reports_continues_others_pause(self):
        s, trials = make_scheduler(), [_Trial(f"t{i}") for i in range(4)]
        c = _Controller(trials)
        for t in trials:
            s.on_trial_add(c, t)
        assert report(s, c, trials[0], 0, 0.5) == TrialScheduler.PAUSE  # 1 result: top 0
        assert report(s, c, trials[1], 0, 0.6) == TrialScheduler.PAUSE
        assert report(s, c, trials[2], 0, 0.1) == TrialScheduler.CONTINUE  # best of 3: promoted at once
        assert "t2" in s.promoted[0]
        assert report(s, c, trials[3], 0, 0.2, status="diverged") == TrialScheduler.CONTINUE  # ends itself
        assert s.rungs[0]["t3"] == math.inf
        assert report(s, c, trials[2], 2, 0.05) == TrialScheduler.CONTINUE  # last rung: runs to its end


class TestChoosingTheNextTrial:
    def test_a_free_slot_promotes_before_it_starts_a_new_configuration(self):
        s = make_scheduler(slots=2)
        paused = [_Trial(f"p{i}", Trial.PAUSED) for i in range(3)]
        pending = _Trial("new", Trial.PENDING)
        c = _Controller([*paused, pending])
        for t, v in zip(paused, [0.3, 0.2, 0.4]):
            s.on_trial_add(c, t)
            s._record(0, t.trial_id, v)
            s.at_rung[t.trial_id] = 0
        assert not s.wants_new_trial()  # p1 waits for promotion: no new configuration now
        assert s.choose_trial_to_run(c) is paused[1]
        assert "p1" in s.promoted[0]
        paused[1].status = Trial.RUNNING
        assert s.choose_trial_to_run(c) is pending  # nothing else promotable

    def test_higher_rungs_are_promoted_first(self):
        s = make_scheduler(slots=4)
        trials = [_Trial(f"t{i}", Trial.PAUSED) for i in range(6)]
        c = _Controller(trials)
        for i, t in enumerate(trials[:3]):
            s._record(0, t.trial_id, 0.1 * (i + 1))
            s.at_rung[t.trial_id] = 0
        for i, t in enumerate(trials[3:]):
            s._record(1, t.trial_id, 0.1 * (i + 1))
            s.at_rung[t.trial_id] = 1
        assert s.choose_trial_to_run(c) is trials[3]

    def test_no_promotion_or_new_trial_beyond_the_slots(self):
        s = make_scheduler(slots=1)
        running, paused = _Trial("r"), [_Trial(f"p{i}", Trial.PAUSED) for i in range(3)]
        c = _Controller([running, *paused])
        for t, v in zip(paused, [0.3, 0.2, 0.4]):
            s._record(0, t.trial_id, v)
            s.at_rung[t.trial_id] = 0
        assert s.choose_trial_to_run(c) is None and not s.wants_new_trial()

    def test_when_nothing_more_can_happen_paused_trials_are_stopped(self):
        s = make_scheduler(slots=2, num_samples=3)
        paused = [_Trial(f"p{i}", Trial.PAUSED) for i in range(3)]
        c = _Controller(paused)
        for t, v in zip(paused, [0.3, 0.2, 0.4]):
            s.on_trial_add(c, t)
            s._record(0, t.trial_id, v)
            s.at_rung[t.trial_id] = 0
        s.promoted[0].add("p1")  # the one promotable trial went on and finished at the max budget
        s._record(2, "p1", 0.1)
        paused[1].status = Trial.TERMINATED
        assert s.choose_trial_to_run(c) is None
        assert sorted(c.stopped) == ["p0", "p2"]

    def test_a_search_without_a_max_budget_result_promotes_its_best_from_the_highest_rung(self):
        s = make_scheduler(slots=2, num_samples=4)
        trials = [_Trial(f"p{i}", Trial.PAUSED) for i in range(4)]
        c = _Controller(trials)
        for t, v in zip(trials, [0.3, 0.2, 0.4, 0.5]):
            s.on_trial_add(c, t)
            s._record(0, t.trial_id, v)
            s.at_rung[t.trial_id] = 0
        s.promoted[0].add("p1")
        s._record(1, "p1", 0.25)
        s.at_rung["p1"] = 1  # went on to rung 1 and paused there: 1 result, not promotable
        assert s.choose_trial_to_run(c) is trials[1]  # the highest rung's best goes on
        assert c.stopped == []
        trials[1].status = Trial.RUNNING
        assert s.choose_trial_to_run(c) is None  # it runs: wait

    def test_paused_trials_wait_while_more_configurations_will_come(self):
        s = make_scheduler(slots=2, num_samples=10)
        paused = [_Trial("p0", Trial.PAUSED)]
        c = _Controller(paused)
        s.on_trial_add(c, paused[0])
        s._record(0, "p0", 0.3)
        s.at_rung["p0"] = 0
        assert s.choose_trial_to_run(c) is None and c.stopped == []
        assert s.wants_new_trial()

    def test_warm_started_results_count_but_are_never_promoted(self):
        s = make_scheduler()
        s.warm_start([("old-a", 0, 0.1), ("old-b", 0, 0.2), ("old-c", 0, math.inf)])
        s._record(0, "new", 0.15)
        assert not s.promotable("old-a", 0)
        assert not s.promotable("new", 0)  # 4 results: top 1, held by old-a
        s._record(0, "n2", 0.5)
        s._record(0, "n3", 0.6)
        assert s.promotable("new", 0)  # 6 results: top 2


class TestSearcher:
    def test_failures_are_bad_points_at_the_budget_they_were_going_for(self):
        searcher = KDESearcher(get("tiny"), rung_budgets=(1.0, 3.0, 9.0), seed=0)
        config = searcher.suggest("a")
        assert searcher.proposals["a"] == "random"
        searcher.on_trial_result("a", {"rung": 0, "budget": 1.0, "val_error": 0.4, "status": "ok"})
        searcher.on_trial_complete("a", error=True)  # raised on its way to 3 epochs
        searcher.suggest("b")
        searcher.on_trial_result("b", {"rung": 0, "budget": 1.0, "val_error": 0.2, "status": "diverged"})
        assert searcher.proposer._losses == {1.0: [0.4, math.inf], 3.0: [math.inf]}
        assert config and searcher.proposer.n_observations == 3

    def test_the_gate_holds_new_configurations_back(self):
        open_ = {"value": False}
        searcher = KDESearcher(get("tiny"), rung_budgets=(1.0, 3.0), seed=0, gate=lambda: open_["value"])
        assert searcher.suggest("a") is None
        open_["value"] = True
        assert searcher.suggest("a") is not None


@pytest.mark.parametrize("n_rungs", [1, 3])
def test_bracket_tags_name_the_one_asynchronous_bracket(n_rungs):
    s = make_scheduler(n_rungs=n_rungs)
    assert s.bracket_tags(_Trial("t")) == {"bracket": str(n_rungs - 1), "band": "0"}


@pytest.mark.slow
def test_the_model_proposes_once_it_has_enough_results(ray_runtime, make_settings, tmp_path):
    """A 2-dimensional space needs 2 x (2 + 1) = 6 results at one budget for a model: in a search
    of 16 configurations, later ones come from the model, and every trial says which."""
    import ConfigSpace as CS

    from jointsearch.search import read_search, run_search
    from jointsearch.spaces import to_json

    space = CS.ConfigurationSpace(name="two")
    space.add([CS.UniformFloatHyperparameter("learning_rate", 1e-3, 1.0, log=True),
               CS.UniformFloatHyperparameter("momentum", 0.0, 0.99)])
    path = tmp_path / "two.json"
    path.write_text(to_json(space))
    settings = make_settings(space=str(path), num_samples=16, seed=4)
    summary = run_search(settings)
    results = read_search(settings.mlflow_uri, settings.experiment, summary.search_run_id)
    kinds = [tags["proposal"] for tags in results.trial_tags.values()]
    assert len(kinds) == 16 and set(kinds) <= {"model", "random"}
    assert kinds.count("model") >= 2, kinds
    assert all(tags["bracket"] == "2" and tags["band"] == "0" for tags in results.trial_tags.values())


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["raise", "nan"])
def test_failures_on_promotion_end_cleanly(fault, ray_runtime, make_settings):
    """Configurations that fail when promoted (raise, or diverge) are closed as failed, the others
    as completed or stopped; nothing is left running or paused, and the search ends."""
    import mlflow

    from jointsearch.search import read_search, run_search

    settings = make_settings(trainer="jointsearch.search.testing:faulty_trainer", num_samples=9,
                             experiment=f"async-fault-{fault}",
                             trainer_kwargs={"fault": fault, "fault_every": 2, "fault_budget": 1.0})
    summary = run_search(settings)
    results = read_search(settings.mlflow_uri, settings.experiment, summary.search_run_id)
    client = mlflow.MlflowClient(settings.mlflow_uri)
    runs = [client.get_run(run_id) for run_id in results.trial_runs.values()]
    assert summary.n_trials == 9
    assert {r.data.tags["final_status"] for r in runs} <= {"completed", "stopped", "failed"}
    assert all(r.info.status == ("FAILED" if r.data.tags["final_status"] == "failed" else "FINISHED") for r in runs)
    assert summary.evaluations_per_budget[1.0] == 9


@pytest.mark.parametrize("gpus", ["auto", 1.0])
def test_slots_count_the_smallest_gpu_request_as_tunes_pending_limit_does(gpus, ray_runtime, make_settings):
    """`--gpus-per-trial auto` counts slots with the smallest share packing asks for (it raised a
    TypeError on the string "auto"), by the same rule as Tune's pending-trial limit."""
    from jointsearch.search import ray_tune
    from jointsearch.search.presets import PRESETS

    if ray_tune._USER_PENDING_LIMIT is not None:
        pytest.skip("TUNE_MAX_PENDING_TRIALS_PG is set in the environment")
    settings = make_settings(gpus_per_trial=gpus, gpu_memory_gib=16.0 if gpus == "auto" else 0.0,
                             cpus_per_trial=1.0).validate()
    _, scheduler = PRESETS["bohb"].build(settings, get("tiny"))
    assert scheduler.slots() == ray_tune._pending_trials_limit(settings) >= 1
