"""The built-in trainer: models, augmentation, data sets and the training loop.

Plain PyTorch; nothing here imports Ray or MLflow. The search layer calls :func:`evaluate`
(one configuration, one budget, optionally continued from a checkpoint) and :func:`retrain`.
"""

from .data import DATASETS, DataSplits, DatasetError, Split, download_cifar10, load_dataset
from .entry import evaluate, retrain
from .loop import Hyperparameters, Progress, TrainRecord, TrainSettings, train
from .models import build_model, count_parameters

__all__ = [
    "DATASETS", "DataSplits", "DatasetError", "Hyperparameters", "Progress", "Split",
    "TrainRecord", "TrainSettings", "build_model", "count_parameters", "download_cifar10",
    "evaluate", "load_dataset", "retrain", "train",
]
