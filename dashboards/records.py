"""The one record every dashboard reads: what the search recorded about one evaluation.

Everything in :mod:`jointsearch.dashboards` takes a sequence of :class:`EvaluationRecord`; the
search side (``search/``) converts its own results into these, and the JSON helpers here are the
on-disk form (plain lists of dicts, NaN written as ``null``) so a report can be rebuilt from a file
without importing the search stack.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jointsearch.spaces.values import to_python

__all__ = ["EvaluationRecord", "Status", "finite_or_none", "is_ok", "last_ok_by_budget", "ok_budgets", "records_from_json",
           "records_to_json", "spent"]


class Status(str, enum.Enum):
    """How one evaluation ended: the one status vocabulary of the search, MLflow and the dashboards.

    A ``str`` enum, so a status compares equal to its string (``record.status == "ok"``) and is
    written to JSON as that string. A trainer may report any of the first three; ``failed`` is an
    evaluation that raised (or a trainer status this vocabulary does not know), ``infeasible`` a
    configuration refused before training (too large), ``interrupted`` one cut short by a signal.
    """

    OK = "ok"
    DIVERGED = "diverged"
    FAILED = "failed"
    INFEASIBLE = "infeasible"
    INTERRUPTED = "interrupted"

    @classmethod
    def of(cls, value: Any) -> "Status":
        """The status named by ``value``; a name outside the vocabulary is ``FAILED``."""
        try:
            return cls(str(value.value if isinstance(value, Status) else value))
        except ValueError:
            return cls.FAILED

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class EvaluationRecord:
    """One evaluation of one configuration at one budget, as the search recorded it (SMAC3's
    TrialInfo + TrialValue in one frozen record). It is built once, where the trainer's result
    reaches the driver (``search/evaluations.py``), written to MLflow from there and read back by
    the same module, so the live dashboards, the report, export, warm start and the benchmarks see
    the same record."""

    trial_id: str
    config: Mapping[str, Any]  # active hyperparameters only (conditional spaces omit inactive ones)
    budget: float  # in budget units (epochs or seconds); 0 for a trial that failed before any
    val_error: float  # 0..1, nan when failed
    status: Status = Status.OK  # a Status, or its string (coerced)
    cost_s: float = float("nan")  # seconds this evaluation took
    finished_at: float = float("nan")  # unix time the evaluation finished
    bracket: int | None = None  # Hyperband bracket the evaluation belonged to
    n_params: int | None = None  # trainable parameters of the network, when known
    budget_spent: float | None = None  # budget units this evaluation trained (a continued rung
    #                                    pays the difference, a rung from scratch all of it); None: unknown
    rung: int | None = None  # index of ``budget`` among the search's rung budgets (0 = min budget)
    node: str | None = None  # the Ray node (id prefix) that ran it, on a cluster
    # The trainer's other numeric metrics that the search needs by name (objectives and
    # constraints such as a user's ``latency_ms``; issue 15); finite floats only.
    metrics: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Copy the config so a caller mutating its dict cannot change a "frozen" record.
        object.__setattr__(self, "config", dict(self.config))
        object.__setattr__(self, "trial_id", str(self.trial_id))
        budget = float(self.budget)
        # 0 is allowed: a trial that failed before reporting at any budget spent none.
        if not math.isfinite(budget) or budget < 0:
            raise ValueError(
                f"EvaluationRecord {self.trial_id!r}: budget must be a finite number >= 0, "
                f"got {self.budget!r}"
            )
        object.__setattr__(self, "budget", budget)
        object.__setattr__(self, "status", Status.of(self.status))
        object.__setattr__(self, "val_error", _float_or_nan(self.val_error))
        object.__setattr__(self, "cost_s", _float_or_nan(self.cost_s))
        object.__setattr__(self, "finished_at", _float_or_nan(self.finished_at))
        if self.budget_spent is not None:
            object.__setattr__(self, "budget_spent", float(self.budget_spent))
        if self.bracket is not None:
            object.__setattr__(self, "bracket", int(self.bracket))
        if self.n_params is not None:
            object.__setattr__(self, "n_params", int(self.n_params))
        if self.rung is not None:
            object.__setattr__(self, "rung", int(self.rung))
        if self.node is not None:
            object.__setattr__(self, "node", str(self.node))
        object.__setattr__(self, "metrics", {str(k): float(v) for k, v in (self.metrics or {}).items()
                                             if v is not None and math.isfinite(float(v))})

    @property
    def ok(self) -> bool:
        """True when the evaluation finished with status "ok" and a finite validation error."""
        return is_ok(self)


def is_ok(record: EvaluationRecord) -> bool:
    """Whether ``record`` counts as a successful evaluation (status "ok", finite val_error)."""
    return record.status == "ok" and math.isfinite(record.val_error)


def spent(record: EvaluationRecord) -> float:
    """The budget ``record`` really trained: its ``budget_spent`` when the trainer said, else
    its ``budget`` (what an evaluation from scratch pays; older searches recorded no spend)."""
    known = record.budget_spent is not None and math.isfinite(record.budget_spent)
    return record.budget_spent if known else record.budget


def _float_or_nan(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _json_number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def records_to_json(records: Iterable[EvaluationRecord]) -> list[dict[str, Any]]:
    """Records as JSON-ready dicts; NaN becomes ``None`` so the output is strict JSON."""
    out = []
    for r in records:
        out.append(
            {
                "trial_id": r.trial_id,
                "config": {k: to_python(v) for k, v in r.config.items()},
                "budget": r.budget,
                "val_error": _json_number(r.val_error),
                "status": r.status.value,
                "cost_s": _json_number(r.cost_s),
                "finished_at": _json_number(r.finished_at),
                "bracket": r.bracket,
                "n_params": r.n_params,
                "budget_spent": None if r.budget_spent is None else _json_number(r.budget_spent),
                "rung": r.rung,
                "node": r.node,
                "metrics": dict(r.metrics),
            }
        )
    return out


def records_from_json(data: Sequence[Mapping[str, Any]]) -> list[EvaluationRecord]:
    """Inverse of :func:`records_to_json`; missing optional keys take the dataclass defaults."""
    out = []
    for i, d in enumerate(data):
        missing = [k for k in ("trial_id", "config", "budget", "val_error") if k not in d]
        if missing:
            raise ValueError(f"evaluation record #{i} lacks required key(s) {missing}")
        out.append(
            EvaluationRecord(
                trial_id=d["trial_id"],
                config=d["config"],
                budget=d["budget"],
                val_error=d["val_error"],
                status=d.get("status", "ok"),
                cost_s=d.get("cost_s"),
                finished_at=d.get("finished_at"),
                bracket=d.get("bracket"),
                n_params=d.get("n_params"),
                budget_spent=d.get("budget_spent"),
                rung=d.get("rung"),
                node=d.get("node"),
                metrics=d.get("metrics") or {},
            )
        )
    return out


def ok_budgets(records: Sequence[EvaluationRecord]) -> list[float]:
    """Sorted distinct budgets at which at least one evaluation succeeded."""
    return sorted({r.budget for r in records if is_ok(r)})


def last_ok_by_budget(records: Sequence[EvaluationRecord]) -> dict[float, dict[str, EvaluationRecord]]:
    """budget -> trial_id -> the last ok record of that trial at that budget (a re-run or a resumed
    bracket can record a trial twice at one budget; the analyses use the last, in the order given)."""
    out: dict[float, dict[str, EvaluationRecord]] = {}
    for r in records:
        if is_ok(r):
            out.setdefault(r.budget, {})[r.trial_id] = r
    return out


def finite_or_none(x: float | None) -> float | None:
    """A finite float, or None (NaN never leaks into an ...Info record as if it were an estimate)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None
