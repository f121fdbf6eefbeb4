"""The search layer: settings, the Ray Tune wiring, MLflow tracking, export, and the CLI.

Never imports torch at module level: trainers are reached through import paths resolved in the
workers (see trainer_api.py); registry_model.py imports it inside the one function that
publishes a retrained network. Only ray_tune.py imports Ray.
"""

from .api import SearchSummary, retrain, run_search
from .errors import UsageError
from .export import export_best, load_export
from .results import SearchResults, read_search
from .settings import SearchSettings

__all__ = ["SearchResults", "SearchSettings", "SearchSummary", "UsageError", "export_best", "load_export",
           "read_search", "retrain", "run_search"]
