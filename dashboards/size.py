"""Validation error against network size (parameter count).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass



from .records import EvaluationRecord, is_ok

__all__ = ["ParamsInfo", "error_vs_params"]


@dataclass(frozen=True)
class ParamsInfo:
    """(n_params, val_error, budget) of the ok records that know their parameter count."""

    trial_ids: tuple[str, ...]
    n_params: tuple[int, ...]
    val_error: tuple[float, ...]
    budget: tuple[float, ...]
    n_without_params: int  # ok records with n_params None (not shown)


def error_vs_params(records: Sequence[EvaluationRecord]) -> ParamsInfo:
    """Validation error against network size, for the ok records that have ``n_params``."""
    ok = [r for r in records if is_ok(r)]
    have = [r for r in ok if r.n_params is not None]
    return ParamsInfo(
        trial_ids=tuple(r.trial_id for r in have),
        n_params=tuple(int(r.n_params) for r in have),  # type: ignore[arg-type]
        val_error=tuple(r.val_error for r in have),
        budget=tuple(r.budget for r in have),
        n_without_params=len(ok) - len(have),
    )
