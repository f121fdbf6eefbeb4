"""search/gp.py: the Gaussian process, and the proposer behind ``--model gp``."""

import functools
import math

import ConfigSpace as CS
import numpy as np
import pytest

from jointsearch.search.errors import UsageError
from jointsearch.search.gp import GaussianProcess, GPProposer


def _unit_space(dims: int, seed: int = 0) -> CS.ConfigurationSpace:
    space = CS.ConfigurationSpace(seed=seed)
    space.add([CS.UniformFloatHyperparameter(f"x{i}", 0.0, 1.0) for i in range(dims)])
    return space


class TestGaussianProcess:
    def test_it_interpolates_a_smooth_function_and_is_unsure_away_from_the_data(self):
        rng = np.random.default_rng(0)
        X = rng.random((25, 1))
        y = np.sin(6 * X[:, 0])
        gp = GaussianProcess(rng).fit(X, y)
        Z = np.linspace(0.05, 0.95, 19)[:, None]
        mean, sd = gp.predict(Z)
        assert np.max(np.abs(mean - np.sin(6 * Z[:, 0]))) < 0.05
        near, far = GaussianProcess(rng).fit(X[X[:, 0] < 0.5], y[X[:, 0] < 0.5]).predict(np.array([[0.25], [0.95]]))[1]
        assert far > 5 * near  # no data above 0.5: the model says it does not know

    def test_expected_improvement_is_highest_where_a_lower_loss_is_likely(self):
        rng = np.random.default_rng(1)
        X = rng.random((30, 2))
        y = ((X - [0.3, 0.7]) ** 2).sum(1)
        ei = GaussianProcess(rng).fit(X, y).expected_improvement(np.array([[0.3, 0.7], [0.95, 0.05]]))
        assert ei[0] > 10 * ei[1]


class TestGPProposer:
    def test_it_finds_an_optimum_on_the_edge_of_the_range_that_the_kde_and_random_search_miss(self):
        """Where the front of bench/multi_objective.py lies: the best loss needs x0..x3 at 0."""
        from jointsearch.search.kde import KDEProposer

        def loss(config):
            return float(np.mean([config[f"x{i}"] for i in range(4)]))

        best = {}
        for kind, make in (("gp", functools.partial(GPProposer, n_candidates=500)), ("kde", KDEProposer), ("random", None)):
            proposer, space, found = make and make(_unit_space(4), seed=3), _unit_space(4, seed=3), []
            for _ in range(30):
                config = proposer.propose().config if proposer else dict(space.sample_configuration())
                found.append(loss(config))
                if proposer:
                    proposer.observe(config, 1.0, found[-1])
            best[kind] = min(found)
        assert best["gp"] < 0.01 < 0.03 < best["kde"] < best["random"]

    def test_proposals_are_valid_in_a_conditional_space_with_categories_and_failures(self):
        space = CS.ConfigurationSpace(seed=0)
        optimiser = CS.CategoricalHyperparameter("optimiser", ["sgd", "adam", "rmsprop"])
        momentum = CS.UniformFloatHyperparameter("momentum", 0.0, 0.99)
        layers = CS.OrdinalHyperparameter("layers", [1, 2, 4, 8])
        lr = CS.UniformFloatHyperparameter("lr", 1e-4, 1.0, log=True)
        space.add([optimiser, momentum, layers, lr])
        space.add(CS.EqualsCondition(momentum, optimiser, "sgd"))
        proposer = GPProposer(space, seed=0, n_candidates=500)
        kinds = []
        for i in range(30):
            proposal = proposer.propose()
            config = proposal.config
            CS.Configuration(space, values=config).check_valid_configuration()
            assert ("momentum" in config) == (config["optimiser"] == "sgd")
            kinds.append(proposal.kind)
            failed = i % 5 == 0  # a failed evaluation is a bad point, not a crash
            proposer.observe(config, 1.0, math.inf if failed else abs(math.log10(config["lr"]) + 2))
        assert kinds[:5] == ["random"] * 5  # dims + 2 observations before a model
        assert kinds.count("model") >= 15

    def test_the_model_uses_the_largest_budget_with_enough_observations(self):
        proposer = GPProposer(_unit_space(2), seed=0)
        for i in range(6):
            proposer.observe({"x0": i / 6, "x1": 0.5}, 1.0, i)
        for i in range(3):
            proposer.observe({"x0": i / 3, "x1": 0.1}, 3.0, i)
        assert proposer.model_budget() == 1.0
        proposer.observe({"x0": 0.9, "x1": 0.9}, 3.0, 5.0)
        assert proposer.model_budget() == 3.0


class TestTheSetting:
    def test_the_bohb_preset_builds_the_gp_searcher_with_parego_for_several_objectives(self, make_settings):
        from jointsearch.search.presets import PRESETS
        from jointsearch.spaces import get

        searcher, _ = PRESETS["bohb"].build(make_settings(model="gp", objectives=("val_error", "n_params")),
                                            get("tiny"))
        assert isinstance(searcher.proposer, GPProposer) and searcher.mo_loss == "parego"
        searcher, _ = PRESETS["bohb"].build(make_settings(), get("tiny"))
        assert not isinstance(searcher.proposer, GPProposer) and searcher.mo_loss == "pareto_rank"

    def test_another_preset_refuses_it_in_one_line(self, make_settings):
        with pytest.raises(UsageError, match="--model gp needs --preset bohb"):
            make_settings(model="gp", scheduler="asha").validate()
