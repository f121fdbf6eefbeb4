"""Issues 3 and 15 in a real browser: headless Chromium opens the MLflow UI of a real ``mlflow
server`` and the HTML report of the search it holds, and shows the rank-correlation heatmap and
the trial runs, in the UI's model-training view with jointsearch's saved views and charts.

Chromium is driven by its command line alone (``--dump-dom`` after a virtual-time budget, so the
React app of the MLflow UI has fetched and rendered; ``--screenshot`` in the same call). The
screenshots are kept as test artifacts in ``tmp_path`` and, when ``JS_TEST_ARTIFACTS`` names a
directory (relative paths from the repository root), copied there too. Without Chromium the
test is skipped with the reason (`.ci/run` installs Debian's ``chromium`` where missing).
"""

from __future__ import annotations

import html
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import mlflow
import pytest

from jointsearch.search import SearchSettings, run_search
from jointsearch.search.mlflow_view import (EXPERIMENT_KIND_TAG, TRAINING_KIND, TRIALS_VIEW_ID,
                                            TRIALS_VIEW_NAME, VIEW_NAME, runs_url)

pytestmark = [pytest.mark.slow, pytest.mark.browser]

REPO_ROOT = Path(__file__).resolve().parents[2]
# Headless, as root (no sandbox), and quiet on a closed network: without the background
# networking switches Chromium's own connections are refused and slow every page down.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars")
MIN_SCREENSHOT_BYTES = 10_000


@pytest.fixture(scope="session")  # session: decided before the session-scoped ray_runtime starts
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("chromium not installed: apt-get install chromium (.ci/run does where it can)")
    return path


def _render(chromium: str, url: str, screenshot: Path, *, height: int = 1000, width: int = 1400,
            virtual_s: int = 15) -> str:
    """Load ``url`` in a fresh profile, let it run for ``virtual_s`` of virtual time (the clock
    advances only while no request is pending), save a screenshot and return the rendered DOM."""
    profile = tempfile.mkdtemp(prefix="jschromium")
    command = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
               f"--virtual-time-budget={virtual_s * 1000}", f"--screenshot={screenshot}", "--dump-dom", url]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        dom, stderr = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # its renderer and GPU processes too
        dom, stderr = proc.communicate()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert proc.returncode == 0, f"chromium failed ({proc.returncode}) on {url}\n{stderr[-3000:]}"
    assert screenshot.is_file() and screenshot.stat().st_size > MIN_SCREENSHOT_BYTES, (
        f"no or empty screenshot of {url}\n{stderr[-3000:]}")
    return dom


def _text(dom: str) -> str:
    """What a reader sees: the DOM without scripts, styles and tags, whitespace collapsed."""
    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", dom))).strip()


def _keep(screenshots: list[Path]) -> None:
    target = os.environ.get("JS_TEST_ARTIFACTS")
    if target:
        folder = REPO_ROOT / target  # an absolute JS_TEST_ARTIFACTS stays as it is
        folder.mkdir(parents=True, exist_ok=True)
        for path in screenshots:
            shutil.copy2(path, folder / path.name)


def test_mlflow_ui_training_view_and_report_show_the_trials_and_the_heatmap(
    chromium, ray_runtime, make_mlflow_server, native_env, tmp_path, request, fresh_store
):
    """After a search against a real MLflow server: the UI opens the experiment in its
    model-training view, with the trial runs nested under the search run and ``val_error``, the
    budget, the rung and the main hyperparameters as columns, a saved view of every trial and
    its charts (parallel coordinates, val_error vs budget); the UI's artifact view of the search run displays
    dashboards/rank_correlation_heatmap.png, and the report written by ``jointsearch report``
    renders the heatmap (inline PNG) and counts every trial and evaluation."""
    server = make_mlflow_server(fresh_store(tmp_path / 'server.db'), tmp_path / "artifacts")
    summary = run_search(SearchSettings(
        space="tiny", trainer="jointsearch.search.testing:fake_trainer", min_budget=1, max_budget=9, eta=3,
        num_samples=27, seed=3, mlflow_uri=server.uri, experiment="browser",
        storage_path=str(tmp_path / "ray"), dashboard_every=6))
    client = mlflow.MlflowClient(tracking_uri=server.uri)
    experiment_id = client.get_experiment_by_name("browser").experiment_id
    parent = client.get_run(summary.search_run_id)
    trial_names = {r.info.run_name for r in client.search_runs([experiment_id], max_results=200)
                   if r.info.run_id != parent.info.run_id}
    assert len(trial_names) == summary.n_trials == 27
    shots = tmp_path / "screenshots"
    shots.mkdir()
    # The HTML report is read back from the server by the CLI while the browser looks at the UI.
    report = tmp_path / "report.html"
    writing = subprocess.Popen(["jointsearch", "report", "--mlflow-uri", server.uri, "--experiment", "browser",
                                "--out", str(report)], env=native_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    request.addfinalizer(writing.kill)  # a no-op once it has exited

    # The runs page as jointsearch links it: the model-training view (workflowType=
    # machine_learning; a fresh browser would otherwise open the GenAI view) with the saved view
    # that the search tagged its experiment with (mlflow_view.py). Runs by start time: the
    # search run, its 27 trials nested under it (collapsed), its row showing the incumbent.
    experiment = client.get_experiment(experiment_id)
    assert experiment.tags[EXPERIMENT_KIND_TAG] == TRAINING_KIND
    children = [r for r in client.search_runs([experiment_id], max_results=200) if r.info.run_id != parent.info.run_id]
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}
    columns = ["val_error", "budget", "rung", "learning_rate", "batch_size", "momentum"]
    runs_page = _text(_render(chromium, runs_url(server.uri, experiment_id), shots / "mlflow-runs.png",
                              width=1900, height=900))
    assert "Model training" in runs_page and VIEW_NAME in runs_page
    assert all(f" {c} " in runs_page.split("Run Name")[1] for c in columns), runs_page[:2000]
    assert parent.info.run_name in runs_page and "28 matching runs" in runs_page
    assert not re.search(r"\btrial-[0-9a-f]{8}\b", runs_page)  # nested under the search run
    assert f"{summary.best.val_error!r}"[:6] in runs_page  # the search run's row: its incumbent

    # The saved view of the trials alone, best first, and its charts: parallel coordinates of
    # the hyperparameters against val_error, val_error against budget.
    trials_url = runs_url(server.uri, experiment_id, view_id=TRIALS_VIEW_ID)
    trials_page = _text(_render(chromium, trials_url, shots / "mlflow-trials.png", width=1900, height=1200))
    assert TRIALS_VIEW_NAME in trials_page and "27 matching runs" in trials_page
    assert set(re.findall(r"\btrial-[0-9a-f]{8}\b", trials_page)) == trial_names
    assert all(f" {c} " in trials_page.split("Run Name")[1] for c in columns)
    charts_page = _text(_render(chromium, trials_url + "&compareRunsMode=CHART", shots / "mlflow-charts.png",
                                width=1900, height=900, virtual_s=60))
    charts = charts_page.split("jointsearch (2)")[1]
    assert "Parallel Coordinates" in charts and "budget vs. val_error" in charts, charts_page[-2000:]
    assert "learning_rate" in charts.split("budget vs. val_error")[0]
    assert "No chart data available" not in charts

    # The search run's artifact view with the heatmap selected: the UI fetched the PNG through
    # the server (--serve-artifacts) and shows it as an image.
    heatmap = "dashboards/rank_correlation_heatmap.png"
    artifact_url = f"{server.uri}/#/experiments/{experiment_id}/runs/{parent.info.run_id}/artifacts/{heatmap}"
    artifact_dom = _render(chromium, artifact_url, shots / "mlflow-heatmap.png")
    assert re.search(rf'<img alt="{re.escape(heatmap)}" src="blob:{re.escape(server.uri)}/', artifact_dom)
    artifact_page = _text(artifact_dom)
    assert parent.info.run_name in artifact_page
    assert f"mlflow-artifacts:/{experiment_id}/{parent.info.run_id}/artifacts/{heatmap}" in artifact_page

    # The HTML report, opened from disk.
    printed, errors = writing.communicate(timeout=120)
    assert writing.returncode == 0, errors[-3000:]
    assert f"{summary.n_evaluations} evaluations of {summary.n_trials} trials" in printed
    report_dom = _render(chromium, report.as_uri(), shots / "report.png", height=2400)
    assert re.search(r'<img id="rank-correlation-heatmap" [^>]*src="data:image/png;base64,[A-Za-z0-9+/]{1000}',
                     report_dom)
    report_page = _text(report_dom)
    assert f"evaluations recorded {summary.n_evaluations}" in report_page
    # Budget spent: every trial starts at the smallest rung, so its row counts the trials.
    assert f"1 {summary.n_trials} {summary.n_trials} " in report_page.split("rung (budget)")[1]
    assert f"trial {summary.best.trial_id}" in report_page

    screenshots = sorted(shots.glob("*.png"))
    assert [p.name for p in screenshots] == ["mlflow-charts.png", "mlflow-heatmap.png", "mlflow-runs.png",
                                             "mlflow-trials.png", "report.png"]
    _keep(screenshots)
