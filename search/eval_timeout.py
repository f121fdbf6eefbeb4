"""A per-evaluation time limit, so that one hanging trainer cannot hold its slot forever.

``--eval-timeout SECONDS`` bounds one call of the trainer (one rung of one configuration). By
default there is none for epoch budgets (how long an epoch takes is the trainer's business) and
``DEFAULT_FACTOR * budget + DEFAULT_SLACK_S`` for time budgets, where the trainer promised to
stop after ``budget`` seconds of training and only evaluation and start-up come on top.

How: the trainer runs in a daemon thread of the trial's worker and is waited for with a
timeout. A Python thread cannot be killed, so on a timeout the worker raises
:class:`EvaluationTimeout` (the trial is recorded FAILED with ``failure_kind=timeout``) and
ends its own process ``EXIT_AFTER_S`` later, once Ray has the error: that frees the slot and
whatever the hung call held (CPU, GPU memory). Pure Python: no Ray here.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable

DEFAULT_FACTOR = 2.0
DEFAULT_SLACK_S = 60.0
EXIT_AFTER_S = 5.0


class EvaluationTimeout(RuntimeError):
    """An evaluation ran longer than its limit; the name is what ``failure_kind`` looks for."""


def timeout_for(budget: float, budget_unit: str, eval_timeout: float | None) -> float:
    """Seconds one evaluation at ``budget`` may take; 0 means no limit."""
    if eval_timeout is not None:
        return float(eval_timeout)
    if budget_unit == "seconds":
        return DEFAULT_FACTOR * budget + DEFAULT_SLACK_S
    return 0.0


def call_with_timeout(timeout_s: float, fn: Callable[..., Any], *args: Any, what: str = "evaluation",
                      exit_on_timeout: bool = True, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, or :class:`EvaluationTimeout` after ``timeout_s`` (0: no limit,
    and no thread)."""
    if not timeout_s or timeout_s <= 0:
        return fn(*args, **kwargs)
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True, name="jointsearch-evaluation")
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        if exit_on_timeout:
            killer = threading.Timer(EXIT_AFTER_S, os._exit, args=(1,))
            killer.daemon = True
            killer.start()
        raise EvaluationTimeout(f"{what} ran longer than --eval-timeout {timeout_s:g} s and was stopped")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
