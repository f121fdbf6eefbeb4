"""A search against a real multi-process Ray cluster on this machine (a head and a second node,
`ray start` on loopback): trials run on both nodes, checkpoints live in --storage-path, and a
promoted trial continues from its checkpoint wherever it resumes."""

import collections
import os
import subprocess
import sys

import mlflow
import pytest

from jointsearch.search import read_search

pytestmark = pytest.mark.slow


def test_search_on_a_two_node_cluster_uses_both_nodes(make_ray_cluster, tmp_path):
    cluster = make_ray_cluster(num_cpus=1, worker_cpus=1)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    storage = tmp_path / "shared-storage"
    proc = subprocess.run(
        [sys.executable, "-m", "jointsearch.search.cli", "search", "--ray-address", cluster.address,
         "--trainer", "jointsearch.search.testing:fake_trainer", "--num-samples", "6", "--min-budget", "1",
         "--max-budget", "9", "--eta", "3", "--experiment", "cluster", "--mlflow-uri", uri,
         "--storage-path", str(storage), "--cpus-per-trial", "1", "--trainer-arg", "sleep_s=2"],
        cwd=tmp_path, env={**os.environ, **cluster.env},
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = read_search(uri, "cluster")
    nodes_per_trial = {t: tags.get("nodes", "").split(",") for t, tags in results.trial_tags.items()}
    all_nodes = {n for nodes in nodes_per_trial.values() for n in nodes if n}
    assert len(all_nodes) == 2, nodes_per_trial  # both nodes trained
    assert any(storage.rglob("checkpoint_*"))  # checkpoints went to the shared storage path
    client = mlflow.MlflowClient(uri)
    moved = 0
    for trial_id, run_id in results.trial_runs.items():
        trained = {m.step: m.value for m in client.get_metric_history(run_id, "trained_budget")}
        budgets = sorted(trained)
        for lower, higher in zip(budgets, budgets[1:]):
            assert trained[higher] == higher - lower  # continued, on whichever node it resumed
        moved += len(nodes_per_trial[trial_id]) > 1
    print(f"trials per node: {collections.Counter(n for ns in nodes_per_trial.values() for n in ns)}; "
          f"trials that moved between nodes: {moved}")
