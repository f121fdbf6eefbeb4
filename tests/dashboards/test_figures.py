"""Figures render from their records (assertions on structure, not pixels)."""

from __future__ import annotations

import pytest
from matplotlib.figure import Figure

from jointsearch.dashboards import analysis, figures

ERRORS_10 = [0.31, 0.12, 0.45, 0.27, 0.08, 0.52, 0.19, 0.38, 0.23, 0.41]


def _texts(fig: Figure) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def _assert_png(fig: Figure) -> None:
    assert isinstance(fig, Figure)
    assert figures.figure_png(fig).startswith(figures.PNG_SIGNATURE)


@pytest.fixture
def three_budgets(make_records):
    """Budgets 1 and 3 share 10 configurations; only 3 reach budget 9."""
    return make_records(
        {1: ERRORS_10, 3: [e + 0.01 for e in ERRORS_10], 9: ERRORS_10[:3]},
        bracket=0,
        n_params=1000,
    )


class TestRankCorrelationHeatmap:
    def test_renders_the_upper_triangle_with_insufficient_cells_marked(self, three_budgets):
        info = analysis.rank_correlation(three_budgets, n_bootstrap=50)
        fig = figures.rank_correlation_heatmap(info)
        _assert_png(fig)
        texts = _texts(fig)
        assert "1.00\nn=10" in texts
        assert sum(t.startswith("n<5") for t in texts) == 2  # (1, 9) and (3, 9)
        ax = fig.axes[0]
        assert [t.get_text() for t in ax.get_xticklabels()] == ["3", "9"]  # larger budgets
        assert [t.get_text() for t in ax.get_yticklabels()] == ["1", "3"]  # smaller budgets
        norm = ax.images[0].norm
        assert (norm.vmin, norm.vmax) == (-1.0, 1.0)

    def test_one_budget_says_why(self, make_records):
        info = analysis.rank_correlation(make_records({1: ERRORS_10}))
        fig = figures.rank_correlation_heatmap(info)
        _assert_png(fig)
        assert any("two or more budgets" in t for t in _texts(fig))


def test_budget_scatter_has_one_panel_per_adjacent_pair(three_budgets):
    fig = figures.budget_scatter(analysis.paired_errors(three_budgets))
    _assert_png(fig)
    visible = [ax for ax in fig.axes if ax.axison]
    assert len(visible) == 2


def test_importance_figures(make_lr_records, make_conditional_space):
    configs = [dict(c) for c in make_conditional_space(seed=1).sample_configuration(24)]
    info = analysis.importance(make_lr_records(configs), make_conditional_space(), n_trees=16)
    bars = figures.importance_bars(info)
    _assert_png(bars)
    assert "momentum *" in [t.get_text() for t in bars.axes[0].get_yticklabels()]
    marginals = figures.marginal_plots(info)
    _assert_png(marginals)
    assert len(marginals.axes) == len(info.marginals) == 3


def test_importance_figures_without_data_say_why(make_records):
    info = analysis.importance(make_records({1: ERRORS_10[:3]}))
    for fig in (figures.importance_bars(info), figures.marginal_plots(info)):
        _assert_png(fig)
        assert any("at least 8" in t for t in _texts(fig))


def test_incumbent_plot_draws_the_trajectory_it_is_given(three_budgets):
    info = analysis.incumbent_trajectory(three_budgets)
    fig = figures.incumbent_plot(info)
    _assert_png(fig)
    ax_time, ax_budget = fig.axes
    x, y = ax_budget.lines[0].get_data()
    assert list(x) == pytest.approx(list(info.cumulative_budget))
    assert list(y) == pytest.approx(list(info.best_error), nan_ok=True)
    assert info.incumbent_trial_id in fig._suptitle.get_text()


def test_budget_bars_are_the_budget_spent_per_rung_and_bracket(three_budgets):
    info = analysis.budget_spent(three_budgets)
    fig = figures.budget_bars(info)
    _assert_png(fig)
    ax_rung, ax_bracket = fig.axes
    assert [bar.get_height() for bar in ax_rung.patches] == pytest.approx([r.total_budget for r in info.rungs])
    assert [t.get_text() for t in ax_rung.get_xticklabels()] == ["1", "3", "9"]
    assert [bar.get_height() for bar in ax_bracket.patches] == pytest.approx([b.total_budget for b in info.brackets])


def test_params_scatter_places_one_point_per_record(three_budgets):
    info = analysis.error_vs_params(three_budgets)
    fig = figures.params_scatter(info)
    _assert_png(fig)
    offsets = fig.axes[0].collections[0].get_offsets()
    assert list(offsets[:, 0]) == pytest.approx(list(info.n_params))
    assert list(offsets[:, 1]) == pytest.approx(list(info.val_error))


@pytest.mark.parametrize("draw, compute, message", [
    (figures.incumbent_plot, analysis.incumbent_trajectory, "no incumbent"),
    (figures.budget_bars, analysis.budget_spent, "No evaluations recorded"),
    (figures.params_scatter, analysis.error_vs_params, "parameter count"),
    (figures.budget_scatter, analysis.paired_errors, ""),
])
def test_empty_records_give_a_figure_that_says_why(draw, compute, message):
    fig = draw(compute([]))
    _assert_png(fig)
    texts = _texts(fig) + [fig._suptitle.get_text() if fig._suptitle else ""]
    assert any(message in t for t in texts if t)
    assert not any(ax.lines or ax.patches or ax.collections for ax in fig.axes)
