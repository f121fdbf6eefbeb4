"""The MLflow server goes away in the middle of a search: the search goes on, tracking is
deferred and delivered when the server is back, and nothing is lost."""

import logging
import threading
import time

import mlflow
import pytest

from jointsearch.search import SearchSettings, read_search, run_search

pytestmark = pytest.mark.slow


def test_search_survives_an_mlflow_outage_and_catches_up(ray_runtime, make_mlflow_server, tmp_path, caplog, fresh_store):
    server = make_mlflow_server(fresh_store(tmp_path / 'server.db'), tmp_path / "artifacts")
    settings = SearchSettings(space="tiny", scheduler="random", min_budget=1, max_budget=3, eta=3, num_samples=8,
                              seed=4, mlflow_uri=server.uri, experiment="outage", storage_path=str(tmp_path / "ray"),
                              trainer="jointsearch.search.testing:fake_trainer", trainer_kwargs={"sleep_s": 1.0},
                              max_concurrent=2)
    client = mlflow.MlflowClient(server.uri)
    events = {}

    def outage():
        """Wait for the first child runs, stop the server for a while, start it again."""
        deadline = time.time() + 120
        while time.time() < deadline:
            exp = client.get_experiment_by_name("outage")
            if exp and len(client.search_runs([exp.experiment_id], "tags.`jointsearch.kind` = 'trial'")) >= 2:
                break
            time.sleep(0.3)
        server.stop()
        events["stopped"] = time.time()
        time.sleep(8)
        server.start()
        events["started"] = time.time()

    thread = threading.Thread(target=outage, daemon=True)
    thread.start()
    with caplog.at_level(logging.WARNING, logger="jointsearch.search"):
        summary = run_search(settings)
    thread.join(timeout=60)
    assert "stopped" in events and "started" in events
    assert "tracking is deferred" in caplog.text and "deferred tracking operations delivered" in caplog.text

    results = read_search(server.uri, "outage", summary.search_run_id)
    assert len(results.trial_runs) == 8  # no trial lost
    by_trial = {}
    for record in results.records:
        by_trial.setdefault(record.trial_id, []).append(record.budget)
    assert all(sorted(b) == [1.0, 3.0] for b in by_trial.values()) and len(by_trial) == 8  # no evaluation lost
    assert client.get_run(summary.search_run_id).info.status == "FINISHED"
    for run_id in results.trial_runs.values():
        assert client.get_run(run_id).info.status == "FINISHED"
