"""The named pairings of a searcher (which configuration next) and a scheduler (how much budget).

One module owns every pairing (Syne Tune's ``baselines.py`` idea), as plain data: the Ray
objects are built from these records in ray_tune.py, the only module that imports Ray, and the
``hpbandster`` preset runs hpbandster's own master and workers (hpbandster_backend.py).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    name: str
    searcher: str  # "bohb" (KDE model), "random" (ConfigSpace sampling), "tpe" (Optuna)
    scheduler: str  # "hyperband_bohb", "hyperband", "asha", "fifo" (every trial to max budget)
    backend: str  # "ray" or "hpbandster"
    description: str


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("bohb", "bohb", "hyperband_bohb", "ray",
               "BOHB: TuneBOHB's KDE model + HyperBandForBOHB (Falkner et al. 2018), the paper's optimiser"),
        Preset("hyperband", "random", "hyperband", "ray",
               "Hyperband: random configurations, synchronous successive halving brackets"),
        Preset("asha", "random", "asha", "ray",
               "ASHA: random configurations, asynchronous successive halving (no waiting for a rung to fill)"),
        Preset("random", "random", "fifo", "ray",
               "random search: every configuration trained to the max budget (still logged at every rung)"),
        Preset("tpe", "tpe", "asha", "ray",
               "Optuna's TPE sampler through Ray Tune, stopped early by ASHA"),
        Preset("hpbandster", "bohb", "hyperband", "hpbandster",
               "hpbandster's own BOHB master and workers (the reference implementation), on loopback"),
    )
}

SCHEDULERS = tuple(PRESETS)


def get_preset(name: str) -> Preset:
    return PRESETS[name]
