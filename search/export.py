"""Export of the best configuration of a search, validated against the space it was searched in.

The exported JSON is self-contained: it carries the space (ConfigSpace JSON) next to the
configuration, so ``jointsearch train --config best.json`` can check it and retrain it on any
machine without the MLflow store that produced it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from jointsearch.dashboards.analysis import best_configuration
from jointsearch.dashboards.pareto import (Constraint, knee_index, metric_value, nondominated_ranks,
                                           parse_constraint, parse_objectives, signed)
from jointsearch.dashboards.records import EvaluationRecord, is_ok
from jointsearch.spaces import config_dict, from_json, validate_config

from .errors import UsageError
from .results import SearchResults, read_search

FORMAT = "jointsearch.best/1"


DEFAULT_PICK = "min:val_error"


@dataclass(frozen=True)
class PickRule:
    """How ``export --pick`` chooses among the ok evaluations at the highest budget reached:
    ``min:METRIC`` / ``max:METRIC`` (the best value), or ``knee`` / ``knee:METRIC`` (the knee of
    the front of val_error against METRIC, default the search's second objective), each followed
    by any constraints (``min:val_error,n_params<=5e6``) that a candidate must satisfy."""

    text: str
    kind: str  # "min", "max" or "knee"
    metric: str | None
    constraints: tuple[Constraint, ...] = ()


def parse_pick(text: str) -> PickRule:
    """``UsageError`` (one line) for a rule that is not one of the forms of :class:`PickRule`."""
    if not isinstance(text, str) or not text.strip():
        raise UsageError("--pick needs a rule: min:METRIC, max:METRIC or knee, then optional ,METRIC<=VALUE")
    head, *rest = [part.strip() for part in text.split(",")]
    kind, _, metric = head.partition(":")
    if kind not in ("min", "max", "knee") or (kind != "knee" and not metric):
        raise UsageError(f"--pick {text!r}: start with min:METRIC, max:METRIC or knee[:METRIC] "
                         f"(e.g. min:val_error,n_params<=5e6)")
    try:
        if metric:
            parse_objectives([metric])  # the same name rules as --objectives
        constraints = tuple(parse_constraint(c) for c in rest)
    except ValueError as exc:
        raise UsageError(f"--pick {text!r}: {str(exc).replace('--objectives: ', '').replace('--constraint ', '')}"
                         ) from None
    return PickRule(text.strip(), kind, metric or None, constraints)


def pick(records: Sequence[EvaluationRecord], rule: PickRule, objectives: Sequence[str] = ()
         ) -> EvaluationRecord:
    """The evaluation ``rule`` chooses (see :class:`PickRule`); ``UsageError`` when none qualifies."""
    ok = [r for r in records if is_ok(r)]
    if not ok:
        raise UsageError("the search has no successful evaluation to export yet")
    top = max(r.budget for r in ok)
    candidates = [r for r in ok if r.budget == top]
    candidates = [r for r in candidates if all(c.satisfied(metric_value(r, c.metric)) for c in rule.constraints)]
    if not candidates:
        raise UsageError(f"--pick {rule.text!r}: no successful evaluation at budget {top:g} satisfies "
                         + ", ".join(str(c) for c in rule.constraints))
    if rule.kind in ("min", "max"):
        known = [r for r in candidates if math.isfinite(metric_value(r, rule.metric))]
        if not known:
            raise UsageError(f"--pick {rule.text!r}: no evaluation at budget {top:g} recorded {rule.metric}")
        sign = 1.0 if rule.kind == "min" else -1.0
        return min(known, key=lambda r: sign * metric_value(r, rule.metric))
    other = rule.metric or next((o.partition(":")[0] for o in objectives if o.partition(":")[0] != "val_error"),
                                "n_params")
    objs = parse_objectives(["val_error", other])
    known = [r for r in candidates if math.isfinite(metric_value(r, other))]
    if not known:
        raise UsageError(f"--pick {rule.text!r}: no evaluation at budget {top:g} recorded {other}")
    F = signed([[metric_value(r, o.name) for o in objs] for r in known], objs)
    front = [i for i, rank in enumerate(nondominated_ranks(F)) if rank == 0]
    return known[front[knee_index(F[front])]]


def best_export(results: SearchResults, pick_rule: str | PickRule | None = None) -> dict[str, Any]:
    """The export payload; ``pick_rule`` (``--pick``) chooses the configuration, by default the
    lowest val_error at the highest budget reached. ``pick`` records the rule that chose it."""
    rule = parse_pick(pick_rule) if isinstance(pick_rule, str) else pick_rule
    if rule is None:
        best = best_configuration(results.records)
        if best is None:
            raise UsageError(f"search {results.search_run_id} has no successful evaluation to export yet")
        rule_text = DEFAULT_PICK
    else:
        best = pick(results.records, rule, results.params.get("objectives", "").split())
        rule_text = rule.text
    space = results.space
    config = dict(best.config)
    if space is not None:
        config = config_dict(validate_config(space, config))
    params = results.params
    return {
        "format": FORMAT,
        "config": config,
        "val_error": best.val_error,
        "pick": rule_text,
        "n_params": best.n_params,
        "metrics": dict(best.metrics),
        "budget": best.budget,
        "budget_unit": results.budget_unit,
        "trial_id": best.trial_id,
        "run_id": results.trial_runs.get(best.trial_id),
        "search_run_id": results.search_run_id,
        "experiment": results.experiment,
        "space_name": params.get("space", ""),
        "dataset": params.get("dataset", ""),
        "trainer": params.get("trainer", ""),
        "space": json.loads(results.space_json) if results.space_json else None,
    }


def export_best(uri: str, experiment: str, out: str | Path, search_run_id: str | None = None, *,
                force: bool = True, pick_rule: str | None = None) -> dict[str, Any]:
    """Write the best configuration (or the one ``pick_rule`` chooses) to ``out`` atomically
    (temporary file + rename). The CLI passes ``force=False``: an existing file is then refused
    before MLflow is read; a bad rule is refused before anything is read too."""
    from .validation import check_output_file, write_atomically

    rule = parse_pick(pick_rule) if pick_rule is not None else None
    path = check_output_file(str(out), force=force)
    payload = best_export(read_search(uri, experiment, search_run_id), rule)
    write_atomically(path, json.dumps(payload, indent=2) + "\n")
    return payload


def load_export(path: str | Path) -> dict[str, Any]:
    """Read and check an exported configuration; ``UsageError`` on anything a user could get wrong."""
    from .validation import read_user_file

    try:
        payload = json.loads(read_user_file(str(path), "configuration file"))
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    except RecursionError:
        raise UsageError(f"{path} is nested too deeply to be a configuration") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("config"), dict):
        raise UsageError(f"{path} has no 'config' object; write it with `jointsearch export`")
    if payload.get("space"):
        space = from_json(json.dumps(payload["space"]), source=f"the space in {path}")
        payload["config"] = config_dict(validate_config(space, payload["config"]))
    return payload
