"""Adaptive budgets (issue 14): the decision rule, the scheduler at a dropped rung, the model on
trusted budgets, the setting, and one real search whose decisions reach MLflow and the report."""

import math

import numpy as np
import pytest
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from bench.simulate import SimController as _Controller
from bench.simulate import SimTrial

from jointsearch.search.adaptive_budgets import (DROP_BELOW, MIN_PAIRS, RESTORE_ABOVE, AdaptiveBudgets,
                                                 decisions_from_history, rank_agreement)

BUDGETS = [1.0, 3.0, 9.0, 27.0]


def feed(adaptive, pairs, low=0, top=3, start=0):
    """Each (low value, top value) pair as one configuration's results at rung ``low`` and ``top``."""
    decisions = []
    for i, (a, b) in enumerate(pairs, start=start):
        for rung, value in ((low, a), (top, b)):
            d = adaptive.observe(f"t{i}", rung, value)
            if d is not None:
                decisions.append(d)
    return decisions


def correlated(n, rho, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    y = rho * x + math.sqrt(1 - rho ** 2) * rng.standard_normal(n)
    return list(zip(x.tolist(), y.tolist()))


class TestDecisionRule:
    def test_thresholds_leave_a_gap(self):
        assert DROP_BELOW < RESTORE_ABOVE
        with pytest.raises(ValueError):
            AdaptiveBudgets(BUDGETS, drop_below=0.6, restore_above=0.4)

    def test_no_decision_before_min_pairs_then_an_inverted_rung_is_dropped(self):
        adaptive = AdaptiveBudgets(BUDGETS)
        inverted = [(float(i), float(-i)) for i in range(MIN_PAIRS)]
        assert feed(adaptive, inverted[:-1]) == []  # rho = -1, but too few pairs: plain bohb
        assert adaptive.effective_min_budget == 1.0 and not adaptive.is_dropped(0)
        (decision,) = feed(adaptive, inverted[-1:], start=MIN_PAIRS - 1)
        assert decision.action == "drop" and decision.rung == 0 and decision.n_pairs == MIN_PAIRS
        assert decision.top_budget == 27.0 and decision.spearman == pytest.approx(-1.0)
        assert decision.ci_high < DROP_BELOW
        assert adaptive.is_dropped(0) and adaptive.effective_min_budget == 3.0
        assert adaptive.dropped_budgets() == [1.0]

    def test_an_uncorrelated_rung_is_dropped_an_agreeing_one_is_not(self):
        uncorrelated = AdaptiveBudgets(BUDGETS)
        feed(uncorrelated, correlated(60, 0.0, seed=3))
        assert uncorrelated.is_dropped(0)
        agreeing = AdaptiveBudgets(BUDGETS)
        assert feed(agreeing, correlated(60, 0.8, seed=3)) == []
        assert agreeing.effective_min_budget == 1.0

    def test_compared_with_the_highest_rung_that_has_enough_pairs(self):
        adaptive = AdaptiveBudgets(BUDGETS)
        # rung 0 agrees with rung 1 but not with rung 2 (the highest with enough pairs)
        for i in range(MIN_PAIRS + 2):
            adaptive.observe(f"t{i}", 0, float(i))
            adaptive.observe(f"t{i}", 1, float(i))
        assert adaptive.n_dropped == 0
        for i in range(MIN_PAIRS + 2):
            adaptive.observe(f"t{i}", 2, float(-i))
        assert adaptive.is_dropped(0) and adaptive.decisions[-1].top_budget == 9.0

    def test_only_the_lowest_rungs_are_dropped(self):
        adaptive = AdaptiveBudgets(BUDGETS)
        feed(adaptive, [(float(i), float(i)) for i in range(20)], low=0)  # rung 0 agrees
        feed(adaptive, [(float(i), float(-i)) for i in range(20)], low=1, start=100)  # rung 1 is inverted
        assert adaptive.n_dropped == 0  # rung 1 cannot go while rung 0 is in use

    def test_a_dropped_rung_is_restored_when_the_evidence_recovers(self):
        adaptive = AdaptiveBudgets(BUDGETS)
        feed(adaptive, [(float(i), float(-i)) for i in range(MIN_PAIRS)])
        assert adaptive.is_dropped(0)
        # the same rung keeps reporting (configurations pass through it); new pairs agree
        decisions = feed(adaptive, [(100.0 + i, 100.0 + i) for i in range(200)], start=MIN_PAIRS)
        assert [d.action for d in decisions] == ["restore"]
        assert decisions[0].ci_low > RESTORE_ABOVE and not adaptive.is_dropped(0)
        assert decisions[0].effective_min_budget == 1.0 and decisions[0].previous_min_budget == 3.0

    @pytest.mark.parametrize("seed", range(5))
    def test_borderline_evidence_does_not_flap(self, seed):
        """True rho between the two thresholds: at most one change over 300 configurations."""
        adaptive = AdaptiveBudgets(BUDGETS)
        decisions = feed(adaptive, correlated(300, 0.5, seed))
        assert len(decisions) <= 1, [d.line() for d in decisions]

    def test_the_highest_rung_is_never_dropped(self):
        adaptive = AdaptiveBudgets([1.0, 3.0])
        feed(adaptive, [(float(i), float(-i)) for i in range(40)], low=0, top=1)
        assert adaptive.n_dropped == 1 and adaptive.effective_min_budget == 3.0

    def test_results_that_are_not_finite_are_no_evidence(self):
        adaptive = AdaptiveBudgets(BUDGETS)
        feed(adaptive, [(math.inf, float(-i)) for i in range(20)])
        assert adaptive.n_dropped == 0 and adaptive.agreement(0) is None

    def test_interval_narrows_with_pairs(self):
        pairs = correlated(200, 0.5, seed=0)
        small = rank_agreement(*zip(*pairs[:10]))
        large = rank_agreement(*zip(*pairs))
        for rho, lo, hi in (small, large):
            assert -1 < lo < rho < hi < 1
        assert large[2] - large[1] < (small[2] - small[1]) / 2
        assert large[1] < 0.5 < large[2]
        assert rank_agreement([1, 1, 1, 1, 1], [1, 2, 3, 4, 5]) is None

    def test_decisions_come_back_from_metric_history(self):
        adaptive = AdaptiveBudgets(BUDGETS)
        logged = {}
        adaptive.listeners.append(lambda d: [logged.setdefault(k, []).append((d.step, v))
                                             for k, v in d.metrics().items()])
        feed(adaptive, [(float(i), float(-i)) for i in range(MIN_PAIRS)])
        feed(adaptive, [(100.0 + i, 100.0 + i) for i in range(200)], start=MIN_PAIRS)
        back = decisions_from_history(logged)
        assert [(d["action"], d["budget"], d["step"]) for d in back] == [
            (d.action, d.budget, d.step) for d in adaptive.decisions]
        assert back[0]["spearman"] == pytest.approx(adaptive.decisions[0].spearman)
        assert back[-1]["effective_min_budget"] == 1.0
        assert "budget 1 dropped" in adaptive.decisions[0].line()


# -- the scheduler at a dropped rung ------------------------------------------------------------


def _Trial(trial_id, status=Trial.RUNNING):
    """A trial as the scheduler sees it (bench/simulate.py's stand-in for Tune's)."""
    return SimTrial(trial_id, {}, status)


def _scheduler(adaptive):
    from jointsearch.search.ray_async import AsyncSuccessiveHalving

    return AsyncSuccessiveHalving(n_rungs=4, eta=3, num_samples=100, slots=lambda: 2, adaptive=adaptive)


def _report(scheduler, controller, trial, rung, value):
    return scheduler.on_trial_result(controller, trial, {"rung": rung, "val_error": value, "status": "ok"})


class TestSchedulerAtADroppedRung:
    def test_a_configuration_passes_a_dropped_rung_without_pause_or_ranking(self):
        adaptive = AdaptiveBudgets(BUDGETS)
        scheduler = _scheduler(adaptive)
        trials = [_Trial(f"t{i}") for i in range(4)]
        ctl = _Controller(trials)
        for i, t in enumerate(trials[:3]):  # rung 0 in use: the worst of three pauses
            assert _report(scheduler, ctl, t, 0, 0.1 * (i + 1)) == TrialScheduler.PAUSE or i == 0
        adaptive.n_dropped = 1  # as if the evidence had dropped rung 0
        assert _report(scheduler, ctl, trials[3], 0, 0.9) == TrialScheduler.CONTINUE  # the worst, yet it goes on
        assert "t3" in scheduler.promoted[0]
        assert scheduler.rungs[0]["t3"] == 0.9 and adaptive.values[0]["t3"] == 0.9  # still recorded: evidence
        # a configuration paused there before the drop is not promoted by that rung's ranking
        trials[1].status = Trial.PAUSED
        assert not scheduler.promotable("t1", 0) and scheduler._paused_promotable() == []
        assert scheduler.dropped_budgets() == [1.0]
        # rung 1 is still ranked as usual
        assert _report(scheduler, ctl, trials[3], 1, 0.5) in (TrialScheduler.CONTINUE, TrialScheduler.PAUSE)
        adaptive.n_dropped = 0  # restored: paused configurations there are judged again
        assert scheduler.promotable("t0", 0) or "t0" in scheduler.promoted[0]

    def test_without_adaptive_budgets_nothing_changes(self):
        scheduler = _scheduler(None)
        assert not scheduler.rung_dropped(0) and scheduler.dropped_budgets() == []
        ctl = _Controller([_Trial("a"), _Trial("b")])
        _report(scheduler, ctl, ctl.trials[0], 0, 0.1)
        assert _report(scheduler, ctl, ctl.trials[1], 0, 0.9) == TrialScheduler.PAUSE

    def test_in_a_simulated_search_nothing_pauses_at_a_dropped_rung(self):
        """bench/simulate.py's controller with the production objects: once rung 0 is dropped,
        every configuration that reports there goes on to rung 1."""
        from bench.simulate import simulate_bohb
        from jointsearch.spaces import get

        space = get("tiny")

        def objective(config, budget):  # rung 0 ranks upside down
            e = abs(math.log10(float(config["learning_rate"])) + 1.0)
            return -e if budget < 3 else e

        out = simulate_bohb(objective, space, [1.0, 3.0, 9.0], slots=2, num_samples=60, seed=0)
        assert out["decisions"] and out["decisions"][0]["action"] == "drop"
        step = out["decisions"][0]["step"]
        evaluations = out["evaluations"]
        after = {e.trial_id for e in evaluations[step:] if e.rung == 0}
        reached_1 = {e.trial_id for e in evaluations if e.rung == 1}
        assert after and after <= reached_1 | {e.trial_id for e in evaluations[-4:]}
        plain = simulate_bohb(objective, space, [1.0, 3.0, 9.0], slots=2, num_samples=60, seed=0, adaptive=False)
        assert plain["decisions"] == []
        assert sum(e.rung == 1 for e in evaluations) > sum(e.rung == 1 for e in plain["evaluations"])


# -- the model on trusted budgets ---------------------------------------------------------------


def _proposer():
    import ConfigSpace as CS

    from jointsearch.search.kde import KDEProposer

    space = CS.ConfigurationSpace(name="one")
    space.add([CS.UniformFloatHyperparameter("x", 0.0, 1.0)])
    return KDEProposer(space, seed=0, random_fraction=0.0)


class TestModelOnTrustedBudgets:
    def test_an_untrusted_budget_steers_no_proposal(self):
        proposer = _proposer()
        rng = np.random.default_rng(0)
        for x in rng.random(40):  # budget 1: small x looks good (a misleading budget)
            proposer.observe({"x": float(x)}, 1.0, float(x))
        assert proposer.model_budget() == 1.0
        proposals = [proposer.propose() for _ in range(30)]
        assert np.mean([p.config["x"] for p in proposals]) < 0.35
        proposer.untrusted = {1.0}
        assert proposer.model_budget() is None
        assert not any(proposer.propose().model_based for _ in range(10))  # random until a trusted model

    def test_the_pooled_model_uses_trusted_budgets_only(self):
        proposer = _proposer()
        proposer.pooled = True
        rng = np.random.default_rng(1)
        for x in rng.random(40):
            proposer.observe({"x": float(x)}, 1.0, float(x))  # misleading: small x good
            proposer.observe({"x": float(1 - x)}, 3.0, float(x))  # trusted: large x good
        proposer.untrusted = {1.0}
        budget, (good, bad) = proposer._pooled_model()
        assert budget == 3.0 and good.data[:, 0].min() > 0.5  # only budget 3's good points
        proposals = [proposer.propose() for _ in range(30)]
        assert np.mean([p.config["x"] for p in proposals]) > 0.65

    def test_the_bohb_preset_wires_it_and_off_switches_it_off(self, make_settings):
        from jointsearch.search.ray_presets import build_bohb
        from jointsearch.spaces import get

        searcher, scheduler = build_bohb(make_settings(scheduler="bohb"), get("tiny"))
        assert scheduler.adaptive is not None and not searcher.proposer.pooled
        scheduler.adaptive.n_dropped = 1
        assert searcher.untrusted() == [1.0]
        searcher, scheduler = build_bohb(make_settings(scheduler="bohb", adaptive_budgets="off"), get("tiny"))
        assert scheduler.adaptive is None and searcher.untrusted() == []


class TestSetting:
    def test_values_and_presets(self, make_settings):
        from jointsearch.search.errors import UsageError

        assert make_settings().adaptive_budgets == "auto"
        make_settings(scheduler="asha").validate()  # auto: only bohb can, so nothing to do
        make_settings(scheduler="asha", adaptive_budgets="off").validate()
        with pytest.raises(UsageError, match="--adaptive-budgets on needs --preset bohb"):
            make_settings(scheduler="asha", adaptive_budgets="on").validate()
        with pytest.raises(UsageError, match="--adaptive-budgets must be auto, on or off"):
            make_settings(adaptive_budgets="maybe").validate()


# -- one real search ----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_real_search_logs_its_decisions_and_the_report_explains_them(ray_runtime, make_settings):
    """Budget 1 ranks configurations upside down: the search drops it, MLflow holds the decision
    (step = evaluations completed) and the report says why."""
    from jointsearch.dashboards.report import render_report
    from jointsearch.search import read_search, run_search
    from jointsearch.search.adaptive_budgets import read_decisions
    from jointsearch.search.tracking import client_for

    settings = make_settings(trainer="jointsearch.search.testing:low_budget_inverted_trainer", num_samples=30,
                             seed=2, dashboard_every=1000)
    summary = run_search(settings)
    client = client_for(settings.mlflow_uri)
    decisions = read_decisions(client, summary.search_run_id)
    assert decisions and decisions[0]["action"] == "drop" and decisions[0]["budget"] == 1.0
    assert decisions[0]["ci_high"] < DROP_BELOW and decisions[0]["n_pairs"] >= MIN_PAIRS
    first = [m for m in client.get_metric_history(summary.search_run_id, "adaptive_budgets/effective_min_budget")]
    assert sorted((m.step, m.value) for m in first)[:2] == [(0, 1.0), (decisions[0]["step"], 3.0)]
    results = read_search(settings.mlflow_uri, settings.experiment, summary.search_run_id)
    assert decisions[0]["step"] <= len(results.records)
    html = render_report(results.records, title="t", budget_decisions=decisions)
    assert 'id="adaptive-budgets"' in html and "budget 1 dropped" in html
    live = client.download_artifacts(summary.search_run_id, "report.html")
    assert "budget 1 dropped" in open(live).read()  # the report written at the end of the search too


def test_the_report_has_a_line_per_decision_and_no_section_without_any():
    from jointsearch.dashboards.report import render_report

    adaptive = AdaptiveBudgets(BUDGETS)
    feed(adaptive, [(float(i), float(-i)) for i in range(MIN_PAIRS)])
    feed(adaptive, [(100.0 + i, 100.0 + i) for i in range(200)], start=MIN_PAIRS)
    html = render_report([], title="t", budget_decisions=[d.to_json() for d in adaptive.decisions])
    assert 'id="adaptive-budgets"' in html
    assert "budget 1 dropped: Spearman ρ with budget 27 = -1" in html and "budget 1 restored" in html
    assert "adaptive-budgets" not in render_report([], title="t")
