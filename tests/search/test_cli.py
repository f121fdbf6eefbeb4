"""The command line as a user runs it: a subprocess, exit codes, one-line errors, nothing written."""

import json
import os
import subprocess
import sys

import ConfigSpace
import pytest

CLI = [sys.executable, "-m", "jointsearch.search.cli"]


def run_cli(*args, cwd, timeout=300, env=None):
    return subprocess.run([*CLI, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "RAY_AUTH_MODE": "disabled", **(env or {})})


def assert_one_line_error(proc):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jointsearch: error:"), proc.stderr
    assert "Traceback" not in proc.stderr


def test_spaces_list_and_show_json_is_configspace_json(tmp_path):
    listed = run_cli("spaces", "list", cwd=tmp_path)
    assert listed.returncode == 0
    names = [line.split()[0] for line in listed.stdout.splitlines()]
    assert {"zela2018", "resnet18", "wrn28-10", "tiny"} <= set(names)
    shown = run_cli("spaces", "show", "zela2018", "--format", "json", cwd=tmp_path)
    space = ConfigSpace.ConfigurationSpace.from_serialized_dict(json.loads(shown.stdout))
    assert len(space) == 17
    text = run_cli("spaces", "show", "zela2018", cwd=tmp_path)
    assert "res_blocks_1" in text.stdout and text.returncode == 0


@pytest.mark.parametrize("args", [
    ["spaces", "show", "no-such-space"],
    ["search", "--space", "no-such-space"],
    ["search", "--space", "{bad}.json"],
    ["search", "--eta", "1"],
    ["search", "--min-budget", "10", "--max-budget", "1"],
    ["search", "--num-samples", "0"],
    ["search", "--budget-unit", "hours"],
    ["search", "--dataset", "imagenet"],
    ["search", "--dataset", "cifar10", "--data-dir", "nowhere"],
    ["search", "--trainer", "no_such_module_xyz:fn"],
    ["search", "--max-budget", "many"],
    ["export", "--experiment", "never-ran"],
    ["train", "--config", "missing.json", "--budget", "1"],
    ["frobnicate"],
])
def test_user_errors_are_one_line_exit_2_and_write_nothing(tmp_path, args):
    (tmp_path / "{bad}.json").write_text("{not json")
    before = set(os.listdir(tmp_path))
    proc = run_cli(*args, cwd=tmp_path, timeout=60)
    assert_one_line_error(proc)
    assert set(os.listdir(tmp_path)) == before  # no mlflow.db, no ray_results


def test_train_refuses_a_config_outside_its_space(tmp_path):
    from jointsearch import spaces

    space = spaces.get("tiny")
    config = dict(space.sample_configuration())
    config["learning_rate"] = 50.0
    path = tmp_path / "best.json"
    path.write_text(json.dumps({"config": config, "space": json.loads(spaces.to_json(space))}))
    proc = run_cli("train", "--config", path, "--budget", "1", cwd=tmp_path, timeout=60)
    assert_one_line_error(proc)
    assert "learning_rate" in proc.stderr


@pytest.mark.slow
def test_search_export_train_end_to_end_with_the_builtin_trainer(tmp_path):
    """The README's path, small: a real BOHB search of `tiny` on `digits`, export, retrain."""
    proc = run_cli("search", "--num-samples", "5", "--min-budget", "1", "--max-budget", "3", "--experiment", "e2e",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "best: val_error" in proc.stdout and (tmp_path / "mlflow.db").exists()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    exported = run_cli("export", "--mlflow-uri", uri, "--experiment", "e2e", "--out", "best.json", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["budget"] == 3 and best["dataset"] == "digits" and 0 <= best["val_error"] <= 1
    trained = run_cli("train", "--config", "best.json", "--budget", "2", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    result = json.loads(trained.stdout)
    assert 0 <= result["test_error"] <= 1 and 0 <= result["val_error"] <= 1 and result["budget"] == 2


@pytest.mark.slow
def test_a_users_own_trainer_and_space_file_from_the_cli(tmp_path, sqlite_uri):
    """`--trainer package.module:function` with a user's ConfigSpace JSON: the minimal contract
    (config, budget) -> error, from a module that lives outside jointsearch."""
    (tmp_path / "mytrainer.py").write_text(
        "def fit(config, budget):\n"
        "    return (config['x'] - 0.3) ** 2 + (0.1 if config['opt'] == 'adam' else 0.0) + 1.0 / (1 + budget)\n")
    space = ConfigSpace.ConfigurationSpace({"x": (0.0, 1.0), "opt": ["sgd", "adam"]})
    (tmp_path / "myspace.json").write_text(json.dumps(space.to_serialized_dict()))
    proc = run_cli("search", "--space", "myspace.json", "--trainer", "mytrainer:fit", "--num-samples", "6",
                   "--min-budget", "1", "--max-budget", "9", "--experiment", "mine", cwd=tmp_path,
                   env={"PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    exported = run_cli("export", "--mlflow-uri", sqlite_uri, "--experiment", "mine",
                       "--out", "best.json", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    best = json.loads((tmp_path / "best.json").read_text())
    assert set(best["config"]) == {"x", "opt"} and best["trainer"] == "mytrainer:fit" and best["budget"] == 9
    x, opt = best["config"]["x"], best["config"]["opt"]
    assert best["val_error"] == pytest.approx((x - 0.3) ** 2 + (0.1 if opt == "adam" else 0.0) + 0.1)


# --- the top level: every error class a user can cause is one line and exit 2 ------------------


class _FakeMlflowError(Exception):
    """Stands in for mlflow.exceptions.MlflowException: the CLI recognises store errors by module."""


_FakeMlflowError.__module__ = "mlflow.exceptions"


@pytest.mark.parametrize("error", [
    UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
    RecursionError("maximum recursion depth exceeded"),
    OverflowError("cannot convert float infinity to integer"),
    FileNotFoundError(2, "No such file or directory", "x.json"),
    PermissionError(13, "Permission denied", "/root/x"),
    IsADirectoryError(21, "Is a directory", "out"),
    _FakeMlflowError("RESOURCE_DOES_NOT_EXIST: Run 'abc' not found\nsecond line"),
], ids=lambda e: type(e).__name__)
def test_the_top_level_turns_each_user_error_class_into_one_line(monkeypatch, capsys, error):
    from jointsearch.search import cli

    def raising(args):
        raise error

    monkeypatch.setitem(cli.COMMANDS, "spaces", raising)
    assert cli.main(["spaces", "list"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("jointsearch: error:"), err


def test_a_bug_keeps_its_traceback(monkeypatch):
    from jointsearch.search import cli

    def buggy(args):
        raise KeyError("a bug, not a user's mistake")

    monkeypatch.setitem(cli.COMMANDS, "spaces", buggy)
    with pytest.raises(KeyError):
        cli.main(["spaces", "list"])
