"""Progress of a running search on the terminal: what the driver already knows, drawn at most once a second.

Why a separate in-memory view: the tracker (tracking.py) sees every event of a search from both
backends (Ray Tune's callback, hpbandster's result logger), in the driver, as it happens. It
forwards them to a :class:`SearchProgress`, which keeps counters and the incumbent and answers
:meth:`SearchProgress.snapshot` (a frozen :class:`ProgressSnapshot`). Drawing is separate
(compute first, draw second): :func:`format_line` turns a snapshot into the plain line, and
:class:`ProgressDisplay` draws it, either as one live tqdm line on a terminal (redrawn by a timer
thread once a second, never by the events themselves, so a burst of results costs nothing on
screen) or, when the stream is redirected, as a plain line every ``plain_every_s`` seconds and
once at the end. Nothing but the display writes to the stream it was given (stderr by default),
so the search's own output on stdout stays exactly what it was.

The planned budget is an estimate (:func:`planned_budget`): Hyperband-style schedulers decide
promotions as results arrive, so it counts what successive halving would spend on
``num_samples`` configurations if every rung were filled as planned. Budget is counted as the
search spends it: a promoted configuration continues from its checkpoint, so a rung costs the
difference to the budget it had already reached.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence, TextIO

from .listeners import SearchListener

#: Seconds between plain progress lines when the output is not a terminal (overridable by env).
PLAIN_EVERY_S = float(os.environ.get("JOINTSEARCH_PROGRESS_EVERY_S", "10"))
#: The live line on a terminal is redrawn at most this often.
TTY_REDRAW_S = 1.0


@dataclass(frozen=True)
class ProgressSnapshot:
    """The state of a search at one moment, as the driver knows it."""

    trials_started: int
    evaluations_done: int
    running: int
    failed: int
    budget_spent: float  # in budget units, continuation counted as the difference
    budget_planned: float  # an estimate, see planned_budget
    best_val_error: float | None
    best_budget: float | None
    best_trial: str | None
    elapsed_s: float
    eta_s: float | None  # None until some budget was spent
    budget_unit: str = "epochs"

    @property
    def fraction(self) -> float:
        return min(1.0, self.budget_spent / self.budget_planned) if self.budget_planned > 0 else 0.0


def planned_budget(scheduler: str, num_samples: int, rungs: Sequence[float], eta: float) -> float:
    """What the search is expected to spend on ``num_samples`` configurations, in budget units.

    ``scheduler`` is the preset's scheduler kind (presets.py): ``fifo`` trains every
    configuration to the max budget; ``asha`` is one successive-halving bracket from the
    smallest rung; ``hyperband``/``hyperband_bohb`` fill hpbandster's brackets in its order
    (``budgets.plan_brackets``). Each stage keeps ``1/eta`` of the one before, and a
    promoted configuration pays only the difference to its previous budget.
    """
    from .budgets import plan_brackets, stage_sizes

    rungs = list(rungs)
    n_rungs = len(rungs)
    if num_samples < 1 or not rungs:
        return 0.0

    def bracket_cost(n0: int, s: int) -> float:
        first = n_rungs - 1 - s  # the rung this bracket starts at
        cost, before = 0.0, 0.0
        for k, n in enumerate(stage_sizes(n0, s, eta)):
            cost += n * (rungs[first + k] - before)
            before = rungs[first + k]
        return cost

    if scheduler == "fifo":
        return num_samples * rungs[-1]
    if scheduler == "asha":
        return bracket_cost(num_samples, n_rungs - 1)
    plan = plan_brackets(num_samples, n_rungs, eta)
    return sum(bracket_cost(n0, n_rungs - 1 - i % n_rungs) for i, n0 in enumerate(plan))


class SearchProgress(SearchListener):
    """Counters of one search, fed by the tracker's events (any thread); ``snapshot()`` reads them.

    Event order per trial: ``trial_started`` once, then any number of ``trial_state`` and
    ``evaluation`` calls, then ``trial_ended`` (possibly never, when a search is killed).
    """

    def __init__(self, budget_planned: float, budget_unit: str = "epochs", *,
                 clock: Callable[[], float] = time.monotonic):
        self.budget_planned = float(budget_planned)
        self.budget_unit = budget_unit
        self.clock = clock
        self.started_at = clock()
        self._lock = threading.Lock()
        self._state: dict[str, str] = {}
        self._reached: dict[str, float] = {}
        self._failed: set[str] = set()
        self._evaluations = 0
        self._spent = 0.0
        self._best: tuple[float, float, str] | None = None  # (budget, val_error, trial id)

    def __getstate__(self) -> dict:
        # Ray Tune pickles its callbacks (and so the tracker and this) into its experiment state.
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # --- events ------------------------------------------------
    def trial_started(self, trial_id: str) -> None:
        with self._lock:
            self._state.setdefault(trial_id, "running")

    def trial_state(self, trial_id: str, state: str) -> None:
        with self._lock:
            if trial_id in self._state:
                self._state[trial_id] = state

    def evaluation(self, trial_id: str, budget: float, metrics: Mapping[str, Any]) -> None:
        """One result at one budget; ``metrics['val_error']`` (finite, status ok) may become the incumbent."""
        with self._lock:
            self._state.setdefault(trial_id, "running")
            self._evaluations += 1
            before = self._reached.get(trial_id, 0.0)
            self._spent += max(0.0, budget - before)
            self._reached[trial_id] = max(before, budget)
            value = metrics.get("val_error")
            ok = str(metrics.get("status", "ok")) == "ok"
            if ok and isinstance(value, (int, float)) and math.isfinite(value):
                # The incumbent: the lowest error at the highest budget any ok result reached
                # (dashboards.analysis.best_configuration's rule).
                if self._best is None or (budget, -value) > (self._best[0], -self._best[1]):
                    self._best = (budget, float(value), trial_id)

    def trial_ended(self, trial_id: str, final_status: str) -> None:
        with self._lock:
            self._state[trial_id] = final_status
            if final_status == "failed":
                self._failed.add(trial_id)

    # --- as a listener of the tracker (listeners.py) ----------------------------------------
    def on_trial_started(self, trial_id: str) -> None:
        self.trial_started(trial_id)

    def on_trial_state(self, trial_id: str, state: str) -> None:
        self.trial_state(trial_id, state)

    def on_evaluation(self, record) -> None:
        self.evaluation(record.trial_id, record.budget, {"val_error": record.val_error, "status": str(record.status)})

    def on_trial_ended(self, trial_id: str, final_status: str) -> None:
        self.trial_ended(trial_id, final_status)

    # --- reading ---------------------------------------------------------------------------
    def snapshot(self) -> ProgressSnapshot:
        with self._lock:
            elapsed = max(0.0, self.clock() - self.started_at)
            running = sum(1 for s in self._state.values() if s in ("running", "retrying"))
            spent, planned = self._spent, max(self.budget_planned, self._spent)
            eta = None
            if spent > 0 and elapsed > 0:
                eta = (planned - spent) / (spent / elapsed)
            best = self._best
            return ProgressSnapshot(
                trials_started=len(self._state), evaluations_done=self._evaluations, running=running,
                failed=len(self._failed), budget_spent=spent, budget_planned=planned,
                best_val_error=best[1] if best else None, best_budget=best[0] if best else None,
                best_trial=best[2] if best else None, elapsed_s=elapsed, eta_s=eta,
                budget_unit=self.budget_unit)


def _clock_text(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def status_text(s: ProgressSnapshot) -> str:
    """The part of the line that tqdm does not draw itself: evaluations, failures, incumbent."""
    best = "best -" if s.best_val_error is None else (
        f"best val_error {s.best_val_error:.4f} at {s.best_budget:g} {s.budget_unit} (trial {s.best_trial})")
    return (f"{s.evaluations_done} evaluations done, {s.running} running, {s.failed} failed | {best}")


def format_line(s: ProgressSnapshot) -> str:
    """The plain progress line (redirected output, logs): everything in one line, no control characters."""
    return (f"progress: {status_text(s)} | budget {s.budget_spent:g}/~{s.budget_planned:g} {s.budget_unit} "
            f"({100 * s.fraction:.0f}%) | elapsed {_clock_text(s.elapsed_s)}, ETA {_clock_text(s.eta_s)}")


class ProgressDisplay:
    """Draws a :class:`SearchProgress` on ``stream`` until ``close()``; ``quiet`` draws nothing.

    On a terminal: one tqdm line (bar = budget spent against planned, tqdm's elapsed and
    remaining time, the status text as postfix), redrawn by a daemon thread every second.
    Otherwise: :func:`format_line` every ``plain_every_s`` seconds, and once more at ``close()``.
    """

    def __init__(self, progress: SearchProgress, stream: TextIO | None = None, *, quiet: bool = False,
                 tty: bool | None = None, plain_every_s: float | None = None):
        self.progress = progress
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.tty = bool(tty if tty is not None else getattr(self.stream, "isatty", lambda: False)())
        self.interval = TTY_REDRAW_S if self.tty else (PLAIN_EVERY_S if plain_every_s is None else plain_every_s)
        self._stop = threading.Event()
        self._bar = None
        self._thread: threading.Thread | None = None

    def start(self) -> "ProgressDisplay":
        if self.quiet:
            return self
        if self.tty:
            from tqdm import tqdm

            s = self.progress.snapshot()
            self._bar = tqdm(total=s.budget_planned, unit=s.budget_unit, desc="search", file=self.stream,
                             dynamic_ncols=True, mininterval=TTY_REDRAW_S, leave=True,
                             bar_format="{desc} {percentage:3.0f}%|{bar:16}| {n:.0f}/~{total:.0f} {unit} "
                                        "[{elapsed}<{remaining}]{postfix}")  # tqdm puts ", " before the postfix
        self._thread = threading.Thread(target=self._loop, daemon=True, name="jointsearch-progress")
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.draw()

    def draw(self) -> None:
        s = self.progress.snapshot()
        if self._bar is not None:
            self._bar.total = s.budget_planned
            self._bar.n = s.budget_spent
            self._bar.set_postfix_str(status_text(s), refresh=False)
            self._bar.refresh()
        else:
            print(format_line(s), file=self.stream, flush=True)

    def close(self) -> None:
        """Stop the timer and draw the final state once (a finished search shows where it ended)."""
        if self.quiet or self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=5)
        self._thread = None
        self.draw()
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "ProgressDisplay":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


def show_progress(tracker, settings, rungs: Sequence[float], stream: TextIO | None = None) -> ProgressDisplay:
    """Feed ``tracker``'s events to a fresh :class:`SearchProgress` and start drawing it (run_search's hook)."""
    from .presets import get_preset

    planned = planned_budget(get_preset(settings.scheduler).scheduler, settings.num_samples, rungs, settings.eta)
    progress = SearchProgress(planned, settings.budget_unit)
    tracker.listeners.append(progress)
    return ProgressDisplay(progress, stream).start()
