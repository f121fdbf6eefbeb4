"""Interruptions are what they are: Ctrl-C (SIGINT to the process group) and SIGTERM end a real
CLI search as interrupted (exit 130 / 143, parent run KILLED and tagged, no trial run left
RUNNING or marked "stopped"), and a second Ctrl-C exits at once. Such a search continues with
`--resume` and runs no evaluation twice. A driver killed outright (SIGKILL) and resumed at once
on the same host is test_resume.py."""

import collections
import os
import signal
import subprocess
import sys
import time

import mlflow
import pytest

from jointsearch.search import read_search
from jointsearch.search.testing import records_so_far
from jointsearch.search.tracking import config_id

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-m", "jointsearch.search.cli"]
NUM_SAMPLES = 10


def _start(tmp_path, uri, experiment, extra_env=None, scheduler="bohb"):
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "JOINTSEARCH_FAKE_SLEEP_S": "0.5", **(extra_env or {})}
    env.pop("RAY_ADDRESS", None)
    args = ["search", "--scheduler", scheduler, "--trainer", "jointsearch.search.testing:fake_trainer",
            "--num-samples", str(NUM_SAMPLES), "--min-budget", "1", "--max-budget", "9", "--eta", "3",
            "--seed", "3", "--experiment", experiment, "--mlflow-uri", uri,
            "--storage-path", str(tmp_path / "ray"), "--max-concurrent", "2"]
    driver = subprocess.Popen([*CLI, *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 240
    while not (tmp_path / "ray").exists() or len(records_so_far(uri, experiment)) < 3:
        if driver.poll() is not None:
            pytest.fail(f"the search ended early: {driver.stderr.read()[-3000:]}")
        assert time.time() < deadline, "the search never got going"
        time.sleep(0.3)
    return driver, uri, env


def _resume_and_check(tmp_path, uri, experiment, env, before):
    kept = {(r.trial_id, r.budget) for r in before.records}
    started = time.time()
    resumed = subprocess.run([*CLI, "search", "--resume", "--experiment", experiment, "--mlflow-uri", uri],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed search {before.search_run_id}" in resumed.stdout
    after = read_search(uri, experiment)
    assert after.search_run_id == before.search_run_id and after.status == "FINISHED"
    assert after.parent_tags.get("jointsearch.interrupted", "") == ""
    assert kept <= {(r.trial_id, r.budget) for r in after.records}
    per_config_budget = collections.Counter((config_id(r.config), r.budget) for r in after.records)
    repeated = {k: n for k, n in per_config_budget.items() if n > 1}
    assert not repeated, repeated
    statuses = collections.Counter(mlflow.MlflowClient(uri).get_run(run_id).info.status
                                   for run_id in after.trial_runs.values())
    assert statuses["RUNNING"] == 0, statuses
    return time.time() - started


def _assert_interrupted(uri, experiment, signame):
    before = read_search(uri, experiment)
    assert before.status == "KILLED", before.status
    assert before.parent_tags["jointsearch.interrupted"] == signame
    client = mlflow.MlflowClient(uri)
    finals = collections.Counter(tags.get("final_status") for tags in before.trial_tags.values())
    assert finals["stopped"] == 0 and finals[None] == 0, finals  # every trial closed, none as "stopped"
    assert finals["interrupted"] >= 1, finals  # the ones running when the signal came
    for trial_id, tags in before.trial_tags.items():
        status = client.get_run(before.trial_runs[trial_id]).info.status
        assert status != "RUNNING"
        if tags.get("final_status") == "interrupted":
            assert status == "KILLED"
    assert 0 < len(before.records)
    return before


@pytest.mark.parametrize("signum, code, to_group, scheduler", [
    (signal.SIGINT, 130, True, "bohb"), (signal.SIGTERM, 143, False, "bohb"), (signal.SIGTERM, 143, False, "hpbandster"),
], ids=["ctrl-c", "sigterm", "sigterm-hpbandster"])
def test_a_signal_ends_the_search_as_interrupted_and_resume_continues_it(tmp_path, sqlite_uri, signum, code, to_group,
                                                                        scheduler):
    """Ray Tune is stopped through a Stopper; the hpbandster preset (no Tune) by an exception."""
    experiment = f"sig-{signum}"
    driver, uri, env = _start(tmp_path, sqlite_uri, experiment, scheduler=scheduler)
    try:
        if to_group:  # what a terminal's Ctrl-C does: the driver and every process of its group
            os.killpg(driver.pid, signum)
        else:  # `kill PID`, a batch system ending a job
            os.kill(driver.pid, signum)
        _, err = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    assert driver.returncode == code, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert "--resume" in err.strip().splitlines()[-1]
    before = _assert_interrupted(uri, experiment, signal.Signals(signum).name)
    if to_group or scheduler != "bohb":  # one resume per backend after an interruption is enough
        _resume_and_check(tmp_path, uri, experiment, env, before)


def test_a_second_ctrl_c_exits_at_once_and_the_search_is_still_resumable(tmp_path, sqlite_uri):
    experiment = "sig-twice"
    driver, uri, env = _start(tmp_path, sqlite_uri, experiment)
    try:
        os.killpg(driver.pid, signal.SIGINT)
        # Python runs a handler once for signals that arrive while the main thread is inside C
        # code, so two signals 50 ms apart can count as one: send the second only once the
        # first has been seen, as a user who presses Ctrl-C again during the clean-up does.
        seen = []
        for line in driver.stderr:
            seen.append(line)
            if "SIGINT received" in line:
                break
        os.kill(driver.pid, signal.SIGINT)
        started = time.time()
        _, rest = driver.communicate(timeout=60)
        took = time.time() - started
        err = "".join(seen) + rest
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    assert driver.returncode == 130, err[-3000:]
    assert "again; exiting now" in err and took < 10, (took, err[-2000:])
    # The forced exit did no clean-up: the parent run may still say RUNNING, but its driver is
    # gone on this host, so --resume goes on at once.
    before = read_search(uri, experiment)
    assert before.status in ("RUNNING", "KILLED")
    _resume_and_check(tmp_path, uri, experiment, env, before)
