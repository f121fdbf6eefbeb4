"""What every benchmark script shares: machine facts, the JSON record, plain-text tables, Ray.

Each script writes ``bench/results/<script>.json`` holding its command line, its mode (quick or
full), how many runs/seeds it took, the machine (nproc, torch/ray versions, date) and its
numbers, and prints the same numbers as a table.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import sys
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parent.parent
# BENCH_RESULTS_DIR redirects the output of a trial run, so it does not overwrite the figures.
RESULTS = Path(os.environ.get("BENCH_RESULTS_DIR") or Path(__file__).resolve().parent / "results")


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"nproc": os.cpu_count(), "platform": platform.platform(),
                            "python": platform.python_version(),
                            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
    # Other work on the machine skews every timing: the load average says how much there was.
    info["loadavg_1_5_15min"] = [round(x, 2) for x in os.getloadavg()]
    try:
        with open("/proc/meminfo") as f:
            info["mem_gib"] = round(int(f.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    for name in ("torch", "ray", "optuna", "hpbandster", "ConfigSpace", "mlflow"):
        try:
            module = __import__(name)
            info[f"{name}_version"] = getattr(module, "__version__", "?")
        except Exception:  # a missing peer is recorded, not fatal
            info[f"{name}_version"] = None
    try:
        import torch

        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:
        info["cuda"] = None
    return info


def write_json(script: str, payload: dict[str, Any], name: str | None = None) -> Path:
    """Write ``bench/results/<name or script>.json``: the command line, the machine, ``payload``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name or script}.json"
    record = {"script": f"bench/{script}.py", "command": "python -m bench." + script + " " + " ".join(sys.argv[1:]),
              "machine": machine(), **payload}
    path.write_text(json.dumps(_finite(record), indent=2, default=str) + "\n")
    return path


def _finite(value: Any) -> Any:
    """NaN and inf become null/strings: strict JSON readers refuse them."""
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table, columns left-aligned, floats in 4 significant digits."""
    def cell(v: Any) -> str:
        if isinstance(v, float):
            if math.isnan(v):
                return "-"
            if math.isinf(v):
                return "inf" if v > 0 else "-inf"
            return f"{v:.4g}"
        return str(v)

    cells = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = lambda row: "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def init_ray(num_cpus: int | None = None) -> None:
    """One local Ray runtime per script, with the repository root on the workers' PYTHONPATH.

    Workers inherit the environment of the raylet, which inherits the driver's: setting
    PYTHONPATH before ``ray.init`` is what makes ``bench.problems`` importable in them.
    Checked at once by importing ``bench.problems`` in a remote task.
    """
    paths = [str(ROOT), *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local, single-user benchmark runtime
    import logging

    import ray

    if ray.is_initialized():
        return
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, logging_level=logging.WARNING,
             log_to_driver=False)  # "local": never a cluster that happens to run on this machine

    @ray.remote(num_cpus=0)
    def _where() -> str:
        from bench import problems

        return problems.where()

    ray.get(_where.remote())


def quantiles(values: Sequence[float]) -> tuple[float, float, float]:
    """(25th percentile, median, 75th percentile), linearly interpolated; NaN when empty.

    Infinite values (a run that never reached a threshold) sort last; a quantile that falls
    between a finite value and an infinite one is infinite.
    """
    vals = sorted(v for v in values if not math.isnan(v))
    if not vals:
        return float("nan"), float("nan"), float("nan")
    out = []
    for q in (0.25, 0.5, 0.75):
        pos = q * (len(vals) - 1)
        lo, hi = math.floor(pos), math.ceil(pos)
        if lo == hi:
            out.append(float(vals[lo]))
        elif math.isinf(vals[hi]) or math.isinf(vals[lo]):
            out.append(math.inf if math.isinf(vals[hi]) and vals[hi] > 0 else float(vals[lo]))
        else:
            out.append(float(vals[lo] + (vals[hi] - vals[lo]) * (pos - lo)))
    return out[0], out[1], out[2]
