"""A search killed hard in the middle (SIGKILL) continues with `jointsearch search --resume` at
once: no finished evaluation runs again, no MLflow run is duplicated or left RUNNING, and the
searcher starts from what it had learned.

End to end for one preset per way of resuming: `bohb` (the default; Tune, its own model),
`tpe` (Optuna's sampler, a concurrency limit), `asha` (the same command again instead of
`--resume`) and `hpbandster` (its own backend, no Tune). The other Ray presets share Tune's
resume path with these; that each of them learns an interrupted search's records is
test_presets.py::test_every_ray_preset_builds_warm_starts_and_proposes."""

import collections
import os
import signal
import socket
import subprocess
import sys
import time

import mlflow
import pytest

from jointsearch.search import read_search
from jointsearch.search.testing import records_so_far
from jointsearch.search.tracking import config_id

CLI = [sys.executable, "-m", "jointsearch.search.cli"]
NUM_SAMPLES = 12


@pytest.mark.slow
@pytest.mark.parametrize("scheduler", ["bohb", "tpe", "asha", "hpbandster"])
def test_killed_search_resumes_without_repeating_work(scheduler, tmp_path, sqlite_uri):
    uri = sqlite_uri
    experiment = f"resume-{scheduler}"
    # The heartbeat interval stays at its default (30 s): resuming must not wait for it to go
    # stale, since the driver's process on this host is gone.
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "JOINTSEARCH_FAKE_SLEEP_S": "0.4"}
    env.pop("JOINTSEARCH_HEARTBEAT_S", None)
    args = ["search", "--scheduler", scheduler, "--trainer", "jointsearch.search.testing:fake_trainer",
            "--num-samples", str(NUM_SAMPLES), "--min-budget", "1", "--max-budget", "9", "--eta", "3",
            "--seed", "5", "--experiment", experiment, "--mlflow-uri", uri,
            "--storage-path", str(tmp_path / "ray"), "--max-concurrent", "2"]
    driver = subprocess.Popen([*CLI, *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.time() + 180
        # Reading the SQLite store before the driver has created its tables would race with the
        # driver's own migration; Tune's storage folder appears only after the tracker started.
        while not (tmp_path / "ray").exists() or len(records_so_far(uri, experiment)) < 5:
            assert driver.poll() is None, driver.stdout.read()[-3000:]
            assert time.time() < deadline, "the search never got going"
            time.sleep(0.5)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray runtime it started, no clean-up
        driver.wait(timeout=60)

    before = read_search(uri, experiment)
    assert before.status == "RUNNING" and 0 < len(before.trial_runs) < NUM_SAMPLES + 4
    assert before.parent_tags["jointsearch.driver_host"] == socket.gethostname()
    assert before.parent_tags["jointsearch.driver_pid"] == str(driver.pid)
    kept = {(r.trial_id, r.budget) for r in before.records}

    # Two ways back: `--resume` (the recorded settings), or, for one preset, the same command again.
    again = [*CLI, *args] if scheduler == "asha" else [*CLI, "search", "--resume", "--experiment", experiment,
                                                        "--mlflow-uri", uri]
    resumed = subprocess.run(again, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed search {before.search_run_id}" in resumed.stdout

    after = read_search(uri, experiment)
    assert after.search_run_id == before.search_run_id and after.status == "FINISHED"
    assert kept <= {(r.trial_id, r.budget) for r in after.records}  # nothing recorded was lost
    per_config_budget = collections.Counter((config_id(r.config), r.budget) for r in after.records)
    duplicates = sum(n - 1 for n in per_config_budget.values() if n > 1)
    repeated = [(r.trial_id, r.budget, r.trial_id in before.trial_runs) for r in after.records
                if per_config_budget[(config_id(r.config), r.budget)] > 1]
    assert duplicates == 0, repeated
    if scheduler == "hpbandster":
        assert len(after.trial_runs) >= NUM_SAMPLES
    else:
        assert len(after.trial_runs) == max(NUM_SAMPLES, len(before.trial_runs))
    client = mlflow.MlflowClient(uri)
    statuses = collections.Counter(client.get_run(run_id).info.status for run_id in after.trial_runs.values())
    assert statuses["RUNNING"] == 0, statuses
    interrupted = [t for t, tags in before.trial_tags.items() if not tags.get("final_status")]
    for trial_id in interrupted:
        assert after.trial_tags[trial_id]["final_status"] == "interrupted"
    observations = client.get_metric_history(after.search_run_id, "resumed_observations")
    assert [m.value for m in observations] == [len(before.records)]
    print(f"{scheduler}: evaluations before kill {len(before.records)}, after resume {len(after.records)}, "
          f"duplicates {duplicates}, interrupted trials {len(interrupted)}")


# --- whether a search's driver is alive (search/resume.py), without running a search ----------


def _results(status="RUNNING", heartbeat=None, host=None, pid=None, started=None):
    from jointsearch.search.results import SearchResults

    tags = {"jointsearch.heartbeat": heartbeat, "jointsearch.driver_host": host, "jointsearch.driver_pid": pid,
            "jointsearch.driver_started": started}
    return SearchResults(experiment="e", search_run_id="r1", status=status, params={}, space_json=None,
                         budget_unit="epochs", records=[], parent_tags={k: v for k, v in tags.items() if v is not None})


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_driver_on_this_host_whose_process_is_gone_is_dead_whatever_its_heartbeat():
    from socket import gethostname

    from jointsearch.search.resume import driver_state

    fresh = f"{time.time():.0f}"
    state = driver_state(_results(heartbeat=fresh, host=gethostname(),
                                  pid=str(_dead_pid())))
    assert not state.alive and "gone" in state.reason


def test_a_live_driver_on_this_host_is_alive_even_with_a_stale_heartbeat():
    from socket import gethostname

    from jointsearch.search.resume import _process_start, driver_state

    state = driver_state(_results(heartbeat="1", host=gethostname(),
                                  pid=str(os.getpid()),
                                  started=_process_start(os.getpid())))
    assert state.alive


def test_a_reused_pid_is_not_mistaken_for_the_driver():
    from socket import gethostname

    from jointsearch.search.resume import driver_state

    state = driver_state(_results(heartbeat=f"{time.time():.0f}", host=gethostname(),
                                  pid=str(os.getpid()), started="1"))
    assert not state.alive


def test_another_hosts_driver_is_judged_by_its_heartbeat_and_the_message_says_when_and_how(monkeypatch):
    from jointsearch.search.resume import driver_state

    monkeypatch.setenv("JOINTSEARCH_HEARTBEAT_S", "30")
    now = 1_000_000.0
    fresh = driver_state(_results(heartbeat=f"{now - 20:.0f}", host="elsewhere",
                                  pid="12"), now=now)
    assert fresh.alive and "--force" in fresh.reason and "in 70 s" in fresh.reason and "elsewhere" in fresh.reason
    stale = driver_state(_results(heartbeat=f"{now - 91:.0f}", host="elsewhere",
                                  pid="12"), now=now)
    assert not stale.alive
    assert not driver_state(_results(status="KILLED", heartbeat=f"{now:.0f}"), now=now).alive


def test_force_takes_over_a_search_on_another_host_but_never_a_live_one_on_this_host(monkeypatch):
    from socket import gethostname

    from jointsearch.search import SearchSettings, UsageError
    from jointsearch.search import resume as resume_module
    from jointsearch.search.resume import _process_start, choose_search_to_continue

    settings = SearchSettings(experiment="e")
    elsewhere = _results(heartbeat=f"{time.time():.0f}", host="elsewhere", pid="12")
    monkeypatch.setattr(resume_module, "unfinished_search", lambda s: elsewhere)
    with pytest.raises(UsageError, match="--force"):
        choose_search_to_continue(settings, resume=True)
    assert choose_search_to_continue(settings, resume=True, force=True) is elsewhere
    assert choose_search_to_continue(settings, resume=False) is None

    here = _results(heartbeat="1", host=gethostname(), pid=str(os.getpid()), started=_process_start(os.getpid()))
    monkeypatch.setattr(resume_module, "unfinished_search", lambda s: here)
    for force in (False, True):
        with pytest.raises(UsageError, match="still running"):
            choose_search_to_continue(settings, resume=True, force=force)


# --- what a dead driver left open (search/resume.py close_left_open), on a real MLflow store ----


def test_a_run_whose_final_status_was_written_but_not_its_close_is_closed_on_resume(sqlite_uri):
    """SIGKILL between a trial's final-status tags and its run's close left a run RUNNING for good
    (CI, test_killed_search_resumes_without_repeating_work[asha]: FINISHED 10, KILLED 1,
    RUNNING 1). Resume closes it as its recorded status says, and a trial with no final status
    as interrupted."""
    from jointsearch import spaces
    from jointsearch.search.resume import close_left_open
    from jointsearch.search.tracking import SearchTracker

    space = spaces.get("tiny")
    dead = SearchTracker(sqlite_uri, "left-open", step_scale=1)
    dead.start_search({"space": "tiny"}, run_name="dead", budget_unit="epochs",
                      artifacts={"space.json": spaces.to_json(space)})
    for k, trial_id in enumerate(["closed", "completed-not-closed", "failed-not-closed", "running"]):
        space.seed(k)
        dead.trial_started(trial_id, spaces.config_dict(space.sample_configuration()), {})
        dead.evaluation(trial_id, 1.0, {"val_error": 0.5}, rung=0)
    dead.trial_ended("closed", "completed")
    dead.set_trial_tags("completed-not-closed", {"state": "completed", "final_status": "completed"})
    dead.set_trial_tags("failed-not-closed", {"state": "failed", "final_status": "failed"})
    dead.flush()  # ... and the driver dies here: no set_terminated for the two

    previous = read_search(sqlite_uri, "left-open")
    assert previous.trial_status == {"closed": "FINISHED", "completed-not-closed": "RUNNING",
                                     "failed-not-closed": "RUNNING", "running": "RUNNING"}
    tracker = SearchTracker(sqlite_uri, "left-open", step_scale=1)
    tracker.reattach(previous.search_run_id, previous.trial_runs,
                     final_status={t: tags.get("final_status", "") for t, tags in previous.trial_tags.items()})
    close_left_open(tracker, previous)
    tracker.flush()

    after = read_search(sqlite_uri, "left-open")
    assert after.trial_status == {"closed": "FINISHED", "completed-not-closed": "FINISHED",
                                  "failed-not-closed": "FAILED", "running": "KILLED"}
    finals = {t: tags.get("final_status") for t, tags in after.trial_tags.items()}
    assert finals == {"closed": "completed", "completed-not-closed": "completed",
                      "failed-not-closed": "failed", "running": "interrupted"}
