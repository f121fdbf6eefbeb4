"""Asynchronous ``bohb`` against synchronous BOHB on the same number of parallel workers.

    python -m bench.parallel_bohb                       # counting ones and Hartmann-6, 8 workers, 10 seeds
    python -m bench.parallel_bohb --seeds 2 --workers 4 # a quick look

Why a separate script: ``bench/optimizers.py`` runs hpbandster's BOHB with one worker, whose
evaluations take microseconds, so it shows sample efficiency but not what synchronous rungs cost
on a cluster, where a rung waits for its slowest evaluation (issue 11: "at equal wall-clock on 8
workers, it is better"). Here both sides run on ``--workers`` workers whose evaluations take time
in proportion to the budget they train:

* ours: the production scheduler and searcher in bench/simulate.py's discrete-event controller
  (``--workers`` slots; an evaluation from budget a to b takes ``(b - a) x jitter`` simulated
  units, jitter uniform in [0.8, 1.2]);
* hpbandster's BOHB with ``--workers`` real worker threads, each sleeping ``budget x
  --seconds-per-unit x jitter`` (same jitter law) before it returns the objective; its clock is
  the wall clock divided by ``--seconds-per-unit``, so both clocks count budget units. Its own
  overhead (Pyro, fitting the KDE) is in its clock, which is why a unit is 10 ms: a 9-unit
  evaluation then lasts 90 ms against a few ms of overhead.

Reported per problem (median [IQR] over seeds): the final regret at **equal GPU-seconds** (both cut
where the budget they trained passes ``--total`` max-budgets), and the regret at **equal
wall-clock**, at the time an ideal schedule would need for that budget, ``total x max_budget /
workers`` units, with what each had trained by then; the workers' busy fraction up to then.
The regret and incumbent rules are bench/optimizers.py's. hpbandster's side is not reproducible:
its worker threads return in timing order, so a seed's result varies between runs (Hartmann-6
seed 0: 0.09 to 1.0 in six reruns); read the medians over seeds, not single seeds.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench.common import quantiles, table, write_json
from bench.optimizers import Evaluation, Evaluator, hpbandster_session, make_problems, rung_budgets, trajectory, \
    truncate


def _at_time(evals: list[tuple[float, float, Evaluation]], t: float) -> list[Evaluation]:
    """The evaluations (start, end, evaluation) that had finished by time ``t``, in finishing order."""
    return [e for _, end, e in sorted(evals, key=lambda x: x[1]) if end <= t + 1e-9]


def _busy(evals: list[tuple[float, float, Evaluation]], t: float, workers: int) -> float:
    return sum(max(0.0, min(end, t) - start) for start, end, _ in evals) / (workers * t)


def run_ours(problem, seed: int, total: float, eta: float, workers: int) -> list[tuple[float, float, Evaluation]]:
    from bench.simulate import simulate_bohb

    evaluate = Evaluator(problem, seed, Path("."))
    out = simulate_bohb(lambda c, b: evaluate(c, b), problem.space(), rung_budgets(problem, eta), eta=eta,
                        slots=workers, num_samples=100_000, seed=seed, adaptive=False, stop_after=total)
    return [(e.started, e.finished, Evaluation(dict(e.config), e.budget, e.value, e.cost)) for e in out["evaluations"]]


def run_hpbandster(problem, seed: int, total: float, eta: float, workers: int,
                   unit_s: float) -> list[tuple[float, float, Evaluation]]:
    evaluate = Evaluator(problem, seed, Path(tempfile.mkdtemp()))
    lock, rng = threading.Lock(), np.random.default_rng([seed, 7])
    timeline: list[tuple[float, float, dict, float, float]] = []
    t0 = [0.0]  # set when hpbandster's master starts

    def sleeping(config: dict, budget: float) -> float:
        started = time.monotonic()
        with lock:
            jitter = float(rng.uniform(0.8, 1.2))
        value = float(evaluate(config, budget))
        time.sleep(max(0.0, budget * unit_s * jitter - (time.monotonic() - started)))
        with lock:
            timeline.append((started - t0[0], time.monotonic() - t0[0], config, budget, value))
        return value

    hpbandster_session(problem, seed, total, eta, sleeping, workers=workers,
                       on_start=lambda: t0.__setitem__(0, time.monotonic()))
    # hpbandster evaluates every budget from scratch: an evaluation costs its whole budget.
    return [(s / unit_s, e / unit_s, Evaluation(c, b, v, b)) for s, e, c, b, v in timeline]


def summarise(problem, evals: list[tuple[float, float, Evaluation]], total: float, workers: int) -> dict:
    top = problem.max_budget
    by_end = [e for _, _, e in sorted(evals, key=lambda x: x[1])]
    final = trajectory(truncate(by_end, total * top), problem)[-1][1]
    t = total * top / workers
    done = _at_time(evals, t)
    return {"final_regret": final,
            "regret_at_wall": trajectory(done, problem)[-1][1] if done else float("inf"),
            "trained_by_wall": sum(e.cost for e in done) / top,
            "busy_by_wall": _busy(evals, t, workers),
            "at_max_budget": sum(1 for e in truncate(by_end, total * top) if e.budget >= top)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", nargs="+", default=["counting_ones", "hartmann6"])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--total", type=float, default=16.0, help="max-budget equivalents per run")
    parser.add_argument("--eta", type=float, default=3.0)
    parser.add_argument("--seconds-per-unit", type=float, default=0.01, help="hpbandster's sleep per budget unit")
    parser.add_argument("--out", default="parallel_bohb")
    args = parser.parse_args(argv)
    problems = make_problems(False)
    results: dict = {}
    for name in args.problems:
        problem = problems[name]
        runs = {"jointsearch bohb (asynchronous)": [], "hpbandster BOHB (synchronous)": []}
        for seed in range(args.seeds):
            ours = summarise(problem, run_ours(problem, seed, args.total, args.eta, args.workers), args.total,
                             args.workers)
            theirs = summarise(problem, run_hpbandster(problem, seed, args.total, args.eta, args.workers,
                                                       args.seconds_per_unit), args.total, args.workers)
            runs["jointsearch bohb (asynchronous)"].append(ours)
            runs["hpbandster BOHB (synchronous)"].append(theirs)
            print(f"  {name} seed {seed}: ours {ours['final_regret']:.3g} / {ours['regret_at_wall']:.3g}, "
                  f"hpbandster {theirs['final_regret']:.3g} / {theirs['regret_at_wall']:.3g}", flush=True)
        rows, summary = [], {}
        for contender, per_seed in runs.items():
            s = {key: quantiles([r[key] for r in per_seed]) for key in per_seed[0]}
            summary[contender] = {"per_seed": per_seed, **{k: v for k, v in s.items()}}
            rows.append([contender, *(f"{s[k][1]:.3g} [{s[k][0]:.3g}, {s[k][2]:.3g}]" for k in
                                      ("final_regret", "regret_at_wall", "trained_by_wall", "busy_by_wall",
                                       "at_max_budget"))])
        print(f"\n{name}: {args.workers} workers, {args.total:g} max-budgets, {args.seeds} seeds; median [IQR]")
        print(table(["contender", "regret, equal GPU-s", "regret, equal wall", "trained by then (max-budgets)",
                     "busy by then", "evaluations at max budget"], rows))
        results[name] = summary
    path = write_json("parallel_bohb", {"workers": args.workers, "total_max_budgets": args.total,
                                        "seconds_per_unit": args.seconds_per_unit, "seeds": args.seeds,
                                        "results": results}, args.out)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
