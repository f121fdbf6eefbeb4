"""Two searches started together on one fresh SQLite store: both succeed, each in its own
parent run (MLflow's table creation and the experiment are created by one of them at a time)."""

import os
import subprocess
import sys

import mlflow
import pytest

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-m", "jointsearch.search.cli"]


def test_two_first_searches_on_one_fresh_store_both_succeed(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    procs = [subprocess.Popen([*CLI, "search", "--trainer", "jointsearch.search.testing:fake_trainer",
                               "--scheduler", "random", "--num-samples", "2", "--min-budget", "1",
                               "--max-budget", "1", "--seed", str(seed), "--experiment", "together",
                               "--mlflow-uri", uri, "--storage-path", str(tmp_path / f"ray{seed}")],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for seed in (1, 2)]
    outs = [p.communicate(timeout=400) for p in procs]
    for proc, (out, err) in zip(procs, outs):
        assert proc.returncode == 0, err[-3000:]
        assert "Traceback" not in err
    client = mlflow.MlflowClient(uri)
    experiments = [e for e in client.search_experiments() if e.name == "together"]
    assert len(experiments) == 1
    parents = client.search_runs([experiments[0].experiment_id], filter_string="tags.`jointsearch.kind` = 'search'")
    assert len(parents) == 2 and {r.info.status for r in parents} == {"FINISHED"}
    assert len({r.data.tags["jointsearch.driver_pid"] for r in parents}) == 2
