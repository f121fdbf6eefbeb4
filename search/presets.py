"""The named pairings of a searcher (which configuration next) and a scheduler (how much budget).

One table owns every preset (Syne Tune's ``baselines.py`` idea). Each :class:`Preset` knows how to
build its searcher and scheduler, how to warm-start them from an interrupted search, and whether
Tune must limit its concurrency or it does so itself. The Ray objects are built lazily by the
functions a preset names (``ray_presets.py``; this module imports neither Ray nor torch, so the
settings and the CLI can list presets on a machine without Ray started). The ``hpbandster``
preset runs hpbandster's own master and workers instead (hpbandster_backend.py).

Adding a preset is one entry in ``PRESETS``: a name, what it pairs, and its three functions.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Sequence

_HERE = "jointsearch.search"


def _function(path: str) -> Callable[..., Any]:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(f"{_HERE}.{module}"), name)


@dataclass(frozen=True)
class Preset:
    """One preset; ``searcher`` and ``scheduler`` name the kinds it pairs (for people and tables).

    Contract of the functions it names (``module:function`` inside ``jointsearch.search``):

    - ``build(settings, space) -> (searcher, scheduler)``: fresh Ray Tune objects for one search;
    - ``warm_start(searcher, scheduler, space, observations, settings) -> int``: teach them the
      evaluations (``EvaluationRecord``) of an interrupted search; returns how many were taken;
    - ``own_concurrency``: True when the pair limits ``settings.max_concurrent`` itself (a
      searcher the scheduler must reach directly cannot be wrapped in Tune's limiter).
    """

    name: str
    searcher: str  # "kde" (BOHB's model, kde.py), "bohb" (TuneBOHB), "random", "tpe" (Optuna)
    scheduler: str  # "async_promotion", "hyperband_bohb", "hyperband", "asha", "fifo"
    backend: str  # "ray" or "hpbandster"
    description: str
    builder: str = ""
    warm_starter: str = ""
    own_concurrency: bool = True

    def build(self, settings, space):
        return _function(self.builder)(settings, space)

    def warm_start(self, searcher, scheduler, space, observations: Sequence, settings) -> int:
        return _function(self.warm_starter)(searcher, scheduler, space, observations, settings)

    def concurrency_limit(self, settings) -> int | None:
        """What Tune's ``max_concurrent_trials`` should be (None: the pair limits itself)."""
        if self.own_concurrency or not settings.max_concurrent:
            return None
        return settings.max_concurrent


def _ray(name: str, searcher: str, scheduler: str, description: str, *, own_concurrency: bool = True) -> Preset:
    key = name.replace("-", "_")
    return Preset(name, searcher, scheduler, "ray", description, builder=f"ray_presets:build_{key}",
                  warm_starter=f"ray_presets:warm_start_{key}", own_concurrency=own_concurrency)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        _ray("bohb", "kde", "async_promotion",
             "asynchronous BOHB: BOHB's KDE model (vectorised, kde.py) + asynchronous successive-halving "
             "promotion; no slot waits for a rung to fill (the default)"),
        _ray("bohb-sync", "bohb", "hyperband_bohb",
             "synchronous BOHB: Ray's TuneBOHB + HyperBandForBOHB (Falkner et al. 2018), the paper's optimiser"),
        _ray("hyperband", "random", "hyperband",
             "Hyperband: random configurations, synchronous successive halving brackets"),
        _ray("asha", "random", "asha",
             "ASHA: random configurations, asynchronous successive halving (no waiting for a rung to fill)"),
        _ray("random", "random", "fifo",
             "random search: every configuration trained to the max budget (still logged at every rung)"),
        _ray("tpe", "tpe", "asha", "Optuna's TPE sampler through Ray Tune, stopped early by ASHA",
             own_concurrency=False),
        Preset("hpbandster", "bohb", "hyperband", "hpbandster",
               "hpbandster's own BOHB master and workers (the reference implementation), on loopback"),
    )
}

SCHEDULERS = tuple(PRESETS)  # the preset names (kept under this name: settings and the CLI read it)
PRESET_NAMES = SCHEDULERS


def get_preset(name: str) -> Preset:
    return PRESETS[name]
