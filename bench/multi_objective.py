"""Multi-objective search quality: hypervolume after an equal budget, jointsearch against Optuna.

    python -m bench.multi_objective --quick    # 3 seeds, 30 max-budget equivalents (about a minute)
    python -m bench.multi_objective            # 10 seeds, 50 max-budget equivalents

**Problem** (known front). ZDT1-shaped, 6 continuous dimensions in [0, 1]:
``n_params = x0`` (exact at every budget, like a parameter count) and
``val_error = g (1 - sqrt(x0 / g))`` with ``g = 1 + 2 mean(x1..x5)``; the front is ``g = 1``,
``val_error = 1 - sqrt(n_params)``. Budgets 1, 3, 9 (eta 3). At a budget ``b`` the observed
``val_error`` is the exact one plus an offset ``(1 - s)`` (s = b / 9), a configuration-dependent
bias ``0.4 (1 - s) sin(3 pi (x1 + x2))`` that reorders configurations at low budgets (``--bias``), and noise
``N(0, 0.05 (1 - s))``; at the max budget it is exact.

**Budget accounting.** Every contender gets ``--total`` max-budget equivalents. jointsearch's
multi-objective ``bohb`` (the production ``AsyncSuccessiveHalving`` with MO-ASHA promotion and the
``KDESearcher`` whose model sees each configuration's Pareto rank, or ParEGO scalarisations in
the second variant), driven here without Ray by a one-worker event loop:
the same objects ``run_search`` builds, minus Ray's ~1 s of overhead per evaluation on this
machine) continues promoted configurations, paying ``b_k - b_{k-1}`` per rung. Optuna prunes no
multi-objective study, so NSGA-II, TPE and the GP sampler each pay 1 per configuration, at the
max budget. ``jointsearch bohb --model gp`` is the same loop with search/gp.py's Gaussian process
proposing (EHVI over one GP per objective, the default with two objectives, or ParEGO
scalarisations); ``--min-budget 9`` is that search with one budget, the max (no successive
halving: every configuration is evaluated once, at full budget, as Optuna's are); ``adaptive budgets`` turns on issue 14's rung dropping, as the
CLI's ``bohb`` does by default. ``jointsearch bohb (val_error only)`` is the single-objective
preset on the same loop, an ablation. Random search pays 1 per configuration.

**Score.** The hypervolume of the *exact* objectives of every configuration evaluated at the
max budget, against the reference point (1.1, 3.3) (10 % beyond the largest n_params and
val_error possible), as a fraction of the true front's (3.2967).
"""

from __future__ import annotations

import argparse
import logging
import math
import time

import numpy as np

from .common import quantiles, table, write_json

DIMS = 6
RUNGS = (1.0, 3.0, 9.0)
REFERENCE = (1.1, 3.3)
TRUE_HV = 3.3 - 1 / 3 + 0.1 * 3.3  # the area the front 1 - sqrt(f1) dominates within the reference box
BIAS = 0.4  # amplitude of the low budgets' configuration-dependent bias (--bias; 0: offset and noise only)


def exact(x: np.ndarray) -> tuple[float, float]:
    """(n_params, val_error) at the max budget."""
    f1 = float(x[0])
    g = 1.0 + 2.0 * float(np.mean(x[1:]))
    return f1, g * (1.0 - math.sqrt(f1 / g))


def observed(x: np.ndarray, budget: float, rng: np.random.Generator) -> tuple[float, float]:
    f1, f2 = exact(x)
    s = budget / RUNGS[-1]
    bias = (1 - s) * (1.0 + BIAS * math.sin(3 * math.pi * (x[1] + x[2])))
    return f1, f2 + bias + float(rng.normal(0.0, 0.05 * (1 - s)))


def low_budget_agreement(n: int = 200, seed: int = 0) -> dict[str, float]:
    """Spearman's rho of ``val_error`` at budget 1 against the max budget's, over a random sample and
    over configurations near the front (x1..x5 in [0, 0.2]) with one ``n_params`` (x0 = 0.3): how
    far the low budget misleads where the search ends up (``--diagnose``)."""
    from scipy.stats import spearmanr

    rng = np.random.default_rng(seed)
    out = {}
    for name, scale, x0 in (("random sample", 1.0, None), ("near the front", 0.2, None),
                            ("near the front, equal n_params", 0.2, 0.3)):
        X = rng.random((n, DIMS))
        X[:, 1:] *= scale
        if x0 is not None:
            X[:, 0] = x0
        low = [observed(x, RUNGS[0], rng)[1] for x in X]
        out[name] = float(spearmanr(low, [exact(x)[1] for x in X])[0])
    return out


def hv_ratio(points: list[tuple[float, float]]) -> float:
    from jointsearch.dashboards.pareto import hypervolume

    if not points:
        return 0.0
    return hypervolume(np.array(points, dtype=float), REFERENCE) / TRUE_HV


def _space(seed: int):
    import ConfigSpace as CS

    space = CS.ConfigurationSpace(seed=seed)
    space.add([CS.UniformFloatHyperparameter(f"x{i}", 0.0, 1.0) for i in range(DIMS)])
    return space


def _vector(config: dict) -> np.ndarray:
    return np.array([config[f"x{i}"] for i in range(DIMS)], dtype=float)


class _Trial:
    def __init__(self, trial_id: str, config: dict):
        from ray.tune.experiment import Trial

        self.trial_id, self.config, self.status = trial_id, config, Trial.PENDING


class _Controller:
    def __init__(self):
        self.trials: list[_Trial] = []

    def get_trials(self):
        return self.trials

    def stop_trial(self, trial):
        from ray.tune.experiment import Trial

        trial.status = Trial.TERMINATED


def run_jointsearch(seed: int, total: float, multi_objective: bool = True, mo_loss: str | None = None,
                    model: str = "kde", adaptive: bool = False, rungs: tuple[float, ...] = RUNGS) -> dict:
    """The production scheduler and searcher on one worker, as Tune would drive them: a free slot
    goes to a promotable paused configuration, else to a new one from the searcher."""
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import TrialScheduler

    from jointsearch.dashboards.pareto import parse_objectives
    from jointsearch.search.adaptive_budgets import AdaptiveBudgets
    from jointsearch.search.ray_async import AsyncSuccessiveHalving, KDESearcher

    objectives = parse_objectives(["val_error", "n_params"]) if multi_objective else ()
    rng = np.random.default_rng(10_000 + seed)
    scheduler = AsyncSuccessiveHalving(n_rungs=len(rungs), eta=3, num_samples=10**9, slots=lambda: 1,
                                       objectives=objectives, adaptive=AdaptiveBudgets(rungs) if adaptive else None)
    searcher = KDESearcher(_space(seed), rung_budgets=rungs, seed=seed, gate=scheduler.wants_new_trial,
                           untrusted=scheduler.dropped_budgets, objectives=objectives, mo_loss=mo_loss, model=model)
    controller = _Controller()
    limit, spent, finals, n, evaluations = total * rungs[-1], 0.0, [], 0, 0
    started = time.perf_counter()
    while True:
        trial = scheduler.choose_trial_to_run(controller)
        if trial is None:
            config = searcher.suggest(f"t{n}")
            if config is None:
                break
            trial = _Trial(f"t{n}", config)
            controller.trials.append(trial)
            scheduler.on_trial_add(controller, trial)
            n += 1
            continue
        trial.status = Trial.RUNNING
        exhausted = False
        while True:
            rung = scheduler.at_rung.get(trial.trial_id, -1) + 1
            cost = rungs[rung] - (rungs[rung - 1] if rung else 0.0)
            if spent + cost > limit + 1e-9:
                exhausted = True
                break
            spent += cost
            evaluations += 1
            x = _vector(trial.config)
            f1, f2 = observed(x, rungs[rung], rng)
            result = {"rung": rung, "budget": rungs[rung], "val_error": f2, "n_params": f1, "status": "ok"}
            decision = scheduler.on_trial_result(controller, trial, result)
            searcher.on_trial_result(trial.trial_id, result)
            if rung == len(rungs) - 1:
                finals.append(exact(x))
                trial.status = Trial.TERMINATED
                break
            if decision == TrialScheduler.PAUSE:
                trial.status = Trial.PAUSED
                break
        if exhausted:
            break
    return {"hv": hv_ratio(finals), "configurations": n, "at_max_budget": len(finals), "evaluations": evaluations,
            "spent": spent / RUNGS[-1], "wall_s": time.perf_counter() - started}


def run_optuna(sampler_name: str, seed: int, total: float) -> dict:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    samplers = {
        "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed),
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed),
        "gp": lambda: optuna.samplers.GPSampler(seed=seed),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
    }
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=samplers[sampler_name]())
    finals: list[tuple[float, float]] = []

    def objective(trial):
        x = np.array([trial.suggest_float(f"x{i}", 0.0, 1.0) for i in range(DIMS)])
        values = exact(x)  # at the max budget the observation is exact
        finals.append(values)
        return values

    started = time.perf_counter()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GPSampler's experimental warning
        study.optimize(objective, n_trials=int(total))
    return {"hv": hv_ratio(finals), "configurations": len(finals), "at_max_budget": len(finals),
            "evaluations": len(finals), "spent": float(len(finals)), "wall_s": time.perf_counter() - started}


CONTENDERS = {
    "jointsearch bohb (MO-ASHA + Pareto-rank KDE)": lambda seed, total: run_jointsearch(seed, total, True),
    "jointsearch bohb (MO-ASHA + ParEGO KDE)": lambda seed, total: run_jointsearch(seed, total, True, "parego"),
    "jointsearch bohb --model gp (MO-ASHA + ParEGO GP)": lambda seed, total: run_jointsearch(seed, total, True,
                                                                                             model="gp"),
    "jointsearch bohb --model gp (MO-ASHA + EHVI GP)": lambda seed, total: run_jointsearch(seed, total, True, "ehvi",
                                                                                           model="gp"),
    "jointsearch bohb --model gp --min-budget 9 (one budget, EHVI GP)":
        lambda seed, total: run_jointsearch(seed, total, True, "ehvi", model="gp", rungs=RUNGS[-1:]),
    "jointsearch bohb --model gp --min-budget 9 (one budget, ParEGO GP)":
        lambda seed, total: run_jointsearch(seed, total, True, "parego", model="gp", rungs=RUNGS[-1:]),
    "jointsearch bohb, adaptive budgets (the CLI's default; Pareto-rank KDE)":
        lambda seed, total: run_jointsearch(seed, total, True, adaptive=True),
    "jointsearch bohb (val_error only)": lambda seed, total: run_jointsearch(seed, total, False),
    "optuna NSGA-II": lambda seed, total: run_optuna("nsga2", seed, total),
    "optuna TPE (multi-objective)": lambda seed, total: run_optuna("tpe", seed, total),
    "optuna GP (multi-objective)": lambda seed, total: run_optuna("gp", seed, total),
    "random (max budget)": lambda seed, total: run_optuna("random", seed, total),
}


def main(argv=None) -> int:
    global BIAS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 seeds, 30 max-budget equivalents")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--total", type=float, default=None, help="max-budget equivalents per run")
    parser.add_argument("--only", default=None, help="comma-separated substrings of contender names")
    parser.add_argument("--out", default="multi_objective", help="bench/results/OUT.json")
    parser.add_argument("--bias", type=float, default=BIAS,
                        help="amplitude of the low budgets' configuration-dependent bias (0: low budgets rank as "
                             "the max budget does, up to noise)")
    parser.add_argument("--diagnose", action="store_true",
                        help="print the rank agreement of the low budget with the max budget, and exit")
    args = parser.parse_args(argv)
    BIAS = args.bias
    if args.diagnose:
        for name, rho in low_budget_agreement().items():
            print(f"Spearman rho of val_error, budget {RUNGS[0]:g} against {RUNGS[-1]:g}, {name}: {rho:.2f}")
        return 0
    logging.getLogger("optuna").setLevel(logging.WARNING)
    seeds = args.seeds or (3 if args.quick else 10)
    total = args.total or (30.0 if args.quick else 50.0)
    names = [n for n in CONTENDERS if not args.only or any(s.strip().lower() in n.lower()
                                                              for s in args.only.split(","))]
    runs: dict[str, list[dict]] = {}
    for name in names:
        runs[name] = [CONTENDERS[name](seed, total) for seed in range(seeds)]
        hv = [round(r["hv"], 4) for r in runs[name]]
        print(f"{name}: hv ratio per seed {hv} ({sum(r['wall_s'] for r in runs[name]):.1f} s)", flush=True)
    ours = [r["hv"] for r in runs.get(names[0], [])]
    rows, summary = [], {}
    for name, rs in runs.items():
        hv = [r["hv"] for r in rs]
        lo, med, hi = quantiles(hv)
        wins = sum(a >= b for a, b in zip(ours, hv)) if ours and name != names[0] else None
        summary[name] = {"hv_ratio": hv, "median": med, "q25": lo, "q75": hi, "mean": float(np.mean(hv)),
                         "at_max_budget_median": float(np.median([r["at_max_budget"] for r in rs])),
                         "evaluations_median": float(np.median([r["evaluations"] for r in rs])),
                         "wall_s_mean": float(np.mean([r["wall_s"] for r in rs])),
                         "seeds_where_ours_is_at_least": wins}
        rows.append([name, f"{med:.3f}", f"[{lo:.3f}, {hi:.3f}]", f"{np.mean(hv):.3f}",
                     f"{np.median([r['at_max_budget'] for r in rs]):.0f}",
                     f"{np.median([r['evaluations'] for r in rs]):.0f}",
                     "-" if wins is None else f"{wins}/{len(hv)}"])
    print(f"\nhypervolume / true front's, after {total:g} max-budget equivalents, {seeds} seeds")
    print(table(["contender", "median", "IQR", "mean", "configs at max", "evaluations", "ours >= it"], rows))
    write_json("multi_objective", {"mode": "quick" if args.quick else "full", "seeds": seeds, "total": total,
                                   "bias": BIAS,
                                   "reference": REFERENCE, "true_hv": TRUE_HV, "results": summary}, name=args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
