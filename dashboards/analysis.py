"""Pure analyses of a search's evaluation records, one module per analysis; this module gathers them.

Compute first, draw second (as Optuna's ``visualization`` modules do): every function takes a
sequence of :class:`~jointsearch.dashboards.records.EvaluationRecord` and returns a frozen
``...Info`` record of plain values; tests assert on those records, ``figures.py`` draws them and
``report.py`` lays them out. Nothing here imports torch, Ray or MLflow; Optuna is imported lazily
inside :func:`importance` only.

* :mod:`.correlation` -- rank correlation (Spearman/Kendall between every pair of budgets, bootstrap CIs);
* :mod:`.fanova` -- fANOVA importance and marginals per budget;
* :mod:`.incumbent` -- the incumbent trajectory and the best configuration;
* :mod:`.budget_use` -- budget spent per rung and per bracket;
* :mod:`.size` -- validation error against parameter count.

Conventions shared by all of them:

* An evaluation counts as successful ("ok") when its status is ``"ok"`` and its ``val_error`` is
  finite (:func:`~jointsearch.dashboards.records.is_ok`).
* Where a trial has several ok records at the same budget (a re-run, a resumed bracket), the last
  one in the order given is used.
* A quantity that cannot be estimated is ``None`` (with a ``reason``), never a number.
"""

from __future__ import annotations

from . import budget_use, correlation, fanova, incumbent, size
from .budget_use import *  # noqa: F403
from .correlation import *  # noqa: F403
from .fanova import *  # noqa: F403
from .incumbent import *  # noqa: F403
from .records import ok_budgets  # noqa: F401 - re-exported (__all__ below)
from .size import *  # noqa: F403

MODULES = (correlation, fanova, incumbent, budget_use, size)

__all__ = sorted({name for module in MODULES for name in module.__all__} | {"ok_budgets"})
