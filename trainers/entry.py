"""The built-in trainer as the search layer calls it: plain arguments in, a plain dict out.

``evaluate`` is what a search worker runs for one (configuration, budget) pair, possibly
continuing an earlier, smaller budget of the same configuration from ``checkpoint_dir``;
``retrain`` trains the final configuration from scratch and also reports the test error.
Both return only Python floats, ints and strings, so the result crosses process boundaries and
goes into any tracker unchanged. Nothing here knows about Ray or MLflow.
"""

from __future__ import annotations

import functools
from .data import DataSplits, load_dataset
from .loop import TrainRecord, TrainSettings, train

__all__ = ["evaluate", "example_inputs", "load_network", "retrain"]

# SGDR's first cycle is this fraction of the largest budget: 720 s of 10800 s in the paper,
# so the cycles 1 + 2 + 4 + 8 (Tmult = 2) end exactly at the largest budget.
_CYCLES_PER_BUDGET = 15.0


@functools.lru_cache(maxsize=4)
def _cached_dataset(dataset: str, data_dir: str | None, seed: int) -> DataSplits:
    """Data sets loaded once per process: a reused worker evaluates many configurations."""
    return load_dataset(dataset, data_dir=data_dir, seed=seed)


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
    }
    return out


def evaluate(config: dict, budget: float, *, dataset: str = "digits",
             data_dir: str | None = None, budget_unit: str = "epochs",
             max_budget: float | None = None, seed: int = 0, checkpoint_dir: str | None = None,
             save_dir: str | None = None, device: str | None = None) -> dict:
    """Train ``config`` to the total ``budget`` and return its validation error and cost.

    ``max_budget`` (the largest budget of the search) fixes the learning rate schedule,
    ``T0 = max_budget / 15``, so that a configuration promoted from a small budget and continued
    from ``checkpoint_dir`` follows the same schedule it would have followed in one run.
    ``save_dir`` keeps the final state for such a continuation. Returns ``{"val_error",
    "train_loss", "cost_s", "budget", "budget_unit", "status", "n_params", "steps", "device"}``.
    """
    data = _cached_dataset(dataset, data_dir, seed)
    settings = TrainSettings(t0=(max_budget or budget) / _CYCLES_PER_BUDGET)
    record = train(config, budget, data, budget_unit=budget_unit, checkpoint=checkpoint_dir,
                   save_checkpoint=save_dir, settings=settings, seed=seed, device=device)
    return _result(record, budget)


def retrain(config: dict, budget: float, *, dataset: str = "digits",
            data_dir: str | None = None, budget_unit: str = "epochs", seed: int = 0,
            device: str | None = None, save_dir: str | None = None) -> dict:
    """Train ``config`` from scratch for ``budget`` (T0 = budget / 15) and also measure the test
    error: the same dict as :func:`evaluate` plus ``"test_error"``. ``save_dir`` keeps the trained
    network there (:func:`load_network` gives it back), for the caller to publish it."""
    data = _cached_dataset(dataset, data_dir, seed)
    settings = TrainSettings(t0=budget / _CYCLES_PER_BUDGET)
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
