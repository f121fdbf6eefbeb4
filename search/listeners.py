"""What a running search tells the parts that watch it, besides MLflow.

Why a listener list: the tracker (tracking.py) is the one place where every event of a search
arrives, from either backend (Ray Tune's callback, hpbandster's result logger), and it builds
each evaluation's record there. It writes MLflow and hands the same record and events to its
listeners, side by side: the live dashboards (live.py) and the progress line (progress.py). It
does not create, know or refresh them; ``run_search`` wires them up and finishes them.

Listeners must be cheap and must not raise: they run in the driver's event loop.
"""

from __future__ import annotations

from jointsearch.dashboards.records import EvaluationRecord

__all__ = ["SearchListener"]


class SearchListener:
    """No-op base: a listener overrides the events it needs."""

    def on_trial_started(self, trial_id: str) -> None:
        """A trial's first start (a paused trial that resumes sends ``on_trial_state``)."""

    def on_trial_state(self, trial_id: str, state: str) -> None:
        """running, paused, retrying, ..."""

    def on_evaluation(self, record: EvaluationRecord) -> None:
        """One result of one trial at one budget, as recorded in MLflow."""

    def on_trial_ended(self, trial_id: str, final_status: str) -> None:
        """completed, stopped, failed or interrupted."""
