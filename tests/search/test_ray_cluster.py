"""The cluster the user meant: with a Ray head already running on the machine (and RAY_ADDRESS
pointing at it, as a plain `ray.init()` would follow), a search without --ray-address starts
its own local runtime; with --ray-address it joins that head. Either way it prints and tags
which cluster it used."""

import os
import subprocess
import sys

import mlflow
import pytest

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-m", "jointsearch.search.cli"]


def _search(tmp_path, uri, env, *extra, experiment):
    proc = subprocess.run([*CLI, "search", "--trainer", "jointsearch.search.testing:fake_trainer",
                           "--scheduler", "random", "--num-samples", "2", "--min-budget", "1", "--max-budget", "1",
                           "--experiment", experiment, "--mlflow-uri", uri, "--storage-path", str(tmp_path / "ray"),
                           *extra], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    parent = client.search_runs([exp.experiment_id], filter_string="tags.`jointsearch.kind` = 'search'")[0]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("cluster: ")]
    assert len(lines) == 1, proc.stderr[-3000:]
    return lines[0], parent.data.tags


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs 2 CPUs to tell the local runtime from the 1-CPU head")
def test_a_search_without_ray_address_never_joins_the_running_head(tmp_path, make_ray_cluster, sqlite_uri):
    head = make_ray_cluster(num_cpus=1, auth=False)
    env = {**os.environ, **head.env, "RAY_ADDRESS": head.address}

    line, tags = _search(tmp_path, sqlite_uri, env, experiment="local")
    assert "a local Ray runtime of this process (no running cluster joined)" in line
    assert tags["jointsearch.cluster.local"] == "true"
    assert tags["jointsearch.cluster.address"] != head.address
    assert float(tags["jointsearch.cluster.cpus"]) >= 2  # the machine's CPUs, not the head's 1

    line, tags = _search(tmp_path, sqlite_uri, env, "--ray-address", head.address, experiment="joined")
    assert f"the Ray cluster at {head.address}: 1 node, 1 CPUs" in line
    assert tags["jointsearch.cluster.local"] == "false" and tags["jointsearch.cluster.address"] == head.address
    assert tags["jointsearch.cluster.nodes"] == "1" and tags["jointsearch.cluster.cpus"] == "1"
