"""The built-in trainer: models, augmentation, data sets and the training loop.

Plain PyTorch; nothing here imports Ray or MLflow. The search layer calls :func:`evaluate`
(one configuration, one budget, optionally continued from a checkpoint) and :func:`retrain`.

The names below load their modules (and torch) on first use, not when the package is imported:
the search layer imports :mod:`.facts` (data set names, budget units, ...) to validate settings,
and that must not cost a torch import.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "DataSplits": "data", "DatasetError": "data", "Split": "data", "download_cifar10": "data",
    "load_dataset": "data", "evaluate": "entry", "retrain": "entry", "Hyperparameters": "loop",
    "Progress": "loop", "TrainRecord": "loop", "TrainSettings": "loop", "train": "loop",
    "build_model": "models", "count_parameters": "models", "DATASETS": "facts",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value
