"""``make_*`` factory fixtures (SMAC3 style) for hand-made evaluation records with known answers.

The factories are stateless, so they are session-scoped and usable from module-scoped fixtures.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pytest

from jointsearch.dashboards.records import EvaluationRecord


@pytest.fixture(scope="session")
def make_record() -> Callable[..., EvaluationRecord]:
    """One record with harmless defaults; override any field by keyword."""

    def _make(
        trial_id: str = "t0",
        budget: float = 1.0,
        val_error: float = 0.5,
        config: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> EvaluationRecord:
        return EvaluationRecord(
            trial_id=trial_id,
            config={"x": 0} if config is None else config,
            budget=budget,
            val_error=val_error,
            **fields,
        )

    return _make


@pytest.fixture(scope="session")
def make_records() -> Callable[..., list[EvaluationRecord]]:
    """Records from a table ``{budget: [val_error of trial t0, t1, ...]}``.

    ``None`` in a list means that trial was not evaluated at that budget. Records are listed and
    finish (``finished_at``, one second apart from ``start``) budget by budget, smallest first,
    as successive halving would produce them; ``configs[i]`` (default ``{"x": i}``) is trial i's
    configuration; every other keyword goes to each record.
    """

    def _make(
        errors: Mapping[float, Sequence[float | None]],
        *,
        configs: Sequence[Mapping[str, Any]] | None = None,
        start: float = 1_000.0,
        **fields: Any,
    ) -> list[EvaluationRecord]:
        records = []
        clock = start
        for budget in sorted(errors):
            for i, err in enumerate(errors[budget]):
                if err is None:
                    continue
                records.append(
                    EvaluationRecord(
                        trial_id=f"t{i}",
                        config={"x": i} if configs is None else configs[i],
                        budget=budget,
                        val_error=err,
                        finished_at=clock,
                        **fields,
                    )
                )
                clock += 1.0
        return records

    return _make


@pytest.fixture(scope="session")
def make_conditional_space() -> Callable[..., Any]:
    """A ConfigSpace space with ``momentum`` active only when ``optimizer == "sgd"``."""

    def _make(seed: int = 0):
        import ConfigSpace as CS

        cs = CS.ConfigurationSpace(seed=seed)
        cs.add(
            [
                CS.Float("lr", (1e-3, 1.0), log=True, default=0.01),
                CS.Categorical("optimizer", ["sgd", "adam"], default="sgd"),
                CS.Float("momentum", (0.0, 0.99), default=0.9),
                CS.Integer("blocks", (1, 16), log=True),
                CS.Constant("filters", 16),
            ]
        )
        cs.add(CS.EqualsCondition(cs["momentum"], cs["optimizer"], "sgd"))
        return cs

    return _make


@pytest.fixture(scope="session")
def make_lr_records() -> Callable[..., list[EvaluationRecord]]:
    """Records whose val_error is a function of ``lr`` alone (a bowl in log lr, minimum at
    lr = 0.03); every other value in ``configs`` is noise to the error."""

    def _make(
        configs: Sequence[Mapping[str, Any]], budget: float = 9.0, **fields: Any
    ) -> list[EvaluationRecord]:
        return [
            EvaluationRecord(
                trial_id=f"t{i}",
                config=dict(c),
                budget=budget,
                val_error=0.05 + 0.1 * (np.log10(c["lr"]) - np.log10(0.03)) ** 2,
                finished_at=1_000.0 + i,
                **fields,
            )
            for i, c in enumerate(configs)
        ]

    return _make
