"""Issue 5: the whole compose stack run natively, end to end.

A real PostgreSQL server, ``mlflow server`` on it, a Ray head and a second Ray node (separate
``ray start`` processes on loopback, token auth on), and the compose file's ``search`` command
run as a subprocess against them with the built-in trainer on digits; then ``jointsearch
export`` and ``jointsearch report`` read the results back from that server. Every server is
started by the ``make_*`` fixtures of tests/conftest.py, which stop them and remove their
directories at teardown, also when the test fails.
"""

from __future__ import annotations

import json
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

EXPERIMENT = "native-stack"
NUM_SAMPLES = 12  # enough work that both nodes are busy together even when one starts its first trial seconds late (CI, two xdist workers)


def _start(command: list[str], *, env: dict, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen, timeout: float) -> str:
    """Wait for a command started by :func:`_start`; its stdout, or a failure with its output."""
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        proc.kill()  # a no-op once it has exited
    assert proc.returncode == 0, (
        f"{' '.join(proc.args)} exited with {proc.returncode}\n"
        f"--- stdout ---\n{stdout[-3000:]}\n--- stderr ---\n{stderr[-5000:]}"
    )
    return stdout


def _trial_pids(storage: Path) -> set[int]:
    """The worker pids that Tune recorded with every result (``pid`` in each result.json)."""
    pids = set()
    for path in storage.rglob("result.json"):
        for line in path.read_text().splitlines():
            if line.strip():
                pids.add(int(json.loads(line)["pid"]))
    return pids


def _parallel_on_two_nodes(storage: Path) -> list[tuple[dict, dict]]:
    """Pairs of evaluations (one result.json line each: the trainable's node, ``started_at``,
    ``ended_at``) that ran on different nodes at overlapping times."""
    evaluations = [json.loads(line) for path in storage.rglob("result.json")
                   for line in path.read_text().splitlines() if line.strip()]
    return [(a, b) for i, a in enumerate(evaluations) for b in evaluations[i + 1:]
            if a["node"] != b["node"] and a["started_at"] < b["ended_at"] and b["started_at"] < a["ended_at"]]


def _nodes_that_ran(cluster, pids: set[int]) -> set[Path]:
    """The Ray nodes (by temp dir) whose worker logs belong to one of ``pids``: every Ray worker
    writes ``<temp dir>/session_*/logs/worker-<worker id>-<job id>-<pid>.out`` on its own node."""
    ran = set()
    for _, temp_dir in cluster.nodes:
        for log in temp_dir.glob("session_*/logs/worker-*.out"):
            if int(log.stem.rsplit("-", 1)[-1]) in pids:
                ran.add(temp_dir)
    return ran


def test_search_on_postgres_mlflow_and_two_ray_nodes_then_export_and_report(
    make_postgres, make_mlflow_server, make_ray_cluster, compose_command, compose_environment,
    native_env, tmp_path,
):
    """The compose ``search`` command, pointed at native servers, records one search (a parent
    run and one child run per configuration) in the PostgreSQL-backed MLflow server; its trials
    ran on both Ray nodes; export writes a configuration that ConfigSpace accepts for the
    searched space; the report shows the rank-correlation heatmap and every trial. Both Ray nodes
    worked at the same time (overlapping evaluations), not merely both at some point."""
    pytest.importorskip("psycopg2", reason="pip install psycopg2-binary (docker/NOTES-for-ci.md)")
    import ConfigSpace as CS
    import mlflow

    with ThreadPoolExecutor(1) as pool:  # the Ray nodes start while PostgreSQL and MLflow do
        starting_ray = pool.submit(make_ray_cluster, num_cpus=1, worker_cpus=1)
        postgres = make_postgres()
        server = make_mlflow_server(postgres.uri, tmp_path / "artifacts")
        cluster = starting_ray.result()
    mlflow_port = server.uri.rsplit(":", 1)[1]

    storage = tmp_path / "ray_results"
    search = compose_command(
        "search", RAY_HEAD_HOST="127.0.0.1", RAY_PORT=cluster.port, MLFLOW_HOST="127.0.0.1",
        MLFLOW_PORT=mlflow_port, JS_STORAGE_PATH=storage, JS_EXPERIMENT=EXPERIMENT,
        JS_MIN_BUDGET=1, JS_MAX_BUDGET=3, JS_NUM_SAMPLES=NUM_SAMPLES,
    )
    assert search[:2] == ["jointsearch", "search"] and "--trainer" not in search  # the built-in trainer
    env = native_env({**compose_environment("search", RAY_AUTH_TOKEN=cluster.env["RAY_AUTH_TOKEN"]),
                      **cluster.env})
    printed = _finish(_start(search, env=env, cwd=tmp_path), timeout=240)
    assert f"{NUM_SAMPLES} trials" in printed and "0 failed" in printed, printed

    # --- what the PostgreSQL-backed server holds ---------------------------------------------
    client = mlflow.MlflowClient(tracking_uri=server.uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("jointsearch.kind") == "search"]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.params["dataset"] == "digits" and parent.data.params["space"] == "tiny"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == NUM_SAMPLES == len(runs) - 1
    assert all(r.data.tags["jointsearch.kind"] == "trial" and r.info.run_name.startswith("trial-")
               for r in children)
    assert all(0 <= r.data.metrics["val_error"] <= 1 for r in children)
    assert {r.data.tags["final_status"] for r in children} <= {"completed", "stopped"}
    assert any(r.data.tags["final_status"] == "completed" for r in children)  # reached 3 epochs
    in_postgres = postgres.psql("SELECT count(*) FROM runs", database=postgres.database).strip()
    assert int(in_postgres) == len(runs)

    # --- both Ray nodes did work, together ---------------------------------------------------
    pids = _trial_pids(storage)
    assert pids, f"no result.json under {storage}"
    assert len(_nodes_that_ran(cluster, pids)) == 2, (pids, [str(d) for _, d in cluster.nodes])
    # ... at the same time: two evaluations overlapped, one on each node
    assert _parallel_on_two_nodes(storage), "no two evaluations ran at the same time on different nodes"

    # --- export and report read it back from the server (at the same time) --------------------
    best_path, report_path = tmp_path / "best.json", tmp_path / "report.html"
    exporting = _start(["jointsearch", "export", "--mlflow-uri", server.uri, "--experiment", EXPERIMENT,
                        "--out", str(best_path)], env=native_env(), cwd=tmp_path)
    reporting = _start(["jointsearch", "report", "--mlflow-uri", server.uri, "--experiment", EXPERIMENT,
                        "--out", str(report_path)], env=native_env(), cwd=tmp_path)
    _finish(exporting, timeout=120)
    reported = _finish(reporting, timeout=120)

    best = json.loads(best_path.read_text())
    assert best["search_run_id"] == parent.info.run_id
    assert best["run_id"] in {r.info.run_id for r in children}
    # The best is the lowest val_error at the highest budget reached (3 epochs).
    assert best["budget"] == 3 == max(r.data.metrics["budget"] for r in children)
    assert best["val_error"] == pytest.approx(min(r.data.metrics["val_error"] for r in children
                                                  if r.data.metrics["budget"] == 3))
    space = CS.ConfigurationSpace.from_serialized_dict(best["space"])
    configuration = CS.Configuration(space, values=best["config"])  # raises if invalid
    space.check_configuration(configuration)
    assert dict(configuration) == best["config"]

    assert f"of {NUM_SAMPLES} trials from search {parent.info.run_id}" in reported
    html = report_path.read_text()
    assert re.search(r'<img id="rank-correlation-heatmap"[^>]* src="data:image/png;base64,[A-Za-z0-9+/]{1000}', html)
