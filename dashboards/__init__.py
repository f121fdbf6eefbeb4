"""Pure analysis of a search's evaluations, figures drawn from it, and a one-page HTML report.

* :mod:`.records`  -- :class:`EvaluationRecord`, the one input every analysis takes, and its JSON form.
* :mod:`.analysis` -- gathers the pure analyses, one module each, all returning frozen ``...Info``
  records: :mod:`.correlation` (rank correlation across budgets), :mod:`.fanova` (importance),
  :mod:`.incumbent` (trajectory, best configuration), :mod:`.budget_use`, :mod:`.size` (error vs
  parameter count).
* :mod:`.figures`  -- matplotlib figures drawn from those records (import it explicitly).
* :mod:`.report`   -- :func:`~.report.render_report` / :func:`~.report.write_report`.

Nothing here imports torch, Ray or MLflow.
"""

from .analysis import (
    best_configuration,
    budget_spent,
    error_vs_params,
    importance,
    importance_per_budget,
    incumbent_trajectory,
    paired_errors,
    rank_correlation,
)
from .records import EvaluationRecord, records_from_json, records_to_json

__all__ = [
    "EvaluationRecord",
    "best_configuration",
    "budget_spent",
    "error_vs_params",
    "importance",
    "importance_per_budget",
    "incumbent_trajectory",
    "paired_errors",
    "rank_correlation",
    "records_from_json",
    "records_to_json",
]
