"""What runs in a Ray worker: one trial, evaluated rung after rung from its latest checkpoint.

Its own module, apart from ray_tune.py (the driver's side), because Tune imports the module of
the function it runs in every trial process: what this module imports, each of a search's
trial processes pays for when it starts, all of them at once when a search fills its slots.
So it imports neither MLflow nor the tracker (about 1 CPU-second per process) nor ConfigSpace
with SciPy (1.4 CPU-seconds: configurations arrive as plain dicts, spaces/values.py), and
``jointsearch.search``, ``jointsearch.spaces`` and ``jointsearch.dashboards`` export their names
lazily (tests/test_import_boundaries.py keeps it so).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jointsearch.spaces.values import config_dict

from .budgets import PROGRESS_KEY
from .eval_timeout import call_with_timeout
from .objectives import apply_constraints
from .scratch import trial_work_dir
from .trainer_api import call_trainer, resolve

META_FILE = "jointsearch.json"
STATE_DIR = "state"


@dataclass(frozen=True)
class TrialPlan:
    """What every trial of a search needs to know, shipped to the workers once."""

    trainer: str
    context: dict[str, Any]
    rungs: tuple[float, ...]
    min_budget: float
    rung_timeouts: tuple[float, ...] = ()  # seconds per rung's evaluation, 0: none (eval_timeout.py)
    constraints: tuple = ()  # dashboards.pareto.Constraint: checked on every result (objectives.py)


def trainable(config: dict, plan: TrialPlan) -> None:
    """Evaluate one configuration rung after rung, continuing from the latest checkpoint."""
    import ray
    from ray import tune

    fn = resolve(plan.trainer)
    config = config_dict(config)
    node = ray.get_runtime_context().get_node_id()[:12]  # which node ran which rung (clusters)
    work = trial_work_dir()  # scratch.py: a worker killed before the `finally` leaks nothing for good
    try:
        state_dir: Path | None = None
        done = 0.0
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            restored = work / "restored"
            checkpoint.to_directory(str(restored))
            done = json.loads((restored / META_FILE).read_text())["budget"]
            if (restored / STATE_DIR).is_dir():
                state_dir = restored / STATE_DIR
        for rung, budget in enumerate(plan.rungs):
            if budget <= done + 1e-9:
                continue
            out = work / f"rung{rung}"
            (out / STATE_DIR).mkdir(parents=True)
            started = time.time()
            # issue 13: under the "scratch" protocol every rung starts over (and pays in full)
            scratch = plan.context.get("fidelity") == "scratch"
            resume_from = None if scratch or state_dir is None else str(state_dir)
            limit = plan.rung_timeouts[rung] if rung < len(plan.rung_timeouts) else 0.0
            metrics = call_with_timeout(limit, call_trainer, fn, config, budget, checkpoint_dir=resume_from,
                                        save_dir=str(out / STATE_DIR), what=f"the evaluation at budget {budget:g}",
                                        **plan.context)
            metrics.setdefault("cost_s", time.time() - started)
            metrics.setdefault("budget_spent", budget - (0.0 if resume_from is None else done))
            apply_constraints(metrics, plan.constraints)  # issue 15: a breach found after training
            done = budget
            if not math.isfinite(metrics["val_error"]):
                metrics["val_error"] = float("inf")  # schedulers sort on it; MLflow skips it
            (out / META_FILE).write_text(json.dumps({"budget": budget, "rung": rung}))
            metrics.update(budget=budget, rung=rung, node=node, **{PROGRESS_KEY: budget / plan.min_budget})
            # When and where each evaluation ran, in Tune's result.json and as MLflow metrics
            # (clusters and simulated GPUs: did evaluations run at the same time?)
            metrics.update(started_at=started, ended_at=time.time())
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(out)))
            if state_dir is not None:
                shutil.rmtree(state_dir.parent, ignore_errors=True)
            state_dir = out / STATE_DIR
            if metrics["status"] != "ok":
                break  # a diverged or infeasible configuration will not recover at a larger budget
    finally:
        shutil.rmtree(work, ignore_errors=True)
