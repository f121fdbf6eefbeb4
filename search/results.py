"""Reading a search back from MLflow: the one way export, report and resume see past results.

Works on any search that jointsearch logged (the layout is documented in tracking.py), running
or finished, whether or not this process ran it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from jointsearch.dashboards.records import EvaluationRecord
from jointsearch.spaces import SpaceError, config_dict, from_json, validate_config

from .errors import UsageError
from .evaluations import records_from_run
from .tracking import (BUDGET_UNIT_TAG, KIND_TAG, PARENT_TAG, STEP_SCALE_TAG, TRIAL_ID_TAG,
                       client_for)


@dataclass(frozen=True)
class SearchResults:
    experiment: str
    search_run_id: str
    status: str  # the parent run's MLflow status
    params: dict[str, str]  # the search's settings
    space_json: str | None
    budget_unit: str
    records: list[EvaluationRecord]
    trial_runs: dict[str, str] = field(default_factory=dict)  # trial id -> child run id
    trial_tags: dict[str, dict[str, str]] = field(default_factory=dict)
    parent_tags: dict[str, str] = field(default_factory=dict)
    trial_status: dict[str, str] = field(default_factory=dict)  # trial id -> its run's MLflow status

    @property
    def space(self):
        return from_json(self.space_json, source=f"space of run {self.search_run_id}") if self.space_json else None


def _experiment(client, name: str, uri: str):
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        raise UsageError(f"experiment {name!r} does not exist in {uri}")
    return experiment


def find_search_run(client, experiment_id: str, search_run_id: str | None = None):
    """The parent run of a search: the given one, else the newest search in the experiment."""
    if search_run_id:
        try:
            run = client.get_run(search_run_id)
        except Exception:
            raise UsageError(f"no MLflow run {search_run_id!r}") from None
        if run.data.tags.get(KIND_TAG) != "search":
            raise UsageError(f"run {search_run_id} is not a jointsearch search run")
        return run
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{KIND_TAG}` = 'search'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        raise UsageError("the experiment has no jointsearch search runs")
    return runs[0]


def check_store_exists(uri: str) -> None:
    """Reading must never create a store: a mistyped SQLite path would otherwise become a new, empty one."""
    if uri.startswith("sqlite:///"):
        from pathlib import Path

        if not Path(uri[len("sqlite:///"):]).is_file():
            raise UsageError(f"no MLflow store at {uri} (wrong --mlflow-uri, or no search has run here yet)")


def read_search(uri: str, experiment: str, search_run_id: str | None = None) -> SearchResults:
    check_store_exists(uri)
    client = client_for(uri)
    exp = _experiment(client, experiment, uri)
    parent = find_search_run(client, exp.experiment_id, search_run_id)
    parent_id = parent.info.run_id
    space_json = artifact_text(client, parent_id, "space.json")
    space = None
    if space_json:
        try:
            space = from_json(space_json)
        except SpaceError:
            space = None
    scale = int(parent.data.tags.get(STEP_SCALE_TAG, "1") or 1)
    children = client.search_runs([exp.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent_id}'",
                                  max_results=50000)
    extra = objective_metrics(parent.data.params)
    records: list[EvaluationRecord] = []
    trial_runs: dict[str, str] = {}
    trial_tags: dict[str, dict[str, str]] = {}
    trial_status: dict[str, str] = {}
    for child in children:
        tags = child.data.tags
        trial_id = tags.get(TRIAL_ID_TAG, child.info.run_id)
        trial_runs[trial_id] = child.info.run_id
        trial_tags[trial_id] = dict(tags)
        trial_status[trial_id] = child.info.status
        records.extend(records_from_run(client, child, _typed_config(space, child.data.params), scale, extra))
    records.sort(key=lambda r: (r.finished_at, r.trial_id, r.budget))
    return SearchResults(experiment=experiment, search_run_id=parent_id, status=parent.info.status,
                         params=dict(parent.data.params), space_json=space_json,
                         budget_unit=parent.data.tags.get(BUDGET_UNIT_TAG, parent.data.params.get("budget_unit", "")),
                         records=records, trial_runs=trial_runs, trial_tags=trial_tags,
                         parent_tags=dict(parent.data.tags), trial_status=trial_status)


def objective_metrics(params: dict[str, str]) -> list[str]:
    """The metrics a search's objectives and constraints name (its ``objectives`` and
    ``constraints`` params, issue 15): read back into each record's ``metrics``."""
    from jointsearch.dashboards.pareto import parse_constraint

    names = [spec.partition(":")[0] for spec in params.get("objectives", "").split()]
    for text in params.get("constraints", "").split(","):
        try:
            names.append(parse_constraint(text).metric)
        except ValueError:
            pass
    return list(dict.fromkeys(n for n in names if n))


def _typed_config(space, params: dict[str, str]) -> dict[str, Any]:
    """MLflow keeps params as strings; the space knows each one's type."""
    if space is not None:
        try:
            return config_dict(validate_config(space, params))
        except SpaceError:
            pass
    out: dict[str, Any] = {}
    for key, value in params.items():
        try:
            out[key] = json.loads(value)
        except (json.JSONDecodeError, TypeError):
            out[key] = value
    return out


def artifact_text(client, run_id: str, path: str) -> str | None:
    """The text of one artifact of a run, or None when it has none by that name."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = client.download_artifacts(run_id, path, tmp)
        except Exception:
            return None
        return Path(local).read_text()
