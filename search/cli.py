"""The ``jointsearch`` command line.

Every mistake a user can make ends in one line on stderr and exit code 2, with no traceback
and nothing written; see ``main``.
"""

from __future__ import annotations

import os

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # no "creating tables" chatter on stderr

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from jointsearch.spaces import SpaceError

from .errors import UsageError
from .recipes import RECIPES, apply_recipe
from .settings import BUDGET_UNITS, FIDELITY_PROTOCOLS, SCHEDULERS, SearchSettings
from .trainer_api import BUILTIN_TRAINER


class _Parser(argparse.ArgumentParser):
    """argparse, but its errors are one line like every other user error."""

    def error(self, message: str):  # noqa: D401 - argparse's name
        raise UsageError(message)


def _add_search(sub) -> None:
    p = sub.add_parser("search", help="run a joint architecture + hyperparameter search")
    d = SearchSettings()
    p.add_argument("--space", default=d.space, help="registered space name or ConfigSpace JSON file (default: tiny)")
    p.add_argument("--dataset", default=d.dataset, help="digits (bundled), cifar10, synthetic")
    p.add_argument("--data-dir", default=None, help="where cifar10 lies (see `jointsearch data download`)")
    p.add_argument("--scheduler", default=d.scheduler, choices=SCHEDULERS)
    p.add_argument("--min-budget", type=float, default=d.min_budget)
    p.add_argument("--max-budget", type=float, default=d.max_budget)
    p.add_argument("--eta", type=float, default=d.eta, help="Hyperband reduction factor (> 1)")
    p.add_argument("--budget-unit", default=d.budget_unit, choices=BUDGET_UNITS)
    p.add_argument("--num-samples", type=int, default=d.num_samples, help="configurations to evaluate")
    p.add_argument("--cpus-per-trial", type=float, default=d.cpus_per_trial)
    p.add_argument("--gpus-per-trial", type=float, default=d.gpus_per_trial, help="fractions share a GPU")
    p.add_argument("--max-concurrent", type=int, default=d.max_concurrent, help="0: no limit")
    p.add_argument("--max-failures", type=int, default=d.max_failures, help="retries of a trial that raised")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--ray-address", default=None, help="an existing Ray cluster (default: local Ray)")
    p.add_argument("--storage-path", default=None, help="checkpoints and Tune results (shared on a cluster)")
    p.add_argument("--mlflow-uri", default=None, help="MLflow tracking URI (default: sqlite:///./mlflow.db)")
    p.add_argument("--experiment", default=d.experiment)
    p.add_argument("--trainer", default=BUILTIN_TRAINER, help="package.module:function to search instead")
    p.add_argument("--trainer-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="a keyword for the trainer (repeatable; VALUE is parsed as JSON when it can be)")
    p.add_argument("--resume", action="store_true",
                   help="continue the newest unfinished search of --experiment with its recorded settings")
    p.add_argument("--dashboard-every", type=int, default=d.dashboard_every,
                   help="evaluations between live rank-correlation updates in MLflow")
    # issue 13: the paper's network and protocol
    p.add_argument("--fidelity", default=d.fidelity, choices=FIDELITY_PROTOCOLS,
                   help="how rung budgets are trained: restarts (continued, SGDR restarts at the rungs), "
                        "scratch (the paper: every rung from scratch), continue (one SGDR, T0 = max/15)")
    p.add_argument("--max-params", type=int, default=d.max_params,
                   help="networks with more parameters are recorded infeasible, never trained; 0: no limit "
                        f"(default {d.max_params:,})")
    p.add_argument("--recipe", default=None, choices=tuple(RECIPES),
                   help="a published search's settings (zela2018: the paper's space, 400..10800 s, eta 3, "
                        "368 samples, cifar10); flags given with it override it")
    p.add_argument("--budget-scale", type=float, default=1.0,
                   help="multiply both budgets, e.g. GTX 1080 Ti throughput / your GPU's (README)")
    p.set_defaults(search_parser=p)


def _build_parser() -> _Parser:
    parser = _Parser(prog="jointsearch", description="Joint neural-architecture and hyperparameter search.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_search(sub)

    spaces = sub.add_parser("spaces", help="list or show search spaces")
    spaces_sub = spaces.add_subparsers(dest="spaces_command", required=True, parser_class=_Parser)
    spaces_sub.add_parser("list", help="the registered spaces")
    show = spaces_sub.add_parser("show", help="one space, as text or ConfigSpace JSON")
    show.add_argument("space", help="registered name or JSON file")
    show.add_argument("--format", choices=("text", "json"), default="text")

    export = sub.add_parser("export", help="write the best configuration of a search to JSON")
    export.add_argument("--mlflow-uri", default=None)
    export.add_argument("--experiment", required=True)
    export.add_argument("--search-run", default=None, help="a search's parent run id (default: the newest)")
    export.add_argument("--out", default="best.json")

    report = sub.add_parser("report", help="write a self-contained HTML report of a search (running or finished)")
    report.add_argument("--mlflow-uri", default=None)
    report.add_argument("--experiment", required=True)
    report.add_argument("--search-run", default=None, help="a search's parent run id (default: the newest)")
    report.add_argument("--out", default="report.html")

    train = sub.add_parser("train", help="retrain an exported configuration and report val/test error")
    train.add_argument("--config", required=True, help="a JSON file written by `jointsearch export`")
    train.add_argument("--budget", type=float, required=True)
    train.add_argument("--dataset", default=None, help="default: the one it was searched on")
    train.add_argument("--data-dir", default=None)
    train.add_argument("--budget-unit", choices=BUDGET_UNITS, default=None)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--trainer", default=None, help="default: the one it was searched with")

    data = sub.add_parser("data", help="data sets")
    data_sub = data.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    download = data_sub.add_parser("download", help="download a data set (verified by checksum)")
    download.add_argument("dataset", choices=("cifar10",))
    download.add_argument("--data-dir", default="data")
    return parser


def _cmd_search(args) -> int:
    from .api import recorded_settings, run_search

    if args.resume:
        from .settings import default_mlflow_uri

        settings = recorded_settings(args.mlflow_uri or default_mlflow_uri(), args.experiment)
        settings = dataclasses.replace(settings, mlflow_uri=args.mlflow_uri or settings.mlflow_uri,
                                       ray_address=args.ray_address or settings.ray_address)
        summary = run_search(settings, resume=True)
        return _print_summary(summary, settings)
    settings = SearchSettings(
        space=args.space, dataset=args.dataset, scheduler=args.scheduler, min_budget=args.min_budget,
        max_budget=args.max_budget, eta=args.eta, budget_unit=args.budget_unit, num_samples=args.num_samples,
        cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial, max_concurrent=args.max_concurrent,
        seed=args.seed, ray_address=args.ray_address, mlflow_uri=args.mlflow_uri, experiment=args.experiment,
        trainer=args.trainer, data_dir=args.data_dir, storage_path=args.storage_path, max_failures=args.max_failures,
        dashboard_every=args.dashboard_every, trainer_kwargs=_trainer_args(args.trainer_arg),
        fidelity=args.fidelity, max_params=args.max_params,
    )
    if args.recipe or args.budget_scale != 1.0:  # issue 13: the recipe fills in what was not given
        values = apply_recipe(dataclasses.asdict(settings), _explicit_flags(args), args.recipe, args.budget_scale)
        settings = SearchSettings(**values)
    return _print_summary(run_search(settings), settings)


def _explicit_flags(args) -> set[str]:
    """The option names (dests) the user typed on the command line, so a recipe overrides only
    the others: the search parser is parsed again with every default suppressed."""
    parser = args.search_parser
    saved = [(action, action.default) for action in parser._actions]
    try:
        for action in parser._actions:
            action.default = argparse.SUPPRESS
        given, _ = parser.parse_known_args(args.argv[1:] if args.argv and args.argv[0] == "search" else [])
    finally:
        for action, default in saved:
            action.default = default
    return set(vars(given)) - {"search_parser", "argv", "command"}


def _trainer_args(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--trainer-arg must look like KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _print_summary(summary, settings) -> int:
    unit = settings.budget_unit
    if summary.resumed:
        print(f"resumed search {summary.search_run_id}")
    print(f"search {summary.search_run_id} in experiment {summary.experiment!r}: {summary.n_trials} trials, "
          f"{summary.n_evaluations} evaluations at budgets "
          + ", ".join(f"{b:g} {unit} (x{n})" for b, n in summary.evaluations_per_budget.items())
          + f"; {summary.failed_trials} failed; {summary.wall_s:.0f} s")
    if summary.best is None:
        print("no configuration finished successfully")
        return 1
    best = summary.best
    print(f"best: val_error {best.val_error:.4f} at {best.budget:g} {unit} (trial {best.trial_id})")
    print(json.dumps(dict(best.config), indent=2, sort_keys=True))
    uri = summary.tracking_uri
    print(f"export it:  jointsearch export --mlflow-uri {uri} --experiment {summary.experiment} --out best.json")
    if uri.startswith("sqlite:"):
        print(f"browse it:  mlflow ui --backend-store-uri {uri}   (then open http://127.0.0.1:5000)")
    else:
        print(f"browse it:  open {uri}")
    return 0


def _cmd_spaces(args) -> int:
    from jointsearch import spaces

    if args.spaces_command == "list":
        for entry in spaces.entries():
            print(f"{entry.name:<13} {len(entry.factory()):>3} hyperparameters  {entry.description}")
        return 0
    space = spaces.load_space(args.space)
    print(spaces.to_json(space) if args.format == "json" else spaces.describe(space))
    return 0


def _cmd_export(args) -> int:
    from .export import export_best
    from .settings import default_mlflow_uri

    uri = args.mlflow_uri or default_mlflow_uri()
    payload = export_best(uri, args.experiment, args.out, args.search_run)
    print(f"wrote {args.out}: val_error {payload['val_error']:.4f} at {payload['budget']:g} "
          f"{payload['budget_unit']} (run {payload['run_id']})")
    return 0


def _cmd_report(args) -> int:
    from jointsearch.dashboards.report import write_report

    from .results import read_search
    from .settings import default_mlflow_uri

    results = read_search(args.mlflow_uri or default_mlflow_uri(), args.experiment, args.search_run)
    title = f"jointsearch: {results.experiment} / {results.params.get('space', '')} ({results.status.lower()})"
    write_report(args.out, results.records, title=title, space=results.space, settings=results.params)
    print(f"wrote {args.out}: {len(results.records)} evaluations of {len(results.trial_runs)} trials "
          f"from search {results.search_run_id}")
    return 0


def _cmd_train(args) -> int:
    from .api import retrain
    from .export import load_export

    payload = load_export(args.config)
    trainer = args.trainer or payload.get("trainer") or BUILTIN_TRAINER
    context = {"dataset": args.dataset or payload.get("dataset") or "digits", "data_dir": args.data_dir,
               "budget_unit": args.budget_unit or payload.get("budget_unit") or "epochs", "seed": args.seed}
    if args.budget <= 0:
        raise UsageError(f"--budget must be positive, got {args.budget}")
    try:
        result = retrain(payload["config"], args.budget, trainer=trainer, **context)
    except ValueError as exc:  # DatasetError and friends from the trainer: a user's input
        if type(exc).__name__ in ("DatasetError",):
            raise UsageError(str(exc)) from None
        raise
    shown = {k: result[k] for k in ("val_error", "test_error", "budget", "budget_unit", "cost_s", "status",
                                    "n_params") if k in result}
    print(json.dumps(shown, indent=2))
    return 0


def _cmd_data(args) -> int:
    from jointsearch.trainers.data import DatasetError, download_cifar10

    try:
        path = download_cifar10(Path(args.data_dir))
    except DatasetError as exc:
        raise UsageError(str(exc)) from None
    print(f"CIFAR-10 ready in {path}")
    return 0


COMMANDS = {"search": _cmd_search, "spaces": _cmd_spaces, "export": _cmd_export, "report": _cmd_report,
            "train": _cmd_train,
            "data": _cmd_data}


def main(argv: list[str] | None = None) -> int:
    try:
        args = _build_parser().parse_args(argv)
        args.argv = list(sys.argv[1:] if argv is None else argv)  # which flags were given (--recipe)
        return COMMANDS[args.command](args)
    except (UsageError, SpaceError) as exc:
        print(f"jointsearch: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("jointsearch: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `jointsearch spaces list | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
