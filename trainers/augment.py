"""Batch augmentation on the device that holds the batch: crop, flip, CutOut, MixUp.

Every function takes a batch ``x`` of shape (N, C, H, W) already on its device and an explicit
``torch.Generator`` on that same device, and never reads a value back to the host, so a GPU
training step stays asynchronous. The training loop seeds one generator per step from
(seed, step), which makes the augmentation of a resumed run identical to an uninterrupted one.
The one scalar, MixUp's weight, is drawn on the host (:func:`mixup_weight`) from its own
per-step seed, so it too needs no read-back.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["random_crop", "random_flip", "cutout", "cutout_mask", "mixup_weight", "mixup",
           "crop_padding"]


def crop_padding(image_size: int) -> int:
    """Padding for random crops: an eighth of the image side, at least 1 (4 for 32x32)."""
    return max(1, image_size // 8)


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator,
                mode: str = "reflect", flip: bool = False) -> torch.Tensor:
    """Pad every side by ``padding`` (``"reflect"`` or ``"zeros"``) and crop back to H x W at a
    random offset per image; with ``flip``, also mirror each crop left-right with probability 1/2.

    Two ``gather`` calls with per-image row and column indices (the column indices run
    backwards for mirrored images), so cropping and flipping cost one pass over the output,
    not a pass per pixel index: about 2.5x faster on the CPU than broadcast advanced indexing,
    which for the smallest networks was a visible part of a training step.
    """
    if padding <= 0:
        return random_flip(x, generator) if flip else x
    n, c, h, w = x.shape
    if mode == "zeros":
        padded = F.pad(x, (padding,) * 4)
    elif mode == "reflect":
        padded = F.pad(x, (padding,) * 4, mode="reflect")
    else:
        raise ValueError(f"padding mode must be 'reflect' or 'zeros', got {mode!r}")
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator, device=x.device)
    row_index = offsets[0][:, None] + torch.arange(h, device=x.device)               # (N, H)
    col_index = offsets[1][:, None] + torch.arange(w, device=x.device)               # (N, W)
    if flip:
        mirrored = torch.rand(n, generator=generator, device=x.device) < 0.5
        col_index = torch.where(mirrored[:, None], col_index.flip(1), col_index)
    rows = padded.gather(2, row_index[:, None, :, None].expand(n, c, h, w + 2 * padding))
    out = rows.gather(3, col_index[:, None, None, :].expand(n, c, h, w))
    return out.contiguous(memory_format=_memory_format(x))


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


def mixup_weight(alpha: float, seed: int) -> float:
    """MixUp's weight ``lam ~ Beta(alpha, alpha)`` for one step, drawn on the host from ``seed``.

    One number per step: drawing it with numpy from a per-step seed costs microseconds, needs
    no device sampler (torch's Gamma sampler takes no generator, so a device-side Beta would
    have to be hand-rolled) and never waits for the device. ``alpha <= 0`` means no mixing (1.0).
    """
    if alpha <= 0:
        return 1.0
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def mixup(x: torch.Tensor, y: torch.Tensor, lam: float, generator: torch.Generator
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MixUp (Zhang et al. 2018): ``lam * x + (1 - lam) * x[perm]``, partners drawn with
    ``generator`` on x's device.

    Returns ``(mixed_x, y_a, y_b)``; the loss is ``lam * CE(out, y_a) + (1 - lam) * CE(out, y_b)``.
    ``lam == 1`` (see :func:`mixup_weight`) returns the batch unchanged and ``y_b = y_a``.
    """
    if lam >= 1.0:
        return x, y, y
    perm = torch.randperm(x.shape[0], generator=generator, device=x.device)
    return torch.lerp(x[perm], x, lam), y, y[perm]


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
            and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format
