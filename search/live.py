"""Live dashboards: the search's own analysis, pushed into its MLflow parent run as it runs.

The paper's central finding is that ranks at short budgets can mislead (its Spearman table);
users should see that for *their* search while it runs, in the MLflow UI. Every
``refresh_every`` evaluations, and once more at the end, this computes the dashboards' pure
analyses on the evaluations so far and logs:

- metrics ``rank_corr/spearman/<b_i>-<b_j>`` (and ``kendall``) with step = number of completed
  evaluations, so the UI draws how each correlation evolves as rungs complete;
- artifacts under ``dashboards/``: the matrix as JSON and CSV, the heatmap shaped like the
  paper's table, and (at the end, where fitting is affordable) budget scatter plots,
  importance bars and marginals, the incumbent trajectory, budget per rung, error vs size,
  plus the whole HTML report.

Failures here are logged and swallowed: a plot must never stop a search.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Callable

from jointsearch.dashboards import rank_correlation, records_to_json
from jointsearch.dashboards.records import EvaluationRecord

from .listeners import SearchListener

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn, not with this module
    from jointsearch.dashboards.analysis import Analyses
    from jointsearch.dashboards.figures import Drawn

log = logging.getLogger("jointsearch.search")

FOLDER = "dashboards"


def _budget_label(b: float) -> str:
    return f"{b:g}"


class LiveDashboards(SearchListener):
    """Computes and logs the search's dashboards; ``log_metrics``/``log_artifact`` go to the parent run.

    A listener of the tracker (listeners.py): it is told every evaluation as it is recorded, and
    logs back through the tracker's delivery, so an MLflow outage defers its artifacts too."""

    def __init__(self, log_metrics: Callable[[dict[str, float], int], None],
                 log_artifact: Callable[[str, str | bytes], None], *, space=None, settings: dict | None = None,
                 title: str = "jointsearch", refresh_every: int = 10, min_pairs: int = 5, n_bootstrap: int = 200):
        self.log_metrics = log_metrics
        self.log_artifact = log_artifact
        self.space = space
        self.settings = settings or {}
        self.title = title
        self.refresh_every = max(1, refresh_every)
        self.min_pairs = min_pairs
        self.n_bootstrap = n_bootstrap
        self.records: list[EvaluationRecord] = []
        self.refreshes = 0
        self.budget_decisions: list[dict] = []  # issue 14: the adaptive budgets' decisions, for the report

    def add(self, record: EvaluationRecord) -> None:
        self.records.append(record)
        if len(self.records) % self.refresh_every == 0:
            self.refresh(final=False)

    on_evaluation = add

    def on_budget_decision(self, decision) -> None:
        self.budget_decisions.append(dict(decision))

    def finish(self) -> None:
        """The final refresh, with every analysis and the report (once, when the search ends)."""
        if self.records:
            self.refresh(final=True)

    def refresh(self, final: bool) -> None:
        try:
            self._refresh(final)
            self.refreshes += 1
        except Exception as exc:  # noqa: BLE001 - dashboards are best effort by design
            log.warning("could not update the dashboards: %s", exc)

    @property
    def objectives(self) -> tuple[str, ...]:
        """The search's objectives (its ``objectives`` setting, issue 15)."""
        return tuple(str(self.settings.get("objectives") or "val_error").split())

    def _pareto(self, records: list[EvaluationRecord], drawn: Drawn) -> None:
        """With several objectives: the front at each budget as ``dashboards/pareto/budget_<b>.json``,
        all budgets in ``pareto_front.json`` and ``pareto_front.png`` (one panel per budget: one
        figure rendered per refresh, not one per budget, since it is drawn in Tune's callback), and
        the front's size per budget as a metric."""
        if len(self.objectives) < 2:
            return
        from jointsearch.dashboards import figures
        from jointsearch.dashboards.pareto import pareto_fronts

        infos = pareto_fronts(records, self.objectives)
        for info in infos:
            label = _budget_label(info.budget)
            self.log_artifact(f"{FOLDER}/pareto/budget_{label}.json", json.dumps(info.to_json(), indent=2))
        self.log_artifact(f"{FOLDER}/pareto_front.json", json.dumps([i.to_json() for i in infos], indent=2))
        self.log_artifact(f"{FOLDER}/pareto_front.png", drawn.png("pareto-front", lambda: figures.pareto_plot(infos)))
        metrics = {}
        for info in infos:
            # (no hypervolume metric: its reference point moves with the worst point seen, so
            # values at two steps do not compare; the JSON gives it with its reference)
            metrics[f"pareto/front_size/{_budget_label(info.budget)}"] = len(info.front)
        if metrics:
            self.log_metrics(metrics, len(records))

    def _refresh(self, final: bool) -> None:
        from jointsearch.dashboards import figures
        from jointsearch.dashboards.analysis import analyse

        records = list(self.records)
        step = len(records)
        # The final refresh computes every analysis once, with the report's bootstrap size, and
        # both logs and renders those objects; a refresh during the search (replaced later)
        # computes only the rank correlation, with fewer resamples.
        analyses = analyse(records, self.space, min_pairs=self.min_pairs) if final else None
        info = analyses.rank_correlation if final else rank_correlation(
            records, min_pairs=self.min_pairs, n_bootstrap=self.n_bootstrap)
        # At the end the report is rendered first: the figures it draws stay in ``drawn``, and the
        # PNG artifacts below are those bytes (each figure drawn once, figures.Drawn).
        drawn = figures.Drawn()
        report = self._report(records, analyses, drawn) if final else None
        metrics: dict[str, float] = {}
        for pair in info.pairs:
            if pair.sufficient:
                key = f"{_budget_label(pair.budget_low)}-{_budget_label(pair.budget_high)}"
                metrics[f"rank_corr/spearman/{key}"] = pair.spearman
                metrics[f"rank_corr/kendall/{key}"] = pair.kendall
                metrics[f"rank_corr/n_pairs/{key}"] = pair.n_pairs
        metrics["evaluations"] = step
        self.log_metrics(metrics, step)
        self.log_artifact(f"{FOLDER}/rank_correlation.json", json.dumps(info.to_json(), indent=2))
        self.log_artifact(f"{FOLDER}/rank_correlation.csv", info.to_csv())
        self.log_artifact(f"{FOLDER}/rank_correlation_heatmap.png",
                          drawn.png("rank-correlation-heatmap", lambda: figures.rank_correlation_heatmap(info)))
        self._pareto(records, drawn)
        if analyses is None:
            return
        a = analyses
        self.log_artifact(f"{FOLDER}/budget_scatter.png",
                          drawn.png("budget-scatter", lambda: figures.budget_scatter(a.paired)))
        if a.importance is not None:
            self.log_artifact(f"{FOLDER}/importance.json", json.dumps(a.importance.to_json(), indent=2))
            self.log_artifact(f"{FOLDER}/importance.png",
                              drawn.png("importance-bars", lambda: figures.importance_bars(a.importance)))
            self.log_artifact(f"{FOLDER}/marginals.png",
                              drawn.png("marginals", lambda: figures.marginal_plots(a.importance)))
        self.log_artifact(f"{FOLDER}/incumbent.png",
                          drawn.png("incumbent-plot", lambda: figures.incumbent_plot(a.incumbent)))
        self.log_artifact(f"{FOLDER}/budget_per_rung.png",
                          drawn.png("budget-bars", lambda: figures.budget_bars(a.budget)))
        self.log_artifact(f"{FOLDER}/error_vs_params.png",
                          drawn.png("params-scatter", lambda: figures.params_scatter(a.params)))
        self.log_artifact(f"{FOLDER}/records.json", json.dumps(records_to_json(records)))
        if report is not None:
            self.log_artifact("report.html", report)

    def _report(self, records: list[EvaluationRecord], analyses: Analyses, drawn: Drawn) -> str | None:
        """The HTML report; a failure here loses the report only, not the artifacts it shares."""
        from jointsearch.dashboards.report import render_report

        try:
            return render_report(records, title=self.title, space=self.space, settings=self.settings,
                                 analyses=analyses, budget_decisions=self.budget_decisions, pngs=drawn)
        except Exception as exc:  # noqa: BLE001 - dashboards are best effort by design
            log.warning("could not render the report: %s", exc)
            return None
