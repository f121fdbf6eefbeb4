"""How a search's experiment opens in the MLflow UI: the model-training view, with a saved view of
the runs table and charts made for a hyperparameter search.

How MLflow 3.17 decides which view an experiment gets (read from its UI bundle,
``mlflow/server/js/build/static/js``, and its onboarding skill's SKILL.md):

- Each experiment can carry the tag ``mlflow.experimentKind``: ``genai_development`` or
  ``custom_model_development`` ("Machine learning"). MLflow sets it itself (inferred from traces
  or runs) only while the UI's workflow switch is off; MLflow's own tools read it.
- In 3.17 the UI's global switch decides: the ``workflowType`` query parameter of the page
  (``genai`` or ``machine_learning``), else the browser's remembered choice (localStorage
  ``mlflow.workflowType``), else ``genai``. A fresh browser therefore opens every experiment in
  the GenAI view, whatever the tag says, and a server cannot change that default.

So jointsearch does both things a client can do: it tags the experiment
``custom_model_development`` when it creates it (or finds it untagged), and every link it prints
carries ``workflowType=machine_learning``. The link also names a saved view (MLflow 3.17's
"Views" of the runs page, stored as the experiment tag ``mlflow.sharedViewState.<id>``, JSON
``{name, createdAt, updatedAt, state}``, opened by ``?viewStateShareKey=<id>``), whose state
sorts runs by start time (the order in which the UI nests trial runs under their search run),
shows ``val_error``, the budget reached (metric ``budget``), the rung (metric ``rung``; the UI
offers no tag columns in a saved view) and the main hyperparameters as columns, and
has two charts: parallel coordinates of the hyperparameters against ``val_error``, and
``val_error`` against budget. The state uses the UI's own keys (``selectedColumns`` entries such
as ``metrics.`val_error```, chart cards of type ``PARALLEL``/``SCATTER``); an older or newer UI
that does not know them ignores the tag.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from typing import Any, Sequence

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
TRAINING_KIND = "custom_model_development"
SAVED_VIEW_PREFIX = "mlflow.sharedViewState."
TRIAL_KIND_TAG = "jointsearch.kind"  # tracking.KIND_TAG; not imported, to keep this module MLflow-free
VIEW_ID = "jointsearch-search"  # searches, their trials nested under them
VIEW_NAME = "jointsearch: searches"
TRIALS_VIEW_ID = "jointsearch-trials"  # every trial, best first, and the charts
TRIALS_VIEW_NAME = "jointsearch: trials and charts"
#: At most this many hyperparameters become columns and parallel-coordinate axes.
MAX_HYPERPARAMETERS = 6
#: Training hyperparameters first: they matter most to most searches; then the space's order.
_FIRST = ("learning_rate", "batch_size", "weight_decay", "momentum", "mixup_alpha", "cutout_length",
          "shakedrop_death_rate", "widen_factor_1", "res_blocks_1", "res_branches_1", "filters_0")


def main_hyperparameters(space) -> list[str]:
    """The searched (non-constant) hyperparameters worth a column, at most ``MAX_HYPERPARAMETERS``."""
    import ConfigSpace as CS

    names = [name for name, hp in space.items() if not isinstance(hp, CS.Constant)] if space is not None else []
    ordered = [n for n in _FIRST if n in names] + [n for n in names if n not in _FIRST]
    return ordered[:MAX_HYPERPARAMETERS]


def _column(group: str, key: str) -> str:
    return f"{group}.`{key}`"  # the UI's column key (makeCanonicalSortKey)


def view_state(hyperparameters: Sequence[str], *, trials_only: bool = False) -> dict[str, Any]:
    """A saved view's state: search facets and UI state, in the UI's own keys.

    The default (``trials_only=False``) lists runs by start time, the order in which the UI
    nests each search's trial runs under it (collapsed: the search run's row shows its
    incumbent). ``trials_only`` lists the trial runs alone, best first, which is what the charts
    need: the UI charts only the runs the table shows, and collapsed trials are not shown.
    """
    section = "jointsearch-charts"
    return {
        "searchFilter": f"tags.`{TRIAL_KIND_TAG}` = 'trial'" if trials_only else "",
        "orderByKey": "metrics.`val_error`" if trials_only else "attributes.start_time",
        "orderByAsc": trials_only, "startTime": "ALL",
        "lifecycleFilter": "Active", "datasetsFilter": [], "modelVersionFilter": "All Runs",
        # the runs table
        "selectedColumns": [_column("metrics", "val_error"), _column("metrics", "budget"),
                            _column("metrics", "rung"), *[_column("params", p) for p in hyperparameters]],
        "columnOrder": [], "columnWidths": {}, "runsHiddenMode": "SHOW_ALL", "viewMaximized": False,
        "runListHidden": False, "isAccordionReordered": False, "groupBy": None, "groupsExpanded": {},
        "useGroupedValuesInCharts": True, "hideEmptyCharts": True,
        "globalLineChartConfig": {"xAxisKey": "step", "lineSmoothness": 0, "selectedXAxisMetricKey": ""},
        # the charts
        "compareRunSections": [{"uuid": section, "name": "jointsearch", "display": True, "isReordered": False,
                                "deleted": False, "isGenerated": False}],
        "compareRunCharts": [
            {"uuid": "jointsearch-parallel", "type": "PARALLEL", "metricSectionId": section, "deleted": False,
             "isGenerated": False, "runsCountToCompare": 100, "showAllRuns": True,
             "selectedParams": list(hyperparameters), "selectedMetrics": ["val_error"]},
            {"uuid": "jointsearch-budget", "type": "SCATTER", "metricSectionId": section, "deleted": False,
             "isGenerated": False, "runsCountToCompare": 100,
             "xaxis": {"key": "budget", "type": "METRIC"}, "yaxis": {"key": "val_error", "type": "METRIC"}},
        ],
    }


def saved_view_tag(state: dict[str, Any], *, name: str = VIEW_NAME, view_id: str = VIEW_ID,
                   now_ms: int | None = None) -> tuple[str, str]:
    """The experiment tag (key, value) that holds a saved view of the runs page."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    envelope = {"name": name, "createdAt": now_ms, "updatedAt": now_ms, "state": json.dumps(state)}
    return SAVED_VIEW_PREFIX + view_id, json.dumps(envelope)


def runs_url(server_uri: str, experiment_id: str, *, view_id: str | None = VIEW_ID) -> str:
    """The runs page of an experiment in the training view (and the saved view, when given)."""
    query = {"workflowType": "machine_learning"}
    if view_id:
        query["viewStateShareKey"] = view_id
    return f"{server_uri.rstrip('/')}/#/experiments/{experiment_id}/runs?{urllib.parse.urlencode(query)}"


def training_view_tags(space) -> dict[str, str]:
    """Every experiment tag jointsearch sets so that the experiment opens as a training experiment."""
    names = main_hyperparameters(space)
    searches = saved_view_tag(view_state(names))
    trials = saved_view_tag(view_state(names, trials_only=True), name=TRIALS_VIEW_NAME, view_id=TRIALS_VIEW_ID)
    return {EXPERIMENT_KIND_TAG: TRAINING_KIND, searches[0]: searches[1], trials[0]: trials[1]}


def log_incumbent(client, search_run_id: str, best) -> None:
    """The incumbent's ``val_error`` and budget on the search run itself, so that its row in the
    runs table (where its trials are nested, collapsed) says what the search found."""
    if best is not None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        client.log_batch(search_run_id, metrics=[Metric("val_error", float(best.val_error), now, 0),
                                                 Metric("budget", float(best.budget), now, 0)])


def set_training_view(client, experiment_id: str, space) -> None:
    """Tag the experiment for the training view; a kind or view someone set already is kept."""
    existing = set(client.get_experiment(experiment_id).tags)
    for key, value in training_view_tags(space).items():
        if key not in existing:
            client.set_experiment_tag(experiment_id, key, value)
