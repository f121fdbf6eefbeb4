"""Figures drawn from the ``...Info`` records of :mod:`jointsearch.dashboards.analysis`.

Draw second: every function takes a record (never raw evaluations) and returns a
``matplotlib.figure.Figure`` rendered with the Agg canvas. Figures are built without
``pyplot``, so nothing here touches global pyplot state or the user's chosen backend, and figures
are freed when dropped. A record without data gives a figure that says why, not an exception.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .analysis import (
    BudgetInfo,
    ImportanceInfo,
    IncumbentInfo,
    PairedErrors,
    ParamsInfo,
    RankCorrelationInfo,
)
from .pareto import ParetoInfo

__all__ = [
    "Drawn",
    "budget_bars",
    "budget_scatter",
    "figure_png",
    "importance_bars",
    "incumbent_plot",
    "marginal_plots",
    "params_scatter",
    "pareto_plot",
    "rank_correlation_heatmap",
]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_DIVERGING = "RdBu"  # blue = errors rank alike, red = reversed
_INSUFFICIENT = "#d9d9d9"


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _message_figure(message: str, title: str | None = None) -> Figure:
    fig = _new_figure(6, 2)
    ax = fig.add_subplot()
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=11)
    if title:
        ax.set_title(title)
    return fig


def _fmt_budget(b: float) -> str:
    return f"{b:g}"


def figure_png(fig: Figure, *, dpi: int = 100) -> bytes:
    """The figure as PNG bytes (Agg)."""
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


class Drawn(dict):
    """PNG bytes by figure id, each figure drawn at most once (rendering is most of what the
    dashboards cost: ~0.2 CPU-s per figure on 2 cores). The report and the live dashboards'
    artifacts share one, so they embed and log the same bytes."""

    def png(self, key: str, make: Callable[[], Figure]) -> bytes:
        if key not in self:
            self[key] = figure_png(make())
        return self[key]


def rank_correlation_heatmap(info: RankCorrelationInfo, *, kind: str = "spearman") -> Figure:
    """Upper-triangle table like Zela et al. (2018): rows = smaller budget, columns = larger.

    Each cell shows the coefficient and the number of common configurations; pairs with fewer
    than ``info.min_pairs`` are grey with "n<min". Colours are fixed to [-1, 1] so two searches'
    heatmaps read the same.
    """
    if kind not in ("spearman", "kendall"):
        raise ValueError(f"kind must be 'spearman' or 'kendall', got {kind!r}")
    budgets = info.budgets
    if len(budgets) < 2:
        return _message_figure(
            "Rank correlation needs successful evaluations at two or more budgets "
            f"(found {len(budgets)}).",
            "Rank correlation across budgets",
        )
    rows, cols = budgets[:-1], budgets[1:]
    values = np.full((len(rows), len(cols)), np.nan)
    for p in info.pairs:
        v = getattr(p, kind)
        if v is not None:
            values[budgets.index(p.budget_low), budgets.index(p.budget_high) - 1] = v
    size = max(4.8, 1.1 * len(cols) + 2.5)
    fig = _new_figure(size, max(3.0, 0.9 * len(rows) + 1.8))
    ax = fig.add_subplot()
    norm = Normalize(vmin=-1.0, vmax=1.0)
    cmap = matplotlib.colormaps[_DIVERGING].with_extremes(bad="white")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, norm=norm, aspect="auto")
    for p in info.pairs:
        i, j = budgets.index(p.budget_low), budgets.index(p.budget_high) - 1
        v = getattr(p, kind)
        if v is None:
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor=_INSUFFICIENT,
                                   edgecolor="white", linewidth=1.5))
            ax.text(j, i, f"n<{info.min_pairs}\n(n={p.n_pairs})", ha="center", va="center",
                    fontsize=9, color="#555555")
        else:
            colour = "white" if abs(v) > 0.6 else "black"
            ax.text(j, i, f"{v:.2f}\nn={p.n_pairs}", ha="center", va="center", fontsize=9,
                    color=colour)
    ax.set_xticks(range(len(cols)), [_fmt_budget(b) for b in cols])
    ax.set_yticks(range(len(rows)), [_fmt_budget(b) for b in rows])
    ax.set_xlabel("larger budget")
    ax.set_ylabel("smaller budget")
    symbol = "Spearman ρ" if kind == "spearman" else "Kendall τ"
    ax.set_title(f"{symbol} of validation error between budgets")
    fig.colorbar(image, ax=ax, label=symbol)
    return fig


def budget_scatter(paired: Sequence[PairedErrors]) -> Figure:
    """A grid of scatter plots, one per budget pair: val_error at b_low (x) vs at b_high (y).

    Pass :func:`jointsearch.dashboards.analysis.paired_errors` (adjacent budgets by default).
    """
    paired = [p for p in paired if p.n_pairs > 0]
    if not paired:
        return _message_figure("No configuration was evaluated at two budgets.",
                               "Validation error at pairs of budgets")
    ncols = min(3, len(paired))
    nrows = math.ceil(len(paired) / ncols)
    fig = _new_figure(3.4 * ncols, 3.2 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, p in zip(axes.flat, paired):
        ax.scatter(p.errors_low, p.errors_high, s=14, alpha=0.7)
        ax.set_xlabel(f"val error @ {_fmt_budget(p.budget_low)}")
        ax.set_ylabel(f"val error @ {_fmt_budget(p.budget_high)}")
        ax.set_title(f"{_fmt_budget(p.budget_low)} → {_fmt_budget(p.budget_high)} (n={p.n_pairs})",
                     fontsize=10)
    for ax in list(axes.flat)[len(paired):]:
        ax.axis("off")
    return fig


def importance_bars(info: ImportanceInfo) -> Figure:
    """Horizontal bars of each hyperparameter's share; imputed parameters are starred."""
    title = "Hyperparameter importance (fANOVA)"
    if info.budget is not None:
        title += f" at budget {_fmt_budget(info.budget)}"
    if not info.sufficient or not info.importances:
        return _message_figure(f"No importance: {info.reason}", title)
    imputed = set(info.imputed_names)
    names = list(info.importances)[::-1]  # most important on top
    shares = [info.importances[n] for n in names]
    labels = [f"{n} *" if n in imputed else n for n in names]
    fig = _new_figure(6.5, max(2.5, 0.35 * len(names) + 1.5))
    ax = fig.add_subplot()
    ax.barh(range(len(names)), shares, color="#4c72b0")
    ax.set_yticks(range(len(names)), labels)
    ax.set_xlim(0, max(1.0, max(shares) * 1.05))
    xlabel = "share of explained variance"
    if imputed:
        xlabel += "\n* inactive in some configurations; imputed before fANOVA"
    ax.set_xlabel(xlabel)
    ax.set_title(f"{title} (n={info.n_records})", fontsize=10)
    return fig


def marginal_plots(info: ImportanceInfo) -> Figure:
    """Mean observed validation error along each of the top parameters (binned)."""
    if not info.marginals:
        reason = info.reason or "no marginals were computed"
        return _message_figure(f"No marginals: {reason}", "Marginals")
    n = len(info.marginals)
    fig = _new_figure(3.6 * n, 3.2)
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, m in zip(axes, info.marginals):
        if m.kind == "categorical":
            ax.bar(range(len(m.grid)), m.mean_error, color="#55a868")
            ax.set_xticks(range(len(m.grid)), [str(g) for g in m.grid])
        else:
            ax.plot(m.grid, m.mean_error, marker="o")
            if m.log:
                ax.set_xscale("log")
        ax.set_xlabel(m.name)
        ax.set_ylabel("mean val error (observed)")
        share = info.importances.get(m.name)
        ax.set_title(f"{m.name}" + (f" ({share:.0%})" if share is not None else ""), fontsize=10)
    return fig


def incumbent_plot(info: IncumbentInfo) -> Figure:
    """Best val_error at the highest budget vs wall time (left) and cumulative budget (right)."""
    if info.budget is None:
        return _message_figure("No successful evaluation, so no incumbent.", "Incumbent")
    fig = _new_figure(10, 3.6)
    ax_time, ax_budget = fig.subplots(1, 2)
    best = np.asarray(info.best_error, dtype=float)
    if info.has_wall_time:
        ax_time.step(info.wall_time_s, best, where="post")
        ax_time.set_xlabel("wall time since first finish [s]")
    else:
        ax_time.text(0.5, 0.5, "no finish times recorded", ha="center", va="center",
                     transform=ax_time.transAxes)
    ax_budget.step(info.cumulative_budget, best, where="post")
    ax_budget.set_xlabel("cumulative budget spent")
    for ax in (ax_time, ax_budget):
        ax.set_ylabel(f"best val error @ {_fmt_budget(info.budget)}")
    fig.suptitle(f"Incumbent: {info.incumbent_trial_id} (val error {info.incumbent_error:.4g})",
                 fontsize=11)
    return fig


def budget_bars(info: BudgetInfo) -> Figure:
    """Budget spent and evaluations per rung (left) and per bracket (right)."""
    if info.n_evaluations == 0:
        return _message_figure("No evaluations recorded.", "Budget spent")
    fig = _new_figure(10, 3.6)
    ax_rung, ax_bracket = fig.subplots(1, 2)
    labels = [_fmt_budget(r.budget) for r in info.rungs]
    bars = ax_rung.bar(labels, [r.total_budget for r in info.rungs], color="#8172b2")
    ax_rung.bar_label(bars, [f"{r.n_evaluations} evals" for r in info.rungs], fontsize=8)
    ax_rung.set_xlabel("rung (budget per evaluation)")
    ax_rung.set_ylabel("budget spent")
    ax_rung.set_title(f"per rung (total {info.total_budget:g})", fontsize=10)
    if info.brackets:
        bars = ax_bracket.bar([str(b.bracket) for b in info.brackets],
                              [b.total_budget for b in info.brackets], color="#c44e52")
        ax_bracket.bar_label(bars, [f"{b.n_evaluations} evals" for b in info.brackets], fontsize=8)
        ax_bracket.set_xlabel("bracket")
        ax_bracket.set_ylabel("budget spent")
        ax_bracket.set_title("per bracket", fontsize=10)
    else:
        ax_bracket.axis("off")
        ax_bracket.text(0.5, 0.5, "no bracket recorded", ha="center", va="center",
                        transform=ax_bracket.transAxes)
    return fig


def params_scatter(info: ParamsInfo) -> Figure:
    """Validation error against parameter count, coloured by budget."""
    if not info.n_params:
        return _message_figure("No evaluation recorded its parameter count.",
                               "Validation error vs parameters")
    fig = _new_figure(6, 4)
    ax = fig.add_subplot()
    budgets = np.asarray(info.budget, dtype=float)
    points = ax.scatter(info.n_params, info.val_error, c=budgets, cmap="viridis", s=16, alpha=0.8)
    if min(info.n_params) > 0 and max(info.n_params) >= 10 * min(info.n_params):
        ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("val error")
    ax.set_title("Validation error vs parameter count", fontsize=10)
    if len(set(info.budget)) > 1:
        fig.colorbar(points, ax=ax, label="budget")
    return fig


def pareto_plot(infos: Sequence[ParetoInfo], *, x: str | None = None, y: str = "val_error") -> Figure:
    """The Pareto front at each budget (one panel per budget, from :func:`.pareto.pareto_fronts`):
    ``y`` (val_error) against ``x`` (default: the first other objective); front points in colour
    joined as a staircase, dominated points in grey, the knee circled. A log x axis when the
    values are positive and span more than two decades (parameter counts)."""
    infos = [i for i in infos if i.front]
    if not infos:
        return _message_figure("No successful evaluation with every objective yet.", "Pareto front")
    objectives = list(infos[0].objectives)
    names = [o.partition(":")[0] for o in objectives]
    if len(names) < 2:
        return _message_figure("The Pareto front needs two or more objectives.", "Pareto front")
    yi = names.index(y) if y in names else 0
    xi = names.index(x) if x in names else next(i for i in range(len(names)) if i != yi)
    n = len(infos)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig = _new_figure(4.2 * cols, 3.6 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, info in zip(axes.flat, infos):
        fx = [p.values[xi] for p in info.front]
        fy = [p.values[yi] for p in info.front]
        dx = [p.values[xi] for p in info.dominated]
        dy = [p.values[yi] for p in info.dominated]
        ax.scatter(dx, dy, s=14, color="#b0b0b0", label=f"dominated ({len(dx)})")
        order = np.argsort(fx)
        ax.step(np.array(fx)[order], np.array(fy)[order], where="post", color="C0", alpha=0.6)
        ax.scatter(fx, fy, s=22, color="C0", zorder=3, label=f"front ({len(fx)})")
        if info.knee is not None:
            ax.scatter([fx[info.knee]], [fy[info.knee]], s=120, facecolors="none", edgecolors="C3", zorder=4,
                       label="knee")
        every = [v for v in fx + dx if v is not None]
        if every and min(every) > 0 and max(every) / min(every) > 100:
            ax.set_xscale("log")
        ax.set_xlabel(objectives[xi])
        ax.set_ylabel(objectives[yi])
        hv = f", HV {info.hypervolume:.3g}" if info.hypervolume is not None and len(objectives) == 2 else ""
        ax.set_title(f"budget {_fmt_budget(info.budget)}{hv}", fontsize=10)
        ax.legend(fontsize=8, loc="best")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    return fig
