"""The MLflow UI's training view (issue 15, item 6): the tags a search sets on its experiment, as
MLflow 3.17's UI reads them (the browser check is tests/dashboards/test_browser.py)."""

import json

import mlflow

from jointsearch.search.mlflow_view import (EXPERIMENT_KIND_TAG, SAVED_VIEW_PREFIX, TRAINING_KIND, TRIALS_VIEW_ID,
                                            VIEW_ID, main_hyperparameters, runs_url, saved_view_tag,
                                            set_training_view, view_state)
from jointsearch.spaces import load_space


def test_main_hyperparameters_put_training_ones_first_and_skip_constants():
    import ConfigSpace as CS

    assert main_hyperparameters(load_space("tiny"))[:3] == ["learning_rate", "batch_size", "weight_decay"]
    space = CS.ConfigurationSpace()
    space.add([CS.Float("lr", (1e-3, 1.0)), CS.Constant("filters", 16), CS.Integer("blocks", (1, 4)),
               CS.Float("momentum", (0.0, 0.9))])
    assert main_hyperparameters(space) == ["momentum", "blocks", "lr"]  # ConfigSpace keeps names sorted


def test_the_saved_view_envelope_is_what_the_ui_parses():
    """``{name, createdAt, updatedAt, state}`` with the state a JSON string (UI: parseEnvelope)."""
    key, value = saved_view_tag(view_state(["lr"]), now_ms=5)
    envelope = json.loads(value)
    assert key == SAVED_VIEW_PREFIX + VIEW_ID and envelope["name"] and envelope["createdAt"] == 5
    state = json.loads(envelope["state"])
    assert state["selectedColumns"][:3] == ["metrics.`val_error`", "metrics.`budget`", "metrics.`rung`"]
    assert "params.`lr`" in state["selectedColumns"] and state["orderByKey"] == "attributes.start_time"
    assert [c["type"] for c in state["compareRunCharts"]] == ["PARALLEL", "SCATTER"]
    trials = view_state(["lr"], trials_only=True)
    assert trials["searchFilter"] == "tags.`jointsearch.kind` = 'trial'" and trials["orderByAsc"] is True


def test_links_open_the_training_view():
    assert runs_url("http://h:5000/", "7") == (
        "http://h:5000/#/experiments/7/runs?workflowType=machine_learning&viewStateShareKey=jointsearch-search")
    assert runs_url("http://h", "7", view_id=None).endswith("runs?workflowType=machine_learning")


def test_set_training_view_tags_once_and_keeps_what_a_user_chose(sqlite_uri):
    client = mlflow.MlflowClient(tracking_uri=sqlite_uri)
    fresh = client.create_experiment("fresh")
    chosen = client.create_experiment("chosen", tags={EXPERIMENT_KIND_TAG: "genai_development"})
    for experiment_id in (fresh, chosen):
        set_training_view(client, experiment_id, load_space("tiny"))
    tags = client.get_experiment(fresh).tags
    assert tags[EXPERIMENT_KIND_TAG] == TRAINING_KIND
    assert {SAVED_VIEW_PREFIX + VIEW_ID, SAVED_VIEW_PREFIX + TRIALS_VIEW_ID} <= set(tags)
    assert client.get_experiment(chosen).tags[EXPERIMENT_KIND_TAG] == "genai_development"
