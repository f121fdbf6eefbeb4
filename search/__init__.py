"""The search layer: settings, the Ray Tune wiring, MLflow tracking, export, and the CLI.

No module here imports torch at import time: a trainer is named by an import path
(trainer_api.py) and resolved where it runs, in a Ray worker for a search; the driver loads torch
only for ``retrain`` (the ``train`` command; registry_model.py publishes its network) and
``--gpus-per-trial auto``'s memory planner. Only the ``ray_*`` modules import Ray; kde.py, BOHB's
proposer, imports neither.
"""

from .api import SearchSummary, retrain, run_search
from .errors import UsageError
from .export import export_best, load_export
from .results import SearchResults, read_search
from .settings import SearchSettings

__all__ = ["SearchResults", "SearchSettings", "SearchSummary", "UsageError", "export_best", "load_export",
           "read_search", "retrain", "run_search"]
