"""Fast fake trainers for tests, demos of the plumbing, and overhead benchmarks (pure Python).

They follow the trainer contract of trainer_api.py, including continuation: each writes its
progress into ``save_dir`` and reads it back from ``checkpoint_dir``, and records how much
budget it really trained, so tests can prove that a promoted configuration was continued
rather than retrained.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from pathlib import Path
from typing import Any

STATE_FILE = "fake_state.json"


def _noise(config: dict, budget: float) -> float:
    digest = hashlib.sha1(json.dumps(config, sort_keys=True, default=str).encode() + str(budget).encode()).digest()
    return int.from_bytes(digest[:4], "little") / 2**32 - 0.5


def synthetic_error(config: dict, budget: float) -> float:
    """A smooth, learnable error: best near learning_rate = 0.1, better with budget, a little noise.

    Configurations without a learning rate still get a deterministic error from their hash.
    """
    lr = config.get("learning_rate")
    base = abs(math.log10(float(lr)) + 1.0) / 3.0 if lr is not None else 0.5 + 0.3 * _noise(config, 0)
    return float(min(1.0, 0.05 + 0.6 * base + 0.3 / (1.0 + budget) + 0.02 * _noise(config, budget)))


def fake_trainer(config: dict, budget: float, *, checkpoint_dir: str | None = None, save_dir: str | None = None,
                 sleep_s: float | None = None, **_: Any) -> dict:
    """Pretends to train from the checkpoint's budget up to ``budget``; returns the synthetic error.

    ``sleep_s`` (default: the JOINTSEARCH_FAKE_SLEEP_S environment variable, else 0) makes each
    call take that long, so that tests can interrupt a search in the middle.
    """
    if sleep_s is None:
        sleep_s = float(os.environ.get("JOINTSEARCH_FAKE_SLEEP_S", "0"))
    trained_before = 0.0
    if checkpoint_dir and (Path(checkpoint_dir) / STATE_FILE).is_file():
        trained_before = json.loads((Path(checkpoint_dir) / STATE_FILE).read_text())["budget"]
    started_at = time.time()
    if sleep_s:
        time.sleep(sleep_s)
    if save_dir:
        (Path(save_dir) / STATE_FILE).write_text(json.dumps({"budget": budget}))
    # started_at / ended_at (unix seconds) let tests see which evaluations ran at the same time.
    return {"val_error": synthetic_error(config, budget), "trained_budget": budget - trained_before,
            "resumed_from": trained_before, "pid": os.getpid(), "started_at": started_at, "ended_at": time.time()}


def noop_trainer(config: dict, budget: float) -> float:
    """The cheapest possible trainer: measures orchestration overhead alone."""
    return synthetic_error(config, budget)


def minimal_trainer(config, budget):
    """A user's trainer as small as the contract allows: (config, budget) -> float."""
    return synthetic_error(config, budget)


def _config_hash(config: dict) -> int:
    return int(hashlib.sha1(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:8], 16)


def faulty_trainer(config: dict, budget: float, *, fault: str = "raise", fault_every: int = 3,
                   fault_budget: float = 0.0, fault_delay_s: float = 0.0, marker_dir: str | None = None,
                   **context: Any) -> dict:
    """The fake trainer, except that every ``fault_every``-th configuration (by hash) fails at
    budgets above ``fault_budget``: ``raise`` (RuntimeError), ``nan`` (returns NaN), ``diverged``
    (returns a finite error with status "diverged", as the built-in trainer does when its loss
    blows up), ``oom`` (raises MemoryError, as a host out-of-memory does), or ``flaky`` (raises the first time it
    sees a configuration, succeeds when retried; needs ``marker_dir`` shared by the workers).
    ``fault_delay_s`` makes a fault come that long after the call: after the other trials' results."""
    if _config_hash(config) % fault_every == 0 and budget > fault_budget:
        time.sleep(fault_delay_s)
        if fault == "raise":
            raise RuntimeError(f"injected failure at budget {budget:g}")
        if fault == "nan":
            return {"val_error": float("nan")}
        if fault == "diverged":
            return {"val_error": 1.0, "status": "diverged"}
        if fault == "oom":
            raise MemoryError(f"injected out of memory at budget {budget:g}")
        if fault == "flaky":
            marker = Path(marker_dir or ".") / str(_config_hash(config))
            if not marker.exists():
                marker.write_text("failed once")
                raise RuntimeError("injected transient failure")
    return fake_trainer(config, budget, **context)


def hanging_trainer(config: dict, budget: float, *, hang_every: int = 2, hang_budget: float = 0.0,
                    **context: Any) -> dict:
    """The fake trainer, except that every ``hang_every``-th configuration (by hash) never returns
    at budgets above ``hang_budget``: what ``--eval-timeout`` is for."""
    if _config_hash(config) % hang_every == 0 and budget > hang_budget:
        while True:
            time.sleep(3600)
    return fake_trainer(config, budget, **context)


def records_so_far(uri: str, experiment: str) -> list:
    """What a search running in another process has recorded so far; ``[]`` until its store and
    experiment exist (tests and scripts that watch a search from outside poll this)."""
    from .results import read_search

    try:
        return list(read_search(uri, experiment).records)
    except Exception:  # noqa: BLE001 - the store or the experiment does not exist yet
        return []


def low_budget_inverted_trainer(config: dict, budget: float, *, invert_below: float = 3.0, **kwargs: Any) -> dict:
    """:func:`fake_trainer` whose budgets below ``invert_below`` rank configurations upside down
    (``1 - error``): the adaptive budgets' case (issue 14), in a real search."""
    metrics = fake_trainer(config, budget, **kwargs)
    if budget < invert_below:
        metrics["val_error"] = 1.0 - metrics["val_error"]
    return metrics
