"""Export of the best configuration of a search, validated against the space it was searched in.

The exported JSON is self-contained: it carries the space (ConfigSpace JSON) next to the
configuration, so ``jointsearch train --config best.json`` can check it and retrain it on any
machine without the MLflow store that produced it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jointsearch.dashboards.analysis import best_configuration
from jointsearch.spaces import config_dict, from_json, validate_config

from .errors import UsageError
from .results import SearchResults, read_search

FORMAT = "jointsearch.best/1"


def best_export(results: SearchResults) -> dict[str, Any]:
    best = best_configuration(results.records)
    if best is None:
        raise UsageError(f"search {results.search_run_id} has no successful evaluation to export yet")
    space = results.space
    config = dict(best.config)
    if space is not None:
        config = config_dict(validate_config(space, config))
    params = results.params
    return {
        "format": FORMAT,
        "config": config,
        "val_error": best.val_error,
        "budget": best.budget,
        "budget_unit": results.budget_unit,
        "trial_id": best.trial_id,
        "run_id": results.trial_runs.get(best.trial_id),
        "search_run_id": results.search_run_id,
        "experiment": results.experiment,
        "space_name": params.get("space", ""),
        "dataset": params.get("dataset", ""),
        "trainer": params.get("trainer", ""),
        "space": json.loads(results.space_json) if results.space_json else None,
    }


def export_best(uri: str, experiment: str, out: str | Path, search_run_id: str | None = None, *,
                force: bool = True) -> dict[str, Any]:
    """Write the best configuration to ``out`` atomically (temporary file + rename). The CLI
    passes ``force=False``: an existing file is then refused before MLflow is read."""
    from .validation import check_output_file, write_atomically

    path = check_output_file(str(out), force=force)
    payload = best_export(read_search(uri, experiment, search_run_id))
    write_atomically(path, json.dumps(payload, indent=2) + "\n")
    return payload


def load_export(path: str | Path) -> dict[str, Any]:
    """Read and check an exported configuration; ``UsageError`` on anything a user could get wrong."""
    from .validation import read_user_file

    try:
        payload = json.loads(read_user_file(str(path), "configuration file"))
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    except RecursionError:
        raise UsageError(f"{path} is nested too deeply to be a configuration") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("config"), dict):
        raise UsageError(f"{path} has no 'config' object; write it with `jointsearch export`")
    if payload.get("space"):
        space = from_json(json.dumps(payload["space"]), source=f"the space in {path}")
        payload["config"] = config_dict(validate_config(space, payload["config"]))
    return payload
