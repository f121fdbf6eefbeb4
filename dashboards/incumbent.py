"""The incumbent: the best configuration at the highest budget, and how it improved over time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any



from .records import EvaluationRecord, is_ok

__all__ = ["IncumbentInfo", "best_configuration", "incumbent_trajectory"]


@dataclass(frozen=True)
class IncumbentInfo:
    """The best validation error at the search's highest budget, as the search went on.

    One step per evaluation (failed ones too: they spent time and budget) in finish order.
    ``best_error[k]`` is the lowest val_error among ok records at ``budget`` finished up to step
    ``k`` (NaN before the first one), so it is non-increasing once defined.
    """

    budget: float | None  # the highest budget any ok record reached; None without ok records
    trial_ids: tuple[str, ...]
    wall_time_s: tuple[float, ...]  # seconds since the first finish; NaN where unknown
    cumulative_budget: tuple[float, ...]  # budget units spent up to and including this step
    best_error: tuple[float, ...]
    incumbent_trial_id: str | None
    incumbent_config: Mapping[str, Any] | None
    incumbent_error: float | None

    @property
    def has_wall_time(self) -> bool:
        return any(math.isfinite(t) for t in self.wall_time_s)


def _finish_order(records: Sequence[EvaluationRecord]) -> list[EvaluationRecord]:
    """Sorted by finished_at; records without a finish time keep their given order, last."""
    keyed = [
        (0 if math.isfinite(r.finished_at) else 1, r.finished_at if math.isfinite(r.finished_at) else 0.0, i, r)
        for i, r in enumerate(records)
    ]
    return [k[-1] for k in sorted(keyed, key=lambda k: k[:3])]


def incumbent_trajectory(records: Sequence[EvaluationRecord]) -> IncumbentInfo:
    """Best val_error at the highest budget against wall time and cumulative budget spent.

    The highest budget is the highest any ok record reached over the whole run (not the highest
    seen *so far*): errors at lower budgets are not comparable with it, and switching budgets
    mid-way would make the curve jump up. Cumulative budget counts each evaluation's full budget
    (every evaluation, including failed ones), i.e. it assumes no checkpoint resumption.
    """
    ordered = _finish_order(records)
    ok = [r for r in ordered if is_ok(r)]
    top = max((r.budget for r in ok), default=None)
    t0 = next((r.finished_at for r in ordered if math.isfinite(r.finished_at)), float("nan"))
    wall, spent, best, ids = [], [], [], []
    total = 0.0
    current: EvaluationRecord | None = None
    for r in ordered:
        total += r.budget
        if top is not None and is_ok(r) and r.budget == top:
            if current is None or r.val_error < current.val_error:
                current = r
        ids.append(r.trial_id)
        wall.append(r.finished_at - t0)
        spent.append(total)
        best.append(current.val_error if current is not None else float("nan"))
    return IncumbentInfo(
        budget=top,
        trial_ids=tuple(ids),
        wall_time_s=tuple(wall),
        cumulative_budget=tuple(spent),
        best_error=tuple(best),
        incumbent_trial_id=current.trial_id if current else None,
        incumbent_config=dict(current.config) if current else None,
        incumbent_error=current.val_error if current else None,
    )




def best_configuration(records: Sequence[EvaluationRecord]) -> EvaluationRecord | None:
    """The ok record with the lowest val_error at the highest budget any ok record reached.

    Ties go to the earlier record in the order given; None when nothing succeeded.
    """
    ok = [r for r in records if is_ok(r)]
    if not ok:
        return None
    top = max(r.budget for r in ok)
    return min((r for r in ok if r.budget == top), key=lambda r: r.val_error)
