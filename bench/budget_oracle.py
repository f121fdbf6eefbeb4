"""How much can *choosing the budgets* gain on a problem whose low budgets mislead? (issue 14)

    python -m bench.budget_oracle            # mixed + inverted Hartmann-6, 10 seeds (about a minute)
    python -m bench.budget_oracle --seeds 20 --top-n-percent 15 30

Issue 14 asks the adaptive budgets to halve plain ``bohb``'s median final regret on the poorly
correlated problems. An upper bound on what any rule that only *chooses budgets* can gain is an
oracle that knows the best minimum budget in advance: plain ``bohb`` (adaptive budgets off) run
with every fixed minimum budget the rungs allow (1, 3 and 9 of 1..27), beside the default
adaptive ``bohb`` and plain ``bohb`` at the problem's own minimum. If even the oracle's best
fixed minimum budget stays far from half of plain ``bohb``'s regret, the target needs a better
model, not a better choice of budgets.

``--top-n-percent`` repeats everything with other good-set fractions of the BOHB proposer (the
share of observations its "good" density is fitted on; hpbandster's default, and ours, is 15),
to show how much of the regret is the model's.

Everything runs in ``bench/simulate.py`` (the production scheduler and searcher, 2 slots, no
Ray), at the problems' own budgets (1..27, eta 3) and total (16 max-budget equivalents), with
``bench/optimizers.py``'s accounting: continuation pays the difference of budgets, the incumbent
is the best observed value at the largest budget seen, its regret is measured on the exact
objective.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .common import quantiles, table, write_json

PROBLEMS = ("mixed_hartmann6", "inverted_hartmann6")


def final_regrets(problem, budgets: list[float], seeds: int, *, adaptive: bool, top_n_percent: int,
                  slots: int = 2) -> list[float]:
    """Plain or adaptive ``bohb`` on ``budgets`` (the problem's max budget last), one final regret per seed."""
    from . import optimizers as O
    from .simulate import simulate_bohb

    total = problem.total
    out = []
    for seed in range(seeds):
        evaluate = O.Evaluator(problem, seed, Path("."))
        run = simulate_bohb(lambda c, b: evaluate(c, b), problem.space(), budgets, eta=3.0, slots=slots,
                            num_samples=100_000, seed=seed, adaptive=adaptive, stop_after=total,
                            max_budget=problem.max_budget, kde={"top_n_percent": top_n_percent})
        evals = [O.Evaluation(dict(e.config), e.budget, e.value, e.cost) for e in run["evaluations"]]
        evals = O.truncate(evals, total * problem.max_budget)
        out.append(O.regret_at(O.trajectory(evals, problem), total))
    return out


def main(argv=None) -> int:
    from . import optimizers as O

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=PROBLEMS)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--top-n-percent", type=int, nargs="+", default=[15])
    parser.add_argument("--out", default="budget_oracle", help="bench/results/OUT.json")
    args = parser.parse_args(argv)
    problems = O.make_problems(False)
    results: dict = {}
    rows = []
    for name in args.problems:
        problem = problems[name]
        rungs = O.rung_budgets(problem, 3.0)
        results[name] = {}
        for fraction in args.top_n_percent:
            contenders = {"bohb (adaptive budgets)": (rungs, True)}
            for k, low in enumerate(rungs[:-1]):
                contenders[f"plain bohb, min budget {low:g}"] = (rungs[k:], False)
            measured = {}
            for label, (budgets, adaptive) in contenders.items():
                started = time.time()
                regrets = final_regrets(problem, list(budgets), args.seeds, adaptive=adaptive, top_n_percent=fraction)
                measured[label] = quantiles(regrets)
                results[name][f"{label}, top {fraction}%"] = {
                    "budgets": list(budgets), "adaptive": adaptive, "top_n_percent": fraction,
                    "final_regret_per_seed": regrets, "median": measured[label][1], "q25": measured[label][0],
                    "q75": measured[label][2]}
                print(f"{name} top {fraction}% {label}: median {measured[label][1]:.3f} "
                      f"({time.time() - started:.0f} s)", flush=True)
            plain = measured[f"plain bohb, min budget {rungs[0]:g}"][1]
            for label, (lo, med, hi) in measured.items():
                rows.append([name, f"{fraction}%", label, f"{med:.3f}", f"[{lo:.3f}, {hi:.3f}]", f"{med / plain:.2f}"])
    print(f"\nmedian final regret, {args.seeds} seeds, 16 max-budget equivalents, 2 slots "
          "(ratio: to plain bohb at min budget 1 with the same good-set fraction)")
    print(table(["problem", "good set", "contender", "median", "IQR", "ratio"], rows))
    write_json("budget_oracle", {"mode": "full", "seeds": args.seeds, "results": results}, name=args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
