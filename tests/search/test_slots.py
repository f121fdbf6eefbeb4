"""Every free slot is filled on a local runtime (issue 11): with Ray's local default of one pending
trial, a search on 8 GPUs ran no more than a few trials at once.

A simulated 8-GPU node (Ray's logical resources: ``ray.init(num_cpus=8, num_gpus=8)`` works
without GPUs), a trainer that sleeps, one GPU per trial. Each evaluation logs when it started and
ended (``started_at``/``ended_at``, from the fake trainer); the test asserts that at some moment
at least 4 of them were running at the same time. Not a timing test: it counts overlaps.
"""

import os
import subprocess
import sys

import mlflow
import pytest

from jointsearch.search import read_search

pytestmark = pytest.mark.slow

SCRIPT = """
import os, sys
import ray
from jointsearch.search import SearchSettings, run_search
ray.init(address="local", num_cpus=8, num_gpus=8, include_dashboard=False, log_to_driver=False)
run_search(SearchSettings(scheduler=sys.argv[1], space="tiny", min_budget=1, max_budget=9, eta=3, num_samples=16,
                          seed=3, gpus_per_trial=1, cpus_per_trial=1, mlflow_uri=sys.argv[2], experiment="slots",
                          storage_path=sys.argv[3], trainer="jointsearch.search.testing:fake_trainer",
                          trainer_kwargs={"sleep_s": 3.0}))
"""


def peak_overlap(intervals):
    """The largest number of intervals that contain one moment."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
                    key=lambda e: (e[0], e[1]))
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def test_peak_overlap_counts_simultaneous_intervals():
    assert peak_overlap([(0, 2), (1, 3), (2.5, 4), (5, 6)]) == 2
    assert peak_overlap([(0, 1), (1, 2)]) == 1  # one ends as the next starts


@pytest.mark.parametrize("preset", ["bohb", "asha"])
def test_a_search_keeps_the_simulated_gpus_busy(preset, tmp_path, sqlite_uri):
    uri = sqlite_uri
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    env.pop("TUNE_MAX_PENDING_TRIALS_PG", None)
    done = subprocess.run([sys.executable, "-c", SCRIPT, preset, uri, str(tmp_path / "ray")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    results = read_search(uri, "slots")
    client = mlflow.MlflowClient(uri)
    intervals = []
    for run_id in results.trial_runs.values():
        starts = {m.step: m.value for m in client.get_metric_history(run_id, "started_at")}
        ends = {m.step: m.value for m in client.get_metric_history(run_id, "ended_at")}
        intervals += [(starts[step], ends[step]) for step in starts if step in ends]
    assert len(intervals) >= 16
    peak = peak_overlap(intervals)
    print(f"{preset}: {len(intervals)} evaluations, at most {peak} at once on 8 simulated GPUs")
    assert peak >= 4, peak  # 1 with TUNE_MAX_PENDING_TRIALS_PG=1 (bohb, measured); 5-6 here on a loaded machine
