"""One evaluation, from the trainer's result to MLflow and back: the record's one builder, its
MLflow layout, and its one reader.

A trainer's result reaches the driver as a dict (through Tune, or hpbandster's master). It becomes
an :class:`~jointsearch.dashboards.records.EvaluationRecord` here, once (:func:`record_from_result`);
the tracker writes that record (:func:`mlflow_fields`) and feeds the same object to the live
dashboards and the progress line; ``read_search`` rebuilds it from MLflow with :func:`records_from_run`,
so the report, export, warm start and resume see exactly what the live dashboards saw.

MLflow layout of an evaluation, in its trial's child run, at step ``budget_step(budget)``:

* metrics ``status_code`` (:data:`STATUS_CODES`; it marks every evaluation, also one without a
  finite error), ``val_error`` (when finite), ``budget``, ``rung``, and when known ``cost_s``,
  ``n_params``, ``budget_spent``, plus every other numeric metric the trainer returned;
* tags ``node.<step>`` (the Ray node that ran it), and for the UI ``last_status``,
  ``budget_reached`` and ``rung`` (the newest evaluation's).

Searches recorded before ``status_code`` existed are read from their ``val_error`` history.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from jointsearch.dashboards.records import EvaluationRecord, Status

from .budgets import budget_step

#: The status of an evaluation as a number, so that MLflow keeps one per step (tags keep one per run).
STATUS_CODES: dict[Status, int] = {Status.OK: 0, Status.DIVERGED: 1, Status.FAILED: 2, Status.INFEASIBLE: 3,
                                   Status.INTERRUPTED: 4}
_STATUS_OF_CODE = {code: status for status, code in STATUS_CODES.items()}

#: Result keys that the record holds itself (everything else numeric is logged as it is).
RECORD_KEYS = frozenset({"val_error", "status", "cost_s", "n_params", "budget_spent", "budget", "rung", "node",
                         "status_code"})


def record_from_result(trial_id: str, config: Mapping[str, Any], budget: float, metrics: Mapping[str, Any], *,
                       rung: int | None, bracket: Any = None, finished_at_ms: int, node: str | None = None,
                       extra: Sequence[str] = ()) -> EvaluationRecord:
    """The record of one result as the trainer returned it (``trainer_api.call_trainer``'s dict);
    ``extra`` names the other metrics kept in ``record.metrics`` (the search's objectives and
    constraints, as :func:`records_from_run` reads them back)."""
    return EvaluationRecord(
        trial_id=trial_id, config=config, budget=budget,
        val_error=_finite(metrics.get("val_error")),
        status=Status.of(metrics.get("status", "ok")),
        cost_s=_finite(metrics.get("cost_s")),
        finished_at=finished_at_ms / 1000.0,
        bracket=int(bracket) if bracket not in (None, "", "None") else None,
        n_params=int(metrics["n_params"]) if metrics.get("n_params") is not None else None,
        budget_spent=metrics.get("budget_spent"),
        rung=rung, node=node or None,
        metrics={k: v for k, v in extra_metrics(metrics).items() if k in extra},
    )


def extra_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The trainer's numeric metrics that the record has no field for (finite ones), kept in
    ``record.metrics`` so that objectives and constraints can name any of them (issue 15)."""
    return {k: float(v) for k, v in metrics.items()
            if k not in RECORD_KEYS and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def mlflow_fields(record: EvaluationRecord, extra: Mapping[str, Any], step_scale: int
                  ) -> tuple[int, dict[str, float], dict[str, str]]:
    """(step, metrics, tags) that :func:`records_from_run` reads back as ``record``; ``extra`` are the
    trainer's other numeric metrics (non-finite ones are dropped: MLflow charts cannot show them)."""
    step = budget_step(record.budget, step_scale)
    metrics = extra_metrics(extra)
    metrics.update(budget=record.budget, status_code=float(STATUS_CODES[record.status]))
    if math.isfinite(record.val_error):
        metrics["val_error"] = record.val_error
    if math.isfinite(record.cost_s):
        metrics["cost_s"] = record.cost_s
    if record.n_params is not None:
        metrics["n_params"] = float(record.n_params)
    if record.budget_spent is not None and math.isfinite(record.budget_spent):
        metrics["budget_spent"] = record.budget_spent
    tags = {"budget_reached": f"{record.budget:g}", "last_status": record.status.value}
    if record.rung is not None:
        metrics["rung"] = float(record.rung)
        tags["rung"] = str(record.rung)
        if record.rung:
            tags["promoted"] = "true"
    if record.node:
        tags[f"node.{step}"] = record.node
    return step, metrics, tags


def records_from_run(client, run, config: Mapping[str, Any], step_scale: int, extra: Sequence[str] = ()
                     ) -> list[EvaluationRecord]:
    """Every evaluation recorded in one trial's child run, in budget order (see the module doc).
    ``extra`` names other metrics to read back into ``record.metrics`` (a search's objectives and
    constraints; reading every metric's history would cost one request per metric and run)."""
    run_id, tags = run.info.run_id, run.data.tags
    extra = [k for k in dict.fromkeys(extra) if k not in RECORD_KEYS]
    trial_id = tags.get("jointsearch.trial_id", run_id)
    bracket = tags.get("bracket")

    def history(key: str) -> dict[int, Any]:
        if key not in run.data.metrics:
            return {}
        return {m.step: m for m in client.get_metric_history(run_id, key)}

    codes, errors = history("status_code"), history("val_error")
    values = {key: {step: m.value for step, m in history(key).items()}
              for key in ("cost_s", "n_params", "budget_spent", "rung", *extra)}
    steps = sorted(codes) if codes else sorted(errors)
    records = []
    for i, step in enumerate(steps):
        marker = codes.get(step) or errors[step]
        val_error = errors[step].value if step in errors else float("nan")
        if codes:
            status = _STATUS_OF_CODE.get(int(codes[step].value), Status.FAILED)
        else:  # recorded before status_code: the last evaluation's status is the last_status tag
            status = Status.of(tags.get("last_status", "ok")) if i == len(steps) - 1 else Status.OK
            if status is Status.OK and not math.isfinite(val_error):
                status = Status.FAILED
        n_params = values["n_params"].get(step)
        rung = values["rung"].get(step)
        records.append(EvaluationRecord(
            trial_id=trial_id, config=config, budget=step / step_scale, val_error=val_error, status=status,
            cost_s=values["cost_s"].get(step, float("nan")), finished_at=marker.timestamp / 1000.0,
            bracket=int(bracket) if bracket not in (None, "", "None") else None,
            n_params=int(n_params) if n_params is not None else None,
            budget_spent=values["budget_spent"].get(step), rung=int(rung) if rung is not None else None,
            node=tags.get(f"node.{step}"),
            metrics={k: values[k][step] for k in extra if step in values[k]},
        ))
    if not records and tags.get("final_status") == "failed":
        # It failed before its first evaluation: budget 0, nothing spent; its kind says how.
        end = run.info.end_time / 1000.0 if run.info.end_time else float("nan")
        kind = Status.of(tags.get("failure_kind", "failed"))
        records.append(EvaluationRecord(trial_id=trial_id, config=config, budget=0.0, val_error=float("nan"),
                                        status=kind if kind is not Status.OK else Status.FAILED, finished_at=end))
    return records


def _finite(value: Any) -> float:
    """A float, NaN for a missing or non-finite value (the record's "no error measured")."""
    if value is None:
        return float("nan")
    value = float(value)
    return value if math.isfinite(value) else float("nan")
