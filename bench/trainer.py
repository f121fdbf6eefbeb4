"""The trainer's speed: images per second and peak memory, jointsearch's loop vs a plain PyTorch loop.

    python -m bench.trainer --quick      # few steps per configuration (minutes on 2 CPU cores)
    python -m bench.trainer              # more steps, 3 repeats of every measurement

Three configurations of the zela2018 network family, on synthetic CIFAR-shaped data
(32x32x3, 10 classes; nothing is downloaded):

* ``zela2018-best``: the best configuration Zela et al. (2018) found (reference table);
* ``resnet18``: PreAct ResNet-18 (4 stages x 2 blocks, 64..512 wide, 11.2M parameters),
  the paper's baseline training hyperparameters (batch 32, lr 0.1, Nesterov 0.9);
* ``smallest``: the smallest corner of the zela2018 space (1 block and 1 branch per stage,
  8 stem filters, widen factor 0.5, batch 32).

**jointsearch** is ``jointsearch.trainers.loop.train`` for two epochs, as the search runs it:
its random crop, CutOut, MixUp (two cross-entropies), the SGDR learning rate and per-step
reseeding included. The first epoch is the warm-up, the second is timed, using the training
time the loop reports through its ``report`` callback (its validation passes are excluded).
**plain** is the textbook loop over the same network (``models.build_model``), the same batch
size and SGD with Nesterov momentum: a shuffle per epoch, then per step index a batch, forward,
cross-entropy, backward, step. No augmentation at all, so it does strictly less work than
jointsearch's loop, whose crop, flip, CutOut and MixUp are therefore inside the ratio.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated``; on the CPU the growth of the
process's peak resident set (``ru_maxrss``) over the measurement, which is why every
(configuration, loop) pair runs in a fresh subprocess. The device is CUDA when available.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

from bench.common import quantiles, table, write_json

TARGET_RATIO = 0.95


def configurations() -> dict[str, dict]:
    from jointsearch.spaces import ZELA2018_BEST

    resnet18 = {"learning_rate": 0.1, "batch_size": 32, "weight_decay": 5e-4, "momentum": 0.9,
                "mixup_alpha": 0.2, "cutout_length": 16, "shakedrop_death_rate": 0.0, "filters_0": 64,
                **{f"res_blocks_{i}": 2 for i in range(1, 5)}, **{f"res_branches_{i}": 1 for i in range(1, 5)},
                **{f"widen_factor_{i}": 1.0 for i in range(1, 5)}}
    smallest = {"learning_rate": 0.1, "batch_size": 32, "weight_decay": 5e-4, "momentum": 0.9,
                "mixup_alpha": 0.2, "cutout_length": 16, "shakedrop_death_rate": 0.0, "filters_0": 8,
                **{f"res_blocks_{i}": 1 for i in (1, 2, 3)}, **{f"res_branches_{i}": 1 for i in (1, 2, 3)},
                **{f"widen_factor_{i}": 0.5 for i in (1, 2, 3)}}
    return {"zela2018-best": dict(ZELA2018_BEST), "resnet18": resnet18, "smallest": smallest}


def steps_for(name: str, quick: bool, device: str) -> int:
    """Timed steps (= warm-up steps): the big networks are slow on a CPU, so they get few."""
    if device == "cuda":
        return 20 if quick else 100
    if name == "smallest":  # ~25 ms a step: 200 steps make a timed epoch of seconds, not a blip
        return 20 if quick else 200
    return 2 if quick else 8


# ---------------------------------------------------------------------------------------------
# One measurement, in a subprocess
# ---------------------------------------------------------------------------------------------


def _synthetic(n: int, device):
    import torch

    from jointsearch.trainers.data import DataSplits, Split

    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    small = Split(x[:32].clone(), y[:32].clone())
    return DataSplits("synthetic-cifar-shape", Split(x, y), small, small, num_classes=10, in_channels=3,
                      image_size=32, flip=True)


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def measure(name: str, loop: str, steps: int) -> dict:
    import torch
    import torch.nn.functional as F

    from jointsearch.trainers.loop import Hyperparameters, TrainSettings, train
    from jointsearch.trainers.models import build_model

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    config = configurations()[name]
    batch = Hyperparameters.from_config(config, image_size=32, n_train=10**9).batch_size
    n = batch * steps
    data = _synthetic(n, dev)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    rss_before = _maxrss_mib()

    if loop == "jointsearch":
        elapsed = []
        train(config, 2.0, data, budget_unit="epochs", settings=TrainSettings(t0=2.0), seed=0, device=device,
              report=lambda p: elapsed.append(p.elapsed_s))
        timed_s = elapsed[1] - elapsed[0]
    else:
        model = build_model(config, 3, 10).to(dev)
        hp = Hyperparameters.from_config(config, image_size=32, n_train=n)
        optimizer = torch.optim.SGD(model.parameters(), lr=hp.learning_rate, momentum=hp.momentum,
                                    nesterov=True, weight_decay=hp.weight_decay)
        x_all, y_all = data.train.x.to(dev), data.train.y.to(dev)
        if device == "cuda":  # the same layout and precision as jointsearch's loop on CUDA
            model = model.to(memory_format=torch.channels_last)
        model.train()

        def epoch():
            perm = torch.randperm(n, device=dev)  # what DataLoader(shuffle=True) does
            for i in range(steps):
                idx = perm[i * batch:(i + 1) * batch]
                x, y = x_all[idx], y_all[idx]
                if device == "cuda":
                    x = x.contiguous(memory_format=torch.channels_last)
                    with torch.autocast("cuda", dtype=torch.bfloat16):
                        loss = F.cross_entropy(model(x), y)
                else:
                    loss = F.cross_entropy(model(x), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            loss.item()  # one sync per epoch, as a plain loop logging its loss would
            if device == "cuda":
                torch.cuda.synchronize()

        epoch()  # warm-up
        start = time.perf_counter()
        epoch()
        timed_s = time.perf_counter() - start
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else _maxrss_mib() - rss_before)
    return {"config": name, "loop": loop, "device": device, "batch_size": batch, "timed_steps": steps,
            "images": n, "timed_s": timed_s, "images_per_s": n / timed_s, "peak_mib": peak,
            "peak_kind": "cuda max_memory_allocated" if device == "cuda" else "ru_maxrss growth",
            "torch_threads": torch.get_num_threads()}


def run_in_subprocess(name: str, loop: str, steps: int) -> dict:
    out = subprocess.run([sys.executable, "-m", "bench.trainer", "--one", name, loop, str(steps)],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"measuring {name}/{loop} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few steps, one repeat")
    parser.add_argument("--repeats", type=int, default=None, help="measurements per (config, loop): 3 full, 1 quick")
    parser.add_argument("--configs", nargs="*", default=None, help="subset of: zela2018-best resnet18 smallest")
    parser.add_argument("--out", default="trainer", help="name of the JSON written to bench/results/")
    parser.add_argument("--one", nargs=3, metavar=("CONFIG", "LOOP", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one[0], args.one[1], int(args.one[2]))))
        return 0

    import torch

    from jointsearch.trainers.models import count_parameters

    device = "cuda" if torch.cuda.is_available() else "cpu"
    repeats = args.repeats or (1 if args.quick else 3)
    names = [n for n in configurations() if args.configs is None or n in args.configs]
    print(f"mode: {'quick' if args.quick else 'full'}; device: {device}"
          f"{' (no GPU here: the GPU path was NOT measured)' if device == 'cpu' else ''}; "
          f"torch threads: {torch.get_num_threads()}; {repeats} repeat(s) per (configuration, loop); "
          f"synthetic 32x32x3 data", flush=True)
    rows, results, verdicts = [], [], {}
    for name in names:
        steps = steps_for(name, args.quick, device)
        per_loop = {}
        measured: dict[str, list] = {"plain": [], "jointsearch": []}
        for r in range(repeats):  # interleaved, alternating which goes first, so drift hits both
            for loop in (("plain", "jointsearch") if r % 2 == 0 else ("jointsearch", "plain")):
                measured[loop].append(run_in_subprocess(name, loop, steps))
        for loop in ("plain", "jointsearch"):
            samples = measured[loop]
            ips = [s["images_per_s"] for s in samples]
            per_loop[loop] = {"images_per_s_median": quantiles(ips)[1], "images_per_s_best": max(ips),
                              "images_per_s": ips,
                              "peak_mib_median": quantiles([s["peak_mib"] for s in samples])[1],
                              "samples": samples}
            print(f"  {name} {loop}: {quantiles(ips)[1]:.1f} images/s", flush=True)
        ratio = per_loop["jointsearch"]["images_per_s_median"] / per_loop["plain"]["images_per_s_median"]
        # Other work on the machine only ever slows a run down: the best of the repeats is the
        # estimate least touched by it (timeit's rule), reported beside the median ratio.
        ratio_best = per_loop["jointsearch"]["images_per_s_best"] / per_loop["plain"]["images_per_s_best"]
        verdicts[name] = ratio >= TARGET_RATIO
        params = count_parameters(configurations()[name], 3, 10)
        results.append({"config": name, "params": params, "batch_size": per_loop["plain"]["samples"][0]["batch_size"],
                        "timed_steps": steps, "ratio": ratio, "ratio_best": ratio_best, "target_met": verdicts[name],
                        **per_loop})
        rows.append([name, f"{params / 1e6:.2f}M", per_loop["plain"]["samples"][0]["batch_size"],
                     f"{steps} x {repeats}", per_loop["plain"]["images_per_s_median"],
                     per_loop["jointsearch"]["images_per_s_median"], f"{ratio:.3f}", f"{ratio_best:.3f}",
                     per_loop["plain"]["peak_mib_median"], per_loop["jointsearch"]["peak_mib_median"],
                     "met" if verdicts[name] else "NOT MET"])
    print()
    print(table(["config", "params", "batch", "timed steps x runs", "plain img/s", "jointsearch img/s",
                 "ratio (medians)", "ratio (bests)", "plain peak MiB", "jointsearch peak MiB", f">= {TARGET_RATIO}x plain"], rows))
    kind = "cuda max_memory_allocated" if device == "cuda" else "growth of peak RSS (ru_maxrss) during the measurement"
    print(f"load average (1, 5, 15 min) at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())} "
          f"on {os.cpu_count()} CPUs: other work on the machine skews these numbers")
    print(f"\ndevice {device}; peak memory = {kind}; plain loop = shuffle, no augmentation "
          f"(jointsearch adds crop, flip, CutOut, MixUp: more work, not less); the target is judged "
          f"on the ratio of medians")
    if device == "cpu":
        print("GPU path not measured: no CUDA device on this machine.")
    path = write_json("trainer", name=args.out, payload={"mode": "quick" if args.quick else "full", "device": device, "repeats": repeats,
                                  "target_ratio": TARGET_RATIO, "results": results,
                                  "plain_loop": "shuffle per epoch, no augmentation; same model, batch size, SGD Nesterov",
                                  "peak_memory": kind})
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
