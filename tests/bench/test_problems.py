"""Tests for bench/problems.py: the benchmark problems have the optima and fidelity behaviour
the benchmark's regret figures rely on."""

from __future__ import annotations

import pytest

from bench import problems

X_STAR = (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573)


def _ones(value: float) -> dict:
    return {**{f"b{i}": 1 for i in range(problems.N_BINARY)},
            **{f"c{i}": value for i in range(problems.N_CONTINUOUS)}}


def test_counting_ones_regret_is_zero_at_the_optimum_and_grows_away_from_it():
    assert problems.counting_ones_regret(_ones(1.0)) == pytest.approx(0.0)
    assert problems.counting_ones_regret(_ones(0.5)) == pytest.approx(0.25)
    assert problems.counting_ones_regret({**_ones(1.0), "b0": 0}) == pytest.approx(1 / 16)


def test_counting_ones_noise_is_reproducible_per_seed_and_shrinks_with_the_budget():
    config = _ones(0.3)
    assert problems.counting_ones(config, 9, seed=1) == problems.counting_ones(config, 9, seed=1)
    assert len({problems.counting_ones(config, 9, seed=s) for s in range(20)}) > 1
    exact = problems.counting_ones_exact(config)
    spread = {b: max(abs(problems.counting_ones(config, b, seed=s) - exact) for s in range(50)) for b in (9, 729)}
    assert spread[729] < spread[9]


def test_hartmann6_regret_is_zero_at_the_known_optimum_and_low_fidelity_is_biased():
    x_star = {f"x{i}": v for i, v in enumerate(X_STAR)}
    assert problems.hartmann6_regret(x_star) == pytest.approx(0.0, abs=1e-4)
    assert problems.hartmann6(x_star, 729.0) == pytest.approx(-problems.HARTMANN_MAX, abs=1e-4)
    # alpha(z) = alpha - 0.1 (1 - z): the lowest fidelity under-states f by sum(...) * 0.1
    assert problems.hartmann6(x_star, 9.0) > problems.hartmann6(x_star, 729.0) + 0.05
    assert problems.hartmann6_regret({f"x{i}": 0.9 for i in range(6)}) > 1.0


def test_sleeping_trainer_takes_its_time_and_logs_each_evaluation(tmp_path):
    log = tmp_path / "spans.txt"
    values = [problems.sleeping({"a": 1}, b, sleep_s=0.05, log_path=str(log)) for b in (1.0, 3.0)]
    spans = [tuple(map(float, line.split())) for line in log.read_text().splitlines()]
    assert len(spans) == 2 and all(end - start >= 0.05 for start, end in spans)
    assert spans[0][1] <= spans[1][0]
    assert values[1] < values[0]  # a larger budget gives a lower value for the same configuration


def _spearman_matrix(agreement: float, noise: float = 0.35, n: int = 400):
    import numpy as np
    from scipy import stats

    rng = np.random.default_rng(5)
    configs = [{f"x{i}": float(v) for i, v in enumerate(row)} for row in rng.random((n, 6))]
    values = [[problems.mixed_hartmann6(c, b, agreement=agreement, noise=noise) for b in (1, 3, 9, 27)]
              for c in configs]
    return stats.spearmanr(values)[0], configs


@pytest.mark.parametrize("agreement, low, high", [(1.0, 0.8, 1.0), (0.0, -0.3, 0.1), (-0.9, -1.0, -0.6)])
def test_mixed_hartmann6_agreement_sets_how_the_lowest_budget_ranks_against_the_top(agreement, low, high):
    rho, _ = _spearman_matrix(agreement)
    assert low <= rho[0, 3] <= high
    if agreement == 0.0:  # the paper's shape: neighbours agree, the ends do not
        assert min(rho[0, 1], rho[1, 2], rho[2, 3]) > 0.6
        assert rho[0, 3] < rho[1, 3] < rho[2, 3]


def test_mixed_hartmann6_top_budget_is_hartmann6_and_regret_is_its_regret():
    import numpy as np
    from scipy import stats

    _, configs = _spearman_matrix(0.0, n=50)
    top = [problems.mixed_hartmann6(c, 27.0, agreement=-0.5, noise=0.0) for c in configs]
    regret = [problems.mixed_hartmann6_regret(c) for c in configs]
    assert stats.spearmanr(top, regret)[0] == pytest.approx(1.0)
    x_star = dict(zip([f"x{i}" for i in range(6)], (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573)))
    assert problems.mixed_hartmann6_regret(x_star) == pytest.approx(0.0, abs=1e-4)
    c = configs[0]
    assert problems.mixed_hartmann6(c, 3.0, seed=1) == problems.mixed_hartmann6(c, 3.0, seed=1)
    assert np.isfinite(problems.mixed_hartmann6(c, 1.0, agreement=-1.0))
