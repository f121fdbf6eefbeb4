"""The search layer: settings, the Ray Tune wiring, MLflow tracking, export, and the CLI.

No module here imports torch at import time: a trainer is named by an import path
(trainer_api.py) and resolved where it runs, in a Ray worker for a search; the driver loads torch
only for ``retrain`` (the ``train`` command; registry_model.py publishes its network) and
``--gpus-per-trial auto``'s memory planner. Only the ``ray_*`` modules import Ray; kde.py, BOHB's
proposer, imports neither.
"""

from jointsearch._lazy import lazy_exports

# Exported lazily (PEP 562): a Ray trial process imports this package to reach
# ray_trainable.py, and must not pay for MLflow, the tracker and the dashboards it never uses.
_EXPORTS = {
    "SearchResults": "results", "SearchSettings": "settings", "SearchSummary": "api", "UsageError": "errors",
    "export_best": "export", "load_export": "export", "read_search": "results", "retrain": "api",
    "run_search": "api",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
