"""MLflow tracking of a search, done from the driver, never from inside Ray workers.

Why from the driver: Ray's own MLflow integrations ignore ``tracking_uri``
(ray-project/ray#36257) or record nothing in some setups (#45456), and a worker that logs
needs network access and credentials to the tracking server. The driver sees every result
anyway (through a Tune callback), so it writes one parent run per search and one child run per
trial with the ``MlflowClient`` and explicit run ids.

Layout written here, read back by ``results.py``:

- parent run (tag ``jointsearch.kind=search``): every setting as a param; ``space.json`` and
  ``settings.json`` artifacts; summary metrics at the end, among them the incumbent's
  ``val_error`` and ``budget`` (mlflow_view.log_incumbent: the search's row in the UI). The
  experiment is tagged for the UI's training view with two saved views (mlflow_view.py).
- child run per trial (``mlflow.parentRunId`` = parent, ``jointsearch.kind=trial``): the
  configuration as params; ``val_error`` (and ``budget``, ``rung``, ``cost_s``, ``train_loss``...) with
  ``step = budget`` (times ``jointsearch.step_scale`` when budgets are fractional); tags
  ``jointsearch.trial_id``, ``jointsearch.config_id``, ``bracket``, ``band``, ``rung``,
  ``state`` (running / paused / completed / stopped / failed) and ``final_status``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from jointsearch.dashboards.records import EvaluationRecord, Status

from .listeners import SearchListener


# The MLflow client retries a refused connection 7 times with exponential backoff by default
# (minutes); the tracker has its own deferral, so the client should give up quickly.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")

log = logging.getLogger("jointsearch.search")

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


def _unreachable(exc: BaseException) -> bool:
    """Whether an MLflow client error means "server not reachable" (worth retrying later)."""
    seen = 0
    while exc is not None and seen < 8:
        text = f"{type(exc).__name__}: {exc}"
        if any(s in text for s in ("ConnectionError", "Connection refused", "Max retries exceeded", "timed out",
                                   "Failed to establish", "RemoteDisconnected", "503", "502", "504")):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


class SearchTracker:
    """Writes one search into MLflow; every method is cheap and safe to call from a Tune callback.

    Deferred tracking: if the tracking server stops answering during a search, operations are
    queued in order instead of failing the search, retried every ``retry_interval_s``, and
    flushed at the end (waiting up to ``flush_timeout_s`` for the server to come back). Each
    queued operation resolves run ids when it runs, so a child run created while the server
    was away still gets its metrics. The log says what was deferred.
    """

    def __init__(self, uri: str, experiment: str, step_scale: int = 1, *, retry_interval_s: float = 5.0,
                 flush_timeout_s: float = 600.0):
        from .errors import UsageError

        self.uri = uri
        from .store_lock import store_creation_lock

        try:
            with store_creation_lock(uri):  # two first searches on one fresh SQLite file
                self.client = client_for(uri)  # MlflowClient opens (and creates) the store at once
                self.experiment_id = get_or_create_experiment(self.client, experiment, uri)
        except Exception as exc:
            if _unreachable(exc):
                raise UsageError(f"the MLflow tracking server at {uri} is unreachable") from None
            raise
        self.step_scale = step_scale
        self.retry_interval_s = retry_interval_s
        self.flush_timeout_s = flush_timeout_s
        self.parent_run_id: str | None = None
        self._trial_runs: dict[str, str] = {}  # trial id -> MLflow run id, once created
        self._trial_state: dict[str, str] = {}
        # Every evaluation record of this search, as built (and, after a resume, as read back): the
        # end-of-search summary counts these instead of reading the search back from MLflow.
        self.records: list[EvaluationRecord] = []
        self._trial_config: dict[str, dict] = {}
        self._trial_bracket: dict[str, str | None] = {}
        self._pending: list[tuple[str, Callable[[], None]]] = []
        self._last_attempt = 0.0
        self.deferred_total = 0
        # The live dashboards and the progress line (listeners.py): told every event, side by side
        # with MLflow; run_search adds them.
        self.listeners: list[SearchListener] = []
        # Interruptions (search/interrupt.py): once its signal arrived, a trial that ends
        # without reaching the max budget was interrupted, not "stopped" by the scheduler.
        self.interrupt = None  # an interrupt.InterruptGuard while a search runs
        self.record_metrics: tuple[str, ...] = ()  # metrics the objectives and constraints name (issue 15)

    # --- delivery ------------------------------------------------------------------------
    def _submit(self, what: str, op: Callable[[], None]) -> None:
        if self._pending:
            self._pending.append((what, op))
            self.deferred_total += 1
            if time.time() - self._last_attempt >= self.retry_interval_s:
                self._drain()
            return
        try:
            op()
        except Exception as exc:
            if not _unreachable(exc):
                raise
            self._last_attempt = time.time()
            self._pending.append((what, op))
            self.deferred_total += 1
            log.warning("MLflow at %s is unreachable (%s); the search goes on and tracking is deferred "
                        "until it answers again", self.uri, what)

    def _drain(self) -> bool:
        """Deliver queued operations in order; False when the server is still away."""
        self._last_attempt = time.time()
        delivered = 0
        while self._pending:
            what, op = self._pending[0]
            try:
                op()
            except Exception as exc:
                if not _unreachable(exc):
                    log.error("MLflow refused a deferred operation (%s): %s", what, exc)
                else:
                    if delivered:
                        log.warning("MLflow is back for %d deferred operations, %d still pending", delivered,
                                    len(self._pending))
                    return False
            self._pending.pop(0)
            delivered += 1
        if delivered:
            log.warning("MLflow at %s answers again: %d deferred tracking operations delivered", self.uri, delivered)
        return True

    def flush(self, timeout_s: float | None = None) -> None:
        """Deliver everything queued, waiting for the server up to ``timeout_s``; raise if it never came back."""
        deadline = time.time() + (self.flush_timeout_s if timeout_s is None else timeout_s)
        while self._pending and not self._drain():
            if time.time() > deadline:
                raise RuntimeError(f"MLflow at {self.uri} stayed unreachable: {len(self._pending)} tracking "
                                   f"operations could not be delivered (first: {self._pending[0][0]})")
            log.warning("waiting for MLflow at %s: %d tracking operations pending", self.uri, len(self._pending))
            time.sleep(min(self.retry_interval_s, max(0.1, deadline - time.time())))

    # --- the search ----------------------------------------------------------------------
    def start_search(self, params: Mapping[str, str], *, run_name: str, budget_unit: str,
                     artifacts: Mapping[str, str] = {}, tags: Mapping[str, str] = {}) -> str:
        """Create the parent run (synchronously: a search must not start untracked); ``tags``
        are set at creation (the driver's host and PID: no other command sees the run without them)."""
        from mlflow.entities import Param

        tags = {KIND_TAG: "search", RUN_NAME_TAG: run_name, STEP_SCALE_TAG: str(self.step_scale),
                BUDGET_UNIT_TAG: budget_unit, **tags}
        run = self.client.create_run(self.experiment_id, tags=tags, run_name=run_name)
        self.parent_run_id = run.info.run_id
        self.client.log_batch(self.parent_run_id, params=[Param(k, v[:6000]) for k, v in params.items()])
        for name, text in artifacts.items():
            self.client.log_text(self.parent_run_id, text, name)
        return self.parent_run_id

    def reattach(self, parent_run_id: str, trial_runs: Mapping[str, str], *, tags: Mapping[str, str] = {},
                 records: Sequence[EvaluationRecord] = (), final_status: Mapping[str, str] = {}) -> None:
        """Continue tracking a search whose driver died: same parent run, its trials already known
        (with the records and final statuses it had recorded)."""
        from mlflow.entities import RunTag

        self.parent_run_id = parent_run_id
        self.records.extend(records)
        for trial_id, run_id in trial_runs.items():
            self._trial_runs[trial_id] = run_id
            self._trial_state[trial_id] = final_status.get(trial_id) or "ended"
            self._trial_config[trial_id] = {}
        self.client.update_run(parent_run_id, status="RUNNING")
        if tags:
            self.client.log_batch(parent_run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def set_search_tags(self, tags: Mapping[str, Any]) -> None:
        """Tags of the parent run (e.g. ``jointsearch.interrupted``), delivered like everything else."""
        from mlflow.entities import RunTag

        batch = [RunTag(k, str(v)) for k, v in tags.items()]
        if batch and self.parent_run_id:
            parent = self.parent_run_id
            self._submit("search tags", lambda: self.client.log_batch(parent, tags=batch))

    def log_search_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        if batch:
            self._submit("search metrics", lambda: self.client.log_batch(self.parent_run_id, metrics=batch))

    def budget_decision(self, metrics: Mapping[str, float], step: int, decision: Mapping[str, Any]) -> None:
        """An adaptive-budget decision (issue 14): its metrics on the parent run, and the decision
        to the listeners (the live dashboards' report lists it)."""
        self.log_search_metrics(metrics, step)
        for listener in self.listeners:
            listener.on_budget_decision(decision)

    def log_search_artifact(self, name: str, content: str | bytes) -> None:
        """Text or bytes (a PNG) as an artifact of the parent run, replacing an older version."""
        self._submit(f"artifact {name}", lambda: self._log_artifact(name, content))

    def _log_artifact(self, name: str, content: str | bytes) -> None:
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
        for trial_id in list(self._trial_state):
            if self._trial_state.get(trial_id) not in ("completed", "stopped", "failed", "interrupted", "ended"):
                self.trial_ended(trial_id, "stopped")
        if self.parent_run_id:
            parent = self.parent_run_id
            self._submit("end of search", lambda: self.client.set_terminated(parent, status))
        if self.deferred_total:
            log.warning("%d tracking operations were deferred while MLflow was unreachable", self.deferred_total)
        self.flush()

    # --- trials --------------------------------------------------------------------------
    def has_trial(self, trial_id: str) -> bool:
        return trial_id in self._trial_config

    def trial_ids(self) -> list[str]:
        """Every trial this search has tracked so far (before a resume too)."""
        return list(self._trial_config)

    def trial_started(self, trial_id: str, config: Mapping[str, Any], tags: Mapping[str, str] = {}) -> None:
        """Open the child run of a trial (once: a paused trial that resumes keeps its run)."""
        from mlflow.entities import Param

        if self.has_trial(trial_id):
            self.set_trial_state(trial_id, "running")
            return
        for listener in self.listeners:
            listener.on_trial_started(trial_id)
        self._trial_state[trial_id] = "running"
        self._trial_config[trial_id] = dict(config)
        self._trial_bracket[trial_id] = tags.get("bracket")
        all_tags = {PARENT_TAG: self.parent_run_id, KIND_TAG: "trial", TRIAL_ID_TAG: trial_id,
                    CONFIG_ID_TAG: config_id(config), RUN_NAME_TAG: f"trial-{trial_id}",
                    "state": "running", **{k: str(v) for k, v in tags.items()}}
        params = [Param(k, str(v)) for k, v in sorted(config.items())]

        def create() -> None:
            if trial_id not in self._trial_runs:  # a retried delivery must not create a second run
                run = self.client.create_run(self.experiment_id, tags=all_tags, run_name=f"trial-{trial_id}")
                self._trial_runs[trial_id] = run.info.run_id
            self.client.log_batch(self._trial_runs[trial_id], params=params)

        self._submit(f"start of trial {trial_id}", create)

    def evaluation(self, trial_id: str, budget: float, metrics: Mapping[str, Any], rung: int | None = None,
                   node: str | None = None) -> EvaluationRecord:
        """One result of a trial at one budget: built into its record once (evaluations.py), written
        to the trial's run at step = budget, kept in :attr:`records`, and handed to the listeners."""
        from mlflow.entities import Metric, RunTag

        from .evaluations import mlflow_fields, record_from_result

        now = int(time.time() * 1000)
        record = record_from_result(trial_id, self._trial_config[trial_id], budget, metrics, rung=rung,
                                    bracket=self._trial_bracket.get(trial_id), finished_at_ms=now, node=node,
                                    extra=self.record_metrics)
        step, values, tags = mlflow_fields(record, metrics, self.step_scale)
        batch = [Metric(k, v, now, step) for k, v in values.items()]
        tag_batch = [RunTag(k, v) for k, v in tags.items()]
        self._submit(f"result of trial {trial_id} at budget {budget:g}",
                     lambda: self.client.log_batch(self._trial_runs[trial_id], metrics=batch, tags=tag_batch))
        self.records.append(record)
        for listener in self.listeners:
            listener.on_evaluation(record)
        return record

    def trial_states(self) -> dict[str, str]:
        """Each tracked trial's state: running, paused, completed, stopped, failed, interrupted, ..."""
        return dict(self._trial_state)

    def set_trial_tags(self, trial_id: str, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        if self.has_trial(trial_id) and tags:
            batch = [RunTag(k, str(v)) for k, v in tags.items()]
            self._submit(f"tags of trial {trial_id}",
                         lambda: self.client.log_batch(self._trial_runs[trial_id], tags=batch))

    def set_trial_state(self, trial_id: str, state: str) -> None:
        if self._trial_state.get(trial_id) != state:
            self._trial_state[trial_id] = state
            for listener in self.listeners:
                listener.on_trial_state(trial_id, state)
            self.set_trial_tags(trial_id, {"state": state})

    def trial_ended(self, trial_id: str, final_status: str, reason: str | None = None, kind: str | None = None) -> None:
        """Close a child run: ``completed`` (reached the max budget), ``stopped`` or ``failed``
        (with the reason, and its kind: ``exception``, ``oom``, ``diverged``)."""
        if not self.has_trial(trial_id):
            return
        if final_status == "stopped" and self.interrupt is not None and self.interrupt.requested:
            final_status = "interrupted"
        tags = {"state": final_status, "final_status": final_status}
        if reason:
            tags["failure_reason"] = reason[:4000]
        if kind:
            tags["failure_kind"] = kind
        self.set_trial_tags(trial_id, tags)
        self._trial_state[trial_id] = final_status
        if final_status == "failed" and not any(r.trial_id == trial_id for r in self.records):
            # Failed before its first evaluation: the record read_search makes of such a run.
            self.records.append(EvaluationRecord(trial_id, self._trial_config[trial_id], 0.0, float("nan"),
                                                 status=Status.of(kind or "failed"), finished_at=time.time()))
        for listener in self.listeners:
            listener.on_trial_ended(trial_id, final_status)
        self.close_run(trial_id, final_status)

    def close_run(self, trial_id: str, final_status: str) -> None:
        """Set a trial run's MLflow status from its final status (failed: FAILED, interrupted:
        KILLED, else FINISHED). Alone, for a run whose final status a dead driver recorded but
        whose run it never closed: the two are separate writes, and SIGKILL can fall between them."""
        if not self.has_trial(trial_id):
            return
        status = {"failed": "FAILED", "interrupted": "KILLED"}.get(final_status, "FINISHED")
        self._submit(f"end of trial {trial_id}",
                     lambda: self.client.set_terminated(self._trial_runs[trial_id], status))
