"""The registered spaces: the paper's 17-dimensional joint space, its five fixed baselines, and `tiny`.

Hyperparameter names are snake_case versions of the paper's (``ResBlocks_1`` -> ``res_blocks_1``);
the trainer reads exactly these names and falls back to the paper's baseline defaults for any
that a space leaves out (conditional spaces omit inactive ones). Stage widths compound
(``width_i = round(width_(i-1) * widen_factor_i)``, the authors' rule; trainers/models.py), so a
baseline doubling its width per stage has widen factor 2 after the first stage.
"""

from __future__ import annotations

from ConfigSpace import Constant, ConfigurationSpace, Float, Integer

from .registry import register

# The seven training hyperparameters, as in Zela et al. (2018), Table 1: (low, high, log).
TRAINING_RANGES = {
    "learning_rate": (0.001, 1.0, True),
    "batch_size": (32, 128, True),
    "weight_decay": (1e-5, 1e-3, True),  # L2 regularisation
    "momentum": (0.001, 0.99, False),  # Nesterov momentum
    "mixup_alpha": (0.0, 1.0, False),
    "cutout_length": (0, 20, False),  # pixels
    "shakedrop_death_rate": (0.0, 1.0, False),
}
INTEGER_NAMES = {"batch_size", "cutout_length", "filters_0"} | {
    f"res_{kind}_{i}" for kind in ("blocks", "branches") for i in range(1, 5)
}

# The architecture part of the joint space: per stage i = 1..3.
ARCHITECTURE_RANGES = {
    **{f"res_blocks_{i}": (1, 16, True) for i in (1, 2, 3)},
    **{f"res_branches_{i}": (1, 5, False) for i in (1, 2, 3)},
    "filters_0": (8, 32, True),
    **{f"widen_factor_{i}": (0.5, 8.0, True) for i in (1, 2, 3)},
}

# The best configuration the paper found in 3 h (reference table), kept for benchmarks and tests.
ZELA2018_BEST = {
    "learning_rate": 0.648188,
    "batch_size": 89,
    "weight_decay": 0.000339,
    "momentum": 0.099601,
    "mixup_alpha": 0.492042,
    "cutout_length": 3,
    "shakedrop_death_rate": 0.038439,
    "res_blocks_1": 3,
    "res_blocks_2": 4,
    "res_blocks_3": 2,
    "res_branches_1": 1,
    "res_branches_2": 1,
    "res_branches_3": 4,
    "filters_0": 16,
    "widen_factor_1": 6.241141,
    "widen_factor_2": 1.388867,
    "widen_factor_3": 3.344766,
}


def _hyperparameter(name: str, low, high, log: bool):
    if name in INTEGER_NAMES:
        return Integer(name, (int(low), int(high)), log=log)
    return Float(name, (float(low), float(high)), log=log)


def _space(ranges: dict, constants: dict | None = None) -> ConfigurationSpace:
    space = ConfigurationSpace()
    space.add([_hyperparameter(n, *r) for n, r in ranges.items()])
    space.add([Constant(n, v) for n, v in (constants or {}).items()])
    return space


@register("zela2018")
def zela2018() -> ConfigurationSpace:
    """The paper's joint space: 3-stage multi-branch PreAct ResNet + 7 training hyperparameters (17 dims)."""
    return _space({**TRAINING_RANGES, **ARCHITECTURE_RANGES})


@register("resnet18")
def resnet18() -> ConfigurationSpace:
    """PreAct ResNet-18 (4 stages x 2 blocks, 64..512 wide, 11.17M) fixed; only the 7 training hyperparameters vary."""
    arch = {f"res_blocks_{i}": 2 for i in range(1, 5)}
    arch |= {f"res_branches_{i}": 1 for i in range(1, 5)}
    # Compounding widths (trainers/models.py): 64 * 1 = 64, then x2 per stage: 128, 256, 512.
    arch |= {"widen_factor_1": 1.0} | {f"widen_factor_{i}": 2.0 for i in (2, 3, 4)}
    arch["filters_0"] = 64
    return _space(TRAINING_RANGES, arch)


@register("wrn28-10")
def wrn28_10() -> ConfigurationSpace:
    """WideResNet-28-10 (3 stages x 4 blocks, 160..640 wide, 36.48M) fixed; only the 7 training hyperparameters vary."""
    arch = {f"res_blocks_{i}": 4 for i in (1, 2, 3)}
    arch |= {f"res_branches_{i}": 1 for i in (1, 2, 3)}
    # Compounding widths: 16 * 10 = 160, then x2 per stage: 320, 640.
    arch |= {"widen_factor_1": 10.0, "widen_factor_2": 2.0, "widen_factor_3": 2.0}
    arch["filters_0"] = 16
    return _space(TRAINING_RANGES, arch)


def _shake_shake_26(first_width: int) -> ConfigurationSpace:
    """Shake-Shake 26 2x<first_width>d (Gastaldi 2017): 3 stages x 4 two-branch blocks on a
    16-channel stem, widths first_width, 2x, 4x; only the 7 training hyperparameters vary."""
    arch = {f"res_blocks_{i}": 4 for i in (1, 2, 3)}
    arch |= {f"res_branches_{i}": 2 for i in (1, 2, 3)}
    arch |= {"widen_factor_1": first_width / 16, "widen_factor_2": 2.0, "widen_factor_3": 2.0}
    arch["filters_0"] = 16
    return _space(TRAINING_RANGES, arch)


@register("shake26-2x32d")
def shake26_2x32d() -> ConfigurationSpace:
    """Shake-Shake 26 2x32d (32..128 wide, 2.9M), the paper's smallest Shake-Shake baseline; 7 training hyperparameters vary."""
    return _shake_shake_26(32)


@register("shake26-2x64d")
def shake26_2x64d() -> ConfigurationSpace:
    """Shake-Shake 26 2x64d (64..256 wide, 11.7M), a baseline of the paper; 7 training hyperparameters vary."""
    return _shake_shake_26(64)


@register("shake26-2x96d")
def shake26_2x96d() -> ConfigurationSpace:
    """Shake-Shake 26 2x96d (96..384 wide, 26.2M), a baseline of the paper; 7 training hyperparameters vary."""
    return _shake_shake_26(96)


@register("tiny")
def tiny() -> ConfigurationSpace:
    """A small joint space (same 17 names, narrow ranges) that trains in seconds on a CPU: demo and tests."""
    return _space(
        {
            "learning_rate": (0.005, 0.5, True),
            "batch_size": (16, 64, True),
            "weight_decay": (1e-5, 1e-3, True),
            "momentum": (0.5, 0.95, False),
            "mixup_alpha": (0.0, 0.5, False),
            "cutout_length": (0, 4, False),
            "shakedrop_death_rate": (0.0, 0.5, False),
            **{f"res_blocks_{i}": (1, 2, False) for i in (1, 2, 3)},
            **{f"res_branches_{i}": (1, 2, False) for i in (1, 2, 3)},
            "filters_0": (4, 12, True),
            # Widths compound (width_i = width_(i-1) * widen_factor_i): stages 2 and 3 widen by
            # 1..3x, so the networks stay about as large as before the compounding rule (median
            # ~22k parameters on digits, at most ~0.5M) and none shrinks to a 1-channel stage.
            "widen_factor_1": (0.5, 2.0, True),
            **{f"widen_factor_{i}": (1.0, 3.0, True) for i in (2, 3)},
        }
    )
