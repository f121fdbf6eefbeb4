"""Issue 3 in MLflow: the rank correlation across budgets, importance and plots, logged while the
search runs, to a real `mlflow server` started by the test; and `jointsearch report` reading it back."""

import json
import math
import os
import subprocess
import sys

import mlflow
import pytest

from jointsearch.dashboards.records import EvaluationRecord
from jointsearch.search import SearchSettings, run_search
from jointsearch.search.live import LiveDashboards


def _records(n=12, reverse_top=False):
    out = []
    for i in range(n):
        out.append(EvaluationRecord(f"t{i}", {"x": i}, 1.0, 0.1 * i, finished_at=i))
        out.append(EvaluationRecord(f"t{i}", {"x": i}, 3.0, 0.1 * (n - i) if reverse_top else 0.05 * i,
                                    finished_at=100 + i))
    return out


def test_live_dashboards_log_correlations_with_step_equal_to_evaluations():
    metrics, artifacts = [], {}
    live = LiveDashboards(lambda m, step: metrics.append((step, m)), artifacts.__setitem__, refresh_every=8)
    for record in _records(reverse_top=True):
        live.add(record)
    assert [step for step, _ in metrics] == [8, 16, 24]
    last = metrics[-1][1]
    assert last["rank_corr/spearman/1-3"] == pytest.approx(-1.0)
    assert last["rank_corr/n_pairs/1-3"] == 12
    assert "rank_corr/spearman/1-3" not in metrics[0][1]  # 8 evaluations at budget 1 only: no pair yet
    assert artifacts["dashboards/rank_correlation_heatmap.png"][:4] == b"\x89PNG"
    assert json.loads(artifacts["dashboards/rank_correlation.json"])["budgets"] == [1.0, 3.0]
    assert "report.html" not in artifacts  # the expensive part waits for the end
    live.refresh(final=True)
    assert 'id="rank-correlation-heatmap"' in artifacts["report.html"]
    assert {"dashboards/importance.png", "dashboards/incumbent.png", "dashboards/budget_scatter.png"} <= set(artifacts)


def test_a_broken_plot_never_stops_the_search():
    def failing(name, content):
        raise OSError("disk full")

    live = LiveDashboards(lambda m, step: None, failing, refresh_every=1)
    live.add(_records(1)[0])  # must not raise
    assert live.refreshes == 0


@pytest.mark.slow
def test_search_logs_evolving_rank_correlation_and_report_reads_it_back(ray_runtime, make_mlflow_server, tmp_path, fresh_store):
    server = make_mlflow_server(fresh_store(tmp_path / 'server.db'), tmp_path / "artifacts")
    settings = SearchSettings(space="tiny", min_budget=1, max_budget=9, eta=3, num_samples=27, seed=3,
                              mlflow_uri=server.uri, experiment="live", storage_path=str(tmp_path / "ray"),
                              trainer="jointsearch.search.testing:fake_trainer", dashboard_every=6)
    summary = run_search(settings)
    client = mlflow.MlflowClient(server.uri)
    history = client.get_metric_history(summary.search_run_id, "rank_corr/spearman/1-3")
    steps = [m.step for m in history]
    assert len(steps) >= 2 and steps == sorted(steps)  # it evolved as rungs completed
    assert all(-1 <= m.value <= 1 and not math.isnan(m.value) for m in history)
    artifacts = {a.path for a in client.list_artifacts(summary.search_run_id, "dashboards")}
    assert {"dashboards/rank_correlation.json", "dashboards/rank_correlation.csv",
            "dashboards/rank_correlation_heatmap.png", "dashboards/importance.png",
            "dashboards/marginals.png", "dashboards/incumbent.png"} <= artifacts
    local = client.download_artifacts(summary.search_run_id, "dashboards/rank_correlation.json", str(tmp_path))
    matrix = json.loads(open(local).read())
    pair = next(p for p in matrix["pairs"] if p["budget_low"] == 1.0 and p["budget_high"] == 3.0)
    assert pair["n_pairs"] >= 5 and pair["spearman"] == pytest.approx(history[-1].value)

    child = client.search_runs([client.get_experiment_by_name("live").experiment_id],
                               filter_string="tags.promoted = 'true'")[0]
    assert {"jointsearch.config_id", "bracket", "rung", "final_status"} <= set(child.data.tags)

    out = tmp_path / "report.html"
    proc = subprocess.run([sys.executable, "-m", "jointsearch.search.cli", "report", "--mlflow-uri", server.uri,
                           "--experiment", "live", "--out", str(out)], capture_output=True, text=True, timeout=180,
                          env={**os.environ})
    assert proc.returncode == 0, proc.stderr
    html = out.read_text()
    assert 'id="rank-correlation-heatmap"' in html and "data:image/png;base64," in html
    # The report names the incumbent the search found, with its error as the report formats it.
    assert summary.best.trial_id in html
    assert f"{summary.best.val_error:.4g}" in html


def test_the_report_shows_the_confidence_intervals_of_the_logged_json():
    """One computation at the end: report.html renders the RankCorrelationInfo that was logged as
    rank_correlation.json (they used to differ: 200 resamples live, 1000 in the report)."""
    import random

    rng = random.Random(1)
    records = []
    for i in range(15):
        low, high = rng.random(), rng.random()
        records.append(EvaluationRecord(f"t{i}", {"x": i}, 1.0, low, finished_at=i))
        records.append(EvaluationRecord(f"t{i}", {"x": i}, 3.0, 0.5 * low + 0.5 * high, finished_at=100 + i))
    artifacts = {}
    live = LiveDashboards(lambda m, step: None, artifacts.__setitem__, refresh_every=1, n_bootstrap=50)
    for record in records:
        live.add(record)
    during = json.loads(artifacts["dashboards/rank_correlation.json"])["pairs"][0]
    live.finish()
    final = json.loads(artifacts["dashboards/rank_correlation.json"])["pairs"][0]
    assert (during["ci_low"], during["ci_high"]) != (final["ci_low"], final["ci_high"])  # 50 vs 1000 resamples
    shown = f"[{final['ci_low']:.3g}, {final['ci_high']:.3g}]"
    assert shown in artifacts["report.html"], shown


def test_the_final_refresh_draws_each_figure_once_and_the_report_embeds_the_logged_pngs(monkeypatch):
    """The report and the PNG artifacts share one figures.Drawn: every PNG the page embeds is the
    artifact's bytes, and matplotlib renders each figure once (it rendered the report's copies again)."""
    import base64
    import re

    from jointsearch.dashboards import figures

    rendered = []
    real = figures.figure_png
    monkeypatch.setattr(figures, "figure_png", lambda fig, **kw: rendered.append(fig) or real(fig, **kw))
    artifacts = {}
    live = LiveDashboards(lambda m, step: None, artifacts.__setitem__, refresh_every=100)
    for record in _records():
        live.add(record)
    live.finish()
    pngs = {name: data for name, data in artifacts.items() if name.endswith(".png")}
    page = artifacts["report.html"]
    embedded = [base64.b64decode(b) for b in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]
    assert len(embedded) >= 5
    assert all(any(data == png for png in pngs.values()) for data in embedded)
    assert len(rendered) == len(pngs)
