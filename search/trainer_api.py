"""The contract between the search and whatever it trains (ours or a user's).

A trainer is any callable ``fn(config: dict, budget: float, **context)`` that returns either a
float (the validation error, lower is better) or a mapping with ``"val_error"`` (or ``"loss"``)
plus any other metrics. It is named by an import path, ``"package.module:function"``, so that the
search layer never imports it (nor torch) itself: the path is resolved inside each worker.

Context keywords are passed only when the function's signature accepts them (or ``**kwargs``):

- ``checkpoint_dir``: a directory the same function wrote at a lower budget for this
  configuration (``None`` the first time); continuing from it instead of starting over is
  what lets a promoted configuration keep its training.
- ``save_dir``: an empty directory to write state into, for the next, higher budget.
- every key of ``SearchSettings.trainer_context()``: dataset, data_dir, budget_unit,
  max_budget and seed (what the built-in trainer needs), plus the search's ``trainer_kwargs``
  (``--trainer-arg KEY=VALUE``).
- ``fidelity`` (restarts | scratch | continue), ``rungs`` (the search's rung budgets, ascending)
  and ``max_params`` (0: no limit): how the built-in trainer schedules each rung and which
  networks it refuses. Under ``scratch`` no ``checkpoint_dir`` is ever passed. A trainer may
  answer ``status="infeasible"`` with a ``reason`` for a configuration it will not train: the
  search records it as a failed run (``failure_kind=infeasible``) with no evaluation and no
  budget (search/infeasible.py).
- Any result may say ``budget_spent``, the budget this call really trained; the search fills it
  in (the budget less the checkpoint's) when the trainer does not.

A minimal user trainer is therefore ``def fn(config, budget): return error``.
"""

from __future__ import annotations

import importlib
import inspect
import math
from typing import Any, Callable, Mapping

from jointsearch.spaces.values import to_python

from .errors import UsageError

BUILTIN_TRAINER = "jointsearch.trainers.entry:evaluate"
BUILTIN_RETRAINER = "jointsearch.trainers.entry:retrain"


def resolve(path: str) -> Callable[..., Any]:
    """Import ``package.module:function``; ``UsageError`` when it does not name a callable."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"--trainer must look like package.module:function, got {path!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"cannot import trainer module {module_name!r}: {exc}") from None
    except (Exception, SystemExit) as exc:  # a syntax error, or a module that raises while importing
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise UsageError(f"trainer module {module_name!r} fails to import: {type(exc).__name__}: {first}") from None
    fn = module
    for part in attr.split("."):
        fn = getattr(fn, part, None)
    if not callable(fn):
        raise UsageError(f"{path!r} is not a callable in module {module_name!r}")
    return fn


def accepted_kwargs(fn: Callable[..., Any], offered: Mapping[str, Any]) -> dict[str, Any]:
    """The subset of ``offered`` that ``fn`` can take as keywords."""
    params = inspect.signature(fn).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return dict(offered)
    names = {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    return {k: v for k, v in offered.items() if k in names}


def call_trainer(fn: Callable[..., Any], config: dict, budget: float, **context: Any) -> dict[str, Any]:
    """Call a trainer with what it accepts and normalise its answer to a metrics dict.

    The returned dict always has a float ``val_error``; a non-finite error is turned into a
    ``status`` of ``"diverged"`` so the search can record it and move on.
    """
    out = fn(config, budget, **accepted_kwargs(fn, context))
    if isinstance(out, Mapping):
        metrics = dict(out)
        if "val_error" not in metrics:
            if "loss" not in metrics:
                raise TypeError(f"trainer returned a mapping without 'val_error' or 'loss': {sorted(metrics)}")
            metrics["val_error"] = metrics["loss"]
    else:
        metrics = {"val_error": out}
    metrics["val_error"] = float(metrics["val_error"])
    metrics.setdefault("status", "ok")
    if not math.isfinite(metrics["val_error"]):
        metrics["status"] = "diverged"
    return {k: to_python(v) for k, v in metrics.items()}


def failure_kind(reason: str) -> str:
    """``timeout`` for an evaluation stopped by ``--eval-timeout``, ``oom`` for out-of-memory
    errors (CUDA or host), else ``exception``: the tag a failed trial gets."""
    if "EvaluationTimeout" in reason:
        return "timeout"  # eval_timeout.py: ran longer than --eval-timeout
    lowered = reason.lower()
    return "oom" if "outofmemory" in lowered or "out of memory" in lowered or "memoryerror" in lowered else "exception"
