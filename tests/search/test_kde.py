"""The vectorised KDE proposer (search/kde.py) against hpbandster's BOHB config generator.

Exact where the two are deterministic (bandwidths, densities), statistical where they sample:
on the same observations, the configurations each picks must come from the same distribution.
"""

import math

import ConfigSpace as CS
import numpy as np
import pytest
from scipy import stats

from jointsearch.search.kde import KDEProposer


class _Job:
    """What hpbandster's ``BOHB.new_result`` reads from a finished job."""

    def __init__(self, config, budget, loss):
        self.kwargs = {"config": dict(config), "budget": budget}
        self.result = None if loss is None else {"loss": loss}
        self.exception = None


def make_continuous_space(seed=0):
    space = CS.ConfigurationSpace(seed=seed)
    space.add([
        CS.UniformFloatHyperparameter("learning_rate", 1e-4, 1.0, log=True),
        CS.UniformFloatHyperparameter("momentum", 0.0, 0.99),
        CS.UniformIntegerHyperparameter("batch_size", 16, 256, log=True),
        CS.UniformFloatHyperparameter("dropout", 0.0, 0.8),
    ])
    return space


def make_categorical_space(seed=0):
    """Continuous and categorical, no conditions: both proposers fit exactly the same model."""
    space = CS.ConfigurationSpace(seed=seed)
    space.add([
        CS.UniformFloatHyperparameter("learning_rate", 1e-4, 1.0, log=True),
        CS.CategoricalHyperparameter("optimizer", ["sgd", "adam", "rmsprop"]),
        CS.UniformIntegerHyperparameter("batch_size", 16, 256, log=True),
        CS.UniformFloatHyperparameter("momentum", 0.0, 0.99),
    ])
    return space


def make_mixed_space(seed=0):
    """Continuous, categorical and a conditional child (active only for optimizer == 'sgd')."""
    space = CS.ConfigurationSpace(seed=seed)
    optimizer = CS.CategoricalHyperparameter("optimizer", ["sgd", "adam", "rmsprop"])
    momentum = CS.UniformFloatHyperparameter("momentum", 0.0, 0.99)
    space.add([
        CS.UniformFloatHyperparameter("learning_rate", 1e-4, 1.0, log=True),
        CS.UniformFloatHyperparameter("weight_decay", 1e-6, 1e-2, log=True),
        optimizer, momentum,
        CS.EqualsCondition(momentum, optimizer, "sgd"),
    ])
    return space


def loss_of(config):
    """A smooth objective with its optimum inside the space (and a categorical preference)."""
    loss = (math.log10(config["learning_rate"]) + 1.5) ** 2
    loss += (config.get("momentum", 0.5) - 0.8) ** 2 * 4
    loss += {"sgd": 0.0, "adam": 0.3, "rmsprop": 0.6}.get(config.get("optimizer"), 0.0)
    loss += 0.5 * config.get("dropout", 0.0)
    return loss


def observations(space, n, budget=1.0, seed=0, failures=0):
    space.seed(seed)
    out = []
    for i, config in enumerate(space.sample_configuration(n)):
        config = dict(config)
        out.append((config, budget, float("nan") if i < failures else loss_of(config)))
    return out


def fed(space, obs, seed=0):
    """Both proposers, given the same observations."""
    from hpbandster.optimizers.config_generators.bohb import BOHB

    ours = KDEProposer(space, seed=seed)
    theirs = BOHB(space)
    for config, budget, loss in obs:
        ours.observe(config, budget, loss)
        theirs.new_result(_Job(config, budget, loss if math.isfinite(loss) else None))
    return ours, theirs


def vectors(space, configs):
    return np.array([CS.Configuration(space, values=c).get_array() for c in configs])


class TestModel:
    def test_no_model_until_both_sets_have_more_points_than_dimensions(self):
        space = make_continuous_space()  # 4 dims: min_points 5, bad set > 4 rows: 10 observations
        proposer = KDEProposer(space, seed=0)
        for config, budget, loss in observations(space, 9):
            proposer.observe(config, budget, loss)
        assert proposer.model_budget() is None
        assert not any(proposer.propose().model_based for _ in range(20))
        config, budget, loss = observations(space, 10, seed=1)[0]
        proposer.observe(config, budget, loss)
        assert proposer.model_budget() == 1.0
        assert any(proposer.propose().model_based for _ in range(20))

    def test_the_model_is_fitted_on_the_largest_budget_that_has_enough_points(self):
        space = make_continuous_space()
        proposer = KDEProposer(space, seed=0)
        for config, _, loss in observations(space, 30):
            proposer.observe(config, 1.0, loss)
        for config, _, loss in observations(space, 12, seed=3):
            proposer.observe(config, 9.0, loss)
        for config, _, loss in observations(space, 4, seed=4):
            proposer.observe(config, 27.0, loss)
        assert proposer.model_budget() == 9.0
        picks = [proposer.propose() for _ in range(30)]
        assert {p.model_budget for p in picks if p.model_based} == {9.0}

    def test_bandwidths_and_densities_equal_statsmodels(self):
        """Same good/bad split, same normal-reference bandwidths, same product-kernel pdf as the
        statsmodels KDEMultivariate that hpbandster fits (no conditions: nothing is imputed)."""
        space = make_continuous_space()
        ours, theirs = fed(space, observations(space, 60))
        good, bad = ours._model(1.0)
        kde_good, kde_bad = theirs.kde_models[1.0]["good"], theirs.kde_models[1.0]["bad"]
        np.testing.assert_allclose(np.sort(good.data, 0), np.sort(kde_good.data, 0))
        np.testing.assert_allclose(good.bw, kde_good.bw, rtol=1e-12)
        np.testing.assert_allclose(bad.bw, kde_bad.bw, rtol=1e-12)
        x = np.random.default_rng(0).random((50, len(space)))
        np.testing.assert_allclose(good.pdf(x, ours.kinds), kde_good.pdf(x), rtol=1e-9)
        np.testing.assert_allclose(bad.pdf(x, ours.kinds), kde_bad.pdf(x), rtol=1e-9)

    def test_categorical_densities_equal_statsmodels_aitchison_aitken(self):
        import statsmodels.api as sm

        space = make_mixed_space()
        ours = KDEProposer(space, seed=0)
        data = ours._impute(vectors(space, [c for c, _, _ in observations(space, 40)]))
        density = ours._density(data)
        kde = sm.nonparametric.KDEMultivariate(data=data, var_type="".join(ours.kinds), bw="normal_reference")
        np.testing.assert_allclose(density.bw, np.clip(kde.bw, 1e-3, None), rtol=1e-12)
        kde.bw = density.bw
        probe = ours.candidates(density)
        np.testing.assert_allclose(density.pdf(probe, ours.kinds), kde.pdf(probe), rtol=1e-9)

    def test_failed_evaluations_are_bad_points(self):
        space = make_continuous_space()
        proposer = KDEProposer(space, seed=0)
        obs = observations(space, 40, failures=5)
        for config, budget, loss in obs:
            proposer.observe(config, budget, loss)
        good, bad = proposer._model(1.0)
        failed = vectors(space, [c for c, _, _ in obs[:5]])
        as_rows = lambda a: {tuple(np.round(r, 12)) for r in a}  # noqa: E731
        assert as_rows(failed) <= as_rows(bad.data)
        assert not as_rows(failed) & as_rows(good.data)

    def test_conditional_values_are_imputed_and_proposals_are_valid(self):
        space = make_mixed_space()
        proposer = KDEProposer(space, seed=0)
        for config, budget, loss in observations(space, 60):
            proposer.observe(config, budget, loss)
        good, bad = proposer._model(1.0)
        assert np.isfinite(good.data).all() and np.isfinite(bad.data).all()
        for _ in range(50):
            config = proposer.propose().config
            CS.Configuration(space, values=config).check_valid_configuration()
            assert ("momentum" in config) == (config["optimizer"] == "sgd")


class TestDeterminism:
    def test_same_seed_same_proposals_other_seed_other_proposals(self):
        space = make_mixed_space()
        obs = observations(space, 60)

        def run(seed):
            proposer = KDEProposer(space, seed=seed)
            for config, budget, loss in obs:
                proposer.observe(config, budget, loss)
            return [(p.config, p.model_based) for p in (proposer.propose() for _ in range(25))]

        assert run(7) == run(7)
        assert run(7) != run(8)


def _hpbandster_picks(theirs, n, seed):
    np.random.seed(seed)
    theirs.configspace.seed(seed)
    picks = [theirs.get_config(1.0) for _ in range(n)]
    return [c for c, info in picks if info["model_based_pick"]], sum(info["model_based_pick"] for _, info in picks)


def _share_model(ours, theirs):
    """Give ours hpbandster's fitted (imputed) data: imputation is random, and with a handful of
    good points one imputation is a different model from another, for hpbandster too."""
    from jointsearch.search.kde import _Density

    def density(kde):
        data = np.asarray(kde.data)
        return _Density(data=data, bw=np.asarray(kde.bw), levels=np.array([np.unique(c).size for c in data.T]))

    ours._models[1.0] = (density(theirs.kde_models[1.0]["good"]), density(theirs.kde_models[1.0]["bad"]))
    ours._dirty.clear()


@pytest.mark.slow  # hpbandster needs ~0.1 s per pick on a busy machine
@pytest.mark.parametrize("make_space, share", [(make_continuous_space, False), (make_categorical_space, False),
                                               (make_mixed_space, True)],
                         ids=["continuous", "categorical", "conditional"])
def test_samples_come_from_hpbandsters_distribution(make_space, share):
    """Model-based picks of both proposers on the same 60 observations: per-dimension two-sample KS
    (continuous) or chi-square (categorical) tests do not reject, and the mean acquisition value
    (log g/l under hpbandster's own KDEs) agrees. The same tests do reject prior samples against
    the model's picks, so they can fail. (Conditional space: same imputed data, see _share_model.)"""
    space = make_space()
    ours, theirs = fed(space, observations(space, 60), seed=11)
    if share:
        _share_model(ours, theirs)
    their_picks, n_model = _hpbandster_picks(theirs, 240, seed=11)
    proposals = [ours.propose() for _ in range(900)]
    our_picks = [p.config for p in proposals if p.model_based]
    # the random fraction is 1/3 in both (binomial, 240 draws: 4 sigma is about 0.12)
    assert abs(n_model / 240 - 2 / 3) < 0.12 and abs(len(our_picks) / 900 - 2 / 3) < 0.07

    space.seed(99)
    prior = [dict(c) for c in space.sample_configuration(600)]
    a, b, c = vectors(space, our_picks), vectors(space, their_picks), vectors(space, prior)
    alpha = 1e-3 / len(space)  # Bonferroni over the dimensions
    rejected_prior = False
    for j, name in enumerate(space.keys()):
        hp = space[name]
        x, y, z = a[:, j], b[:, j], c[:, j]
        x, y, z = x[np.isfinite(x)], y[np.isfinite(y)], z[np.isfinite(z)]
        if isinstance(hp, CS.CategoricalHyperparameter):
            levels = range(len(hp.choices))
            table = np.array([[np.sum(v == k) for k in levels] for v in (x, y)])
            p_same = stats.chi2_contingency(table + 0.5).pvalue
            p_prior = stats.chi2_contingency(np.array([[np.sum(v == k) for k in levels] for v in (z, y)]) + 0.5).pvalue
        else:
            p_same, p_prior = stats.ks_2samp(x, y).pvalue, stats.ks_2samp(z, y).pvalue
        assert p_same > alpha, (name, p_same)
        rejected_prior |= p_prior < alpha
    assert rejected_prior, "the tests could not tell prior samples from the model's picks"

    kde = theirs.kde_models[1.0]
    imputed = lambda v: ours._impute(v)  # noqa: E731  (the KDEs need every column)
    acq = lambda v: np.log(np.maximum(kde["bad"].pdf(v), 1e-32) / np.maximum(kde["good"].pdf(v), 1e-32))  # noqa: E731
    ours_acq, theirs_acq, prior_acq = acq(imputed(a)), acq(imputed(b)), acq(imputed(c))
    assert stats.ttest_ind(ours_acq, theirs_acq, equal_var=False).pvalue > 1e-3
    assert stats.ttest_ind(prior_acq, theirs_acq, equal_var=False).pvalue < 1e-3


def test_the_proposer_imports_neither_ray_nor_torch():
    """kde.py is the search layer's model: usable (and benchmarked) without Ray or torch."""
    import subprocess
    import sys

    code = ("import sys, jointsearch.search.kde, jointsearch.search.presets; "
            "print(sorted(m for m in ('ray', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
