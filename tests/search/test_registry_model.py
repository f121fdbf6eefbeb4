"""The winner in the MLflow Model Registry (issue 15, item 4): ``jointsearch train --register-model``."""

from __future__ import annotations

import json

import mlflow
import mlflow.pytorch
import numpy as np
import pytest
import torch

from jointsearch.search.cli import main
from jointsearch.search.registry_model import register_network
from jointsearch.spaces import config_dict, load_space, to_json
from jointsearch.trainers.entry import example_inputs, load_network, retrain


@pytest.fixture
def best_json(tmp_path):
    """An export of the tiny space's default configuration, as `jointsearch export` writes it."""
    space = load_space("tiny")
    payload = {"format": "jointsearch.best/1", "config": config_dict(space.get_default_configuration()),
               "dataset": "digits", "budget_unit": "epochs", "experiment": "searched", "trial_id": "t0",
               "space": json.loads(to_json(space))}
    path = tmp_path / "best.json"
    path.write_text(json.dumps(payload))
    return path, payload


@pytest.mark.slow
def test_the_registered_model_predicts_the_logits_of_the_trained_network(tmp_path, best_json, sqlite_uri):
    """Train 1 epoch on digits, register the network: ``mlflow.pytorch.load_model`` on the
    registry URI gives the same logits; the run carries the configuration, space, test error,
    an input example and a signature."""
    _, payload = best_json
    uri = sqlite_uri
    config = payload["config"]
    result = retrain(config, 1, dataset="digits", save_dir=str(tmp_path / "state"))
    network = load_network(config, str(tmp_path / "state"), dataset="digits")
    example = example_inputs("digits", n=8)
    with torch.no_grad():
        expected = network(torch.as_tensor(example)).numpy()
    assert expected.shape == (8, 10)

    registered = register_network(uri, "digits-net", network, example, config=config, result=result,
                                  experiment="searched", space_json=to_json(load_space("tiny")))
    assert (registered.name, registered.version) == ("digits-net", "1")
    mlflow.set_registry_uri(uri)
    loaded = mlflow.pytorch.load_model("models:/digits-net/1")
    with torch.no_grad():
        got = loaded(torch.as_tensor(example)).numpy()
    np.testing.assert_array_equal(got, expected)

    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    run = client.get_run(registered.run_id)
    assert run.data.metrics["test_error"] == pytest.approx(result["test_error"])
    assert run.data.params["learning_rate"] == str(config["learning_rate"])
    artifacts = {a.path for a in client.list_artifacts(registered.run_id)}
    assert {"config.json", "space.json"} <= artifacts
    info = mlflow.models.get_model_info("models:/digits-net/1")
    assert list(info.signature.inputs.to_dict()[0]["tensor-spec"]["shape"]) == [-1, 1, 8, 8]
    assert list(info.signature.outputs.to_dict()[0]["tensor-spec"]["shape"]) == [-1, 10]
    assert info.saved_input_example_info is not None


@pytest.mark.slow
def test_train_register_model_from_the_cli(tmp_path, best_json, capsys, monkeypatch, sqlite_uri):
    """The CLI registers into the default store, in the search's experiment, tagged with the trial."""
    path, _ = best_json
    monkeypatch.chdir(tmp_path)
    uri = sqlite_uri  # the default store, ./mlflow.db
    assert main(["train", "--config", str(path), "--budget", "1", "--register-model", "winner"]) == 0
    out = capsys.readouterr().out
    assert '"test_error"' in out and "registered models:/winner/1 " in out
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    [version] = client.search_model_versions("name = 'winner'")
    assert version.tags["test_error"] == out.split('"test_error": ')[1].split(",")[0].strip()
    run = client.get_run(version.run_id)
    assert run.data.tags["jointsearch.trial_id"] == "t0"
    assert client.get_experiment(run.info.experiment_id).name == "searched"


def test_register_model_needs_the_builtin_trainer_and_an_existing_store(tmp_path, best_json, capsys):
    path, _ = best_json
    code = main(["train", "--config", str(path), "--budget", "1", "--register-model", "m",
                 "--trainer", "jointsearch.search.testing:fake_trainer"])
    assert code == 2 and "needs the built-in trainer" in capsys.readouterr().err
    code = main(["train", "--config", str(path), "--budget", "1", "--register-model", "m",
                 "--mlflow-uri", f"sqlite:///{tmp_path / 'nope.db'}"])
    assert code == 2 and "no MLflow store" in capsys.readouterr().err
    assert not (tmp_path / "nope.db").exists()
