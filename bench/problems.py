"""The benchmark problems, as trainers (``fn(config, budget, **context) -> error``).

They live in their own module so that Ray workers can import them by path
(``bench.problems:counting_ones``); each also has an *exact* value, the infinite-budget or
highest-fidelity objective, that regret is measured on. Pure numpy: no torch, no Ray.

* **Counting ones** (Falkner, Klein, Hutter, "BOHB", ICML 2018, sec. 5.1 / appendix): 8 binary
  and 8 continuous dimensions in [0, 1]. The budget ``b`` is the number of Bernoulli samples
  drawn per continuous dimension; the observed value is
  ``-(sum(binary) + sum_j mean(Bernoulli(x_j), b samples)) / 16``. The exact value replaces the
  sample means by the probabilities themselves; the optimum is -1, so the regret is
  ``exact + 1`` in [0, 1]. Budgets 9 .. 729 with eta = 3, as in the paper.
* **Multi-fidelity Hartmann-6** (Kandasamy et al., "Multi-fidelity Bayesian optimisation with
  continuous approximations" (BOCA), ICML 2017; the same form as their Dragonfly library's
  ``hartmann6_4_mf``): the Hartmann-6 function with the weights ``alpha(z) = alpha - 0.1 (1 - z)``
  at fidelity ``z = (b - b_min) / (b_max - b_min)`` in [0, 1]. It is noise-free; lower
  fidelities are biased. We minimise ``-f``; the regret is ``f* - f(x, z=1)`` with
  ``f* = 3.32237`` (at ``x* = (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573)``).

* **Mixed Hartmann-6** (issue 14): low budgets whose rankings disagree with the top by a set
  amount (``agreement``), the shape of the paper's Spearman table; see ``mixed_hartmann6``.

The noise of counting ones is drawn from a generator seeded by (configuration, budget, seed),
so one evaluation is reproducible however the search schedules it.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # imported where a space is built: the trainers below run in every Ray trial process
    from ConfigSpace import ConfigurationSpace

# --- counting ones ---------------------------------------------------------------------------

N_BINARY, N_CONTINUOUS = 8, 8
COUNTING_ONES_BUDGETS = (9.0, 729.0)  # Bernoulli samples per continuous dimension


def counting_ones_space() -> ConfigurationSpace:
    from ConfigSpace import Categorical, ConfigurationSpace, Float

    space = ConfigurationSpace(name="counting_ones")
    space.add([Categorical(f"b{i}", [0, 1]) for i in range(N_BINARY)])
    space.add([Float(f"c{i}", (0.0, 1.0)) for i in range(N_CONTINUOUS)])
    return space


def _split(config: dict) -> tuple[np.ndarray, np.ndarray]:
    binary = np.array([float(config[f"b{i}"]) for i in range(N_BINARY)])
    continuous = np.array([float(config[f"c{i}"]) for i in range(N_CONTINUOUS)])
    return binary, continuous


def _rng(config: dict, budget: float, seed: int) -> np.random.Generator:
    key = json.dumps({k: float(v) for k, v in config.items()}, sort_keys=True) + f"|{budget:g}|{seed}"
    return np.random.default_rng(int.from_bytes(hashlib.sha1(key.encode()).digest()[:8], "little"))


def counting_ones(config: dict, budget: float, seed: int = 0, **_: Any) -> float:
    """The observed (noisy) value at ``budget`` Bernoulli samples per continuous dimension."""
    binary, continuous = _split(config)
    n = max(1, int(round(budget)))
    means = _rng(config, budget, seed).binomial(n, continuous) / n
    return float(-(binary.sum() + means.sum()) / (N_BINARY + N_CONTINUOUS))


def counting_ones_exact(config: dict) -> float:
    binary, continuous = _split(config)
    return float(-(binary.sum() + continuous.sum()) / (N_BINARY + N_CONTINUOUS))


def counting_ones_regret(config: dict) -> float:
    return counting_ones_exact(config) + 1.0


# --- multi-fidelity Hartmann-6 ---------------------------------------------------------------

HARTMANN_BUDGETS = (9.0, 729.0)  # budget units; only z = (b - 9) / 720 matters
HARTMANN_MAX = 3.32237
_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_A = np.array([[10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
               [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
               [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
               [17.0, 8.0, 0.05, 10.0, 0.1, 14.0]])
_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886],
                      [2329, 4135, 8307, 3736, 1004, 9991],
                      [2348, 1451, 3522, 2883, 3047, 6650],
                      [4047, 8828, 8732, 5743, 1091, 381]])


def hartmann6_space() -> ConfigurationSpace:
    from ConfigSpace import ConfigurationSpace, Float

    space = ConfigurationSpace(name="hartmann6")
    space.add([Float(f"x{i}", (0.0, 1.0)) for i in range(6)])
    return space


def _hartmann(x: np.ndarray, z: float) -> float:
    alpha = _ALPHA - 0.1 * (1.0 - z)
    return float(alpha @ np.exp(-np.sum(_A * (x - _P) ** 2, axis=1)))


def hartmann6(config: dict, budget: float, min_budget: float = HARTMANN_BUDGETS[0],
              max_budget: float = HARTMANN_BUDGETS[1], **_: Any) -> float:
    """``-f(x, z)`` at fidelity ``z = (budget - min_budget) / (max_budget - min_budget)``."""
    x = np.array([float(config[f"x{i}"]) for i in range(6)])
    span = max_budget - min_budget
    z = 1.0 if span <= 0 else min(1.0, max(0.0, (budget - min_budget) / span))
    return -_hartmann(x, z)


def hartmann6_regret(config: dict) -> float:
    x = np.array([float(config[f"x{i}"]) for i in range(6)])
    return HARTMANN_MAX - _hartmann(x, 1.0)


# --- Hartmann-6 whose low budgets disagree with the top (issue 14) ----------------------------
#
# The paper's shape (Zela et al. 2018, their Spearman table): neighbouring budgets agree well
# (0.86-0.88), the lowest and the highest hardly at all (0.05). At budget b the value is a mix of
# the true objective u(x) and an unrelated one v(x), both on a standard-normal scale (normal
# scores of Hartmann-6 under uniform x, so a weighted sum has the rank correlation its weights
# say): ``-(cos(theta_b) u(x) + sin(theta_b) v(x)) + noise * N(0, 1)`` with
# ``theta_b = arccos(agreement) * (1 - z)``, z the budget's position between min and max on a log
# scale. So the top budget is u itself (plus noise) and the lowest agrees with it by about
# ``agreement / (1 + noise^2)``: 1 = every budget agrees, 0 = independent, -1 = inverted.
# Measured on 1,000 random configurations, budgets 1, 3, 9, 27:
# agreement 0 (noise 0.35) gives -0.09 lowest vs highest, 0.73-0.74 between neighbours; -0.9 gives
# -0.80 and 0.48-0.58; 1 gives 0.87-0.89 everywhere.
# v is Hartmann-6 at a shifted and permuted point (rank correlation with u: -0.05). Regret is
# Hartmann-6's, at the top: ``f* - f(x)``.

MIXED_BUDGETS = (1.0, 27.0)
_NORMAL_SCORES: np.ndarray | None = None


def _normal_score(h: float) -> float:
    """Hartmann-6's value on a standard normal scale: Phi^-1 of its CDF under uniform x."""
    global _NORMAL_SCORES
    from scipy.special import ndtri

    if _NORMAL_SCORES is None:
        sample = np.random.default_rng(12345).random((20000, 6))
        _NORMAL_SCORES = np.sort([_hartmann(x, 1.0) for x in sample])
    q = (np.searchsorted(_NORMAL_SCORES, h) + 0.5) / (len(_NORMAL_SCORES) + 1)
    return float(ndtri(q))


def mixed_hartmann6_space() -> ConfigurationSpace:
    from ConfigSpace import ConfigurationSpace, Float

    space = ConfigurationSpace(name="mixed_hartmann6")
    space.add([Float(f"x{i}", (0.0, 1.0)) for i in range(6)])
    return space


def mixed_hartmann6(config: dict, budget: float, agreement: float = 0.0, noise: float = 0.35,
                    min_budget: float = MIXED_BUDGETS[0], max_budget: float = MIXED_BUDGETS[1], seed: int = 0,
                    **_: Any) -> float:
    """The observed value at ``budget``; ``agreement`` in [-1, 1] sets how the lowest budget ranks
    configurations against the highest (see above)."""
    x = np.array([float(config[f"x{i}"]) for i in range(6)])
    span = math.log(max_budget / min_budget) if max_budget > min_budget else 0.0
    z = 1.0 if span <= 0 else min(1.0, max(0.0, math.log(budget / min_budget) / span))
    theta = math.acos(max(-1.0, min(1.0, agreement))) * (1.0 - z)
    u = _normal_score(_hartmann(x, 1.0))
    v = _normal_score(_hartmann((x[[2, 4, 0, 5, 1, 3]] + 0.5) % 1.0, 1.0))
    eps = _rng(config, budget, seed).standard_normal() if noise > 0 else 0.0
    return float(-(math.cos(theta) * u + math.sin(theta) * v) + noise * eps)


def mixed_hartmann6_regret(config: dict) -> float:
    return hartmann6_regret(config)


# --- a trainer that only takes time ---------------------------------------------------------


def sleeping(config: dict, budget: float, sleep_s: float = 1.0, log_path: str | None = None,
             **_: Any) -> float:
    """An evaluation that takes ``sleep_s`` seconds and no CPU (bench.overhead's measured share).

    Appends ``start end`` (``time.time()``) to ``log_path``, one line per call, so the benchmark
    can tell the time spent inside the trainer from the time spent around it. Returns a value
    that depends on the configuration and the budget, so the searchers have something to rank.
    """
    import time

    start = time.time()
    time.sleep(sleep_s)
    end = time.time()
    if log_path:
        with open(log_path, "a") as f:
            f.write(f"{start:.6f} {end:.6f}\n")
    digest = hashlib.sha1(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()
    return int(digest[:8], 16) / 2 ** 32 / (1.0 + budget)


def where() -> str:
    """This module's file: called in a Ray worker, it proves the workers can import ``bench``."""
    return __file__


# --- a simulated accelerator cluster (bench.cluster) -----------------------------------------

# The six training hyperparameters of the joint spaces that stand in for Hartmann-6's x, each
# mapped to [0, 1] over its range (log-scaled where the space samples it on a log scale).
JOINT_OBJECTIVE_DIMS = ("learning_rate", "weight_decay", "momentum", "mixup_alpha", "cutout_length",
                        "shakedrop_death_rate")


def arch_work(config: dict) -> float:
    """Compute per image of the multi-branch ResNet, up to a constant: sum over stages of
    blocks x branches x width^2 x (pixels: a quarter per later stage). Torch-free, so a
    sleeping worker can afford it."""
    work, i = 0.0, 1
    stem = float(config.get("filters_0", 16))
    while f"res_blocks_{i}" in config:
        width = stem * float(config.get(f"widen_factor_{i}", 1.0)) * 2 ** (i - 1)
        work += float(config[f"res_blocks_{i}"]) * float(config.get(f"res_branches_{i}", 1)) * width ** 2 / 4 ** (i - 1)
        i += 1
    return work


def cost_factor(config: dict, work_range: tuple[float, float] | None = None, low: float = 0.5,
                high: float = 4.0) -> float:
    """How much slower than the unit this configuration trains, in [low, high].

    Joint-space configurations: log-linear in :func:`arch_work` between the space's smallest
    and largest corner (``work_range``), since architectures of a joint space differ by orders
    of magnitude in compute. Anything else: uniform in [low, high] from the configuration's hash.
    """
    if work_range and "res_blocks_1" in config:
        lo, hi = (math.log(w) for w in work_range)
        u = (math.log(max(arch_work(config), 1e-12)) - lo) / max(hi - lo, 1e-12)
    else:
        digest = hashlib.sha1(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()
        u = int(digest[8:16], 16) / 2 ** 32
    return low + (high - low) * min(1.0, max(0.0, u))


def joint_point(config: dict, bounds: dict) -> np.ndarray:
    """The six :data:`JOINT_OBJECTIVE_DIMS` of a joint configuration, each in [0, 1].
    ``bounds[name] = (low, high, log)``; a missing (inactive) value counts as its low end."""
    x = []
    for name in JOINT_OBJECTIVE_DIMS:
        low, high, log = bounds[name]
        v = float(config.get(name, low))
        if log:
            v, low, high = math.log(v), math.log(low), math.log(high)
        x.append(0.0 if high <= low else min(1.0, max(0.0, (v - low) / (high - low))))
    return np.array(x)


def joint_regret(config: dict, bounds: dict) -> float:
    return HARTMANN_MAX - _hartmann(joint_point(config, bounds), 1.0)


def cluster_sleeper(config: dict, budget: float, *, unit_s: float = 1.0, log_path: str | None = None,
                    work_range: list | None = None, bounds: dict | None = None, min_budget: float = 1.0,
                    max_budget: float = 9.0, checkpoint_dir: str | None = None, save_dir: str | None = None,
                    **_: Any) -> dict:
    """A trainer that holds its (logical) GPU for ``(budget - budget already trained) x unit_s x
    cost_factor(config)`` seconds and uses no CPU; continues from ``checkpoint_dir`` like a real
    trainer. Appends one JSON line per evaluation to ``log_path``: start, end, budget, cost
    factor, the GPU share Ray gave it, and the configuration. The value is multi-fidelity
    Hartmann-6 on six training hyperparameters (``bounds``), so regret can be measured."""
    import os
    import time

    done = 0.0
    if checkpoint_dir and os.path.isfile(os.path.join(checkpoint_dir, "sleeper.json")):
        with open(os.path.join(checkpoint_dir, "sleeper.json")) as f:
            done = float(json.load(f)["budget"])
    cost = cost_factor(config, tuple(work_range) if work_range else None)
    start = time.time()
    time.sleep(max(0.0, budget - done) * unit_s * cost)
    end = time.time()
    if save_dir:
        with open(os.path.join(save_dir, "sleeper.json"), "w") as f:
            json.dump({"budget": budget}, f)
    gpu = 0.0
    try:
        import ray

        gpu = sum(v for k, v in ray.get_runtime_context().get_assigned_resources().items() if k.startswith("GPU"))
    except Exception:  # noqa: BLE001 - not in a Ray worker
        pass
    if bounds:
        span = max_budget - min_budget
        z = 1.0 if span <= 0 else min(1.0, max(0.0, (budget - min_budget) / span))
        value = -_hartmann(joint_point(config, bounds), z)
    else:
        value = sleeping(config, budget, sleep_s=0.0)
    if log_path:
        with open(log_path, "a") as f:
            f.write(json.dumps({"start": start, "end": end, "budget": budget, "from": done, "cost": cost,
                                "gpu": gpu, "pid": os.getpid(), "value": value, "config": config},
                               default=str) + "\n")
    return {"val_error": value, "cost_s": end - start}
