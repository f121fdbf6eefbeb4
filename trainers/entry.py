"""The built-in trainer as the search layer calls it: plain arguments in, a plain dict out.

``evaluate`` is what a search worker runs for one (configuration, budget) pair, possibly
continuing an earlier, smaller budget of the same configuration from ``checkpoint_dir``;
``retrain`` trains the final configuration from scratch and also reports the test error.
Both return only Python floats, ints and strings, so the result crosses process boundaries and
goes into any tracker unchanged. Nothing here knows about Ray or MLflow.

**Fidelity protocols** (``fidelity=``; how a configuration is trained at the search's rung
budgets ``rungs``, e.g. 400/1200/3600/10800 s):

* ``"restarts"`` (default): one run continued from rung to rung, with SGDR's restarts placed
  at the rung budgets, so each rung's evaluation is taken where a cosine cycle ends, with the
  learning rate annealed, and stopping at a rung then continuing equals one uninterrupted run.
* ``"scratch"``: the authors' protocol (arberzela/EfficientNAS, ``workers/arch_space/opts.py``):
  every rung trains from scratch (any checkpoint is ignored) with Tmult = 2 and
  ``T0 = b / (2**(k+1) - 1)`` at the k-th rung ``b`` (400, 400, 514.29, 720 s), so it ends at a
  restart. It pays the whole budget at every rung.
* ``"continue"``: continuation under one SGDR schedule with ``T0 = max_budget / 15`` for all
  rungs (this project's behaviour before the protocols existed): low rungs are evaluated
  mid-cycle.

Every result says what it actually trained in ``budget_spent`` (budget units): the difference
to the checkpoint when continued, the whole budget from scratch, 0 when infeasible.

**Parameter limit.** ``max_params`` (> 0) bounds the network size: the count is taken on the
meta device (no weights allocated) and a larger configuration is never trained; its result has
``status="infeasible"``, a ``reason``, ``val_error = 1.0`` (the worst, so a searcher learns the
region is bad) and ``cost_s = budget_spent = 0``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence

from .data import DataSplits, load_dataset
from .facts import FIDELITY_PROTOCOLS
from .loop import TrainRecord, TrainSettings, train
from .models import count_parameters

__all__ = ["FIDELITY_PROTOCOLS", "INFEASIBLE", "evaluate", "example_inputs", "load_network", "retrain",
           "retrain_settings", "schedule_settings", "scratch_t0"]

#: How rung budgets are trained; see the module docstring. The first is the default.
#: The status of a configuration that was never trained because it exceeds ``max_params``.
INFEASIBLE = "infeasible"

# SGDR's first cycle is this fraction of the largest budget: 720 s of 10800 s in the paper,
# so the cycles 1 + 2 + 4 + 8 (Tmult = 2) end exactly at the largest budget.
_CYCLES_PER_BUDGET = 15.0


@functools.lru_cache(maxsize=4)
def _cached_dataset(dataset: str, data_dir: str | None, seed: int) -> DataSplits:
    """Data sets loaded once per process: a reused worker evaluates many configurations."""
    return load_dataset(dataset, data_dir=data_dir, seed=seed)


def scratch_t0(budget: float, rungs: Sequence[float] | None) -> float:
    """The authors' T0 for training ``budget`` from scratch: ``budget / (2**(k+1) - 1)`` with
    ``k`` the budget's index among ``rungs`` (so cycles 1 + 2 + ... + 2**k end at the budget).

    A budget that is not a rung gets ``k`` = the number of rungs below it; no rungs: ``k = 0``.
    """
    k = sum(1 for r in (rungs or ()) if r < budget * (1 - 1e-9))
    return budget / (2 ** (k + 1) - 1)


def schedule_settings(fidelity: str, budget: float, *, rungs: Sequence[float] | None = None,
                      max_budget: float | None = None) -> TrainSettings:
    """The learning rate schedule of one evaluation under a fidelity protocol."""
    if fidelity == "restarts":
        ends = tuple(sorted(float(r) for r in rungs)) if rungs else (float(max_budget or budget),)
        return TrainSettings(cycle_ends=ends)
    if fidelity == "scratch":
        return TrainSettings(t0=scratch_t0(budget, rungs))
    if fidelity == "continue":
        return TrainSettings(t0=(max_budget or budget) / _CYCLES_PER_BUDGET)
    raise ValueError(f"fidelity must be one of {FIDELITY_PROTOCOLS}, got {fidelity!r}")


def _result(record: TrainRecord, budget: float) -> dict:
    out = {
        "val_error": float(record.val_error),
        "train_loss": float(record.train_loss),
        "cost_s": float(record.cost_s),
        "budget": float(budget),
        "budget_unit": str(record.budget_unit),
        "status": str(record.status),
        "n_params": int(record.n_params),
        "steps": int(record.steps),
        "device": str(record.device),
        "budget_spent": float(record.budget_reached - record.budget_start),
    }
    return out


def evaluate(config: dict, budget: float, *, dataset: str = "digits",
             data_dir: str | None = None, budget_unit: str = "epochs",
             max_budget: float | None = None, seed: int = 0, checkpoint_dir: str | None = None,
             save_dir: str | None = None, device: str | None = None,
             fidelity: str = "restarts", rungs: Sequence[float] | None = None,
             max_params: int | None = None, min_params: int | None = None,
             variant: str = "published") -> dict:
    """Train ``config`` to the total ``budget`` and return its validation error and cost.

    ``fidelity`` and ``rungs`` (the search's rung budgets) fix the learning rate schedule (see
    the module docstring); ``max_budget`` is the largest budget (``continue``'s T0 = max_budget
    / 15). Under ``restarts`` and ``continue`` a configuration promoted from a small budget and
    continued from ``checkpoint_dir`` follows the schedule it would have followed in one run;
    under ``scratch`` ``checkpoint_dir`` is ignored. ``save_dir`` keeps the final state for a
    continuation. ``max_params`` (None or 0: no limit) rejects larger networks untrained, and
    ``min_params`` smaller ones (both come from ``--max-params`` and ``n_params`` constraints).
    ``variant="authors"`` trains the authors' Shake-Shake/ShakeDrop and zero-padded crops
    instead of the published forms (``models.py``; ``--trainer-arg variant=authors``).
    Returns ``{"val_error", "train_loss", "cost_s", "budget", "budget_unit", "status",
    "n_params", "steps", "device", "budget_spent"}`` (plus ``"reason"`` when infeasible).
    """
    data = _cached_dataset(dataset, data_dir, seed)
    if max_params or min_params:
        n_params = count_parameters(config, data.in_channels, data.num_classes)
        reason = None
        if max_params and n_params > max_params:
            reason = (f"{n_params:,} parameters exceed the limit of {int(max_params):,} "
                      f"(--max-params or an n_params --constraint); not trained")
        elif min_params and n_params < min_params:
            reason = f"{n_params:,} parameters, below the n_params --constraint of {int(min_params):,}; not trained"
        if reason:
            return {"val_error": 1.0, "train_loss": math.inf, "cost_s": 0.0, "budget": float(budget),
                    "budget_unit": str(budget_unit), "status": INFEASIBLE, "n_params": int(n_params),
                    "steps": 0, "device": "none", "budget_spent": 0.0, "reason": reason}
    settings = dataclasses.replace(schedule_settings(fidelity, budget, rungs=rungs, max_budget=max_budget),
                                   variant=variant)
    if fidelity == "scratch":
        checkpoint_dir = None  # the paper's protocol: every rung from scratch
    record = train(config, budget, data, budget_unit=budget_unit, checkpoint=checkpoint_dir,
                   save_checkpoint=save_dir, settings=settings, seed=seed, device=device)
    return _result(record, budget)


def retrain_settings(budget: float) -> TrainSettings:
    """The schedule of a final retrain: SGDR with T0 = budget / 15, Tmult = 2, the paper's 3 h
    schedule (T0 = 720 s for 10800 s) at any budget."""
    return TrainSettings(t0=budget / _CYCLES_PER_BUDGET, t_mult=2.0)


def retrain(config: dict, budget: float, *, dataset: str = "digits",
            data_dir: str | None = None, budget_unit: str = "epochs", seed: int = 0,
            device: str | None = None, variant: str = "published", save_dir: str | None = None) -> dict:
    """Train ``config`` from scratch for ``budget`` (T0 = budget / 15, Tmult = 2: the paper's
    720 s for 10800 s, restarts at 720, 2160, 5040 s, annealed at the end) and also measure the
    test error: the same dict as :func:`evaluate` plus ``"test_error"``. ``save_dir`` keeps the
    trained network there (:func:`load_network` gives it back), for the caller to publish it."""
    data = _cached_dataset(dataset, data_dir, seed)
    settings = dataclasses.replace(retrain_settings(budget), variant=variant)
    record = train(config, budget, data, budget_unit=budget_unit, settings=settings, seed=seed,
                   device=device, evaluate_test=True, save_checkpoint=save_dir)
    return {**_result(record, budget), "test_error": float(record.test_error)}


def load_network(config: dict, save_dir: str, *, dataset: str = "digits", data_dir: str | None = None,
                 seed: int = 0):
    """The network that ``retrain(..., save_dir=...)`` (or ``evaluate``) left in ``save_dir``: a plain
    ``torch.nn.Module`` on the CPU in eval mode, taking images as :func:`example_inputs` gives them
    (N x C x H x W floats, normalised as in training) and returning one logit per class.

    Why a state dict rebuilt here rather than the module itself: the search layer, which
    publishes the model, never builds networks and never imports torch at module level."""
    import torch

    from .loop import _load
    from .models import build_model

    data = _cached_dataset(dataset, data_dir, seed)
    model = build_model(config, data.in_channels, data.num_classes)
    model.load_state_dict(_load(save_dir, torch.device("cpu"))["model"])
    return model.eval()


def example_inputs(dataset: str = "digits", *, data_dir: str | None = None, seed: int = 0, n: int = 4):
    """The first ``n`` validation images of a data set as a float32 numpy array, as the network takes them."""
    data = _cached_dataset(dataset, data_dir, seed)
    return data.val.x[:n].detach().cpu().float().numpy()
