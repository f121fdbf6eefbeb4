"""Ray's synchronous Hyperband schedulers, without the hangs that leave a search waiting for ever.

In Ray 2.60's ``HyperBandScheduler`` (and ``HyperBandForBOHB``, its subclass) a trial that leaves
a bracket without a result (it fails, or its worker dies) may leave the bracket's other trials
paused for ever: Tune then steps with paused trials, nothing running and nothing to start ("No
trial is running and no new trial has been started within the last 60 seconds"). Two paths:

- **The bracket was finished by the departure.** ``on_trial_remove`` processes a bracket only
  when it is *not* finished. If the others were paused at the bracket's last milestone waiting
  for the one that left, the bracket is finished now, and nobody stops them.
- **The bracket had halved once.** Its ``is_being_processed`` mark, set so that stopping the bad
  trials does not process the bracket again from inside itself (ray#36568), is never cleared,
  so no later departure makes the scheduler look at the bracket again.

A failure at the last rung is enough for either (tests/search/test_ray_hyperband.py). A CI run of
the ``hyperband`` preset's contract stopped in that state for 600 s with the fake trainer; what
removed a trial there was not logged, but any departure leads here.

Here the mark means "being processed" only while the processing runs (and covers stopping a
finished bracket's paused trials, which also removes them), and a departure processes the bracket
whenever it is not being processed: a finished bracket stops its paused trials, as it does when
its last result arrives.
"""

from __future__ import annotations

from ray.tune.schedulers import HyperBandForBOHB, HyperBandScheduler


class _ProcessedOnEveryDeparture:
    def _process_bracket(self, tune_controller, bracket) -> str:
        outermost = not bracket.is_being_processed
        bracket.is_being_processed = True  # the trials it stops come back through on_trial_remove
        try:
            return super()._process_bracket(tune_controller, bracket)
        finally:
            if outermost:
                bracket.is_being_processed = False

    def on_trial_remove(self, tune_controller, trial) -> None:
        bracket, _ = self._trial_info[trial]
        bracket.cleanup_trial(trial)
        if not bracket.is_being_processed:
            self._process_bracket(tune_controller, bracket)  # finished: stops the paused trials


class HyperBand(_ProcessedOnEveryDeparture, HyperBandScheduler):
    """``HyperBandScheduler`` that processes a bracket whenever a trial leaves it."""


class HyperBandForBOHBProcessed(_ProcessedOnEveryDeparture, HyperBandForBOHB):
    """``HyperBandForBOHB`` that processes a bracket whenever a trial leaves it (it already
    processes brackets with paused trials once nothing runs at all)."""
