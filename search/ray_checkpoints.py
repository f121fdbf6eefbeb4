"""Bounded disk: keep only the checkpoints a search can still use (``--keep-checkpoints``).

Tune keeps every rung's checkpoint of every trial with ``CheckpointConfig(num_to_keep=None)``;
at 8-9 bytes per parameter the paper's recipe (about 526 evaluations of ~190 MB) keeps ~100 GB.
``num_to_keep`` would bound it but makes Tune snapshot its whole experiment state after each
report (see ray_tune.py), so instead this callback deletes what can no longer be used:

- ``promotable`` (default): a trial keeps only its latest checkpoint while it runs or is
  paused (a paused trial may be promoted and continue from it); a trial that ended (completed,
  stopped by the scheduler, failed) loses its checkpoints, except the incumbent's latest.
- ``none``: the same while the search runs, and nothing is left when it ends.
- ``all``: nothing is deleted (the old behaviour).

Resume does not need them: a resumed search continues from MLflow's records, and the trials a
crash interrupted are not continued (README, "Resume"). The disk the search holds is logged to
the parent run as the metric ``disk_bytes`` (step = checkpoints seen; at most every 30 s, and
at the end). Only local storage is
pruned; a remote ``--storage-path`` (``s3://...``) is left as Tune writes it.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from pathlib import Path

from ray.tune import Callback

KEEP_CHOICES = ("all", "promotable", "none")
DISK_LOG_EVERY_S = 30.0  # one MLflow write per checkpoint would double the parent run's writes
log = logging.getLogger("jointsearch.search")


def dir_bytes(root: Path) -> int:
    total = 0
    for base, _, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(base, name)).st_size
            except OSError:
                pass
    return total


def checkpoint_dirs(trial_dir: Path) -> list[Path]:
    """A trial's Tune checkpoints (``checkpoint_000003``), oldest first."""
    if not trial_dir.is_dir():
        return []
    return sorted((p for p in trial_dir.iterdir() if p.is_dir() and p.name.startswith("checkpoint_")),
                  key=lambda p: p.name)


class CheckpointPruner(Callback):
    """Deletes checkpoints that no trial can continue from any more (see the module docstring)."""

    def __init__(self, keep: str, log_metric=None, experiment_dir: str | None = None):
        self.keep = keep
        self.log_metric = log_metric  # (metrics: dict, step: int) -> None, the parent run's
        self.experiment_dir = Path(experiment_dir) if experiment_dir else None
        self.trial_dirs: dict[str, Path] = {}
        self.ended: set[str] = set()
        self.incumbent: tuple[float, float, str] | None = None  # (-budget, val_error, trial id)
        self.saves = 0
        self._disk_logged_at = 0.0

    # --- helpers -------------------------------------------------------------------------
    def _trial_dir(self, trial) -> Path | None:
        path = getattr(trial, "path", None)  # in the storage path, where Tune persists checkpoints
        if not path or "://" in str(path):
            return None
        self.trial_dirs[trial.trial_id] = Path(path)
        if self.experiment_dir is None:
            self.experiment_dir = Path(path).parent
        return Path(path)

    def _prune(self, trial_id: str, keep_latest: bool) -> None:
        trial_dir = self.trial_dirs.get(trial_id)
        if trial_dir is None:
            return
        dirs = checkpoint_dirs(trial_dir)
        for path in dirs[:-1] if keep_latest else dirs:
            shutil.rmtree(path, ignore_errors=True)

    def _log_disk(self, force: bool = False) -> None:
        if self.log_metric is None or self.experiment_dir is None:
            return
        if force or time.monotonic() - self._disk_logged_at >= DISK_LOG_EVERY_S:
            self._disk_logged_at = time.monotonic()
            self.log_metric({"disk_bytes": dir_bytes(self.experiment_dir)}, self.saves)

    # --- Tune's events -------------------------------------------------------------------
    def on_trial_result(self, iteration, trials, trial, result, **info):
        self._trial_dir(trial)
        error, budget = result.get("val_error"), result.get("budget")
        if result.get("status", "ok") != "ok" or not isinstance(error, (int, float)) or not math.isfinite(error):
            return
        candidate = (-float(budget or 0.0), float(error), trial.trial_id)
        if self.incumbent is None or candidate < self.incumbent:
            previous = self.incumbent
            self.incumbent = candidate
            if previous is not None and previous[2] in self.ended and self.keep != "all":
                self._prune(previous[2], keep_latest=False)  # an ended trial that is no longer the best

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        self._trial_dir(trial)
        self.saves += 1
        if self.keep != "all":
            self._prune(trial.trial_id, keep_latest=True)  # the latest is all a promotion needs
        self._log_disk()

    def _ended(self, trial) -> None:
        self._trial_dir(trial)
        self.ended.add(trial.trial_id)
        if self.keep == "all":
            return
        is_incumbent = self.incumbent is not None and self.incumbent[2] == trial.trial_id
        self._prune(trial.trial_id, keep_latest=is_incumbent and self.keep == "promotable")

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._ended(trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._ended(trial)

    def on_experiment_end(self, trials, **info):
        if self.keep == "none":
            for trial_id in list(self.trial_dirs):
                self._prune(trial_id, keep_latest=False)
        self._log_disk(force=True)
