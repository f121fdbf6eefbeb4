"""Everything a search is launched with, as one frozen record, checked before anything runs.

The CLI and the Python API both build a ``SearchSettings``; ``validate`` turns every mistake a
user can make into a one-line ``UsageError`` before Ray or MLflow are touched, so a bad option
never leaves a half-written search behind.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .budgets import check_budgets
from .errors import UsageError
from .presets import SCHEDULERS
from .trainer_api import BUILTIN_TRAINER

BUDGET_UNITS = ("epochs", "seconds")
DATASETS = ("digits", "cifar10", "synthetic")


def default_mlflow_uri() -> str:
    """A SQLite store in the working directory: real MLflow, no server needed."""
    return f"sqlite:///{Path.cwd() / 'mlflow.db'}"


@dataclass(frozen=True)
class SearchSettings:
    space: str = "tiny"  # a registered space name or a ConfigSpace JSON file
    dataset: str = "digits"
    scheduler: str = "bohb"
    min_budget: float = 1.0  # in budget_unit
    max_budget: float = 9.0  # in budget_unit
    eta: float = 3.0  # Hyperband's reduction factor
    budget_unit: str = "epochs"  # "epochs" or "seconds" (of training, evaluation excluded)
    num_samples: int = 20  # configurations to evaluate (Ray Tune trials)
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0  # fractions let small configurations share a GPU
    max_concurrent: int = 0  # 0: as many as the resources allow
    seed: int | None = 0
    ray_address: str | None = None  # None: a local Ray runtime
    mlflow_uri: str | None = None  # None: sqlite:///<cwd>/mlflow.db
    experiment: str = "jointsearch"
    trainer: str = BUILTIN_TRAINER  # "package.module:function"
    data_dir: str | None = None
    storage_path: str | None = None  # where Ray keeps checkpoints; shared by all nodes on a cluster
    max_failures: int = 0  # retries of a trial that raised
    dashboard_every: int = 10  # evaluations between live dashboard updates in MLflow
    trainer_kwargs: dict[str, Any] = field(default_factory=dict)  # extra keywords for a user trainer
    # Issue 15, warm start from an earlier search (warm_start.py):
    warm_start_from: str | None = None  # "EXPERIMENT" or "EXPERIMENT:SEARCH_RUN"
    warm_start_top: int = 0  # evaluate that search's best K configurations first

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_uri or default_mlflow_uri()

    @property
    def builtin_trainer(self) -> bool:
        return self.trainer == BUILTIN_TRAINER

    def trainer_context(self) -> dict[str, Any]:
        """The keywords offered to the trainer (it takes those its signature accepts)."""
        context = {
            "dataset": self.dataset,
            "data_dir": self.data_dir,
            "budget_unit": self.budget_unit,
            "max_budget": self.max_budget,
            "seed": self.seed or 0,
        }
        context.update(self.trainer_kwargs)
        return context

    def as_params(self) -> dict[str, str]:
        """The settings as MLflow params (strings), one per field."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "mlflow_uri":
                value = self.tracking_uri
            out[f.name] = "" if value is None else str(value)
        return out

    def validate(self) -> "SearchSettings":
        if self.scheduler not in SCHEDULERS:
            raise UsageError(f"unknown --scheduler {self.scheduler!r}; choose from {', '.join(SCHEDULERS)}")
        if self.budget_unit not in BUDGET_UNITS:
            raise UsageError(f"--budget-unit must be one of {', '.join(BUDGET_UNITS)}, got {self.budget_unit!r}")
        if self.builtin_trainer and self.dataset not in DATASETS:
            raise UsageError(f"unknown --dataset {self.dataset!r}; choose from {', '.join(DATASETS)}")
        check_budgets(self.min_budget, self.max_budget, self.eta)
        if self.num_samples < 1:
            raise UsageError(f"--num-samples must be at least 1, got {self.num_samples}")
        if self.cpus_per_trial <= 0:
            raise UsageError(f"--cpus-per-trial must be positive, got {self.cpus_per_trial}")
        if self.gpus_per_trial < 0:
            raise UsageError(f"--gpus-per-trial must be 0 or more, got {self.gpus_per_trial}")
        if self.gpus_per_trial > 1 and self.gpus_per_trial != int(self.gpus_per_trial):
            raise UsageError(f"--gpus-per-trial above 1 must be a whole number, got {self.gpus_per_trial}")
        if self.max_concurrent < 0:
            raise UsageError(f"--max-concurrent must be 0 (no limit) or more, got {self.max_concurrent}")
        if self.max_failures < 0:
            raise UsageError(f"--max-failures must be 0 or more, got {self.max_failures}")
        if self.dashboard_every < 1:
            raise UsageError(f"--dashboard-every must be at least 1, got {self.dashboard_every}")
        if self.warm_start_top < 0:
            raise UsageError(f"--warm-start-top must be 0 or more, got {self.warm_start_top}")
        if self.warm_start_top and not self.warm_start_from:
            raise UsageError("--warm-start-top needs --warm-start-from")
        if self.warm_start_top and self.scheduler == "hpbandster":
            raise UsageError("--warm-start-top is not available with --scheduler hpbandster (its master "
                             "proposes every configuration); --warm-start-from alone works")
        if not self.experiment or not self.experiment.strip():
            raise UsageError("--experiment must not be empty")
        if self.builtin_trainer and self.dataset == "cifar10":
            folder = Path(self.data_dir or "data") / "cifar-10-batches-py"
            if not (folder / "test_batch").is_file():
                raise UsageError(f"CIFAR-10 not found in {folder.parent}; run `jointsearch data download cifar10 "
                                 f"--data-dir {folder.parent}` first")
        return self
