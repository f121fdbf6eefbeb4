"""Orchestration overhead: seconds per evaluation of a no-op trainer, per preset, against the peers.

    python -m bench.overhead --quick     # 60 evaluations per preset, 20 for plain Ray Tune
    python -m bench.overhead             # 1,000 evaluations per preset and for plain Ray Tune

The trainer is ``jointsearch.search.testing:noop_trainer`` (it returns at once), so the wall
time of a search is all orchestration: Ray Tune's trial handling, checkpoints, the MLflow
tracking, the search's own start-up. Budgets 1..9 with eta 3 (rungs 1, 3, 9), so paused and
promoted trials are part of what is measured. Per evaluation = wall seconds / evaluations
recorded (one evaluation = one configuration at one rung).

In the same run, for comparison:

* **plain Ray Tune defaults**: ``TuneBOHB`` + ``HyperBandForBOHB`` out of the box (default
  ``RunConfig`` and ``TuneConfig``, Tune's default loggers and progress output, a checkpoint
  per report as Tune's BOHB example does), the same no-op work reported at the same rungs.
  It runs first, before jointsearch's Ray module is imported, because that module sets
  environment variables (quieter loggers) that would otherwise apply to it as well.
* **Optuna in-process**: ``study.optimize`` with its default TPE sampler and a trivial
  objective: the floor of what a search loop costs without processes.

The "share of worker time spent training when an evaluation takes a minute" is reported twice:

* *derived* for every contender, ``60 / (60 + o)`` with ``o`` the measured seconds of
  orchestration per evaluation above;
* *measured* with ``--share-evaluations N`` (default 10; 0 skips it): a real search of each
  ``--share-presets`` preset (default bohb) whose trainer sleeps ``--share-seconds`` (default 60)
  per evaluation, one trial at a time (each asks for every CPU, like a trial asking for the only
  GPU of a machine; ``--max-concurrent 1`` instead makes BOHB's searcher wait on Tune's polling
  between trials, which is slower), and logs when each evaluation starts and ends. The
  target is judged on the steady state (first evaluation's start to last one's end: pauses,
  promotions, checkpoints and MLflow tracking between evaluations included); the search's
  one-off start-up and end are reported next to it, with the share of the whole search.
  Sleeping needs no CPU, so this part may run beside other work; its overhead then only
  looks worse.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

from bench.common import init_ray, table, write_json

TARGET_S = 0.2
TARGET_SHARE = 0.95
MIN_BUDGET, MAX_BUDGET, ETA = 1.0, 9.0, 3.0


def _tiny_space():
    from jointsearch.spaces import get

    return get("tiny")


def plain_ray_tune(evaluations: int, tmp: Path, seed: int = 0) -> dict:
    """TuneBOHB + HyperBandForBOHB with Tune's defaults; no-op work reported at rungs 1, 3, 9."""
    from ray import tune
    from ray.tune.schedulers import HyperBandForBOHB
    from ray.tune.search.bohb import TuneBOHB

    from jointsearch.search.testing import noop_trainer

    rungs = (1, 3, 9)

    def trainable(config):
        start = 0
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            with checkpoint.as_directory() as d:
                start = int(Path(d, "units").read_text())
        for units in rungs:
            if units <= start:
                continue
            value = noop_trainer(config, float(units))
            with tempfile.TemporaryDirectory() as d:
                Path(d, "units").write_text(str(units))
                tune.report({"val_error": value, "units": units}, checkpoint=tune.Checkpoint.from_directory(d))

    num_samples = max(2, int(round(evaluations / 1.5)))
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=TuneBOHB(space=_tiny_space(), metric="val_error", mode="min", seed=seed),
            scheduler=HyperBandForBOHB(time_attr="units", max_t=9, reduction_factor=3, metric="val_error",
                                       mode="min"),
            num_samples=num_samples),
        run_config=tune.RunConfig(storage_path=str(tmp / "plain-ray"), name="plain"),
    )
    started = time.time()
    with open(tmp / "plain-ray-console.txt", "w") as console, contextlib.redirect_stdout(console):
        grid = tuner.fit()  # Tune's default progress tables still get written, just not shown
    wall = time.time() - started
    n_eval = sum(len(r.metrics_dataframe) if r.metrics_dataframe is not None else 0 for r in grid)
    return {"contender": "plain Ray Tune defaults (TuneBOHB + HyperBandForBOHB)", "trials": len(grid),
            "evaluations": n_eval, "wall_s": wall}


def optuna_in_process(evaluations: int, seed: int = 0) -> dict:
    import optuna

    from jointsearch.search.testing import noop_trainer

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))

    def objective(trial):
        return noop_trainer({"learning_rate": trial.suggest_float("learning_rate", 0.005, 0.5, log=True)}, 9.0)

    started = time.time()
    study.optimize(objective, n_trials=evaluations)
    return {"contender": "Optuna in-process (TPE, trivial objective)", "trials": evaluations,
            "evaluations": evaluations, "wall_s": time.time() - started}


def jointsearch_preset(preset: str, evaluations: int, tmp: Path, seed: int = 0) -> dict:
    from jointsearch.search import SearchSettings, run_search

    per_trial = 3.0 if preset == "random" else 1.5  # a guess; the table reports what happened
    work = Path(tempfile.mkdtemp(prefix=f"{preset}-", dir=tmp))
    settings = SearchSettings(
        scheduler=preset, space="tiny", trainer="jointsearch.search.testing:noop_trainer",
        min_budget=MIN_BUDGET, max_budget=MAX_BUDGET, eta=ETA,
        num_samples=max(2, int(round(evaluations / per_trial))), seed=seed,
        mlflow_uri=f"sqlite:///{work / 'mlflow.db'}", experiment="bench-overhead", storage_path=str(work / "ray"))
    started = time.time()
    summary = run_search(settings)
    wall = time.time() - started
    shutil.rmtree(work, ignore_errors=True)
    return {"contender": f"jointsearch {preset}", "trials": summary.n_trials, "evaluations": summary.n_evaluations,
            "wall_s": wall}


def measured_share(preset: str, evaluations: int, seconds: float, tmp: Path, seed: int = 0) -> dict:
    """Share of one worker's time spent in the trainer, evaluations of ``seconds`` each.

    The trainer (``bench.problems:sleeping``) logs when each evaluation starts and ends, which
    separates three things: the whole search (``share``: evaluations x seconds / wall), its
    steady state between the first evaluation's start and the last one's end (``steady share``:
    what a worker sees while a search runs, independent of the search's length), and the fixed
    costs before and after (start-up: space, Ray Tune set-up, the MLflow store; the end: the
    dashboards), which a real search pays once.
    """
    from jointsearch.search import SearchSettings, run_search

    work = Path(tempfile.mkdtemp(prefix=f"share-{preset}-", dir=tmp))
    log = work / "evaluations.txt"
    per_trial = 3.0 if preset == "random" else 1.5
    settings = SearchSettings(
        scheduler=preset, space="tiny", trainer="bench.problems:sleeping",
        trainer_kwargs={"sleep_s": seconds, "log_path": str(log)}, min_budget=MIN_BUDGET,
        max_budget=MAX_BUDGET, eta=ETA, num_samples=max(2, int(round(evaluations / per_trial))), seed=seed,
        # One trial at a time because it asks for every CPU (as a trial asking for the only GPU
        # would): a worker's time is then the wall time between evaluations.
        cpus_per_trial=float(os.cpu_count() or 1),
        mlflow_uri=f"sqlite:///{work / 'mlflow.db'}", experiment="bench-share",
        storage_path=str(work / "ray"))
    started = time.time()
    run_search(settings)
    ended = time.time()
    spans = [tuple(map(float, line.split())) for line in log.read_text().splitlines() if line.strip()]
    shutil.rmtree(work, ignore_errors=True)
    n = len(spans)
    inside = sum(e - s for s, e in spans)
    first, last = min(s for s, _ in spans), max(e for _, e in spans)
    wall = ended - started
    return {"contender": f"jointsearch {preset}", "evaluations": n, "seconds_per_evaluation": seconds,
            "training_s": inside, "wall_s": wall, "measured_training_share": inside / wall,
            "steady_s": last - first, "steady_training_share": inside / (last - first),
            "overhead_s_per_evaluation_steady": (last - first - inside) / max(1, n - 1),
            "startup_s": first - started, "teardown_s": ended - last,
            "target_95pct_met": inside / (last - first) >= TARGET_SHARE}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60 evaluations per preset, 20 for plain Ray Tune")
    parser.add_argument("--evaluations", type=int, default=None, help="per preset (1000 full, 60 quick)")
    parser.add_argument("--baseline-evaluations", type=int, default=None,
                        help="for plain Ray Tune (1000 full, 20 quick: ~3.5 s each)")
    parser.add_argument("--presets", nargs="*", default=None, help="subset of jointsearch presets (default: all)")
    parser.add_argument("--share-evaluations", type=int, default=None,
                        help="evaluations of the measured training share (10 full, 3 quick; 0 skips it)")
    parser.add_argument("--share-seconds", type=float, default=None,
                        help="seconds per evaluation for the measured share (60 full, 5 quick)")
    parser.add_argument("--share-presets", nargs="*", default=["bohb"], help="presets whose share is measured")
    parser.add_argument("--out", default="overhead", help="name of the JSON written to bench/results/")
    args = parser.parse_args(argv)
    n = args.evaluations if args.evaluations is not None else (60 if args.quick else 1000)
    n_share = args.share_evaluations if args.share_evaluations is not None else (3 if args.quick else 10)
    share_s = args.share_seconds or (5.0 if args.quick else 60.0)
    n_base = args.baseline_evaluations if args.baseline_evaluations is not None else (20 if args.quick else 1000)

    from jointsearch.search.settings import SCHEDULERS

    presets = [p for p in SCHEDULERS if args.presets is None or p in args.presets]
    print(f"mode: {'quick' if args.quick else 'full'}; no-op trainer; budgets {MIN_BUDGET:g}..{MAX_BUDGET:g}, "
          f"eta {ETA:g}; ~{n} evaluations per preset, ~{n_base} for plain Ray Tune; one run each; "
          f"{os.cpu_count()} CPUs", flush=True)
    print(f"jointsearch presets: {', '.join(presets)}", flush=True)
    warnings.filterwarnings("ignore")
    logging.getLogger("ray").setLevel(logging.ERROR)
    init_ray()
    tmp = Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    rows = []
    try:
        if n_base > 0:
            rows.append(plain_ray_tune(n_base, tmp))
            print(f"  done: {rows[-1]['contender']} ({rows[-1]['wall_s']:.1f} s)", flush=True)
        if n > 0:
            rows.append(optuna_in_process(n))
            print(f"  done: {rows[-1]['contender']} ({rows[-1]['wall_s']:.1f} s)", flush=True)
            for preset in presets:
                rows.append(jointsearch_preset(preset, n, tmp))
                print(f"  done: {rows[-1]['contender']} ({rows[-1]['wall_s']:.1f} s)", flush=True)
        shares = []
        for preset in (args.share_presets if n_share > 0 else []):
            shares.append(measured_share(preset, n_share, share_s, tmp))
            print(f"  done: measured share, {shares[-1]['contender']} ({shares[-1]['wall_s']:.1f} s)", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    out_rows = []
    for r in rows:
        r["s_per_evaluation"] = r["wall_s"] / max(1, r["evaluations"])
        r["s_per_trial"] = r["wall_s"] / max(1, r["trials"])
        r["derived_training_share_at_60s"] = 60.0 / (60.0 + r["s_per_evaluation"])
        ours = r["contender"].startswith("jointsearch")
        r["target_0.2s_met"] = (r["s_per_evaluation"] <= TARGET_S) if ours else None
        r["target_95pct_met"] = (r["derived_training_share_at_60s"] >= TARGET_SHARE) if ours else None
        verdict = "-" if not ours else ("met" if r["target_0.2s_met"] else "NOT MET")
        out_rows.append([r["contender"], r["trials"], r["evaluations"], r["wall_s"], r["s_per_evaluation"],
                         r["s_per_trial"], f"{100 * r['derived_training_share_at_60s']:.2f}%", verdict])
    if out_rows:
        print()
        print(table(["contender", "trials", "evaluations", "wall s", "s / evaluation", "s / trial",
                     "training share at 60 s (derived)", f"<= {TARGET_S} s/eval"], out_rows))
        print("\ntraining share at 60 s (derived) = 60 / (60 + s per evaluation), from the overhead above.")
    if shares:
        print(f"\nmeasured training share: one trial at a time, the trainer sleeps {share_s:g} s per evaluation")
        print(share_table(shares))
    path = write_json("overhead", name=args.out, payload={
        "mode": "quick" if args.quick else "full", "runs": 1, "evaluations_requested": n,
        "baseline_evaluations_requested": n_base, "budgets": [MIN_BUDGET, MAX_BUDGET], "eta": ETA,
        "trainer": "jointsearch.search.testing:noop_trainer", "presets": presets, "rows": rows,
        "measured_share": {"evaluations_requested": n_share, "seconds_per_evaluation": share_s,
                           "trainer": "bench.problems:sleeping", "rows": shares},
        "targets": {"s_per_evaluation": TARGET_S, "training_share_at_60s": TARGET_SHARE,
                    "derived": "training share = 60 / (60 + s_per_evaluation)"}})
    print(f"\nwrote {path}")
    return 0


def share_table(shares: list[dict]) -> str:
    return table(["contender", "evaluations", "s each", "steady share (first start .. last end)",
                  "overhead s between evaluations", "start-up s", "end s", "share of the whole search",
                  f"steady >= {TARGET_SHARE:.0%}"],
                 [[r["contender"], r["evaluations"], r["seconds_per_evaluation"],
                   f"{100 * r['steady_training_share']:.2f}%", r["overhead_s_per_evaluation_steady"],
                   r["startup_s"], r["teardown_s"], f"{100 * r['measured_training_share']:.2f}%",
                   "met" if r["target_95pct_met"] else "NOT MET"] for r in shares])


if __name__ == "__main__":
    sys.exit(main())
