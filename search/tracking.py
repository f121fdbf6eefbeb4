"""MLflow tracking of a search, done from the driver, never from inside Ray workers.

Why from the driver: Ray's own MLflow integrations ignore ``tracking_uri``
(ray-project/ray#36257) or record nothing in some setups (#45456), and a worker that logs
needs network access and credentials to the tracking server. The driver sees every result
anyway (through a Tune callback), so it writes one parent run per search and one child run per
trial with the ``MlflowClient`` and explicit run ids.

Layout written here, read back by ``results.py``:

- parent run (tag ``jointsearch.kind=search``): every setting as a param; ``space.json`` and
  ``settings.json`` artifacts; summary metrics at the end.
- child run per trial (``mlflow.parentRunId`` = parent, ``jointsearch.kind=trial``): the
  configuration as params; ``val_error`` (and ``cost_s``, ``train_loss``...) with
  ``step = budget`` (times ``jointsearch.step_scale`` when budgets are fractional); tags
  ``jointsearch.trial_id``, ``jointsearch.config_id``, ``bracket``, ``band``, ``rung``,
  ``state`` (running / paused / completed / stopped / failed) and ``final_status``.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Mapping

from .budgets import budget_step

KIND_TAG = "jointsearch.kind"
TRIAL_ID_TAG = "jointsearch.trial_id"
CONFIG_ID_TAG = "jointsearch.config_id"
STEP_SCALE_TAG = "jointsearch.step_scale"
BUDGET_UNIT_TAG = "jointsearch.budget_unit"
PARENT_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"


def config_id(config: Mapping[str, Any]) -> str:
    """A short stable id of a configuration, to follow it through its rungs and across searches."""
    text = json.dumps({k: config[k] for k in sorted(config)}, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def client_for(uri: str):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=uri)


def get_or_create_experiment(client, name: str, uri: str) -> str:
    """The experiment's id; a local SQLite store keeps its artifacts next to the database."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        location = (db.parent / "mlartifacts").resolve().as_uri()
    return client.create_experiment(name, artifact_location=location)


class SearchTracker:
    """Writes one search into MLflow; every method is cheap and safe to call from a Tune callback."""

    def __init__(self, uri: str, experiment: str, step_scale: int = 1):
        self.uri = uri
        self.client = client_for(uri)
        self.experiment_id = get_or_create_experiment(self.client, experiment, uri)
        self.step_scale = step_scale
        self.parent_run_id: str | None = None
        self._trial_runs: dict[str, str] = {}
        self._trial_state: dict[str, str] = {}
        self._trial_config: dict[str, dict] = {}
        self._trial_bracket: dict[str, str | None] = {}
        self.dashboards = None  # a live.LiveDashboards, attached once the parent run exists

    def attach_dashboards(self, *, space=None, settings: Mapping[str, Any] | None = None, title: str = "",
                          refresh_every: int = 10) -> None:
        """Keep the parent run's rank correlations, heatmap and report up to date as results arrive."""
        from .live import LiveDashboards

        self.dashboards = LiveDashboards(lambda m, step: self.log_search_metrics(m, step), self.log_search_artifact,
                                         space=space, settings=dict(settings or {}), title=title,
                                         refresh_every=refresh_every)

    # --- the search ----------------------------------------------------------------------
    def start_search(self, params: Mapping[str, str], *, run_name: str, budget_unit: str,
                     artifacts: Mapping[str, str] = {}) -> str:
        from mlflow.entities import Param

        tags = {KIND_TAG: "search", RUN_NAME_TAG: run_name, STEP_SCALE_TAG: str(self.step_scale),
                BUDGET_UNIT_TAG: budget_unit}
        run = self.client.create_run(self.experiment_id, tags=tags, run_name=run_name)
        self.parent_run_id = run.info.run_id
        self.client.log_batch(self.parent_run_id, params=[Param(k, v[:6000]) for k, v in params.items()])
        for name, text in artifacts.items():
            self.client.log_text(self.parent_run_id, text, name)
        return self.parent_run_id

    def log_search_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        if batch:
            self.client.log_batch(self.parent_run_id, metrics=batch)

    def log_search_artifact(self, name: str, content: str | bytes) -> None:
        """Text or bytes (a PNG) as an artifact of the parent run, replacing an older version."""
        if isinstance(content, str):
            self.client.log_text(self.parent_run_id, content, name)
            return
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(name).name
            path.write_bytes(content)
            folder = str(Path(name).parent) if Path(name).parent != Path(".") else None
            self.client.log_artifact(self.parent_run_id, str(path), folder)

    def end_search(self, status: str = "FINISHED") -> None:
        if self.dashboards is not None and self.dashboards.records:
            self.dashboards.refresh(final=True)
        for trial_id in list(self._trial_runs):
            if self._trial_state.get(trial_id) not in ("completed", "stopped", "failed"):
                self.trial_ended(trial_id, "stopped")
        if self.parent_run_id:
            self.client.set_terminated(self.parent_run_id, status)

    # --- trials --------------------------------------------------------------------------
    def trial_started(self, trial_id: str, config: Mapping[str, Any], tags: Mapping[str, str] = {}) -> str:
        """Open the child run of a trial (once: a paused trial that resumes keeps its run)."""
        from mlflow.entities import Param

        if trial_id in self._trial_runs:
            self.set_trial_state(trial_id, "running")
            return self._trial_runs[trial_id]
        all_tags = {PARENT_TAG: self.parent_run_id, KIND_TAG: "trial", TRIAL_ID_TAG: trial_id,
                    CONFIG_ID_TAG: config_id(config), RUN_NAME_TAG: f"trial-{trial_id}",
                    "state": "running", **{k: str(v) for k, v in tags.items()}}
        run = self.client.create_run(self.experiment_id, tags=all_tags, run_name=f"trial-{trial_id}")
        run_id = run.info.run_id
        self._trial_runs[trial_id] = run_id
        self._trial_state[trial_id] = "running"
        self._trial_config[trial_id] = dict(config)
        self._trial_bracket[trial_id] = tags.get("bracket")
        self.client.log_batch(run_id, params=[Param(k, str(v)) for k, v in sorted(config.items())])
        return run_id

    def evaluation(self, trial_id: str, budget: float, metrics: Mapping[str, Any], rung: int | None = None) -> None:
        """One result of a trial at one budget: every numeric metric with step = budget."""
        from mlflow.entities import Metric, RunTag

        run_id = self._trial_runs[trial_id]
        now = int(time.time() * 1000)
        step = budget_step(budget, self.step_scale)
        batch = [Metric("budget", float(budget), now, step)]
        for key, value in metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "budget":
                batch.append(Metric(key, float(value), now, step))
        tags = [RunTag("budget_reached", f"{budget:g}")]
        if rung is not None:
            tags.append(RunTag("rung", str(rung)))
        if "status" in metrics:
            tags.append(RunTag("last_status", str(metrics["status"])))
        if rung:
            tags.append(RunTag("promoted", "true"))
        self.client.log_batch(run_id, metrics=batch, tags=tags)
        if self.dashboards is not None:
            from .live import record_from_metrics

            self.dashboards.add(record_from_metrics(trial_id, self._trial_config[trial_id], budget, dict(metrics),
                                                    now / 1000.0, self._trial_bracket.get(trial_id)))

    def set_trial_tags(self, trial_id: str, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        if trial_id in self._trial_runs and tags:
            self.client.log_batch(self._trial_runs[trial_id], tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def set_trial_state(self, trial_id: str, state: str) -> None:
        if self._trial_state.get(trial_id) != state:
            self._trial_state[trial_id] = state
            self.set_trial_tags(trial_id, {"state": state})

    def has_trial(self, trial_id: str) -> bool:
        return trial_id in self._trial_runs

    def trial_ended(self, trial_id: str, final_status: str, reason: str | None = None, kind: str | None = None) -> None:
        """Close a child run: ``completed`` (reached the max budget), ``stopped`` or ``failed``
        (with the reason, and its kind: ``exception``, ``oom``, ``diverged``)."""
        if trial_id not in self._trial_runs:
            return
        tags = {"state": final_status, "final_status": final_status}
        if reason:
            tags["failure_reason"] = reason[:4000]
        if kind:
            tags["failure_kind"] = kind
        self.set_trial_tags(trial_id, tags)
        self._trial_state[trial_id] = final_status
        self.client.set_terminated(self._trial_runs[trial_id], "FAILED" if final_status == "failed" else "FINISHED")
