"""A simulated GPU cluster: how busy does each preset keep it, and what does it find per GPU-second?

    python -m bench.cluster --quick                      # 8 GPUs, bohb and asha, a minute each
    python -m bench.cluster --gpus 8 64 --packing 1 auto # the README's table

The cluster is real Ray, started with ``ray start --head`` on loopback (so the search takes
the ``--ray-address`` path a real cluster takes) with N *logical* GPUs and more logical CPUs
(:func:`cpus_for`; a trial asks for one): GPUs are the scarce resource, as on a GPU cluster.
The trainer, ``bench.problems:cluster_sleeper``, holds its GPU for ``(budget - budget already
trained) x unit_s x cost`` seconds and no CPU; the cost factor, 0.5 to 4, grows
log-linearly with the compute of the configuration's architecture (the ``zela2018`` joint
space: its architectures differ by orders of magnitude), so a rung's slowest configuration is
~8x its fastest, as in a real joint search. Continuation from the
checkpoint works as in the real trainer (a promoted configuration sleeps only for the budget it
adds). Its value is multi-fidelity Hartmann-6 on six training hyperparameters, so regret can be
measured. Budgets 1..9 with eta 3, as in the issue. Every evaluation logs its start, end, the GPU
share Ray gave it and its configuration.

Per preset (every Ray preset in ``jointsearch.search.settings.SCHEDULERS``: the ``hpbandster``
preset runs its workers as threads in the driver and ignores Ray's GPUs), per cluster size,
with a fixed GPU per trial (``1``) and with memory-aware packing (``auto``: the fraction of a
16 GiB GPU ``trainers.memory`` predicts for the configuration at CIFAR-10's 32x32, calibrated by
its probe on the CPU; configurations that cannot fit are never started). A shared logical GPU
does not slow the sleeper down, as a shared real GPU would slow its trainings: ``auto``'s
throughput here is an upper bound; its utilisation counts the GPU share each trial holds:

* **steady-state utilisation**: busy GPU-seconds / (GPUs x the time from the first evaluation's
  start to the last evaluation's start): after the last start the search has nothing left to
  hand out. Busy = an evaluation's sleep x its GPU share;
* the **tail** (last start to last end) and the **whole-span utilisation** (busy / GPUs x wall
  time of ``run_search``, start-up and end included), and the start-up (search start to the first
  evaluation);
* the **peak** number of evaluations running at once;
* **regret** of the incumbent (best value at the largest budget seen so far) against wall-clock
  and against GPU-seconds: the final regret and the regret at half the wall time and half the
  GPU-seconds in the table, the whole curves in the JSON.

``--time-budget`` bounds each search by wall time instead of ``--samples`` (``--time-budget``
of ``jointsearch search``); the tail then shows how well the searcher stopped starting new work.

Every real CPU is shared by N sleeping trial processes and the driver; the driver's ~0.1-0.2 s of
orchestration per evaluation (bench.overhead) is the limit at 64 GPUs, hence the longer unit there.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from bench.common import ROOT, table, write_json

MIN_BUDGET, MAX_BUDGET, ETA = 1.0, 9.0, 3.0
GPU_MEMORY_GIB = 16.0
DEFAULTS = {8: {"unit_s": 1.0, "samples": 54}, 64: {"unit_s": 4.0, "samples": 192}}
TARGET = 0.95


# --- the simulated cluster --------------------------------------------------------------------


class SimulatedCluster:
    """``ray start --head --block`` with N logical GPUs, in its own session and temp dir; stopped
    (only it) by :meth:`stop`."""

    def __init__(self, gpus: int, cpus: int, memory_gib: float = 0.0):
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.gpus, self.cpus = gpus, cpus
        self.temp_dir = Path(tempfile.mkdtemp(prefix="raysim", dir="/tmp"))
        self.address = f"127.0.0.1:{self.port}"
        env = {**os.environ, "RAY_AUTH_MODE": "disabled",
               "PYTHONPATH": os.pathsep.join(dict.fromkeys([str(ROOT), *filter(None, os.environ.get(
                   "PYTHONPATH", "").split(os.pathsep))]))}
        command = [shutil.which("ray") or str(Path(sys.executable).with_name("ray")), "start", "--head", "--block",
                   "--port", str(self.port), "--node-ip-address", "127.0.0.1", "--num-cpus", str(cpus),
                   "--num-gpus", str(gpus), "--temp-dir", str(self.temp_dir), "--include-dashboard", "false",
                   "--disable-usage-stats"]
        if memory_gib:
            command += ["--memory", str(int(memory_gib * 2**30))]
        self.log = self.temp_dir / "ray-start.log"
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + 120
        while "Ray runtime started." not in self.log.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"ray start failed:\n{self.log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.3)

    def _mine(self) -> list[int]:
        """Processes of this cluster: in its session, or naming its temp dir."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                sid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[3])
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except (OSError, IndexError, ValueError):
                continue
            if sid == self.proc.pid or str(self.temp_dir) in cmd:
                pids.append(int(entry.name))
        return pids

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        for _ in range(50):
            pids = self._mine()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.2)
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


# --- one search -------------------------------------------------------------------------------


def _space_facts():
    """The zela2018 space, the compute of its smallest and largest architecture corners, and the
    bounds of the six hyperparameters the objective reads."""
    from bench.problems import JOINT_OBJECTIVE_DIMS, arch_work
    from jointsearch.spaces import get

    space = get("zela2018")
    lows, highs, bounds = {}, {}, {}
    for hp in space.values():
        lo, hi = getattr(hp, "lower", None), getattr(hp, "upper", None)
        if lo is None:
            continue
        lows[hp.name], highs[hp.name] = lo, hi
        if hp.name in JOINT_OBJECTIVE_DIMS:
            bounds[hp.name] = (float(lo), float(hi), bool(getattr(hp, "log", False)))
    return [arch_work(lows), arch_work(highs)], bounds


def run_one(preset: str, cluster: SimulatedCluster, packing: str, unit_s: float, samples: int, seed: int,
            tmp: Path, time_budget_s: float = 0.0) -> dict:
    from bench.problems import joint_regret
    from jointsearch.search import SearchSettings, run_search

    work_range, bounds = _space_facts()
    work = Path(tempfile.mkdtemp(prefix=f"{preset}-{cluster.gpus}-{packing}-", dir=tmp))
    log = work / "evaluations.jsonl"
    settings = SearchSettings(
        scheduler=preset, space="zela2018", dataset="cifar10", trainer="bench.problems:cluster_sleeper",
        trainer_kwargs={"unit_s": unit_s, "log_path": str(log), "work_range": work_range, "bounds": bounds,
                        "min_budget": MIN_BUDGET, "max_budget": MAX_BUDGET},
        min_budget=MIN_BUDGET, max_budget=MAX_BUDGET, eta=ETA, num_samples=samples, seed=seed,
        cpus_per_trial=1.0, gpus_per_trial="auto" if packing == "auto" else float(packing),
        gpu_memory_gib=GPU_MEMORY_GIB if packing == "auto" else 0.0, time_budget_s=time_budget_s,
        ray_address=cluster.address, mlflow_uri=f"sqlite:///{work / 'mlflow.db'}", experiment="bench-cluster",
        storage_path=str(work / "ray"), dashboard_every=1000)
    started = time.time()
    summary = run_search(settings)
    ended = time.time()
    evals = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []
    from jointsearch.search import read_search

    results = read_search(settings.tracking_uri, settings.experiment)
    infeasible = sum(1 for tags in results.trial_tags.values() if tags.get("failure_kind") == "infeasible")
    import mlflow

    # Where start-up goes: up to the search's MLflow run (joining Ray, and creating the store's
    # tables: this store is new, as a user's first one is), then Tune starting the trial processes.
    search_run_start = mlflow.MlflowClient(settings.tracking_uri).get_run(results.search_run_id).info.start_time / 1000
    shutil.rmtree(work, ignore_errors=True)
    row = measure(evals, cluster.gpus, started, ended, lambda c: joint_regret(c, bounds))
    if evals:
        row.update(startup_to_search_run_s=search_run_start - started,
                   startup_trial_processes_s=min(e["start"] for e in evals) - search_run_start)
    row.update(preset=preset, gpus=cluster.gpus, packing=packing, unit_s=unit_s, samples=samples,
               time_budget_s=time_budget_s, trials=summary.n_trials, infeasible=infeasible, seed=seed)
    return row


def measure(evals: list[dict], gpus: int, started: float, ended: float, regret) -> dict:
    """The figures of one search from its evaluation log (see the module docstring)."""
    if not evals:
        return {"evaluations": 0}
    evals = sorted(evals, key=lambda e: e["start"])
    first_start, last_start = evals[0]["start"], max(e["start"] for e in evals)
    last_end = max(e["end"] for e in evals)
    share = [e["gpu"] or 1.0 for e in evals]
    busy = sum((e["end"] - e["start"]) * g for e, g in zip(evals, share))
    steady = last_start - first_start
    busy_steady = sum(max(0.0, min(e["end"], last_start) - max(e["start"], first_start)) * g
                      for e, g in zip(evals, share))
    # peak running at once: sweep the starts and ends
    events = sorted([(e["start"], 1) for e in evals] + [(e["end"], -1) for e in evals])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    # incumbent regret over time and GPU-seconds, updated at each evaluation's end
    curve, best, gpu_s = [], None, 0.0
    for e, g in sorted(zip(evals, share), key=lambda p: p[0]["end"]):
        gpu_s += (e["end"] - e["start"]) * g
        key = (-e["budget"], e["value"])
        if best is None or key < best[0]:
            best = (key, e["config"])
        curve.append({"t": e["end"] - started, "gpu_s": gpu_s, "regret": regret(best[1])})
    wall = ended - started

    def regret_at(field: str, limit: float) -> float:
        seen = [p["regret"] for p in curve if p[field] <= limit]
        return seen[-1] if seen else float("nan")

    return {"evaluations": len(evals), "wall_s": wall, "startup_s": first_start - started, "steady_s": steady,
            "tail_s": last_end - last_start, "end_s": ended - last_end, "busy_gpu_s": busy,
            "steady_utilisation": busy_steady / (gpus * steady) if steady > 0 else float("nan"),
            "whole_utilisation": busy / (gpus * wall), "peak_running": peak,
            "final_regret": curve[-1]["regret"], "regret_at_half_wall": regret_at("t", wall / 2),
            "regret_at_half_gpu_s": regret_at("gpu_s", gpu_s / 2), "mean_gpu_share": sum(share) / len(share),
            "curve": curve}


def cpus_for(gpus: int) -> int:
    """Logical CPUs of the simulated node: 4 per GPU up to 8 GPUs (room for ``auto`` to put
    several trials on one GPU), 8 spare beyond (every trial process is real: 64 GPUs x 4 trial
    processes would not fit this 2-core machine)."""
    return 4 * gpus if gpus <= 8 else gpus + 8


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 GPUs, bohb and asha, fixed GPU per trial, 27 samples")
    parser.add_argument("--gpus", type=int, nargs="*", default=None, help="cluster sizes (default 8 64)")
    parser.add_argument("--presets", nargs="*", default=None, help="default: every Ray preset")
    parser.add_argument("--packing", nargs="*", default=None, help="1 (a GPU per trial) and/or auto (default both)")
    parser.add_argument("--unit-s", type=float, default=None, help="seconds per budget unit at cost 1 (8 GPUs: 1, 64: 4)")
    parser.add_argument("--samples", type=int, default=None, help="configurations per search (8 GPUs: 54, 64: 192)")
    parser.add_argument("--time-budget", type=float, default=0.0, help="bound each search by wall seconds instead")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="cluster", help="name of the JSON written to bench/results/")
    args = parser.parse_args(argv)

    from jointsearch.search.presets import PRESETS

    ray_presets = [name for name, p in PRESETS.items() if p.backend == "ray"]
    presets = args.presets or (["bohb", "asha"] if args.quick else ray_presets)
    presets = [p for p in presets if p in ray_presets]
    sizes = args.gpus or ([8] if args.quick else [8, 64])
    packings = args.packing or (["1"] if args.quick else ["1", "auto"])
    warnings.filterwarnings("ignore")
    logging.getLogger("ray").setLevel(logging.ERROR)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    tmp = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    rows = []
    print(f"simulated cluster: GPUs {sizes}, presets {presets}, packing {packings}, budgets "
          f"{MIN_BUDGET:g}..{MAX_BUDGET:g} eta {ETA:g}; {os.cpu_count()} real CPUs", flush=True)
    try:
        for gpus in sizes:
            unit_s = args.unit_s or DEFAULTS.get(gpus, DEFAULTS[64])["unit_s"]
            samples = args.samples or (27 if args.quick else DEFAULTS.get(gpus, DEFAULTS[64])["samples"])
            cluster = SimulatedCluster(gpus, cpus=cpus_for(gpus))
            try:
                for preset in presets:
                    for packing in packings:
                        row = run_one(preset, cluster, packing, unit_s, samples, args.seed, tmp, args.time_budget)
                        rows.append(row)
                        print(f"  done: {preset} on {gpus} GPUs, packing {packing}: steady "
                              f"{100 * row.get('steady_utilisation', float('nan')):.1f}%, peak "
                              f"{row.get('peak_running')}, wall {row.get('wall_s', 0):.0f} s", flush=True)
            finally:
                import ray

                ray.shutdown()
                cluster.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print()
    print(render(rows))
    path = write_json("cluster", name=args.out, payload={
        "mode": "quick" if args.quick else "full", "runs": 1, "budgets": [MIN_BUDGET, MAX_BUDGET], "eta": ETA,
        "trainer": "bench.problems:cluster_sleeper", "space": "zela2018", "gpu_memory_gib_for_auto": GPU_MEMORY_GIB,
        "target_steady_utilisation": TARGET, "rows": rows})
    print(f"\nwrote {path}")
    return 0


def render(rows: list[dict]) -> str:
    return table(
        ["preset", "GPUs", "per trial", "trials (infeasible)", "evals", "peak running", "steady util", "tail s",
         "whole util", "start-up s", "(to search run, then trials)", "wall s", "busy GPU-s", "regret final", "at 1/2 wall", "at 1/2 GPU-s"],
        [[r["preset"], r["gpus"], r["packing"], f"{r['trials']} ({r['infeasible']})", r["evaluations"],
          r.get("peak_running"), f"{100 * r.get('steady_utilisation', float('nan')):.1f}%", r.get("tail_s"),
          f"{100 * r.get('whole_utilisation', float('nan')):.1f}%", r.get("startup_s"),
          f"{r.get('startup_to_search_run_s', float('nan')):.1f} + {r.get('startup_trial_processes_s', float('nan')):.1f}",
          r.get("wall_s"),
          r.get("busy_gpu_s"), r.get("final_regret"), r.get("regret_at_half_wall"), r.get("regret_at_half_gpu_s")]
         for r in rows])


if __name__ == "__main__":
    sys.exit(main())
