"""Issue 3 in a real browser: headless Chromium opens the MLflow UI of a real ``mlflow server``
and the HTML report of the search it holds, and shows the rank-correlation heatmap and the
trial runs.

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
import urllib.parse
from pathlib import Path

import mlflow
import pytest

from jointsearch.search import SearchSettings, run_search

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


def _render(chromium: str, url: str, screenshot: Path, *, height: int = 1000) -> str:
    """Load ``url`` in a fresh profile, let it run for 15 s of virtual time (the clock advances
    only while no request is pending), save a screenshot and return the rendered DOM."""
    profile = tempfile.mkdtemp(prefix="jschromium")
    command = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size=1400,{height}",
               "--virtual-time-budget=15000", f"--screenshot={screenshot}", "--dump-dom", url]
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


def test_mlflow_ui_and_report_show_the_heatmap_and_the_trials(
    chromium, ray_runtime, make_mlflow_server, native_env, tmp_path, request
):
    """After a search against a real MLflow server: the UI's runs list shows the search run and
    every ``trial-...`` child run, the UI's artifact view of the search run displays
    dashboards/rank_correlation_heatmap.png, and the report written by ``jointsearch report``
    renders the heatmap (inline PNG) and counts every trial and evaluation."""
    server = make_mlflow_server(f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "artifacts")
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

    # The runs list, flat: the UI nests child runs under their parent only when sorted by start
    # time, so sort by val_error (best trial first, the search run last).
    order = urllib.parse.quote("metrics.`val_error`")
    runs_url = f"{server.uri}/#/experiments/{experiment_id}/runs?orderByKey={order}&orderByAsc=true"
    runs_page = _text(_render(chromium, runs_url, shots / "mlflow-runs.png", height=1400))
    assert set(re.findall(r"\btrial-[0-9a-f]{8}\b", runs_page)) == trial_names
    assert parent.info.run_name in runs_page
    assert "28 matching runs" in runs_page

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
    assert [p.name for p in screenshots] == ["mlflow-heatmap.png", "mlflow-runs.png", "report.png"]
    _keep(screenshots)
