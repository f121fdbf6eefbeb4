"""Tests for trainers/models.py: parameter counts against a closed-form formula, the two
baselines, forward/backward of multi-branch blocks, and Shake-Shake / ShakeDrop semantics."""

from __future__ import annotations

import pytest
import torch

from jointsearch.trainers.models import (
    Block, arch_spec, build_model, count_parameters, shake_drop, shake_shake,
)

ZELA_MIN = {
    **{f"res_blocks_{i}": 1 for i in (1, 2, 3)},
    **{f"res_branches_{i}": 1 for i in (1, 2, 3)},
    **{f"widen_factor_{i}": 0.5 for i in (1, 2, 3)},
    "filters_0": 8,
}
ZELA_MAX = {
    **{f"res_blocks_{i}": 16 for i in (1, 2, 3)},
    **{f"res_branches_{i}": 5 for i in (1, 2, 3)},
    **{f"widen_factor_{i}": 8.0 for i in (1, 2, 3)},
    "filters_0": 32,
}
ZELA_BEST = {  # the 3 h incumbent of Zela et al. 2018 (reference/zela2018.md)
    "learning_rate": 0.648188, "batch_size": 89, "weight_decay": 0.000339,
    "momentum": 0.099601, "mixup_alpha": 0.492042, "cutout_length": 3,
    "shakedrop_death_rate": 0.038439,
    "res_blocks_1": 3, "res_blocks_2": 4, "res_blocks_3": 2,
    "res_branches_1": 1, "res_branches_2": 1, "res_branches_3": 4,
    "filters_0": 16,
    "widen_factor_1": 6.241141, "widen_factor_2": 1.388867, "widen_factor_3": 3.344766,
}
# The baselines in the authors' compounding width rule (width_i = round(width_(i-1) * wf_i)).
RESNET18 = {**{f"res_blocks_{i}": 2 for i in (1, 2, 3, 4)}, "filters_0": 64,
            "widen_factor_1": 1.0, **{f"widen_factor_{i}": 2.0 for i in (2, 3, 4)}}
WRN_28_10 = {**{f"res_blocks_{i}": 4 for i in (1, 2, 3)}, "filters_0": 16,
             "widen_factor_1": 10.0, "widen_factor_2": 2.0, "widen_factor_3": 2.0}


def shake26(first_width: int) -> dict:
    return {**{f"res_blocks_{i}": 4 for i in (1, 2, 3)}, **{f"res_branches_{i}": 2 for i in (1, 2, 3)},
            "filters_0": 16, "widen_factor_1": first_width / 16, "widen_factor_2": 2.0, "widen_factor_3": 2.0}


SMALL_MULTI = {"res_blocks_1": 1, "res_blocks_2": 2, "res_branches_1": 3,
               "res_branches_2": 3, "filters_0": 4, "shakedrop_death_rate": 0.5}


def expected_parameter_count(config: dict, in_channels: int, num_classes: int) -> int:
    """The architecture written out as arithmetic, independent of the nn.Module code.

    Widths compound: w_0 = filters_0, w_i = round(w_(i-1) * widen_factor_i) (the authors'
    rule). Stem conv3x3; per block: a shared pre-activation BN (2 * c_in), per branch
    conv3x3(c_in -> w) + BN(w) + conv3x3(w -> w), a 1x1 projection when the shape changes;
    head BN + Linear with bias.
    """
    f0 = config["filters_0"]
    total = 9 * in_channels * f0
    c = w = f0
    i = 1
    while f"res_blocks_{i}" in config:
        w = max(1, round(w * config.get(f"widen_factor_{i}", 1.0)))
        n = config.get(f"res_branches_{i}", 1)
        for j in range(config[f"res_blocks_{i}"]):
            downsample = i > 1 and j == 0
            total += 2 * c + n * (9 * c * w + 2 * w + 9 * w * w)
            if downsample or c != w:
                total += c * w
            c = w
        i += 1
    return total + 2 * c + c * num_classes + num_classes


@pytest.mark.parametrize("config", [ZELA_MIN, ZELA_MAX, ZELA_BEST, RESNET18, WRN_28_10, shake26(64)],
                         ids=["zela-min", "zela-max", "zela-best", "resnet18", "wrn-28-10", "shake26-2x64d"])
def test_count_parameters_matches_closed_form(config):
    """The meta-device count equals the formula, even for the billion-parameter corner."""
    assert count_parameters(config, 3, 10) == expected_parameter_count(config, 3, 10)


def test_max_corner_is_over_a_billion_parameters():
    assert count_parameters(ZELA_MAX, 3, 10) > 1_000_000_000


@pytest.mark.parametrize("config,published", [(RESNET18, 11_171_146), (WRN_28_10, 36_479_194)],
                         ids=["preact-resnet18", "wrn-28-10"])
def test_baselines_have_published_sizes(config, published):
    """PreAct ResNet-18 (11.2M) and WRN-28-10 (36.5M) within 1% on 10 classes."""
    assert count_parameters(config, 3, 10) == pytest.approx(published, rel=0.01)


@pytest.mark.parametrize("first_width,published", [(32, 2.9e6), (64, 11.7e6), (96, 26.2e6)],
                         ids=["2x32d", "2x64d", "2x96d"])
def test_shake_shake_26_baselines_have_the_papers_sizes(first_width, published):
    """Shake-Shake 26 2x32d / 2x64d / 2x96d: 2.9M, 11.7M, 26.2M (the paper's table) within 1%.

    Our two-branch block shares its first BN and uses a 1x1 projection shortcut rather than
    Gastaldi's two concatenated half-width 1x1 convolutions, so the count differs by a little.
    """
    assert count_parameters(shake26(first_width), 3, 10) == pytest.approx(published, rel=0.01)


def test_papers_best_configuration_has_27_6m_parameters():
    """The 3 h incumbent of Zela et al. has widths 100, 139, 465 and 27.6M parameters (within
    1%) under the authors' compounding widths; the old doubling rule gave 5.9M."""
    assert arch_spec(ZELA_BEST).widths == (100, 139, 465)
    assert count_parameters(ZELA_BEST, 3, 10) == pytest.approx(27.6e6, rel=0.01)


@pytest.mark.parametrize("name,config", [("resnet18", RESNET18), ("wrn28-10", WRN_28_10),
                                         ("shake26-2x32d", shake26(32)), ("shake26-2x64d", shake26(64)),
                                         ("shake26-2x96d", shake26(96))])
def test_registered_baseline_spaces_build_these_networks(name, config):
    """The registered baseline spaces fix exactly the architectures counted above."""
    from jointsearch import spaces

    fixed = dict(spaces.get(name).get_default_configuration())
    assert arch_spec(fixed).widths == arch_spec(config).widths
    assert count_parameters(fixed, 3, 10) == count_parameters(config, 3, 10)


def test_real_model_count_equals_meta_count():
    model = build_model(ZELA_MIN, 3, 10)
    assert sum(p.numel() for p in model.parameters()) == count_parameters(ZELA_MIN, 3, 10)


def test_missing_keys_take_defaults_and_stage_widths_compound():
    """width_1 = round(10 * 1.0) = 10; width_2 = round(10 * 1.5) = 15; width_3 = round(15 * 2.5) = 38
    (no doubling per stage: the authors' rule)."""
    spec = arch_spec({"res_blocks_1": 2, "res_blocks_2": 1, "res_blocks_3": 1, "filters_0": 10,
                      "widen_factor_2": 1.5, "widen_factor_3": 2.5})
    assert spec.blocks == (2, 1, 1)
    assert spec.branches == (1, 1, 1)
    assert spec.widths == (10, 15, 38)
    assert spec.death_rate == 0.0


def test_config_without_stages_is_rejected():
    with pytest.raises(ValueError, match="res_blocks_1"):
        build_model({"filters_0": 8}, 3, 10)


def test_shakedrop_death_probability_grows_linearly_with_depth():
    model = build_model({"res_blocks_1": 2, "res_blocks_2": 2, "filters_0": 4,
                         "shakedrop_death_rate": 0.5}, 3, 10)
    probs = [m.death_prob for m in model.modules() if isinstance(m, Block)]
    assert probs == pytest.approx([0.125, 0.25, 0.375, 0.5])


@pytest.mark.parametrize("shape", [(2, 3, 32, 32), (2, 1, 8, 8)], ids=["rgb32", "gray8"])
def test_forward_backward_multi_branch(shape):
    """Three branches and ShakeDrop: logits of the right shape, finite gradients everywhere."""
    torch.manual_seed(0)
    model = build_model(SMALL_MULTI, shape[1], 10)
    out = model(torch.randn(shape))
    assert out.shape == (shape[0], 10)
    out.square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_forward_on_single_image():
    model = build_model(SMALL_MULTI, 1, 10).eval()
    assert model(torch.randn(1, 1, 8, 8)).shape == (1, 10)


def test_eval_mode_is_deterministic():
    model = build_model(SMALL_MULTI, 3, 10).eval()
    x = torch.randn(4, 3, 16, 16)
    torch.manual_seed(1)
    a = model(x)
    torch.manual_seed(2)
    b = model(x)
    assert torch.equal(a, b)


def test_train_mode_is_random_but_reproducible_under_a_seed():
    """Shake-Shake and ShakeDrop draw from torch's global generator in training."""
    model = build_model(SMALL_MULTI, 3, 10).train()
    x = torch.randn(4, 3, 16, 16)
    torch.manual_seed(1)
    a = model(x)
    torch.manual_seed(2)
    b = model(x)
    torch.manual_seed(1)
    c = model(x)
    assert not torch.allclose(a, b)
    assert torch.equal(a, c)


def test_shake_shake_convex_forward_independent_backward():
    """Forward: a per-sample convex combination; backward: other convex weights per sample."""
    torch.manual_seed(0)
    n, batch = 3, 64
    branches = [torch.full((batch, 1, 2, 2), float(k), requires_grad=True) for k in range(n)]
    out = shake_shake(branches, training=True)
    forward_w = out[:, 0, 0, 0].detach()          # = sum_k w_k * k
    assert ((forward_w >= 0) & (forward_w <= n - 1)).all()
    out.sum().backward()
    grads = torch.stack([b.grad[:, 0, 0, 0] for b in branches], dim=1)  # d out / d branch_k
    assert (grads >= 0).all()
    assert torch.allclose(grads.sum(dim=1), torch.ones(batch))
    backward_mean = (grads * torch.arange(n).float()).sum(dim=1)
    assert not torch.allclose(backward_mean, forward_w)


def test_shake_shake_eval_is_the_mean():
    branches = [torch.full((2, 1, 2, 2), float(k)) for k in range(4)]
    assert torch.allclose(shake_shake(branches, training=False), torch.full((2, 1, 2, 2), 1.5))


def test_shake_drop_eval_scales_by_survival_probability():
    x = torch.ones(3, 2, 2, 2)
    assert torch.allclose(shake_drop(x, 0.25, training=False), 0.75 * x)


def test_shake_drop_dead_blocks_scale_by_alpha_forward_and_beta_backward():
    """With death probability 1 every gate is closed: forward x*alpha, alpha in [-1, 1],
    backward grad*beta, beta in [0, 1], drawn independently."""
    torch.manual_seed(0)
    x = torch.ones(256, 1, 1, 1, requires_grad=True)
    out = shake_drop(x, 1.0, training=True)
    alpha = out.detach().flatten()
    out.sum().backward()
    beta = x.grad.flatten()
    assert alpha.min() >= -1 and alpha.max() <= 1 and alpha.min() < 0 < alpha.max()
    assert beta.min() >= 0 and beta.max() <= 1
    assert not torch.allclose(alpha, beta)


def test_shake_drop_open_gates_pass_the_residual():
    x = torch.randn(8, 2, 2, 2)
    assert torch.equal(shake_drop(x, 0.0, training=True), x)


class TestAuthorsVariant:
    """variant="authors": Zela et al.'s code rather than the published formulas."""

    def test_shake_shake_weights_are_a_softmax_of_uniforms(self):
        """Two branches: w = sigmoid(u1 - u2) lies in [1/(1+e), e/(1+e)], never near 0 or 1
        as the published U[0, 1] weights often are."""
        torch.manual_seed(0)
        batch = 4096
        branches = [torch.zeros(batch, 1, 1, 1), torch.ones(batch, 1, 1, 1)]
        authors = shake_shake(branches, training=True, variant="authors").flatten()
        published = shake_shake(branches, training=True).flatten()
        e = torch.e
        assert authors.min() >= 1 / (1 + e) - 1e-6 and authors.max() <= e / (1 + e) + 1e-6
        assert published.min() < 0.05 and published.max() > 0.95
        assert torch.equal(shake_shake(branches, training=False, variant="authors"),
                           shake_shake(branches, training=False))

    def test_shakedrop_only_in_single_branch_blocks_with_one_rate(self):
        config = {"res_blocks_1": 2, "res_blocks_2": 2, "res_branches_2": 2, "filters_0": 4,
                  "shakedrop_death_rate": 0.5}
        authors = [m.death_prob for m in build_model(config, 3, 10, "authors").modules() if isinstance(m, Block)]
        published = [m.death_prob for m in build_model(config, 3, 10).modules() if isinstance(m, Block)]
        assert authors == [0.5, 0.5, 0.0, 0.0]
        assert published == pytest.approx([0.125, 0.25, 0.375, 0.5])

    def test_same_parameters_either_way_and_unknown_variant_refused(self):
        a = build_model(SMALL_MULTI, 3, 10, "authors")
        b = build_model(SMALL_MULTI, 3, 10)
        assert [p.shape for p in a.parameters()] == [p.shape for p in b.parameters()]
        with pytest.raises(ValueError, match="variant"):
            build_model(SMALL_MULTI, 3, 10, "mine")
