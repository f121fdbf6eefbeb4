"""The winner of a search in the MLflow Model Registry (``jointsearch train ... --register-model NAME``).

The trainer layer knows nothing of MLflow: ``trainers.entry.retrain(..., save_dir=...)`` leaves
the trained network's state in a directory and ``trainers.entry.load_network`` rebuilds it as a
plain ``torch.nn.Module``. This module (search layer; torch and MLflow's flavour are imported
only when a model is registered) logs that network with ``mlflow.pytorch.log_model`` in one run
of the search's experiment and registers it as a new version of NAME. The run holds what someone
who finds the model in the registry needs to trust and reproduce it: the configuration (params
and ``config.json``), the space it was searched in (``space.json``), ``val_error``,
``test_error`` and the budget, an input example (validation images as the network takes them:
N x C x H x W float32, normalised as in training) and a signature inferred from it (output: one
logit per class).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Mapping

from .tracking import client_for, get_or_create_experiment

MODEL_NAME = "model"  # the logged model's name inside its run


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    version: str
    run_id: str
    model_uri: str  # models:/NAME/VERSION


def register_network(uri: str, name: str, network, example, *, config: Mapping[str, Any], result: Mapping[str, Any],
                     experiment: str, space_json: str | None = None, source: Mapping[str, Any] | None = None,
                     ) -> RegisteredModel:
    """Log ``network`` (a torch module) as an MLflow PyTorch model and register a new version of ``name``.

    ``example`` is a numpy batch of inputs; ``result`` is what the retraining returned
    (``val_error``, ``test_error``, ``budget``...); ``source`` says where the configuration came
    from (the export's search run, trial, dataset) and becomes tags of the run.
    """
    import mlflow
    import mlflow.pytorch
    import torch
    from mlflow.models import infer_signature

    client = client_for(uri)
    experiment_id = get_or_create_experiment(client, experiment, uri)
    with torch.no_grad():
        logits = network(torch.as_tensor(example)).numpy()
    signature = infer_signature(example, logits)
    metrics = {k: float(result[k]) for k in ("val_error", "test_error", "budget", "cost_s", "n_params")
               if isinstance(result.get(k), (int, float))}
    tags = {"jointsearch.kind": "retrain", **{f"jointsearch.{k}": str(v) for k, v in (source or {}).items() if v}}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"retrain-{name}-{time.strftime('%Y%m%d-%H%M%S')}",
                          tags=tags) as run:
        mlflow.log_params({k: str(v) for k, v in config.items()})
        mlflow.log_metrics(metrics)
        mlflow.log_dict(dict(config), "config.json")
        if space_json:
            mlflow.log_text(space_json, "space.json")
        info = mlflow.pytorch.log_model(
            network, name=MODEL_NAME, signature=signature, input_example=example, registered_model_name=name,
            # Stated, not inferred: inference loads the model in a subprocess, slow and noisy.
            pip_requirements=mlflow.pytorch.get_default_pip_requirements(),
            metadata={"jointsearch_config": json.dumps(dict(config), sort_keys=True, default=str)})
    version = str(info.registered_model_version)
    registry = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)  # not the process-wide registry URI
    registry.set_model_version_tag(name, version, "test_error", str(metrics.get("test_error", "")))
    return RegisteredModel(name=name, version=version, run_id=run.info.run_id, model_uri=f"models:/{name}/{version}")


def retrain_and_register(uri: str, name: str, payload: Mapping[str, Any], budget: float, context: Mapping[str, Any],
                         experiment: str | None = None) -> tuple[dict[str, Any], RegisteredModel]:
    """Retrain an exported configuration with the built-in trainer and register the network it gives."""
    import tempfile

    from jointsearch.trainers.entry import example_inputs, load_network

    from .api import retrain
    from .trainer_api import BUILTIN_RETRAINER

    config = dict(payload["config"])
    data_keys = {k: context.get(k) for k in ("dataset", "data_dir", "seed") if k in context}
    with tempfile.TemporaryDirectory(prefix="jointsearch-retrain-") as save_dir:
        result = retrain(config, budget, trainer=BUILTIN_RETRAINER, save_dir=save_dir, **context)
        network = load_network(config, save_dir, **data_keys)
    example = example_inputs(**data_keys)
    space = payload.get("space")
    source = {k: payload.get(k) for k in ("search_run_id", "trial_id", "run_id", "dataset", "space_name")}
    source["dataset"] = context.get("dataset") or source.get("dataset")
    registered = register_network(uri, name, network, example, config=config, result=result,
                                  experiment=experiment or payload.get("experiment") or "jointsearch",
                                  space_json=json.dumps(space, indent=2) if space else None, source=source)
    return result, registered
