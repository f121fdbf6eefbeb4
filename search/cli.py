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
import typing
from pathlib import Path
from typing import Any

from jointsearch.spaces import SpaceError

from .errors import UsageError
from .interrupt import SearchInterrupted
from .recipes import RECIPES, apply_recipe
from .settings import BUDGET_UNITS, SearchSettings
from .trainer_api import BUILTIN_RETRAINER, BUILTIN_TRAINER, resolve


class _Parser(argparse.ArgumentParser):
    """argparse, but its errors are one line like every other user error."""

    def error(self, message: str):  # noqa: D401 - argparse's name
        raise UsageError(message)


class _AppendToTuple(argparse.Action):
    """A repeatable flag whose default is an immutable tuple (argparse's "append" mutates its default)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, tuple(getattr(namespace, self.dest) or ()) + (values,))


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _setting_type(annotation: Any) -> type:
    """The argparse type of a settings field: the non-None member of ``X | None``."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return args[0] if args else annotation


def search_flags() -> list[dataclasses.Field]:
    """The SearchSettings fields that are command-line flags, in declaration order."""
    return [f for f in dataclasses.fields(SearchSettings) if f.metadata.get("cli", False)]


def _add_search(sub) -> None:
    """The search flags come from SearchSettings' field declarations (settings.setting): name, type,
    default, choices and help are written once, there. Only flags that are not settings are here."""
    p = sub.add_parser("search", help="run a joint architecture + hyperparameter search")
    d = SearchSettings()
    hints = typing.get_type_hints(SearchSettings)
    for f in search_flags():
        meta = f.metadata
        default = getattr(d, f.name)
        shown = f" (default: {default})" if default not in (None, "") else ""
        kind = meta["type"] or _setting_type(hints[f.name])
        extra: dict[str, Any] = {}
        if meta.get("nargs") or meta.get("action"):  # a tuple of strings: --objectives A B, --constraint X (x2)
            kind = str
            extra = {"nargs": meta["nargs"]} if meta.get("nargs") else {"action": _AppendToTuple}
            shown = f" (default: {' '.join(default)})" if default else ""
        p.add_argument(*(meta["flags"] or (_flag(f.name),)), dest=f.name, type=kind, default=default,
                       choices=meta["choices"], metavar=meta["metavar"], help=meta["help"] + shown, **extra)
    p.add_argument("--trainer-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="a keyword for the trainer (repeatable; VALUE is parsed as JSON when it can be)")
    p.add_argument("--resume", action="store_true",
                   help="continue the newest unfinished search of --experiment with its recorded settings")
    # issue 13: the paper's recipe, and its wall-clock budgets on another GPU
    p.add_argument("--recipe", default=None, choices=tuple(RECIPES),
                   help="a published search's settings (zela2018: the paper's space, 400..10800 s, eta 3, "
                        "368 samples, cifar10); flags given with it override it")
    p.add_argument("--budget-scale", type=float, default=1.0,
                   help="multiply both budgets, e.g. GTX 1080 Ti throughput / your GPU's (README)")
    # robustness (issue 12): taking over a search whose heartbeat is not stale yet
    p.add_argument("--force", action="store_true",
                   help="with --resume: take over a search on another host whose heartbeat is not stale yet "
                        "(a live search on this host is never taken over)")
    # Issue 15 (progress on screen)
    p.add_argument("--quiet", action="store_true",
                   help="no progress line on stderr while the search runs (the summary is still printed)")
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
    export.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    export.add_argument("--pick", default=None, metavar="RULE",
                        help="which configuration: min:METRIC, max:METRIC or knee[:METRIC] (the knee of the front "
                             "of val_error against METRIC), then optional ,METRIC<=VALUE constraints, e.g. "
                             "min:val_error,n_params<=5e6 (default: min:val_error)")

    report = sub.add_parser("report", help="write a self-contained HTML report of a search (running or finished)")
    report.add_argument("--mlflow-uri", default=None)
    report.add_argument("--experiment", required=True)
    report.add_argument("--search-run", default=None, help="a search's parent run id (default: the newest)")
    report.add_argument("--out", default="report.html")
    report.add_argument("--force", action="store_true", help="overwrite --out if it exists")

    train = sub.add_parser("train", help="retrain an exported configuration and report val/test error")
    train.add_argument("--config", required=True, help="a JSON file written by `jointsearch export`")
    train.add_argument("--budget", type=float, required=True)
    train.add_argument("--dataset", default=None, help="default: the one it was searched on")
    train.add_argument("--data-dir", default=None)
    train.add_argument("--budget-unit", choices=BUDGET_UNITS, default=None)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--trainer", default=None,
                       help="package.module:function to retrain with (default: the built-in trainer; a trainer "
                            "named in the configuration file runs only when given here too)")
    train.add_argument("--space", default=None,
                       help="the space to check a configuration file without its own space against")
    # Issue 15: the retrained network in the MLflow Model Registry.
    train.add_argument("--register-model", default=None, metavar="NAME",
                       help="log the retrained network as an MLflow PyTorch model and register a new version of NAME")
    train.add_argument("--mlflow-uri", default=None, help="where to register it (default: sqlite:///./mlflow.db)")
    train.add_argument("--experiment", default=None, help="the run's experiment (default: the search's)")

    data = sub.add_parser("data", help="data sets")
    data_sub = data.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    download = data_sub.add_parser("download", help="download a data set (verified by checksum)")
    download.add_argument("dataset", choices=("cifar10",))
    download.add_argument("--data-dir", default="data")
    return parser


def _cmd_search(args) -> int:
    from .api import recorded_settings, run_search

    if args.resume:
        from .settings import resolve_tracking_uri

        uri = resolve_tracking_uri(args.mlflow_uri, must_exist=True)
        settings = recorded_settings(uri, args.experiment)
        settings = dataclasses.replace(settings, mlflow_uri=args.mlflow_uri or settings.mlflow_uri,
                                       ray_address=args.ray_address or settings.ray_address)
        summary = run_search(settings, resume=True, force=args.force, progress=not args.quiet)
        return _print_summary(summary, settings)
    settings = SearchSettings(**{f.name: getattr(args, f.name) for f in search_flags()},
                              trainer_kwargs=_trainer_args(args.trainer_arg))
    if args.recipe or args.budget_scale != 1.0:  # issue 13: the recipe fills in what was not given
        values = apply_recipe(dataclasses.asdict(settings), _explicit_flags(args), args.recipe, args.budget_scale)
        settings = SearchSettings(**values)
    return _print_summary(run_search(settings, force=args.force, progress=not args.quiet), settings)


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
    from .mlflow_view import runs_url
    from .tracking import client_for

    page = runs_url("http://127.0.0.1:5000" if uri.startswith("sqlite:") else uri,
                    client_for(uri).get_experiment_by_name(summary.experiment).experiment_id)
    if uri.startswith("sqlite:"):
        print(f"browse it:  mlflow ui --backend-store-uri {uri}   (then open {page})")
    else:
        print(f"browse it:  open {page}")
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
    from .export import export_best, parse_pick
    from .settings import resolve_tracking_uri

    if args.pick is not None:
        parse_pick(args.pick)  # a bad rule costs nothing, not even opening the store
    uri = resolve_tracking_uri(args.mlflow_uri, must_exist=True)
    payload = export_best(uri, args.experiment, args.out, args.search_run, force=args.force, pick_rule=args.pick)
    print(f"wrote {args.out}: val_error {payload['val_error']:.4f} at {payload['budget']:g} "
          f"{payload['budget_unit']} (run {payload['run_id']}; picked by {payload['pick']})")
    return 0


def _cmd_report(args) -> int:
    from jointsearch.dashboards.report import write_report

    from .results import read_search
    from .settings import resolve_tracking_uri
    from .validation import check_output_file

    uri = resolve_tracking_uri(args.mlflow_uri, must_exist=True)
    check_output_file(args.out, force=args.force)
    results = read_search(uri, args.experiment, args.search_run)
    title = f"jointsearch: {results.experiment} / {results.params.get('space', '')} ({results.status.lower()})"
    from .adaptive_budgets import read_decisions
    from .tracking import client_for

    decisions = read_decisions(client_for(uri), results.search_run_id)  # issue 14
    write_report(args.out, results.records, title=title, space=results.space, settings=results.params,
                 budget_decisions=decisions)
    print(f"wrote {args.out}: {len(results.records)} evaluations of {len(results.trial_runs)} trials "
          f"from search {results.search_run_id}")
    return 0


def _cmd_train(args) -> int:
    """Retrain an exported configuration. The file is data, never code: its ``trainer`` runs only
    when the user names the same trainer with ``--trainer``, and a configuration without its own
    space is checked against ``--space`` (or refused)."""
    from .api import retrain
    from .export import load_export
    from .validation import check_budget, check_data_dir

    check_budget(args.budget)
    check_data_dir(args.data_dir)
    payload = load_export(args.config)
    named = payload.get("trainer") or ""
    if named and not isinstance(named, str):
        raise UsageError(f"{args.config}: 'trainer' must be a string")
    builtin = (BUILTIN_TRAINER, "")
    if args.trainer:
        trainer = args.trainer
    elif named not in builtin:
        raise UsageError(f"{args.config} names the trainer {named[:200]!r}; a configuration file does not choose "
                         f"code to run: pass --trainer {named[:200]} to confirm it")
    else:
        trainer = BUILTIN_TRAINER
    if not payload.get("space"):
        if not args.space:
            raise UsageError(f"{args.config} has no 'space' to check its configuration against; pass --space NAME")
        from jointsearch.spaces import config_dict, load_space, validate_config

        payload["config"] = config_dict(validate_config(load_space(args.space), payload["config"]))
    for key in ("dataset", "budget_unit"):
        if payload.get(key) is not None and not isinstance(payload.get(key), str):
            raise UsageError(f"{args.config}: {key!r} must be a string")
    context = {"dataset": args.dataset or payload.get("dataset") or "digits", "data_dir": args.data_dir,
               "budget_unit": args.budget_unit or payload.get("budget_unit") or "epochs", "seed": args.seed}
    from .settings import BUDGET_UNITS, DATASETS

    if trainer == BUILTIN_TRAINER:
        if context["dataset"] not in DATASETS:
            raise UsageError(f"unknown dataset {context['dataset'][:80]!r}; choose from {', '.join(DATASETS)}")
        if context["budget_unit"] not in BUDGET_UNITS:
            raise UsageError(f"unknown budget unit {context['budget_unit'][:80]!r}; choose from "
                             f"{', '.join(BUDGET_UNITS)}")
    else:
        resolve(trainer)
    if not 0 <= args.seed <= 2**31 - 1:
        raise UsageError(f"--seed must be 0 to {2**31 - 1}, got {args.seed}")
    if args.budget <= 0:
        raise UsageError(f"--budget must be positive, got {args.budget}")
    registered = None
    if args.register_model is not None and not args.register_model.strip():
        raise UsageError("--register-model needs a model name")
    if args.register_model and trainer not in (BUILTIN_TRAINER, BUILTIN_RETRAINER):
        raise UsageError(f"--register-model needs the built-in trainer; {trainer} returns no network")
    try:
        if args.register_model:
            from .registry_model import retrain_and_register
            from .settings import resolve_tracking_uri

            # an explicit store must exist (a mistyped SQLite path must not become a new store)
            uri = resolve_tracking_uri(args.mlflow_uri, must_exist=bool(args.mlflow_uri))
            result, registered = retrain_and_register(uri, args.register_model.strip(), payload, args.budget,
                                                      context, experiment=args.experiment)
        else:
            result = retrain(payload["config"], args.budget, trainer=trainer, **context)
    except ValueError as exc:  # DatasetError and friends from the trainer: a user's input
        if type(exc).__name__ in ("DatasetError",):
            raise UsageError(str(exc)) from None
        raise
    shown = {k: result[k] for k in ("val_error", "test_error", "budget", "budget_unit", "cost_s", "status",
                                    "n_params") if k in result}
    print(json.dumps(shown, indent=2))
    if registered is not None:
        print(f"registered {registered.model_uri} (run {registered.run_id}); load it with "
              f"mlflow.pytorch.load_model({registered.model_uri!r})")
    return 0


def _cmd_data(args) -> int:
    from jointsearch.trainers.data import DatasetError, download_cifar10

    from .validation import check_data_dir

    check_data_dir(args.data_dir)
    try:
        path = download_cifar10(Path(args.data_dir))
    except DatasetError as exc:
        raise UsageError(str(exc)) from None
    print(f"CIFAR-10 ready in {path}")
    return 0


COMMANDS = {"search": _cmd_search, "spaces": _cmd_spaces, "export": _cmd_export, "report": _cmd_report,
            "train": _cmd_train,
            "data": _cmd_data}


#: Error classes a user can cause with input the validators did not foresee (a file that is
#: not UTF-8, a store that is not MLflow's, a value that overflows): one line and exit 2, never a
#: traceback. Anything else is a bug and keeps its traceback.
USER_ERRORS = (UnicodeError, RecursionError, OverflowError, OSError)
STORE_ERROR_MODULES = ("mlflow", "sqlalchemy")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    if isinstance(exc, RecursionError):
        line = "the input is nested too deeply"
    elif isinstance(exc, OSError) and exc.strerror:
        line = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return line[:500]


def _store_error(exc: BaseException) -> bool:
    return type(exc).__module__.split(".")[0] in STORE_ERROR_MODULES


def main(argv: list[str] | None = None) -> int:
    try:
        args = _build_parser().parse_args(argv)
        args.argv = list(sys.argv[1:] if argv is None else argv)  # which flags were given (--recipe)
        return COMMANDS[args.command](args)
    except (UsageError, SpaceError) as exc:
        print(f"jointsearch: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except SearchInterrupted as exc:
        print(f"jointsearch: interrupted by {exc}; `jointsearch search --resume --experiment NAME` continues it",
              file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("jointsearch: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `jointsearch spaces list | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except USER_ERRORS as exc:
        print(f"jointsearch: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:
        if not _store_error(exc):
            raise
        print(f"jointsearch: error: MLflow: {_one_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
