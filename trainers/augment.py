"""Batch augmentation on the device that holds the batch: crop, flip, CutOut, MixUp.

Every function takes a batch ``x`` of shape (N, C, H, W) already on its device and an explicit
``torch.Generator`` on that same device, and never reads a value back to the host, so a GPU
training step stays asynchronous. The training loop seeds one generator per step from
(seed, step), which makes the augmentation of a resumed run identical to an uninterrupted one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["random_crop", "random_flip", "cutout", "cutout_mask", "sample_beta", "mixup",
           "crop_padding"]


def crop_padding(image_size: int) -> int:
    """Padding for random crops: an eighth of the image side, at least 1 (4 for 32x32)."""
    return max(1, image_size // 8)


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator,
                mode: str = "reflect") -> torch.Tensor:
    """Pad every side by ``padding`` (``"reflect"`` or ``"zeros"``) and crop back to H x W at a
    random offset per image."""
    if padding <= 0:
        return x
    n, _, h, w = x.shape
    if mode == "zeros":
        padded = F.pad(x, (padding,) * 4)
    elif mode == "reflect":
        padded = F.pad(x, (padding,) * 4, mode="reflect")
    else:
        raise ValueError(f"padding mode must be 'reflect' or 'zeros', got {mode!r}")
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=x.device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=x.device)
    rows = dy[:, None] + torch.arange(h, device=x.device)          # (N, H)
    cols = dx[:, None] + torch.arange(w, device=x.device)          # (N, W)
    batch = torch.arange(n, device=x.device)[:, None, None]
    # Advanced indexing on dims 0, 2, 3 puts the channel dim last: (N, H, W, C).
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous(memory_format=_memory_format(x))


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = torch.rand(x.shape[0], generator=generator, device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def cutout_mask(height: int, width: int, centre_y: torch.Tensor, centre_x: torch.Tensor,
                length: int) -> torch.Tensor:
    """Boolean (N, 1, H, W) mask, True inside a ``length`` x ``length`` square per image.

    The square covers rows ``[cy - length // 2, cy - length // 2 + length)`` (likewise for
    columns), clipped at the border, as in DeVries & Taylor's CutOut.
    """
    device = centre_y.device
    top = centre_y - length // 2
    left = centre_x - length // 2
    ys = torch.arange(height, device=device)[None, :]
    xs = torch.arange(width, device=device)[None, :]
    in_rows = (ys >= top[:, None]) & (ys < top[:, None] + length)          # (N, H)
    in_cols = (xs >= left[:, None]) & (xs < left[:, None] + length)        # (N, W)
    return (in_rows[:, :, None] & in_cols[:, None, :])[:, None]


def cutout(x: torch.Tensor, length: int, generator: torch.Generator) -> torch.Tensor:
    """Zero a ``length`` x ``length`` square at a uniformly random centre per image (0 = off)."""
    if length <= 0:
        return x
    n, _, h, w = x.shape
    cy = torch.randint(0, h, (n,), generator=generator, device=x.device)
    cx = torch.randint(0, w, (n,), generator=generator, device=x.device)
    return x.masked_fill(cutout_mask(h, w, cy, cx, length), 0.0)


def _sample_gamma(shape_param: float, size: int, generator: torch.Generator,
                  device: torch.device) -> torch.Tensor:
    """Gamma(shape_param, 1) samples drawn with ``generator`` and no host sync.

    torch's own gamma sampler takes no generator, so this is Marsaglia & Tsang (2000) with the
    rejection loop unrolled: 32 candidates per sample, the first accepted one kept (each is
    accepted with probability > 0.95, so all 32 failing is below 1e-40; the mean is the
    fallback). Shapes below 1 use the boost Gamma(a) = Gamma(a + 1) * U**(1/a).
    """
    a = shape_param + 1.0 if shape_param < 1.0 else shape_param
    d = a - 1.0 / 3.0
    c = 1.0 / (9.0 * d) ** 0.5
    tries = 32
    z = torch.randn(size, tries, generator=generator, device=device)
    u = torch.rand(size, tries, generator=generator, device=device)
    v = (1.0 + c * z) ** 3
    ok = (v > 0) & (torch.log(u.clamp_min(1e-38)) < 0.5 * z * z + d - d * v
                    + d * torch.log(v.clamp_min(1e-38)))
    first = torch.argmax(ok.int(), dim=1, keepdim=True)
    sample = torch.where(ok.any(dim=1), (d * v).gather(1, first).squeeze(1),
                         torch.full((size,), a, device=device))
    if shape_param < 1.0:
        boost = torch.rand(size, generator=generator, device=device).clamp_min(1e-38)
        sample = sample * boost ** (1.0 / shape_param)
    return sample


def sample_beta(alpha: float, size: int, generator: torch.Generator,
                device: torch.device | str) -> torch.Tensor:
    """``size`` samples of Beta(alpha, alpha) on ``device`` from ``generator`` (no host sync)."""
    device = torch.device(device)
    g1 = _sample_gamma(alpha, size, generator, device)
    g2 = _sample_gamma(alpha, size, generator, device)
    total = g1 + g2
    # Both gammas can underflow to 0 for tiny alpha; either endpoint is then a fair draw.
    return torch.where(total > 0, g1 / total.clamp_min(1e-38), torch.full_like(total, 0.5))


def mixup(x: torch.Tensor, y: torch.Tensor, alpha: float, generator: torch.Generator
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """MixUp (Zhang et al. 2018): ``lam * x + (1 - lam) * x[perm]`` with lam ~ Beta(alpha, alpha).

    Returns ``(mixed_x, y_a, y_b, lam)``, ``lam`` a 0-dim tensor on x's device; the loss is
    ``lam * CE(out, y_a) + (1 - lam) * CE(out, y_b)``. ``alpha <= 0`` disables mixing
    (``lam = 1``, ``y_b = y_a``).
    """
    if alpha <= 0:
        return x, y, y, torch.ones((), device=x.device)
    lam = sample_beta(alpha, 1, generator, x.device)[0]
    perm = torch.randperm(x.shape[0], generator=generator, device=x.device)
    mixed = lam.to(x.dtype) * x + (1.0 - lam).to(x.dtype) * x[perm]
    return mixed, y, y[perm], lam


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
            and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format
