"""Which fidelity protocol gives the most trustworthy low budgets per unit of training?

    nice python -m bench.fidelity                  # 40 configurations, 5 BOHB seeds (~1.5 h on 2 busy cores)
    # or shared by N processes, each appending to its log, then merged:
    nice python -m bench.fidelity --slice 0/2 --log a.jsonl &  nice python -m bench.fidelity --slice 1/2 --log b.jsonl
    python -m bench.fidelity --merge a.jsonl b.jsonl
    python -m bench.fidelity --quick               # 6 configurations, 1 seed, budgets 1/3 (a smoke test)
    # the second real data set: 5,000 MNIST digits at 28x28 (an epoch costs ~9x a digits epoch)
    nice python -m bench.fidelity --dataset mnist5k --total 3 --slice K/N --log mnist5k-K.jsonl

The three protocols of ``trainers/entry.py`` (``--fidelity``): ``restarts`` (continued, SGDR
restarts at the rungs), ``scratch`` (the authors': every rung from scratch, Tmult = 2,
T0 = b / (2^(k+1) - 1)) and ``continue`` (continued under one SGDR with T0 = max / 15).

**Part 1, rank correlation across budgets** (Zela et al.'s table). The same ``--configs``
random configurations of the ``tiny`` space are evaluated at every budget (epochs 1, 3, 9 on
digits) under each protocol; the Spearman rho (with a 95% bootstrap CI, from
``jointsearch.dashboards.analysis.rank_correlation``) between every pair of budgets is printed
with the total training each protocol paid (epochs: the continued protocols pay 9 per
configuration, scratch 1 + 3 + 9 = 13) and its wall seconds.

With eta = 3 the first two rungs of ``scratch`` are *the same training* as ``restarts``: T0 = 1
then cycles 1 + 2 end at 3, exactly the restarts placed at rungs 1 and 3, from the same seed.
The script therefore trains scratch's budgets 1 and 3 only for the first ``--verify``
configurations, checks they equal restarts' values bit for bit, and reuses restarts' values for
the others, while charging scratch the full 13 epochs per configuration.

**Part 2, search quality at equal cost.** hpbandster's BOHB (its own master and an in-process
worker, KDE defaults, eta = 3) searches ``tiny`` on digits ``--seeds`` times per protocol; the
worker trains each rung under the protocol (continuing from the configuration's previous rung
for restarts/continue). Each run is cut where its training passes ``--total`` max-budget
equivalents (epochs spent, as each protocol really pays them); the incumbent (lowest validation
error on the largest budget reached, hpbandster's rule) is reported with its validation error
and its test error after a retrain at the max budget (T0 = max / 15, the same for everyone).

Writes bench/results/fidelity.json (or --out NAME) and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import quantiles, table, write_json

PROTOCOLS = ("restarts", "scratch", "continue")


def sample_configs(n: int, seed: int) -> list[dict]:
    from jointsearch import spaces

    space = spaces.get("tiny")
    space.seed(seed)
    return [_plain(c) for c in space.sample_configuration(n)]


def _plain(config) -> dict:
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in dict(config).items()}


# ---------------------------------------------------------------------------------------------
# Part 1: every configuration at every budget
# ---------------------------------------------------------------------------------------------


def evaluate_at_every_budget(config: dict, protocol: str, budgets: list[float], *, dataset: str, seed: int,
                             work: Path, reuse: dict[float, dict] | None = None) -> list[dict]:
    """One configuration at every budget under ``protocol``: a list of trainer results.

    ``reuse`` (scratch only) holds results for budgets already known to be identical training.
    """
    from jointsearch.trainers.entry import evaluate

    out, previous = [], None
    common = dict(dataset=dataset, seed=seed, max_budget=budgets[-1], rungs=tuple(budgets), fidelity=protocol)
    for k, budget in enumerate(budgets):
        if reuse and budget in reuse:
            out.append({**reuse[budget], "budget_spent": budget, "reused": True})
            continue
        save = work / f"{protocol}-{k}"
        result = evaluate(config, budget, checkpoint_dir=None if protocol == "scratch" else previous,
                          save_dir=None if protocol == "scratch" else str(save), **common)
        if previous is not None:
            shutil.rmtree(previous, ignore_errors=True)
        previous = None if protocol == "scratch" else str(save)
        out.append(result)
        if result["status"] != "ok":
            break
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)
    return out


def evaluate_config(i: int, config: dict, budgets: list[float], *, dataset: str, seed: int, verify: int,
                    work: Path) -> dict[str, Any]:
    """Configuration ``i`` at every budget under every protocol: one JSON-ready row.

    Scratch's budgets that train exactly what restarts trains (see the module docstring) are
    trained only for ``i < verify`` (and checked to be equal); otherwise restarts' values are
    reused, with scratch charged the whole budget and the wall time scaled to it.
    """
    same = [b for b in budgets[:-1] if _scratch_equals_restarts(b, budgets)]
    results: dict[str, list[dict]] = {}
    wall: dict[str, float] = {}
    for protocol in PROTOCOLS:
        reuse = None
        if protocol == "scratch" and i >= verify and same:
            reuse = {r["budget"]: {**r, "cost_s": r["cost_s"] * r["budget"] / max(r["budget_spent"], 1e-9)}
                     for r in results["restarts"] if r["budget"] in same}
        started = time.time()
        results[protocol] = evaluate_at_every_budget(config, protocol, budgets, dataset=dataset, seed=seed,
                                                     work=work, reuse=reuse)
        wall[protocol] = time.time() - started + sum(r["cost_s"] for r in results[protocol] if r.get("reused"))
    verified = 0
    if i < verify and same:
        by_budget = {r["budget"]: r["val_error"] for r in results["restarts"]}
        for r in results["scratch"]:
            if r["budget"] in same and r["status"] == "ok":
                if r["val_error"] != by_budget.get(r["budget"]):
                    raise AssertionError(f"config {i}: scratch at {r['budget']} gave {r['val_error']}, restarts "
                                         f"{by_budget.get(r['budget'])}: the reuse of restarts' values is wrong")
                verified += 1
    return {"part": "ranks", "index": i, "config": config, "results": results, "wall_s": wall,
            "verified": verified, "reused_budgets": same}


def summarise_ranks(rows: list[dict], budgets: list[float], seed: int) -> dict[str, Any]:
    """Spearman rho with bootstrap CI per budget pair, and the cost, per protocol."""
    from jointsearch.dashboards.analysis import rank_correlation
    from jointsearch.dashboards.records import EvaluationRecord

    rows = sorted({r["index"]: r for r in rows}.values(), key=lambda r: r["index"])
    out: dict[str, Any] = {"budgets": budgets, "configs": len(rows),
                           "reused_budgets_for_scratch": rows[0]["reused_budgets"] if rows else [],
                           "verified_identical_evaluations": sum(r["verified"] for r in rows), "protocols": {}}
    for protocol in PROTOCOLS:
        records = [EvaluationRecord(trial_id=str(row["index"]), config=row["config"], budget=r["budget"],
                                    val_error=r["val_error"], status=r["status"], cost_s=r["cost_s"],
                                    budget_spent=r["budget_spent"])
                   for row in rows for r in row["results"][protocol]]
        info = rank_correlation(records, n_bootstrap=1000, seed=seed)
        out["protocols"][protocol] = {
            "pairs": [p.to_json() for p in info.pairs],
            "epochs_spent": sum(r.budget_spent for r in records),
            "wall_s": sum(row["wall_s"][protocol] for row in rows),
            "n_ok_at_max": sum(1 for r in records if r.budget == budgets[-1] and r.ok),
            "median_val_error": {str(b): float(np.median([r.val_error for r in records if r.budget == b and r.ok]
                                                         or [math.nan])) for b in budgets},
            "best_val_error_at_max": _best(records, budgets[-1]),
        }
    return out


def _best(records, budget: float) -> float:
    vals = [r.val_error for r in records if r.budget == budget and r.ok]
    return float(min(vals)) if vals else math.nan


def _scratch_equals_restarts(budget: float, budgets: list[float]) -> bool:
    """Whether scratch's schedule up to ``budget`` is the restarts schedule (same cycle ends)."""
    from jointsearch.trainers.entry import schedule_settings

    t0 = schedule_settings("scratch", budget, rungs=budgets).t0
    ends, length, end = [], t0, 0.0
    while end < budget - 1e-9:
        end += length
        ends.append(end)
        length *= 2
    return np.allclose(ends, [b for b in budgets if b <= budget + 1e-9])


# ---------------------------------------------------------------------------------------------
# Part 2: BOHB at equal total cost
# ---------------------------------------------------------------------------------------------


def bohb_iterations(budgets: list[float], eta: float, total_epochs: float, scratch: bool) -> int:
    """hpbandster iterations (one bracket each) that spend at least ``total_epochs``."""
    max_sh = len(budgets)
    cost, it = 0.0, 0
    while cost < total_epochs:
        s = max_sh - 1 - (it % max_sh)
        n0 = int(np.floor(max_sh / (s + 1)) * eta ** s)
        rungs = budgets[-s - 1:]
        prev = 0.0
        for i, b in enumerate(rungs):
            n_i = max(1, int(n0 * eta ** (-i)))
            cost += n_i * (b if scratch else b - prev)
            prev = b
        it += 1
    return it


def run_bohb(protocol: str, seed: int, budgets: list[float], eta: float, total_epochs: float, *,
             dataset: str) -> dict[str, Any]:
    import Pyro4

    Pyro4.config.SERIALIZER = "pickle"
    Pyro4.config.SERIALIZERS_ACCEPTED.add("pickle")
    import hpbandster.core.nameserver as hpns
    from hpbandster.core.worker import Worker
    from hpbandster.optimizers import BOHB

    from jointsearch import spaces
    from jointsearch.trainers.entry import evaluate, retrain

    work = Path(tempfile.mkdtemp(prefix=f"bench-fidelity-{protocol}-{seed}-"))
    quiet = logging.getLogger("bench.fidelity.hpbandster")
    quiet.setLevel(logging.ERROR)
    spent_log: list[tuple[float, float, dict, float]] = []  # (finished, spent, config, val_error, budget)

    class ProtocolWorker(Worker):
        def compute(self, config_id, config, budget, working_directory):
            key = "_".join(str(x) for x in config_id)
            budget = float(budget)
            state = work / key
            previous = state / "state" if (state / "state").is_dir() and protocol != "scratch" else None
            save = work / f"{key}-new"
            result = evaluate(_plain(config), budget, dataset=dataset, seed=seed, max_budget=budgets[-1],
                              rungs=tuple(budgets), fidelity=protocol,
                              checkpoint_dir=str(previous) if previous else None,
                              save_dir=None if protocol == "scratch" else str(save / "state"))
            if protocol != "scratch":
                shutil.rmtree(state, ignore_errors=True)
                if save.is_dir():
                    save.rename(state)
            loss = result["val_error"] if result["status"] == "ok" else 1.0
            spent_log.append((time.time(), result["budget_spent"], _plain(config), loss, budget))
            return {"loss": float(loss), "info": {}}

    run_id = f"bench-fidelity-{protocol}-{seed}-{os.getpid()}-{time.time_ns()}"
    started = time.time()
    ns = hpns.NameServer(run_id=run_id, host="127.0.0.1", port=0)
    host, port = ns.start()
    worker = ProtocolWorker(run_id=run_id, nameserver=host, nameserver_port=port, logger=quiet)
    worker.run(background=True)
    space = spaces.get("tiny")
    space.seed(seed)
    np.random.seed(seed)
    optimizer = BOHB(configspace=space, run_id=run_id, nameserver=host, nameserver_port=port,
                     min_budget=budgets[0], max_budget=budgets[-1], eta=eta, logger=quiet)
    try:
        optimizer.run(n_iterations=bohb_iterations(budgets, eta, total_epochs, protocol == "scratch"))
    finally:
        optimizer.shutdown(shutdown_workers=True)
        ns.shutdown()
    wall = time.time() - started
    shutil.rmtree(work, ignore_errors=True)
    # cut at the total, in finishing order; incumbent = best on the largest budget seen so far
    total, top, best, n = 0.0, -math.inf, None, 0
    for _, spent, config, loss, budget in sorted(spent_log, key=lambda e: e[0]):
        if total + spent > total_epochs * (1 + 1e-9):
            break
        total += spent
        n += 1
        if budget > top + 1e-9:
            top, best = budget, (config, loss)
        elif abs(budget - top) <= 1e-9 and loss < best[1]:
            best = (config, loss)
    final = retrain(best[0], budgets[-1], dataset=dataset, seed=seed) if best else None
    return {"protocol": protocol, "seed": seed, "evaluations": n, "epochs_spent": total, "wall_s": wall,
            "incumbent_budget": top, "incumbent_val_error": best[1] if best else math.nan,
            "retrained_val_error": final["val_error"] if final else math.nan,
            "retrained_test_error": final["test_error"] if final else math.nan}


# ---------------------------------------------------------------------------------------------
# Part 2b: Hyperband replayed on the part-1 table (a simulator backend, Syne Tune's idea)
# ---------------------------------------------------------------------------------------------


def replay_hyperband(rows: list[dict], protocol: str, seed: int, total_epochs: float, budgets: list[float],
                     eta: float) -> dict[str, Any]:
    """Hyperband (hpbandster's bracket sizes, random proposals drawn without replacement from
    the part-1 configurations) replayed on the tabulated errors of ``protocol``, cut where its
    training passes ``total_epochs`` as that protocol pays it (``bench.optimizers.truncate``).

    The incumbent (``bench.optimizers.trajectory``: best observed on the largest budget seen)
    is scored by its *reference* error: its validation error when trained from scratch at the
    max budget (scratch's last column), the same yardstick for every protocol, i.e. what a
    retrain of the chosen configuration would give.
    """
    from bench.optimizers import Evaluation, Problem, regret_at, trajectory, truncate

    table = {row["index"]: {r["budget"]: (r["val_error"] if r["status"] == "ok" else math.inf)
                            for r in row["results"][protocol]} for row in rows}
    reference = {row["index"]: next((r["val_error"] for r in row["results"]["scratch"]
                                     if r["budget"] == budgets[-1] and r["status"] == "ok"), 1.0)
                 for row in rows}
    s_max = len(budgets) - 1
    order = list(np.random.default_rng(seed).permutation(sorted(table)))
    evals, cost, it, pos = [], 0.0, 0, 0
    while cost < total_epochs and pos < len(order):
        s = s_max - it % (s_max + 1)
        n0 = int(math.floor((s_max + 1) / (s + 1)) * eta ** s)
        alive, pos = order[pos:pos + n0], pos + n0
        previous = 0.0
        for j, budget in enumerate(budgets[-s - 1:]):
            for i in alive:
                spent = budget if protocol == "scratch" else budget - previous
                evals.append(Evaluation({"index": int(i)}, budget, table[i].get(budget, math.inf), spent))
                cost += spent
            keep = max(1, int(n0 * eta ** (-(j + 1))))
            alive = sorted(alive, key=lambda i: table[i].get(budget, math.inf))[:keep]
            previous = budget
        it += 1
    problem = Problem("replay", "unused:unused", lambda: None, budgets[0], budgets[-1],
                      lambda config, observed: reference[config["index"]], threshold=0.0, cheap=True)
    kept = truncate(evals, total_epochs)
    points = trajectory(kept, problem)
    return {"protocol": protocol, "seed": seed, "evaluations": len(kept),
            "epochs_spent": sum(e.cost for e in kept),
            "reference_error": regret_at(points, total_epochs / budgets[-1]),
            "configurations_seen": len({e.config["index"] for e in kept})}


def replay_rows(rows: list[dict], budgets: list[float], eta: float, totals: list[float],
                seeds: int) -> tuple[list[list[Any]], list[dict]]:
    """Every protocol replayed ``seeds`` times at each total (max-budget equivalents)."""
    runs = [{"total": total, **replay_hyperband(rows, protocol, seed, total * budgets[-1], budgets, eta)}
            for total in totals for protocol in PROTOCOLS for seed in range(seeds)]
    table_rows = []
    for total in totals:
        for protocol in PROTOCOLS:
            errors = [r["reference_error"] for r in runs if r["total"] == total and r["protocol"] == protocol]
            seen = [r["configurations_seen"] for r in runs if r["total"] == total and r["protocol"] == protocol]
            q = quantiles(errors)
            table_rows.append([f"{total:g}", protocol, len(errors), f"{np.mean(errors):.4f}",
                               f"{q[1]:.4f} [{q[0]:.4f}, {q[2]:.4f}]", f"{np.mean(seen):.1f}"])
    return table_rows, runs


# ---------------------------------------------------------------------------------------------
# Tables and the command line
# ---------------------------------------------------------------------------------------------


def correlation_rows(part1: dict) -> list[list[Any]]:
    rows = []
    for protocol, info in part1["protocols"].items():
        for p in info["pairs"]:
            rho = p["spearman"]
            ci = (f"[{p['ci_low']:.2f}, {p['ci_high']:.2f}]" if p["ci_low"] is not None else "-")
            rows.append([protocol, f"{p['budget_low']:g} -> {p['budget_high']:g}", p["n_pairs"],
                         math.nan if rho is None else rho, ci])
        rows.append([protocol, "cost", "", f"{info['epochs_spent']:g} epochs", f"{info['wall_s']:.0f} s"])
    return rows


def search_rows(part2: list[dict]) -> list[list[Any]]:
    rows = []
    for protocol in PROTOCOLS:
        runs = [r for r in part2 if r["protocol"] == protocol]
        if not runs:
            continue
        val = quantiles([r["incumbent_val_error"] for r in runs])
        test = quantiles([r["retrained_test_error"] for r in runs])
        rows.append([protocol, len(runs), f"{np.mean([r['epochs_spent'] for r in runs]):.0f}",
                     f"{np.mean([r['evaluations'] for r in runs]):.0f}",
                     f"{val[1]:.4f} [{val[0]:.4f}, {val[2]:.4f}]", f"{test[1]:.4f} [{test[0]:.4f}, {test[2]:.4f}]",
                     f"{np.mean([r['wall_s'] for r in runs]):.0f}"])
    return rows


def _append(path: Path | None, row: dict) -> None:
    if path is not None:
        with path.open("a") as f:
            f.write(json.dumps(row) + "\n")


def _read_rows(paths: list[str]) -> list[dict]:
    rows = []
    for path in paths:
        for line in Path(path).read_text().splitlines():
            if line.strip():
                rows.append(json.loads(line))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fidelity", description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", type=int, default=40, help="random tiny configurations for part 1")
    parser.add_argument("--seeds", type=int, default=5, help="BOHB runs per protocol for part 2")
    parser.add_argument("--total", type=float, default=10.0, help="part 2 budget per run, in max-budget equivalents")
    parser.add_argument("--budgets", default="1,3,9", help="rung budgets in epochs (eta = their ratio)")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--seed", type=int, default=0, help="seed of the configurations and of the training")
    parser.add_argument("--verify", type=int, default=2, help="configurations whose shared scratch rungs are trained")
    parser.add_argument("--skip-search", action="store_true", help="part 1 only")
    parser.add_argument("--skip-ranks", action="store_true", help="part 2 only")
    parser.add_argument("--slice", default="0/1", metavar="K/N",
                        help="only configurations (part 1) and seeds (part 2) with index %% N == K, so N processes "
                             "can share the work; merge their --log files with --merge")
    parser.add_argument("--reverse", action="store_true",
                        help="take the slice's configurations last first (a second process on the same slice "
                             "meets the first in the middle; --merge keeps one row per configuration)")
    parser.add_argument("--indices", default=None, help="only these configuration indices (comma-separated)")
    parser.add_argument("--log", default=None, help="append one JSON line per configuration / search run here")
    parser.add_argument("--merge", nargs="+", default=None, metavar="LOG",
                        help="no training: the tables and the JSON from these --log files")
    parser.add_argument("--replay-totals", default="3,6,10",
                        help="totals (max-budget equivalents) at which Hyperband is replayed on the part-1 table")
    parser.add_argument("--replay-seeds", type=int, default=200, help="replays per protocol and total")
    parser.add_argument("--quick", action="store_true", help="6 configurations, 1 seed, budgets 1,3, total 3")
    parser.add_argument("--out", default=None, help="JSON name under bench/results (default: fidelity)")
    args = parser.parse_args(argv)
    if args.quick:
        args.configs, args.seeds, args.budgets, args.total = 6, 1, "1,3", 3.0
    budgets = [float(b) for b in args.budgets.split(",")]
    eta = budgets[1] / budgets[0] if len(budgets) > 1 else 3.0
    k, n = (int(x) for x in args.slice.split("/"))
    log_path = Path(args.log) if args.log else None

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    started = time.time()
    if args.merge:
        rows = _read_rows(args.merge)
    else:
        import torch

        torch.set_num_threads(1)  # tiny networks; the machine is shared
        rows = []
        if not args.skip_ranks:
            work = Path(tempfile.mkdtemp(prefix="bench-fidelity-"))
            configs = sample_configs(args.configs, args.seed)
            log(f"part 1: {args.configs} configurations x {len(PROTOCOLS)} protocols at budgets {budgets}")
            order = list(enumerate(configs))
            only = {int(x) for x in args.indices.split(",")} if args.indices else None
            for i, config in (reversed(order) if args.reverse else order):
                if i % n != k or (only is not None and i not in only):
                    continue
                row = evaluate_config(i, config, budgets, dataset=args.dataset, seed=args.seed,
                                      verify=args.verify, work=work)
                rows.append(row)
                _append(log_path, row)
                log(f"  configuration {i} done ({time.time() - started:.0f} s)")
            shutil.rmtree(work, ignore_errors=True)
        if not args.skip_search:
            for seed in range(args.seeds):
                if seed % n != k:
                    continue
                for protocol in PROTOCOLS:
                    log(f"part 2: BOHB seed {seed} under {protocol}")
                    row = {"part": "search", **run_bohb(protocol, seed, budgets, eta, args.total * budgets[-1],
                                                        dataset=args.dataset)}
                    rows.append(row)
                    _append(log_path, row)
    # one row per configuration (processes sharing a slice from both ends may both train one)
    rank_rows = sorted({r["index"]: r for r in rows if r.get("part") == "ranks"}.values(), key=lambda r: r["index"])
    part2 = [r for r in rows if r.get("part") == "search"]
    part1 = summarise_ranks(rank_rows, budgets, args.seed) if rank_rows else {}
    if part1:
        print(f"\nSpearman rho of validation errors between budgets ({part1['configs']} configurations of tiny on "
              f"{args.dataset}, epochs {args.budgets}; 95% bootstrap CI)")
        print(table(["protocol", "budgets", "n", "rho", "CI / wall"], correlation_rows(part1)))
    replay: list[dict] = []
    if rank_rows and len(budgets) > 1:
        totals = [float(t) for t in args.replay_totals.split(",")]
        replay_table, replay = replay_rows(rank_rows, budgets, eta, totals, args.replay_seeds)
        print(f"\nHyperband replayed on the table above ({len(rank_rows)} configurations, random proposals without "
              f"replacement, {args.replay_seeds} seeds per cell): the incumbent's validation error when trained "
              f"from scratch at {budgets[-1]:g} epochs")
        print(table(["total (max budgets)", "protocol", "seeds", "mean", "median [25%, 75%]", "configs seen"],
                    replay_table))
    if part2:
        seeds = sorted({r["seed"] for r in part2})
        print(f"\nBOHB (hpbandster) on tiny/{args.dataset} at {args.total:g} max-budget equivalents "
              f"({args.total * budgets[-1]:g} epochs) of training per run, {len(seeds)} seeds: incumbent errors, "
              f"median [25%, 75%]")
        print(table(["protocol", "seeds", "epochs", "evals", "val error (search)", "test error (retrained)",
                     "wall s"], search_rows(part2)))
    path = write_json("fidelity", {"mode": "quick" if args.quick else "full", "configs": part1.get("configs", 0),
                                   "seeds": sorted({r["seed"] for r in part2}), "total": args.total,
                                   "budgets": budgets, "dataset": args.dataset, "rank_correlation": part1,
                                   "replay": replay, "search": part2, "wall_s": time.time() - started}, args.out)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
