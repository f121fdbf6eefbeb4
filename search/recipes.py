"""Named recipes: a published search written down once, launched with ``--recipe NAME``.

A recipe is a set of :class:`~jointsearch.search.settings.SearchSettings` values. The CLI
applies it *under* the user's flags: a flag given explicitly on the command line wins, a flag
left at its default takes the recipe's value. ``--budget-scale`` then multiplies both budgets,
so the paper's GTX 1080 Ti seconds can be translated to another GPU (README: "The paper
recipe").
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from .budgets import hyperband_configurations
from .errors import UsageError

#: Zela et al. (2018): the 17-dim joint space on CIFAR-10 (45k/5k/10k), BOHB with budgets of
#: 400, 1200, 3600 and 10800 s of training on one GTX 1080 Ti, eta = 3, hpbandster's KDE
#: defaults (TuneBOHB's are the same), and 32 Hyperband iterations: hpbandster's iterations are
#: single successive-halving brackets, cycling through the 4 brackets of 27, 9, 6 and 4 new
#: configurations, so 32 of them sample 8 x 46 = 368 (:func:`hyperband_configurations`).
ZELA2018 = {
    "space": "zela2018",
    "dataset": "cifar10",
    "scheduler": "bohb",
    "budget_unit": "seconds",
    "min_budget": 400.0,
    "max_budget": 10800.0,
    "eta": 3.0,
    # No "fidelity": the recipe trains rungs under the project's default protocol (README:
    # bench/fidelity.py); add --fidelity scratch for the authors' own protocol.
}
ZELA2018_ITERATIONS = 32

RECIPES: dict[str, dict[str, Any]] = {"zela2018": ZELA2018}


def recipe_values(name: str) -> dict[str, Any]:
    """The settings a recipe stands for (num_samples included)."""
    if name not in RECIPES:
        raise UsageError(f"unknown --recipe {name!r}; choose from {', '.join(RECIPES)}")
    values = dict(RECIPES[name])
    values["num_samples"] = hyperband_configurations(values["min_budget"], values["max_budget"], values["eta"],
                                                     ZELA2018_ITERATIONS)
    return values


def apply_recipe(values: Mapping[str, Any], explicit: set[str], recipe: str | None,
                 budget_scale: float = 1.0) -> dict[str, Any]:
    """``values`` (SearchSettings keywords) with the recipe filled in where the user gave no
    flag (``explicit`` holds the keywords given on the command line), then both budgets
    multiplied by ``budget_scale``."""
    out = dict(values)
    if recipe:
        for key, value in recipe_values(recipe).items():
            if key not in explicit:
                out[key] = value
    if not (budget_scale > 0 and math.isfinite(budget_scale)):
        raise UsageError(f"--budget-scale must be a positive number, got {budget_scale}")
    if budget_scale != 1.0:
        out["min_budget"] = float(out["min_budget"]) * budget_scale
        out["max_budget"] = float(out["max_budget"]) * budget_scale
    return out
