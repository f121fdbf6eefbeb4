"""Several objectives and constraints in the search (issue 15): settings, the MO-ASHA promotion
ranking, ParEGO scalarisation, constraint enforcement, ``export --pick``, and one real search."""

import json
import math

import numpy as np
import pytest
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from bench.simulate import SimController as _Controller
from bench.simulate import SimTrial

from jointsearch.dashboards.pareto import parse_constraint, parse_objectives
from jointsearch.dashboards.records import EvaluationRecord
from jointsearch.search import SearchSettings, UsageError, read_search, run_search
from jointsearch.search.cli import main
from jointsearch.search.export import parse_pick, pick
from jointsearch.search.infeasible import record_infeasible
from jointsearch.search.objectives import apply_constraints, objective_vector, params_limits
from jointsearch.search.ray_async import AsyncSuccessiveHalving, KDESearcher
from jointsearch.spaces import get

TWO = parse_objectives(["val_error", "n_params"])


def _Trial(trial_id, status=Trial.RUNNING):
    """A trial as the scheduler sees it (bench/simulate.py's stand-in for Tune's)."""
    return SimTrial(trial_id, {}, status)


class TestSettings:
    def test_cli_collects_objectives_and_repeated_constraints(self, monkeypatch):
        from jointsearch.search.cli import _build_parser, search_flags

        args = _build_parser().parse_args(["search", "--objectives", "val_error", "n_params", "--constraint",
                                           "n_params<=2e4", "--constraint", "latency_ms<3"])
        settings = SearchSettings(**{f.name: getattr(args, f.name) for f in search_flags()})
        assert settings.objectives == ("val_error", "n_params")
        assert settings.constraints == ("n_params<=2e4", "latency_ms<3")
        assert settings.as_params()["objectives"] == "val_error n_params"
        assert settings.as_params()["constraints"] == "n_params<=2e4, latency_ms<3"
        defaults = _build_parser().parse_args(["search"])
        assert SearchSettings(**{f.name: getattr(defaults, f.name) for f in search_flags()}).objectives == (
            "val_error",)

    def test_n_params_constraints_tighten_the_trainers_size_limits(self):
        assert params_limits(50_000_000, [parse_constraint("n_params<=5e6")]) == {"max_params": 5_000_000}
        assert params_limits(1000, [parse_constraint("n_params<5e6")]) == {"max_params": 1000}
        assert params_limits(0, [parse_constraint("n_params<100.5"), parse_constraint("n_params>10")]) == {
            "max_params": 100, "min_params": 11}
        assert params_limits(0, [parse_constraint("latency_ms<=3")]) == {"max_params": 0}
        context = SearchSettings(constraints=("n_params<=20000",)).validate().trainer_context()
        assert context["max_params"] == 20_000 and "min_params" not in context

    @pytest.mark.parametrize("values, message", [
        (dict(objectives=("n_params",)), "must include val_error"),
        (dict(objectives=("val_error:max", "n_params")), "must include val_error"),
        (dict(objectives=("val_error", "n_params"), scheduler="tpe"), "needs --preset bohb or random"),
        (dict(objectives=("val_error", "n_params"), scheduler="hyperband"), "needs --preset bohb or random"),
        (dict(constraints=("n_params<=10",), scheduler="hpbandster"), "needs a Ray preset"),
        (dict(constraints=("n_params>10", "n_params<5")), "admits no network size"),
        (dict(constraints=("n_params==10",)), "write METRIC OP VALUE"),
    ])
    def test_bad_settings_are_one_line_errors(self, values, message):
        with pytest.raises(UsageError, match=message):
            SearchSettings(**values).validate()

    def test_random_preset_accepts_several_objectives(self):
        SearchSettings(objectives=("val_error", "cost_s"), scheduler="random").validate()


class TestPromotionRanking:
    def _scheduler(self, objectives=TWO):
        return AsyncSuccessiveHalving(n_rungs=3, eta=3, num_samples=9, slots=lambda: 2, objectives=objectives)

    def test_top_third_by_pareto_rank_and_crowding_not_by_val_error(self):
        s = self._scheduler()
        points = {"a": (0.1, 1000), "b": (0.5, 10), "c": (0.3, 300), "d": (0.6, 2000), "e": (0.7, 50),
                  "f": (math.inf, math.inf)}
        for t, v in points.items():
            s._record(0, t, v)
        # front {a, b, c}; a and b are its extremes (infinite crowding): 6 / 3 = 2 promotions
        assert sorted(t for t in points if s.promotable(t, 0)) == ["a", "b"]
        single = AsyncSuccessiveHalving(n_rungs=3, eta=3, num_samples=9, slots=lambda: 2)
        for t, v in points.items():
            single._record(0, t, v[0])
        assert sorted(t for t in points if single.promotable(t, 0)) == ["a", "c"]  # val_error alone

    def test_results_file_their_signed_vector_failures_the_worst(self):
        s = self._scheduler(parse_objectives(["val_error", "accuracy:max"]))
        trials = [_Trial(f"t{i}") for i in range(3)]
        c = _Controller(trials)
        for t in trials:
            s.on_trial_add(c, t)
        assert s.on_trial_result(c, trials[0], {"rung": 0, "val_error": 0.2, "accuracy": 0.8,
                                                 "status": "ok"}) == TrialScheduler.PAUSE
        assert s.rungs[0]["t0"] == (0.2, -0.8)
        s.on_trial_result(c, trials[1], {"rung": 0, "val_error": 0.1, "status": "ok"})  # accuracy missing
        s.on_trial_result(c, trials[2], {"rung": 0, "val_error": 0.1, "accuracy": 0.9, "status": "infeasible"})
        assert s.rungs[0]["t1"] == s.rungs[0]["t2"] == (math.inf, math.inf)
        assert not s.promotable("t1", 0) and not s.promotable("t2", 0)

    def test_a_paused_trial_is_promoted_by_the_ranking_and_continues(self):
        s = self._scheduler()
        trials = [_Trial(f"t{i}") for i in range(4)]
        c = _Controller(trials)
        for t in trials:
            s.on_trial_add(c, t)
        for t, (err, n) in zip(trials, [(0.5, 50), (0.4, 60), (0.6, 10), (0.3, 100)]):
            s.on_trial_result(c, t, {"rung": 0, "val_error": err, "n_params": n, "status": "ok"})
            t.status = Trial.PAUSED
        # all four are non-dominated; the extremes (0.6, 10) and (0.3, 100) rank first
        assert s.choose_trial_to_run(c).trial_id in ("t2", "t3")


class TestScalarisation:
    def _searcher(self):
        searcher = KDESearcher(get("tiny"), rung_budgets=(1.0, 3.0), seed=0, objectives=TWO)
        errors, sizes = [0.1, 0.2, 0.3, 0.4], [400, 300, 200, 100]
        for i, (e, n) in enumerate(zip(errors, sizes)):
            searcher.suggest(f"t{i}")
            searcher.on_trial_result(f"t{i}", {"rung": 0, "budget": 1.0, "val_error": e, "n_params": n,
                                               "status": "ok"})
        searcher.suggest("bad")
        searcher.on_trial_result("bad", {"rung": 0, "budget": 1.0, "val_error": 0.0, "status": "infeasible"})
        return searcher

    def test_weights_choose_which_objective_the_model_sees(self):
        searcher = self._searcher()
        searcher.scalarise([1.0, 0.0])
        losses = searcher.proposer._losses[1.0]
        assert np.argsort(losses[:4]).tolist() == [0, 1, 2, 3] and math.isinf(losses[4])
        searcher.scalarise([0.0, 1.0])
        assert np.argsort(searcher.proposer._losses[1.0][:4]).tolist() == [3, 2, 1, 0]

    def test_default_loss_is_the_promotion_ranking_of_each_budget(self):
        searcher = self._searcher()
        assert searcher.scalarise() is None
        losses = searcher.proposer._losses[1.0]
        # all four ok points are non-dominated: the two extremes (t0, t3) first, the infeasible last
        assert sorted(losses[:4])[:2] == [0.0, 1.0] and {losses[0], losses[3]} == {0.0, 1.0}
        assert math.isinf(losses[4])

    def test_parego_draws_fresh_weights_from_the_simplex_per_proposal(self):
        searcher = self._searcher()
        searcher.mo_loss = "parego"
        w1, w2 = searcher.scalarise(), searcher.scalarise()
        assert w1.sum() == pytest.approx(1) and w2.sum() == pytest.approx(1) and not np.allclose(w1, w2)
        assert searcher.suggest("next") is not None  # a proposal after scalarising

    def test_single_objective_keeps_val_error(self):
        searcher = KDESearcher(get("tiny"), rung_budgets=(1.0,), seed=0)
        searcher.suggest("a")
        searcher.on_trial_result("a", {"rung": 0, "budget": 1.0, "val_error": 0.25, "n_params": 5, "status": "ok"})
        assert searcher.proposer._losses[1.0] == [0.25] and not searcher.vectors


class _Tracker:
    def __init__(self):
        self.tags = {}

    def set_trial_tags(self, trial_id, tags):
        self.tags.setdefault(trial_id, {}).update(tags)


class TestConstraints:
    def test_a_breach_after_training_makes_the_result_infeasible_and_it_is_recorded(self):
        constraints = [parse_constraint("latency_ms<=10"), parse_constraint("n_params<=100")]
        metrics = apply_constraints({"val_error": 0.1, "status": "ok", "latency_ms": 12.0, "n_params": 50},
                                    constraints)
        assert metrics["status"] == "infeasible" and metrics["constraint_violations"] == 1
        assert metrics["reason"] == "constraint: latency_ms=12 breaks latency_ms<=10"
        tracker, reasons = _Tracker(), {}
        assert record_infeasible(tracker, "t", metrics, reasons) is False  # trained: its evaluation is kept
        assert reasons["t"].startswith("constraint:") and tracker.tags["t"]["infeasible"] == "true"
        assert objective_vector(metrics, TWO) == (math.inf, math.inf)
        untrained = {"val_error": 1.0, "status": "infeasible", "reason": "too big", "budget_spent": 0.0}
        assert record_infeasible(tracker, "u", untrained, {}) is True  # never trained: no evaluation
        ok = apply_constraints({"val_error": 0.1, "status": "ok", "latency_ms": 5, "n_params": 50}, constraints)
        assert ok["status"] == "ok" and "reason" not in ok

    def test_builtin_trainer_refuses_out_of_range_sizes_before_training(self):
        from jointsearch.trainers.entry import evaluate
        from jointsearch.trainers.models import count_parameters

        config = dict(get("tiny").get_default_configuration())
        n = count_parameters(config, 1, 10)
        small = evaluate(config, 1.0, dataset="digits", max_params=n - 1)
        large = evaluate(config, 1.0, dataset="digits", min_params=n + 1)
        for result in (small, large):
            assert result["status"] == "infeasible" and result["budget_spent"] == 0 and result["steps"] == 0
        assert "below the n_params --constraint" in large["reason"]


def _rec(tid, err, n, budget=9.0, status="ok", cost_s=float("nan"), **metrics):
    return EvaluationRecord(tid, {"x": tid}, budget, err, status=status, n_params=n, cost_s=cost_s,
                            metrics=metrics)


class TestPick:
    records = [_rec("a", 0.10, 9000, cost_s=5), _rec("b", 0.12, 2000, cost_s=2), _rec("c", 0.30, 500, cost_s=1),
               _rec("d", 0.50, 400, cost_s=9), _rec("e", 0.01, 100, budget=3.0)]

    def test_rules(self):
        assert pick(self.records, parse_pick("min:val_error")).trial_id == "a"  # at the highest budget only
        assert pick(self.records, parse_pick("min:val_error,n_params<=5e3")).trial_id == "b"
        assert pick(self.records, parse_pick("min:val_error, n_params<1000, cost_s<5")).trial_id == "c"
        assert pick(self.records, parse_pick("max:cost_s")).trial_id == "d"
        assert pick(self.records, parse_pick("knee"), ["val_error", "n_params"]).trial_id == "b"
        assert pick(self.records, parse_pick("knee:n_params")).trial_id == "b"

    def test_no_candidate_is_a_one_line_error(self):
        with pytest.raises(UsageError, match="no successful evaluation at budget 9 satisfies n_params<=10"):
            pick(self.records, parse_pick("min:val_error,n_params<=10"))
        with pytest.raises(UsageError, match="recorded latency_ms"):
            pick(self.records, parse_pick("min:latency_ms"))

    @pytest.mark.parametrize("rule", ["", "best", "min", "min:", "median:val_error", "knee,n_params=5",
                                      "min:val_error,n_params<=x", "min:1abc"])
    def test_bad_rules(self, rule):
        with pytest.raises(UsageError, match="--pick"):
            parse_pick(rule)

    def test_cli_refuses_a_bad_rule_before_opening_the_store(self, tmp_path, capsys):
        uri = f"sqlite:///{tmp_path / 'missing.db'}"
        assert main(["export", "--mlflow-uri", uri, "--experiment", "x", "--pick", "best",
                     "--out", str(tmp_path / "o.json")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--pick 'best'" in err
        assert not (tmp_path / "missing.db").exists() and not (tmp_path / "o.json").exists()


@pytest.mark.slow
def test_two_objective_search_with_a_size_constraint_trains_nothing_above_it(ray_runtime, make_settings, tmp_path):
    """The issue's CPU target: bohb on tiny/digits with the built-in trainer, objectives
    (val_error, n_params) and n_params<=20000. Every configuration above the limit is recorded
    infeasible at budget 0 (never trained); every trained one is within it; the parent run holds
    a non-empty Pareto front (JSON and PNG); export --pick knee writes its rule."""
    limit = 20_000
    settings = make_settings(trainer="jointsearch.trainers.entry:evaluate", min_budget=1, max_budget=3,
                             num_samples=8, seed=3, objectives=("val_error", "n_params"),
                             constraints=(f"n_params<={limit}",), dashboard_every=4)
    summary = run_search(settings)
    results = read_search(settings.mlflow_uri, settings.experiment, summary.search_run_id)
    trained = [r for r in results.records if r.budget > 0]
    refused = [r for r in results.records if r.status == "infeasible"]
    assert trained and refused, "the limit should split this sample"
    assert all(r.n_params is not None and r.n_params <= limit for r in trained)
    assert all(r.budget == 0 and not r.ok for r in refused)
    for trial_id in {r.trial_id for r in refused}:
        tags = results.trial_tags[trial_id]
        assert tags["failure_kind"] == "infeasible" and int(tags["n_params"]) > limit
        assert "n_params --constraint" in tags["failure_reason"]

    import mlflow

    client = mlflow.MlflowClient(settings.mlflow_uri)
    local = client.download_artifacts(summary.search_run_id, "dashboards", str(tmp_path / "art"))
    fronts = json.loads((tmp_path / "art" / "dashboards" / "pareto_front.json").read_text())
    assert fronts and all(f["objectives"] == ["val_error", "n_params"] for f in fronts)
    assert all(f["front"] and all(p["values"]["n_params"] <= limit for p in f["front"]) for f in fronts)
    assert (tmp_path / "art" / "dashboards" / "pareto_front.png").read_bytes()[:4] == b"\x89PNG"
    assert any(name.endswith(".json") for name in __import__("os").listdir(f"{local}/pareto"))
    out = tmp_path / "knee.json"
    assert main(["export", "--mlflow-uri", settings.mlflow_uri, "--experiment", settings.experiment,
                 "--pick", "knee", "--out", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert payload["pick"] == "knee" and payload["n_params"] <= limit
    html = (tmp_path / "report.html")
    assert main(["report", "--mlflow-uri", settings.mlflow_uri, "--experiment", settings.experiment,
                 "--out", str(html)]) == 0
    assert 'id="pareto"' in html.read_text()


def test_objective_metrics_of_a_user_trainer_round_trip_through_mlflow(tmp_path, sqlite_uri):
    """A metric named by the objectives (a user's latency_ms) is kept in the record built live and
    read back from MLflow the same; a breach found after training reads back as infeasible."""
    from jointsearch import spaces
    from jointsearch.dashboards.records import records_to_json
    from jointsearch.search.tracking import SearchTracker

    tracker = SearchTracker(sqlite_uri, "mo", step_scale=1)
    space = spaces.get("tiny")
    tracker.start_search({"space": "tiny", "objectives": "val_error latency_ms", "constraints": "latency_ms<=10"},
                         run_name="mo", budget_unit="epochs", artifacts={"space.json": spaces.to_json(space)})
    tracker.record_metrics = ("latency_ms",)
    config = spaces.config_dict(space.get_default_configuration())
    tracker.trial_started("t", config, {})
    built = [tracker.evaluation("t", 1.0, {"val_error": 0.5, "latency_ms": 4.0, "train_loss": 1.0}, rung=0),
             tracker.evaluation("t", 3.0, apply_constraints({"val_error": 0.4, "latency_ms": 12.0, "status": "ok"},
                                                            [parse_constraint("latency_ms<=10")]), rung=1)]
    tracker.trial_ended("t", "failed", "constraint", kind="infeasible")
    tracker.flush()
    read = read_search(tracker.uri, "mo").records
    assert records_to_json(sorted(read, key=lambda r: r.budget)) == records_to_json(built)
    assert read[0].metrics == {"latency_ms": 4.0} and read[1].status == "infeasible"


def test_live_dashboards_log_the_front_per_budget_and_the_report_has_its_section():
    from jointsearch.dashboards.report import render_report
    from jointsearch.search.live import LiveDashboards

    records = [_rec(f"t{i}", err, n, budget=b) for i, (err, n, b) in enumerate(
        [(0.3, 100, 1.0), (0.2, 900, 1.0), (0.4, 50, 1.0), (0.5, 1000, 1.0), (0.25, 400, 3.0), (0.2, 800, 3.0)])]
    logged, metrics = {}, []
    live = LiveDashboards(lambda m, step: metrics.append(m), logged.__setitem__,
                          settings={"objectives": "val_error n_params"}, refresh_every=1000)
    for r in records:
        live.add(r)
    live.refresh(final=False)
    assert live.refreshes == 1
    fronts = json.loads(logged["dashboards/pareto_front.json"])
    assert [f["budget"] for f in fronts] == [1.0, 3.0]
    assert [p["trial_id"] for p in fronts[0]["front"]] == ["t1", "t0", "t2"] and fronts[0]["dominated"][0][
        "trial_id"] == "t3"
    assert json.loads(logged["dashboards/pareto/budget_3.json"])["front"]
    assert logged["dashboards/pareto_front.png"][:4] == b"\x89PNG"
    assert {"pareto/front_size/1": 3, "pareto/front_size/3": 2}.items() <= metrics[-1].items()
    single = LiveDashboards(lambda m, step: None, logged.__setitem__, refresh_every=1000)
    logged.clear()
    single.records.extend(records)
    single.refresh(final=False)
    assert not any("pareto" in k for k in logged)  # one objective: no front
    html = render_report(records, title="t", settings={"objectives": "val_error n_params"})
    assert 'id="pareto"' in html and 'id="pareto-front"' in html and "t2" in html
    assert 'id="pareto"' not in render_report(records, title="t")
