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

from jointsearch.trainers.facts import (BUDGET_UNITS, DATASETS, DEFAULT_MAX_PARAMS, FIDELITY_PROTOCOLS,
                                        cifar10_missing)

from .budgets import check_budgets, rung_budgets
from .errors import UsageError
from .presets import SCHEDULERS
from .trainer_api import BUILTIN_TRAINER


ADAPTIVE_BUDGETS = ("auto", "on", "off")
MODELS = ("kde", "gp")  # the bohb preset's proposal models: kde.py (BOHB's), gp.py


def default_mlflow_uri() -> str:
    """A SQLite store in the working directory: real MLflow, no server needed."""
    return f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def resolve_tracking_uri(value: str | None, *, must_exist: bool = False) -> str:
    """The one place a ``--mlflow-uri`` becomes a URI: the default store when none is given, then
    checked (``must_exist``: commands that read a search never create a store)."""
    from .validation import check_tracking_uri

    uri = value or default_mlflow_uri()
    check_tracking_uri(uri, must_exist=must_exist)
    return uri


def setting(default: Any = dataclasses.MISSING, help: str = "", *, default_factory: Any = dataclasses.MISSING,
            choices: tuple[str, ...] | None = None, metavar: str | None = None, cli: bool = True,
            flags: tuple[str, ...] | None = None, type: Any = None, nargs: str | None = None,
            action: str | None = None) -> Any:
    """A field of :class:`SearchSettings` with what its command-line flag needs: the one place a
    setting is declared. ``cli.py`` turns each such field into ``--field-name`` (type from the
    annotation, default from here); ``cli=False`` keeps a field off the command line (it has a
    flag of another shape there, such as ``--trainer-arg KEY=VALUE`` for ``trainer_kwargs``);
    ``flags`` replaces the flag name (the first is shown, the others are aliases) and ``type`` the
    parser of its value; ``nargs`` (``"+"``: several values after one flag) and ``action``
    (``"append"``: a repeatable flag) shape a flag that collects a tuple."""
    metadata = {"help": help, "choices": choices, "metavar": metavar, "cli": cli, "flags": flags, "type": type,
                "nargs": nargs, "action": action}
    return field(default=default, default_factory=default_factory, metadata=metadata)


def parse_gpus(value: str) -> float | str:
    """--gpus-per-trial: a number, or auto (memory-aware packing)."""
    if value.strip().lower() == "auto":
        return "auto"
    try:
        return float(value)
    except ValueError:
        raise UsageError(f"--gpus-per-trial must be a number or auto, got {value!r}") from None


@dataclass(frozen=True)
class SearchSettings:
    space: str = setting("tiny", "registered space name or ConfigSpace JSON file")
    dataset: str = setting("digits", "digits, mnist5k (bundled), cifar10, synthetic (built-in trainer)")
    # --preset names what the setting holds (a searcher + scheduler pairing, presets.py); --scheduler,
    # its old name, stays an alias. The field keeps its old name: settings.json of older searches.
    scheduler: str = setting("bohb", "searcher + scheduler pairing (bohb: asynchronous BOHB; see presets.py)",
                             choices=SCHEDULERS, flags=("--preset", "--scheduler"))
    min_budget: float = setting(1.0, "smallest budget, in --budget-unit")
    max_budget: float = setting(9.0, "largest budget, in --budget-unit")
    eta: float = setting(3.0, "Hyperband's reduction factor (> 1)")
    budget_unit: str = setting("epochs", "what a budget counts: epochs, or seconds of training (evaluation "
                                         "excluded)", choices=BUDGET_UNITS)
    num_samples: int = setting(60, "configurations to evaluate (Ray Tune trials); 60 lets BOHB's model act in the "
                                   "demo")
    cpus_per_trial: float = setting(1.0, "CPUs per trial")
    gpus_per_trial: float | str = setting(0.0, "GPUs per trial; fractions let small configurations share a GPU; "
                                               "auto: the GPU memory each configuration needs", type=parse_gpus)
    max_concurrent: int = setting(0, "trials at once; 0: as many as the resources allow")
    seed: int | None = setting(0, "seed of the searcher and of the trainer")
    ray_address: str | None = setting(None, "an existing Ray cluster to join (default: a local Ray runtime of "
                                            "this search's own)")
    mlflow_uri: str | None = setting(None, "MLflow tracking URI (default: sqlite:///./mlflow.db)")
    experiment: str = setting("jointsearch", "MLflow experiment")
    trainer: str = setting(BUILTIN_TRAINER, "package.module:function to search instead of the built-in trainer")
    data_dir: str | None = setting(None, "where cifar10 lies (see `jointsearch data download`)")
    storage_path: str | None = setting(None, "checkpoints and Tune results; on a cluster a path every node sees")
    max_failures: int = setting(0, "retries of a trial that raised")
    dashboard_every: int = setting(10, "evaluations between live rank-correlation updates in MLflow")
    trainer_kwargs: dict[str, Any] = setting(default_factory=dict, cli=False,
                                             help="extra keywords for a user trainer (--trainer-arg KEY=VALUE)")
    # --- issue 13: the paper's network and protocol ---
    fidelity: str = setting("restarts", "how rung budgets are trained: restarts (continued, SGDR restarts at the "
                                        "rungs), scratch (the paper: every rung from scratch), continue (one "
                                        "SGDR, T0 = max/15)", choices=FIDELITY_PROTOCOLS)
    max_params: int = setting(DEFAULT_MAX_PARAMS, "networks with more parameters are recorded infeasible, never "
                                                  "trained; 0: no limit")
    # robustness (issue 12): per-evaluation time limit and checkpoints kept on disk
    eval_timeout: float | None = setting(None, "stop an evaluation that runs longer and record it failed "
                                               "(failure_kind=timeout); default: 2 x budget + 60 s for --budget-unit "
                                               "seconds, no limit for epochs; 0: no limit", metavar="SECONDS")
    keep_checkpoints: str = setting("promotable", "checkpoints kept on disk: all, promotable (the latest of a trial "
                                                  "that can still be promoted, and the incumbent's), none (deleted "
                                                  "when the search ends)", choices=("all", "promotable", "none"))
    # --- issue 11, clusters kept busy: memory-aware packing and search budgets ---------------
    gpu_memory_gib: float = setting(0.0, "one GPU's memory for --gpus-per-trial auto; 0: the GPU's own, probed")
    time_budget_s: float = setting(0.0, "start new configurations until this wall time is nearly spent (replaces "
                                        "--num-samples); 0: none", flags=("--time-budget",), metavar="SECONDS")
    gpu_hours: float = setting(0.0, "start new configurations until H GPU-hours are nearly spent (replaces "
                                    "--num-samples); 0: none", metavar="H")

    # Issue 15, warm start from an earlier search (warm_start.py):
    warm_start_from: str | None = setting(None, "seed the searcher with an earlier search's evaluations that fit "
                                                "this space", metavar="EXPERIMENT[:SEARCH_RUN]")
    warm_start_top: int = setting(0, "evaluate that search's K best configurations first (they count in "
                                     "--num-samples)", metavar="K")

    # Issue 14, budgets that learn from the rank correlation they measure (adaptive_budgets.py):
    adaptive_budgets: str = setting("auto", "drop low rungs whose ranking does not agree with the top rung "
                                            "(rank correlation, with hysteresis); auto: on for bohb, which is "
                                            "the only preset that can", choices=ADAPTIVE_BUDGETS)

    model: str = setting("kde", "what proposes configurations in the bohb preset: kde (BOHB's kernel densities) or "
                                "gp (a Gaussian process with expected improvement; expected hypervolume "
                                "improvement with two objectives, ParEGO with more: slower per proposal, "
                                "stronger on smooth continuous spaces)",
                         choices=MODELS)

    # Issue 15, several objectives and constraints (dashboards/pareto.py holds the maths):
    objectives: tuple[str, ...] = setting(("val_error",), "metrics to minimise together (NAME or NAME:max; any "
                                                          "numeric metric the trainer returns); more than one: "
                                                          "Pareto promotion and proposals (--preset bohb or random)",
                                          nargs="+", metavar="METRIC")
    constraints: tuple[str, ...] = setting((), "METRIC<=VALUE (or <, >=, >), repeatable; n_params is checked before "
                                               "training with the built-in trainer, other metrics after: a breach "
                                               "records the evaluation infeasible", flags=("--constraint",),
                                           action="append", metavar="METRIC<=VALUE")

    def __post_init__(self) -> None:
        # The CLI, the API and settings.json (resume) give lists or a string; the record holds tuples.
        for name in ("objectives", "constraints"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = value.split() if name == "objectives" else [value]
            if isinstance(value, (list, tuple)):
                object.__setattr__(self, name, tuple(value))

    @property
    def gpu_packing(self) -> bool:
        """``--gpus-per-trial auto``: each configuration asks for the GPU memory it needs."""
        return self.gpus_per_trial == "auto"

    @property
    def least_gpus_per_trial(self) -> float:
        """The smallest GPU request a trial makes, for counting how many trials fit: the fixed
        ``--gpus-per-trial``, or with packing the smallest share the memory planner asks for
        (1/8 of a GPU, the grid of trainers/memory.py)."""
        return 1 / 8 if self.gpu_packing else float(self.gpus_per_trial)

    @property
    def budgeted(self) -> bool:
        """Bounded by time or GPU-hours instead of ``num_samples``."""
        return self.time_budget_s > 0 or self.gpu_hours > 0

    def _validate_capacity(self) -> None:
        from .presets import get_preset

        if isinstance(self.gpus_per_trial, str) and not self.gpu_packing:
            raise UsageError(f"--gpus-per-trial must be a number or 'auto', got {self.gpus_per_trial!r}")
        if self.gpu_memory_gib < 0:
            raise UsageError(f"--gpu-memory-gib must be 0 (the GPU's own) or more, got {self.gpu_memory_gib}")
        if self.time_budget_s < 0 or self.gpu_hours < 0:
            raise UsageError("--time-budget and --gpu-hours must be 0 (none) or more")
        if self.gpu_hours > 0 and not self.gpu_packing and not self.gpus_per_trial:
            raise UsageError("--gpu-hours needs --gpus-per-trial (a number or auto): trials that use no GPU spend none")
        if self.budgeted and get_preset(self.scheduler).backend != "ray":
            raise UsageError(f"--time-budget / --gpu-hours need a Ray preset, not --scheduler {self.scheduler}")
        if self.gpu_packing and get_preset(self.scheduler).backend != "ray":
            raise UsageError(f"--gpus-per-trial auto needs a Ray preset, not --scheduler {self.scheduler}")

    @property
    def parsed_objectives(self):
        """``objectives`` as :class:`~jointsearch.dashboards.pareto.Objective` records."""
        from jointsearch.dashboards.pareto import parse_objectives

        return parse_objectives(self.objectives)

    @property
    def parsed_constraints(self):
        from jointsearch.dashboards.pareto import parse_constraint

        return tuple(parse_constraint(c) for c in self.constraints)

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_uri or default_mlflow_uri()

    @property
    def rungs(self) -> tuple[float, ...]:
        """Every budget a configuration can be evaluated at (budgets.rung_budgets), ascending."""
        return tuple(rung_budgets(self.min_budget, self.max_budget, self.eta))

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
            # issue 13: the protocol, the rung budgets it places restarts at, the size limit
            "fidelity": self.fidelity,
            "rungs": self.rungs,
            "max_params": self.max_params,
        }
        if self.constraints:  # issue 15: n_params constraints tighten the built-in trainer's size limits
            from .objectives import params_limits

            context.update(params_limits(self.max_params, self.parsed_constraints))
        context.update(self.trainer_kwargs)
        return context

    def as_params(self) -> dict[str, str]:
        """The settings as MLflow params (strings), one per field."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "mlflow_uri":
                value = self.tracking_uri
            elif isinstance(value, tuple):  # objectives, constraints: as typed
                value = (" " if f.name == "objectives" else ", ").join(str(v) for v in value)
            out[f.name] = "" if value is None else str(value)
        return out

    def validate(self) -> "SearchSettings":
        from .validation import check_settings

        check_settings(self)  # finite, bounded values first (validation.SETTING_RULES)
        if self.scheduler not in SCHEDULERS:
            raise UsageError(f"unknown --preset {self.scheduler!r}; choose from {', '.join(SCHEDULERS)}")
        if self.budget_unit not in BUDGET_UNITS:
            raise UsageError(f"--budget-unit must be one of {', '.join(BUDGET_UNITS)}, got {self.budget_unit!r}")
        if self.builtin_trainer and self.dataset not in DATASETS:
            raise UsageError(f"unknown --dataset {self.dataset!r}; choose from {', '.join(DATASETS)}")
        check_budgets(self.min_budget, self.max_budget, self.eta)
        if self.num_samples < 1:
            raise UsageError(f"--num-samples must be at least 1, got {self.num_samples}")
        if self.cpus_per_trial <= 0:
            raise UsageError(f"--cpus-per-trial must be positive, got {self.cpus_per_trial}")
        if self.gpus_per_trial != "auto" and self.gpus_per_trial < 0:
            raise UsageError(f"--gpus-per-trial must be 0 or more, got {self.gpus_per_trial}")
        if self.gpus_per_trial != "auto" and self.gpus_per_trial > 1 and self.gpus_per_trial != int(self.gpus_per_trial):
            raise UsageError(f"--gpus-per-trial above 1 must be a whole number, got {self.gpus_per_trial}")
        self._validate_capacity()
        if self.max_concurrent < 0:
            raise UsageError(f"--max-concurrent must be 0 (no limit) or more, got {self.max_concurrent}")
        if self.max_failures < 0:
            raise UsageError(f"--max-failures must be 0 or more, got {self.max_failures}")
        if self.dashboard_every < 1:
            raise UsageError(f"--dashboard-every must be at least 1, got {self.dashboard_every}")
        if self.fidelity not in FIDELITY_PROTOCOLS:
            raise UsageError(f"--fidelity must be one of {', '.join(FIDELITY_PROTOCOLS)}, got {self.fidelity!r}")
        if self.max_params < 0:
            raise UsageError(f"--max-params must be 0 (no limit) or a positive count, got {self.max_params}")
        if self.warm_start_top < 0:
            raise UsageError(f"--warm-start-top must be 0 or more, got {self.warm_start_top}")
        if self.warm_start_top and not self.warm_start_from:
            raise UsageError("--warm-start-top needs --warm-start-from")
        if self.warm_start_top and self.scheduler == "hpbandster":
            raise UsageError("--warm-start-top is not available with --scheduler hpbandster (its master "
                             "proposes every configuration); --warm-start-from alone works")
        if self.adaptive_budgets == "on" and self.scheduler != "bohb":
            raise UsageError(f"--adaptive-budgets on needs --preset bohb (the asynchronous BOHB); "
                             f"--preset {self.scheduler} cannot drop rungs")
        if self.model != "kde" and self.scheduler != "bohb":
            raise UsageError(f"--model {self.model} needs --preset bohb; --preset {self.scheduler} has its own model")
        from .objectives import check_objectives

        check_objectives(self)
        if not self.experiment or not self.experiment.strip():
            raise UsageError("--experiment must not be empty")
        if self.builtin_trainer and self.dataset == "cifar10" and cifar10_missing(self.data_dir):
            raise UsageError(cifar10_missing(self.data_dir))
        return self
