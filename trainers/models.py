"""The multi-branch pre-activation ResNet searched by Zela et al. (2018).

One network family covers the whole joint space and both baselines:

* a 3x3 stem convolution to ``filters_0`` channels;
* stages ``i = 1..N`` (as many as the config has ``res_blocks_i`` keys), stage ``i`` being
  ``res_blocks_i`` residual blocks of width ``width_i``, where the widen factors *compound*
  with no extra doubling, as in the authors' code (arberzela/EfficientNAS,
  ``workers/arch_space/model/macro_model.py``)::

      width_1 = round(filters_0 * widen_factor_1)
      width_i = round(width_(i-1) * widen_factor_i)        # i >= 2

  stage 1 keeps the resolution, every later stage halves it in its first block. (A
  ``filters_0 * widen_factor_i * 2**(i-1)`` rule, which this module used before, gives the
  paper's best configuration 5.9M parameters instead of its published 27.6M: another space.)
* every block sums ``res_branches_i`` parallel residual branches Shake-Shake style
  (Gastaldi 2017) and scales the sum with ShakeDrop (Yamada et al. 2019);
* a BN-ReLU-global-average-pool-Linear head.

Under that rule the baselines are: PreAct ResNet-18 (He et al. 2016, 11.17M parameters on 10
classes) = blocks ``(2, 2, 2, 2)``, one branch, ``filters_0 = 64``, widen factors ``(1, 2, 2,
2)``; WRN-28-10 (36.5M) = blocks ``(4, 4, 4)``, one branch, ``filters_0 = 16``, widen factors
``(10, 2, 2)``; Shake-Shake 26 2x32d / 2x64d / 2x96d = blocks ``(4, 4, 4)``, two branches,
``filters_0 = 16``, widen factors ``(2|4|6, 2, 2)``. ``tests/trainers`` checks these counts, the
paper's 27.6M for its best configuration, and a closed-form count of every corner of the
zela2018 space.

Pre-activation layout of one block (input ``x``, ``n`` branches)::

    a = ReLU(BN(x))                                   # shared by the branches and the shortcut
    branch_k = conv3x3(BN-ReLU(conv3x3_stride(a)))    # k = 1..n
    r = shake_shake(branch_1..branch_n)               # plain branch_1 when n == 1
    out = shortcut + shake_drop(r)                    # shortcut: x, or conv1x1_stride(a)

The first BN-ReLU of a branch is shared by all branches of the block: it is the same
normalisation of the same input, and sharing it is what PreAct ResNet does for the projection
shortcut, so one branch is exactly the PreAct block.

Two regularisers, two readings. ``variant="published"`` (the default) follows the papers:
Shake-Shake weights uniform on the simplex (Gastaldi 2017: ``alpha ~ U[0, 1]`` for two
branches), ShakeDrop in every block with Yamada et al.'s linearly growing death rate.
``variant="authors"`` follows Zela et al.'s code (arberzela/EfficientNAS, ``macro_model.py``,
``shakeshakeblock.py``): Shake-Shake weights are a softmax of per-branch uniform draws (for two
branches ``sigmoid(u1 - u2)``, concentrated around 1/2, milder than uniform), and ShakeDrop sits
only in single-branch blocks, with the same death rate in all of them. (Their crops pad with
zeros; that part of the variant is in the training loop.) The published forms stay the default
because they are the methods the paper cites; the variant is there to reproduce the authors'
numbers.

Randomness: Shake-Shake and ShakeDrop draw from torch's global generator (``torch.rand`` on the
input's device). The training loop reseeds that device's default generator before every forward
so training is reproducible and resumable; backward weights are drawn in the forward and saved, so
the backward pass consumes no random numbers.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["VARIANTS", "ArchSpec", "ResNet", "arch_spec", "build_model", "count_parameters"]

#: How Shake-Shake weights and ShakeDrop are placed (module docstring); the first is the default.
VARIANTS = ("published", "authors")


# ---------------------------------------------------------------------------------------------
# Reading the architecture out of a configuration
# ---------------------------------------------------------------------------------------------


class ArchSpec:
    """The architecture part of a configuration, resolved to integers.

    ``blocks[i]``, ``branches[i]`` and ``widths[i]`` describe stage ``i + 1``; ``stem`` is the
    stem width and ``death_rate`` the ShakeDrop death rate of the deepest block.
    """

    def __init__(self, stem: int, blocks: tuple[int, ...], branches: tuple[int, ...],
                 widths: tuple[int, ...], death_rate: float) -> None:
        self.stem = stem
        self.blocks = blocks
        self.branches = branches
        self.widths = widths
        self.death_rate = death_rate

    def __repr__(self) -> str:
        return (f"ArchSpec(stem={self.stem}, blocks={self.blocks}, branches={self.branches}, "
                f"widths={self.widths}, death_rate={self.death_rate})")


def arch_spec(config: Mapping) -> ArchSpec:
    """Resolve ``config`` to an :class:`ArchSpec`.

    Stages are ``res_blocks_1, res_blocks_2, ...`` up to the first missing index; stage widths
    compound (``width_i = round(width_(i-1) * widen_factor_i)``, ``width_0 = filters_0``). A missing
    ``res_branches_i`` means 1 branch, a missing ``widen_factor_i`` means 1.0, a missing
    ``shakedrop_death_rate`` means 0.0. Values may be floats (samplers often return them);
    block and branch counts are rounded.
    """
    n_stages = 0
    while f"res_blocks_{n_stages + 1}" in config:
        n_stages += 1
    if n_stages == 0:
        raise ValueError("config has no 'res_blocks_1': at least one stage is needed")
    if "filters_0" not in config:
        raise ValueError("config has no 'filters_0' (the stem width)")
    stem = max(1, int(round(float(config["filters_0"]))))
    blocks, branches, widths = [], [], []
    width = stem
    for i in range(1, n_stages + 1):
        blocks.append(max(1, int(round(float(config[f"res_blocks_{i}"])))))
        branches.append(max(1, int(round(float(config.get(f"res_branches_{i}", 1))))))
        widen = float(config.get(f"widen_factor_{i}", 1.0))
        width = max(1, int(round(width * widen)))  # compounding: see the module docstring
        widths.append(width)
    death_rate = float(config.get("shakedrop_death_rate", 0.0))
    if not 0.0 <= death_rate <= 1.0:
        raise ValueError(f"shakedrop_death_rate must lie in [0, 1], got {death_rate}")
    return ArchSpec(stem, tuple(blocks), tuple(branches), tuple(widths), death_rate)


# ---------------------------------------------------------------------------------------------
# Shake-Shake and ShakeDrop as autograd functions
# ---------------------------------------------------------------------------------------------


def _random_simplex(batch: int, n: int, like: torch.Tensor) -> torch.Tensor:
    """Per-sample weights uniform on the simplex (Dirichlet(1, ..., 1)), shape (batch, n).

    For two branches this is Shake-Shake's ``alpha ~ U[0, 1]``, ``1 - alpha``.
    """
    w = torch.empty(batch, n, device=like.device, dtype=torch.float32).exponential_()
    return w / w.sum(dim=1, keepdim=True)


class _ShakeShake(torch.autograd.Function):
    """Sum of branches with random convex weights forward and independent ones backward."""

    @staticmethod
    def forward(ctx, forward_w: torch.Tensor, backward_w: torch.Tensor, *branches: torch.Tensor):
        ctx.save_for_backward(backward_w)
        out = branches[0] * forward_w[:, 0].view(-1, 1, 1, 1).to(branches[0].dtype)
        for k in range(1, len(branches)):
            out = out + branches[k] * forward_w[:, k].view(-1, 1, 1, 1).to(branches[k].dtype)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (backward_w,) = ctx.saved_tensors
        grads = tuple(grad * backward_w[:, k].view(-1, 1, 1, 1).to(grad.dtype)
                      for k in range(backward_w.shape[1]))
        return (None, None, *grads)


def _softmax_uniform(batch: int, n: int, like: torch.Tensor) -> torch.Tensor:
    """Per-sample weights ``softmax(u_1..u_n)``, ``u_k ~ U[0, 1]``: the authors' Shake-Shake."""
    return torch.rand(batch, n, device=like.device, dtype=torch.float32).softmax(dim=1)


def shake_shake(branches: list[torch.Tensor], training: bool, variant: str = "published") -> torch.Tensor:
    """Combine branch outputs: random convex weights in training, the mean at evaluation.

    ``variant="authors"`` draws the weights as a softmax of uniforms (module docstring).
    """
    n = len(branches)
    if n == 1:
        return branches[0]
    if not training:
        return sum(branches) / n
    batch = branches[0].shape[0]
    draw = _softmax_uniform if variant == "authors" else _random_simplex
    forward_w = draw(batch, n, branches[0])
    backward_w = draw(batch, n, branches[0])
    return _ShakeShake.apply(forward_w, backward_w, *branches)


class _ShakeDrop(torch.autograd.Function):
    """Multiply by ``b + alpha - b*alpha`` forward and ``b + beta - b*beta`` backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, forward_scale: torch.Tensor, backward_scale: torch.Tensor):
        ctx.save_for_backward(backward_scale)
        return x * forward_scale.view(-1, 1, 1, 1).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (backward_scale,) = ctx.saved_tensors
        return grad * backward_scale.view(-1, 1, 1, 1).to(grad.dtype), None, None


def shake_drop(x: torch.Tensor, death_prob: float, training: bool) -> torch.Tensor:
    """ShakeDrop with per-sample gate ``b ~ Bernoulli(1 - death_prob)``.

    Forward scale ``alpha ~ U[-1, 1]`` and backward scale ``beta ~ U[0, 1]`` apply where the
    gate is closed (b = 0); an open gate passes the residual unchanged. At evaluation the
    residual is scaled by its expectation ``1 - death_prob``. The gate is drawn per sample (the
    "image-level" variant Yamada et al. found best), not once per batch.
    """
    if death_prob <= 0.0:
        return x
    if not training:
        return x * (1.0 - death_prob)
    batch = x.shape[0]
    gate = (torch.rand(batch, device=x.device) >= death_prob).float()
    alpha = torch.rand(batch, device=x.device) * 2.0 - 1.0
    beta = torch.rand(batch, device=x.device)
    forward_scale = gate + alpha - gate * alpha
    backward_scale = gate + beta - gate * beta
    return _ShakeDrop.apply(x, forward_scale, backward_scale)


# ---------------------------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------------------------


def _conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)


class _Branch(nn.Module):
    """conv3x3(stride)-BN-ReLU-conv3x3 on an already pre-activated input."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = _conv3x3(c_in, c_out, stride)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = _conv3x3(c_out, c_out)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.bn2(self.conv1(a))))


class Block(nn.Module):
    """One pre-activation residual block with ``n_branches`` branches and ShakeDrop."""

    def __init__(self, c_in: int, c_out: int, stride: int, n_branches: int,
                 death_prob: float, variant: str = "published") -> None:
        super().__init__()
        self.variant = variant
        self.bn1 = nn.BatchNorm2d(c_in)
        self.branches = nn.ModuleList(_Branch(c_in, c_out, stride) for _ in range(n_branches))
        self.shortcut = (nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)
                         if stride != 1 or c_in != c_out else None)
        self.death_prob = death_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.bn1(x))
        residual = shake_shake([b(a) for b in self.branches], self.training, self.variant)
        residual = shake_drop(residual, self.death_prob, self.training)
        shortcut = x if self.shortcut is None else self.shortcut(a)
        return shortcut + residual


class ResNet(nn.Module):
    """Stem, stages of :class:`Block`, BN-ReLU-pool-Linear head. Build it with build_model."""

    def __init__(self, spec: ArchSpec, in_channels: int, num_classes: int,
                 variant: str = "published") -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        self.spec = spec
        self.variant = variant
        self.stem = _conv3x3(in_channels, spec.stem)
        total_blocks = sum(spec.blocks)
        blocks: list[nn.Module] = []
        c_in, depth = spec.stem, 0
        for stage, (n_blocks, n_branches, width) in enumerate(
                zip(spec.blocks, spec.branches, spec.widths)):
            for j in range(n_blocks):
                depth += 1
                stride = 2 if stage > 0 and j == 0 else 1
                if variant == "authors":  # one death rate, single-branch blocks only
                    death_prob = spec.death_rate if n_branches == 1 else 0.0
                else:  # Yamada et al.'s linear decay rule: deeper blocks are dropped more often.
                    death_prob = depth / total_blocks * spec.death_rate
                blocks.append(Block(c_in, width, stride, n_branches, death_prob, variant))
                c_in = width
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(c_in)
        self.fc = nn.Linear(c_in, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """He initialisation, as in the paper and in PreAct ResNet / WRN."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        x = F.relu(self.bn(x))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


def build_model(config: Mapping, in_channels: int, num_classes: int,
                variant: str = "published") -> ResNet:
    """Build the network that ``config`` describes (see the module docstring for the keys).

    Other keys of ``config`` (learning rate, batch size, ...) are ignored, so a whole joint
    configuration can be passed as it is.
    """
    return ResNet(arch_spec(config), in_channels, num_classes, variant)


def count_parameters(config: Mapping, in_channels: int, num_classes: int) -> int:
    """Trainable parameters of ``build_model(config, ...)``, counted without allocating them.

    The model is built on the ``meta`` device, so the largest corner of the zela2018 space
    (over a billion parameters) is counted in a fraction of a second and no memory.
    """
    with torch.device("meta"):
        model = build_model(config, in_channels, num_classes)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

