"""The search layer: settings, the Ray Tune wiring, MLflow tracking, export, and the CLI.

Never imports torch: trainers are reached through import paths resolved in the workers
(see trainer_api.py). Only the ray_*.py modules (ray_tune, ray_async, ray_presets,
ray_bohb_sync) import Ray; kde.py, BOHB's proposer, imports neither.
"""

from .api import SearchSummary, retrain, run_search
from .errors import UsageError
from .export import export_best, load_export
from .results import SearchResults, read_search
from .settings import SearchSettings

__all__ = ["SearchResults", "SearchSettings", "SearchSummary", "UsageError", "export_best", "load_export",
           "read_search", "retrain", "run_search"]
