"""Hostile and careless input to every subcommand: one line on stderr, exit 2, no traceback, and
the MLflow store (and every other file in the working directory) byte for byte unchanged.

The table runs ``main()`` in-process (fast: no interpreter start per case); Ray is never started
in-process, so a case that would reach it fails loudly instead of starting a search. The few
cases that can only be refused once Ray has answered (a GPU where there is none) run as one
real subprocess each, at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import ConfigSpace as CS
import pytest

from jointsearch.search.cli import main

EXP = "fuzz"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again once the socket is: nobody listens there


def _space_json(space: CS.ConfigurationSpace) -> str:
    return json.dumps(space.to_serialized_dict())


def _make_store(world: Path) -> None:
    """A real SQLite store holding one finished search of the `tiny` space with one evaluation."""
    import mlflow
    from mlflow.entities import Metric, Param, RunTag

    from jointsearch import spaces

    uri = f"sqlite:///{world / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    exp = client.create_experiment(EXP, artifact_location=(world / "mlartifacts").as_uri())
    space = spaces.get("tiny")
    parent = client.create_run(exp, tags={"jointsearch.kind": "search", "jointsearch.step_scale": "1",
                                          "jointsearch.budget_unit": "epochs"}).info.run_id
    client.log_batch(parent, params=[Param("space", "tiny"), Param("trainer", "jointsearch.trainers.entry:evaluate")])
    client.log_text(parent, spaces.to_json(space), "space.json")
    client.log_text(parent, json.dumps({"space": "tiny", "experiment": EXP}), "settings.json")
    config = dict(space.sample_configuration())
    child = client.create_run(exp, tags={"mlflow.parentRunId": parent, "jointsearch.kind": "trial",
                                         "jointsearch.trial_id": "t1", "final_status": "completed"}).info.run_id
    client.log_batch(child, params=[Param(k, str(v)) for k, v in config.items()],
                     metrics=[Metric("val_error", 0.25, 0, 3)], tags=[RunTag("state", "completed")])
    client.set_terminated(child, "FINISHED")
    client.set_terminated(parent, "FINISHED")
    (world / "child_run_id").write_text(child)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from jointsearch import spaces

    w = tmp_path_factory.mktemp("fuzz")
    _make_store(w)
    tiny = spaces.get("tiny")
    tiny_json = json.loads(spaces.to_json(tiny))
    config = {k: (v.item() if hasattr(v, "item") else v) for k, v in dict(tiny.sample_configuration()).items()}
    files = {
        "bad.json": "{not json",
        "empty.json": "",
        "deep.json": "[" * 100_000,
        "list.json": "[1, 2]",
        "space0.json": _space_json(CS.ConfigurationSpace()),
        "space150.json": _space_json(CS.ConfigurationSpace({f"x{i}": (0.0, 1.0) for i in range(150)})),
        "slash.json": _space_json(CS.ConfigurationSpace({"a/../b": (0.0, 1.0)})),
        "bang.json": _space_json(CS.ConfigurationSpace({"lr!": (0.0, 1.0)})),
        "longname.json": _space_json(CS.ConfigurationSpace({"x" * 300: (0.0, 1.0)})),
        "leadingslash.json": _space_json(CS.ConfigurationSpace({"/lr": (0.0, 1.0)})),
        "syntax_trainer.py": "def fit(:\n",
        "raising_trainer.py": "raise RuntimeError('boom while importing')\n",
        "exiting_trainer.py": "import sys\nsys.exit(3)\n",
        "plain_trainer.py": "X = 1\n",
        "afile": "just a file\n",
        "best.json": "{}\n",
        "report.html": "<html></html>\n",
        "cfg_trainer.json": json.dumps({"config": config, "space": tiny_json, "trainer": "builtins:print"}),
        "cfg_nospace.json": json.dumps({"config": config}),
        "cfg_noconfig.json": json.dumps({"space": tiny_json}),
        "cfg_outside.json": json.dumps({"config": {**config, "learning_rate": 50.0}, "space": tiny_json}),
        "cfg_badspace.json": json.dumps({"config": config, "space": {"hyperparameters": "nope"}}),
        "cfg_extra.json": json.dumps({"config": {**config, "surprise": 1}, "space": tiny_json}),
        "cfg_dataset.json": json.dumps({"config": config, "space": tiny_json, "dataset": ["digits"]}),
        "cfg_ok.json": json.dumps({"config": config, "space": tiny_json}),
    }
    for name, text in files.items():
        (w / name).write_text(text)
    (w / "nonutf8.json").write_bytes(b'{"hyperparameters": [\xff\xfe]}')
    (w / "big.json").write_bytes(b'{"hyperparameters": [' + b" " * (11 * 2**20) + b"]}")
    (w / "adir.json").mkdir()
    (w / "adir").mkdir()
    (w / "notsqlite.db").write_text("this is not a database\n")
    return w


def _cases() -> list[tuple[str, list[str]]]:
    """(id, argv); {W} is the working directory, {PORT} a closed port, {CHILD} a trial run id."""
    s = ["search"]
    ok_cfg = ["--config", "cfg_ok.json", "--budget", "1"]
    rows: list[tuple[str, list[str]]] = [
        # no or unknown command, argparse mistakes
        ("no-command", []), ("unknown-command", ["frobnicate"]), ("unknown-flag", [*s, "--frob"]),
        ("spaces-no-sub", ["spaces"]), ("spaces-list-extra", ["spaces", "list", "extra"]),
        ("data-no-sub", ["data"]),
        # spaces show
        ("show-unknown", ["spaces", "show", "no-such-space"]), ("show-bad-json", ["spaces", "show", "bad.json"]),
        ("show-empty", ["spaces", "show", "empty.json"]), ("show-deep", ["spaces", "show", "deep.json"]),
        ("show-nonutf8", ["spaces", "show", "nonutf8.json"]), ("show-big", ["spaces", "show", "big.json"]),
        ("show-dir", ["spaces", "show", "adir.json"]), ("show-list", ["spaces", "show", "list.json"]),
        ("show-format", ["spaces", "show", "tiny", "--format", "xml"]),
        # search: spaces
        ("space-unknown", [*s, "--space", "no-such"]), ("space-bad-json", [*s, "--space", "bad.json"]),
        ("space-nonutf8", [*s, "--space", "nonutf8.json"]), ("space-deep", [*s, "--space", "deep.json"]),
        ("space-big", [*s, "--space", "big.json"]), ("space-dir", [*s, "--space", "adir.json"]),
        ("space-empty-file", [*s, "--space", "empty.json"]), ("space-0-hps", [*s, "--space", "space0.json"]),
        ("space-150-hps", [*s, "--space", "space150.json"]), ("hp-name-dotdot", [*s, "--space", "slash.json"]),
        ("hp-name-bang", [*s, "--space", "bang.json"]), ("hp-name-300", [*s, "--space", "longname.json"]),
        ("hp-name-leading-slash", [*s, "--space", "leadingslash.json"]),
        ("space-missing-file", [*s, "--space", "missing.json"]),
        # search: budgets and eta
        ("eta-1", [*s, "--eta", "1"]), ("eta-almost-1", [*s, "--eta", "1.000000000001"]),
        ("eta-nan", [*s, "--eta", "nan"]), ("eta-inf", [*s, "--eta", "inf"]), ("eta-neg", [*s, "--eta", "-3"]),
        ("eta-0", [*s, "--eta", "0"]), ("eta-text", [*s, "--eta", "three"]),
        ("min-0", [*s, "--min-budget", "0"]), ("min-neg", [*s, "--min-budget", "-1"]),
        ("min-nan", [*s, "--min-budget", "nan"]), ("min-inf", [*s, "--min-budget", "inf"]),
        ("huge-ratio", [*s, "--min-budget", "1e-300", "--max-budget", "1e300"]),
        ("max-nan", [*s, "--max-budget", "nan"]), ("max-inf", [*s, "--max-budget", "inf"]),
        ("max-below-min", [*s, "--min-budget", "10", "--max-budget", "1"]),
        ("max-text", [*s, "--max-budget", "many"]),
        # search: counts and resources
        ("samples-0", [*s, "--num-samples", "0"]), ("samples-neg", [*s, "--num-samples", "-5"]),
        ("samples-huge", [*s, "--num-samples", "1000000000000"]), ("samples-float", [*s, "--num-samples", "2.5"]),
        ("cpus-nan", [*s, "--cpus-per-trial", "nan"]), ("cpus-inf", [*s, "--cpus-per-trial", "inf"]),
        ("cpus-0", [*s, "--cpus-per-trial", "0"]), ("cpus-neg", [*s, "--cpus-per-trial", "-1"]),
        ("cpus-1e308", [*s, "--cpus-per-trial", "1e308"]),
        ("gpus-inf", [*s, "--gpus-per-trial", "inf"]), ("gpus-nan", [*s, "--gpus-per-trial", "nan"]),
        ("gpus-neg", [*s, "--gpus-per-trial", "-1"]), ("gpus-1.5", [*s, "--gpus-per-trial", "1.5"]),
        ("gpus-1e300", [*s, "--gpus-per-trial", "1e300"]),
        ("concurrent-neg", [*s, "--max-concurrent", "-1"]), ("failures-neg", [*s, "--max-failures", "-1"]),
        ("dashboard-0", [*s, "--dashboard-every", "0"]), ("seed-neg", [*s, "--seed", "-1"]),
        ("seed-huge", [*s, "--seed", "99999999999999999999"]),
        ("eval-timeout-neg", [*s, "--eval-timeout", "-1"]), ("eval-timeout-nan", [*s, "--eval-timeout", "nan"]),
        ("keep-checkpoints", [*s, "--keep-checkpoints", "some"]),
        ("adaptive-budgets-maybe", [*s, "--adaptive-budgets", "maybe"]),
        ("adaptive-budgets-on-asha", [*s, "--adaptive-budgets", "on", "--preset", "asha"]),
        # search: names and choices
        ("experiment-empty", [*s, "--experiment", ""]), ("experiment-blank", [*s, "--experiment", "   "]),
        ("experiment-600", [*s, "--experiment", "e" * 600]), ("experiment-control", [*s, "--experiment", "a\x01b"]),
        ("unit-hours", [*s, "--budget-unit", "hours"]), ("dataset-imagenet", [*s, "--dataset", "imagenet"]),
        ("cifar-missing", [*s, "--dataset", "cifar10", "--data-dir", "nowhere"]),
        ("scheduler-nope", [*s, "--scheduler", "nope"]),
        # search: trainers
        ("trainer-no-module", [*s, "--trainer", "no_such_module_xyz:fn"]),
        ("trainer-no-colon", [*s, "--trainer", "plain_trainer"]),
        ("trainer-not-callable", [*s, "--trainer", "plain_trainer:X"]),
        ("trainer-missing-attr", [*s, "--trainer", "plain_trainer:nothing"]),
        ("trainer-syntax-error", [*s, "--trainer", "syntax_trainer:fit"]),
        ("trainer-raises-on-import", [*s, "--trainer", "raising_trainer:fit"]),
        ("trainer-exits-on-import", [*s, "--trainer", "exiting_trainer:fit"]),
        ("trainer-arg-no-equals", [*s, "--trainer-arg", "noequals"]),
        ("trainer-arg-bad-key", [*s, "--trainer-arg", "1bad=3"]),
        # search: where it writes and what it joins
        ("uri-garbage", [*s, "--mlflow-uri", "garbage"]), ("uri-foo-scheme", [*s, "--mlflow-uri", "foo://bar"]),
        ("uri-closed-port", [*s, "--mlflow-uri", "http://127.0.0.1:{PORT}"]),
        ("uri-sqlite-no-dir", [*s, "--mlflow-uri", "sqlite:///{W}/no/such/dir/x.db"]),
        ("uri-sqlite-dir", [*s, "--mlflow-uri", "sqlite:///{W}/adir"]),
        ("uri-sqlite-not-db", [*s, "--mlflow-uri", "sqlite:///{W}/notsqlite.db"]),
        ("uri-empty", [*s, "--mlflow-uri", " "]), ("uri-relative-sqlite", [*s, "--mlflow-uri", "sqlite://x.db"]),
        ("ray-closed-port", [*s, "--ray-address", "127.0.0.1:{PORT}"]),
        ("ray-nonsense", [*s, "--ray-address", "nonsense"]), ("ray-bad-port", [*s, "--ray-address", "host:port"]),
        ("resume-never-ran", [*s, "--resume", "--experiment", "never-ran"]),
        ("resume-finished", [*s, "--resume", "--experiment", EXP]),
        ("resume-no-store", [*s, "--resume", "--mlflow-uri", "sqlite:///{W}/adir/none.db"]),
        # search: objectives and constraints (issue 15)
        ("objectives-none", [*s, "--objectives"]), ("objectives-no-val-error", [*s, "--objectives", "n_params"]),
        ("objectives-dup", [*s, "--objectives", "val_error", "val_error"]),
        ("objectives-direction", [*s, "--objectives", "val_error", "n_params:smaller"]),
        ("objectives-bad-name", [*s, "--objectives", "val_error", "1x"]),
        ("objectives-val-error-max", [*s, "--objectives", "val_error:max", "n_params"]),
        ("objectives-preset-tpe", [*s, "--objectives", "val_error", "n_params", "--preset", "tpe"]),
        ("objectives-preset-hyperband", [*s, "--objectives", "val_error", "n_params", "--preset", "hyperband"]),
        ("constraint-no-op", [*s, "--constraint", "n_params"]), ("constraint-eq", [*s, "--constraint", "n_params=5"]),
        ("constraint-nan", [*s, "--constraint", "n_params<=nan"]), ("constraint-text", [*s, "--constraint", "a<=b"]),
        ("constraint-empty-range", [*s, "--constraint", "n_params>100", "--constraint", "n_params<10"]),
        ("constraint-hpbandster", [*s, "--constraint", "n_params<=1e6", "--preset", "hpbandster"]),
        # export
        ("export-no-experiment-flag", ["export"]),
        ("export-pick-unknown", ["export", "--experiment", EXP, "--pick", "best", "--out", "n.json"]),
        ("export-pick-no-metric", ["export", "--experiment", EXP, "--pick", "min:", "--out", "n.json"]),
        ("export-pick-bad-constraint", ["export", "--experiment", EXP, "--pick", "min:val_error,n_params~5",
                                        "--out", "n.json"]),
        ("export-pick-unsatisfiable", ["export", "--experiment", EXP, "--pick", "min:val_error,val_error<0",
                                       "--out", "n.json"]),
        ("export-pick-unknown-metric", ["export", "--experiment", EXP, "--pick", "min:latency_ms", "--out", "n.json"]),
        ("export-never-ran", ["export", "--experiment", "never-ran", "--out", "new.json"]),
        ("export-overwrite", ["export", "--experiment", EXP, "--out", "best.json"]),
        ("export-out-dir", ["export", "--experiment", EXP, "--out", "adir"]),
        ("export-out-no-parent", ["export", "--experiment", EXP, "--out", "no/dir/x.json"]),
        ("export-out-empty", ["export", "--experiment", EXP, "--out", ""]),
        ("export-uri-garbage", ["export", "--experiment", EXP, "--mlflow-uri", "garbage", "--out", "n.json"]),
        ("export-uri-foo", ["export", "--experiment", EXP, "--mlflow-uri", "foo://bar", "--out", "n.json"]),
        ("export-uri-closed", ["export", "--experiment", EXP, "--mlflow-uri", "http://127.0.0.1:{PORT}",
                               "--out", "n.json"]),
        ("export-uri-missing-db", ["export", "--experiment", EXP, "--mlflow-uri", "sqlite:///{W}/missing.db",
                                   "--out", "n.json"]),
        ("export-search-run-unknown", ["export", "--experiment", EXP, "--search-run", "0" * 32, "--out", "n.json"]),
        ("export-search-run-trial", ["export", "--experiment", EXP, "--search-run", "{CHILD}", "--out", "n.json"]),
        # report
        ("report-never-ran", ["report", "--experiment", "never-ran", "--out", "new.html"]),
        ("report-overwrite", ["report", "--experiment", EXP, "--out", "report.html"]),
        ("report-out-dir", ["report", "--experiment", EXP, "--out", "adir"]),
        ("report-out-no-parent", ["report", "--experiment", EXP, "--out", "no/dir/r.html"]),
        ("report-uri-garbage", ["report", "--experiment", EXP, "--mlflow-uri", "garbage", "--out", "n.html"]),
        ("report-uri-closed", ["report", "--experiment", EXP, "--mlflow-uri", "http://127.0.0.1:{PORT}",
                               "--out", "n.html"]),
        ("report-uri-not-db", ["report", "--experiment", EXP, "--mlflow-uri", "sqlite:///{W}/notsqlite.db",
                               "--out", "n.html"]),
        # train
        ("train-missing", ["train", "--config", "missing.json", "--budget", "1"]),
        ("train-dir", ["train", "--config", "adir.json", "--budget", "1"]),
        ("train-bad-json", ["train", "--config", "bad.json", "--budget", "1"]),
        ("train-nonutf8", ["train", "--config", "nonutf8.json", "--budget", "1"]),
        ("train-deep", ["train", "--config", "deep.json", "--budget", "1"]),
        ("train-big", ["train", "--config", "big.json", "--budget", "1"]),
        ("train-list", ["train", "--config", "list.json", "--budget", "1"]),
        ("train-no-config-key", ["train", "--config", "cfg_noconfig.json", "--budget", "1"]),
        ("train-json-names-trainer", ["train", "--config", "cfg_trainer.json", "--budget", "1"]),
        ("train-no-space", ["train", "--config", "cfg_nospace.json", "--budget", "1"]),
        ("train-no-space-wrong-space", ["train", "--config", "cfg_nospace.json", "--budget", "1", "--space",
                                        "space150.json"]),
        ("train-outside-space", ["train", "--config", "cfg_outside.json", "--budget", "1"]),
        ("train-bad-space", ["train", "--config", "cfg_badspace.json", "--budget", "1"]),
        ("train-extra-key", ["train", "--config", "cfg_extra.json", "--budget", "1"]),
        ("train-dataset-not-string", ["train", "--config", "cfg_dataset.json", "--budget", "1"]),
        ("train-budget-nan", ["train", *ok_cfg[:2], "--budget", "nan"]),
        ("train-budget-inf", ["train", *ok_cfg[:2], "--budget", "inf"]),
        ("train-budget-0", ["train", *ok_cfg[:2], "--budget", "0"]),
        ("train-budget-neg", ["train", *ok_cfg[:2], "--budget", "-2"]),
        ("train-budget-text", ["train", *ok_cfg[:2], "--budget", "lots"]),
        ("train-data-dir-file", ["train", *ok_cfg, "--data-dir", "afile"]),
        ("train-dataset-unknown", ["train", *ok_cfg, "--dataset", "imagenet"]),
        ("train-seed-neg", ["train", *ok_cfg, "--seed", "-1"]),
        ("train-trainer-bad", ["train", *ok_cfg, "--trainer", "raising_trainer:fit"]),
        ("train-unit", ["train", *ok_cfg, "--budget-unit", "hours"]),
        # data
        ("data-dir-file", ["data", "download", "cifar10", "--data-dir", "afile"]),
        ("data-dir-no-parent", ["data", "download", "cifar10", "--data-dir", "no/such/parent/data"]),
        ("data-dir-empty", ["data", "download", "cifar10", "--data-dir", ""]),
        ("data-unknown-set", ["data", "download", "mnist"]),
        ("data-no-set", ["data", "download"]),
    ]
    return rows


CASES = _cases()


def _snapshot(world: Path) -> dict[str, str]:
    out = {}
    for base, dirs, files in os.walk(world):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            path = Path(base, name)
            out[str(path.relative_to(world))] = hashlib.sha1(path.read_bytes()).hexdigest()
        for name in dirs:
            out[str(Path(base, name).relative_to(world)) + "/"] = "dir"
    return out


def test_the_table_is_large_and_covers_every_subcommand():
    assert len(CASES) >= 100 and len({case_id for case_id, _ in CASES}) == len(CASES)
    commands = {argv[0] for _, argv in CASES if argv}
    assert {"search", "spaces", "export", "report", "train", "data"} <= commands


@pytest.mark.parametrize("argv", [argv for _, argv in CASES], ids=[case_id for case_id, _ in CASES])
def test_hostile_input_is_one_line_exit_2_and_changes_nothing(argv, world, monkeypatch, capsys):
    import jointsearch.search.ray_tune as ray_tune

    def never(*args, **kwargs):
        raise AssertionError("this input reached Ray: it should have been refused before")

    monkeypatch.setattr(ray_tune, "init_ray", never)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.chdir(world)
    monkeypatch.syspath_prepend(str(world))
    monkeypatch.setenv("JOINTSEARCH_CONNECT_TIMEOUT_S", "2")
    port = str(_closed_port())
    child = (world / "child_run_id").read_text()
    argv = [a.replace("{W}", str(world)).replace("{PORT}", port).replace("{CHILD}", child) for a in argv]
    before = _snapshot(world)
    code = main(argv)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, (code, err[-2000:])
    assert len(lines) == 1 and lines[0].startswith("jointsearch: error:"), err[-2000:]
    assert "Traceback" not in err and out == ""
    assert _snapshot(world) == before  # the store byte for byte, and no new file or folder


@pytest.mark.slow
@pytest.mark.parametrize("args", [["--gpus-per-trial", "0.3"], ["--cpus-per-trial", "512"]],
                         ids=["gpu-where-none", "more-cpus-than-any-node"])
def test_resources_ray_does_not_have_are_refused_before_anything_is_written(tmp_path, args):
    """These need Ray's answer, so a real CLI process: it must end at once, not wait for resources."""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run([sys.executable, "-m", "jointsearch.search.cli", "search", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=180)
    lines = [line for line in proc.stderr.strip().splitlines() if line.startswith("jointsearch: error:")]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert os.listdir(tmp_path) == []  # no mlflow.db, no ray_results
