"""Tests for trainers/augment.py: shapes, determinism under a seeded generator, and what each
augmentation does to the pixels."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from jointsearch.trainers.augment import (
    crop_padding, cutout, cutout_mask, mixup, mixup_weight, random_crop, random_flip,
)


def make_generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def batch() -> torch.Tensor:
    return torch.randn(16, 3, 12, 12, generator=make_generator(99))


def test_crop_padding_is_an_eighth_at_least_one():
    assert crop_padding(32) == 4
    assert crop_padding(8) == 1
    assert crop_padding(4) == 1


@pytest.mark.parametrize("fn", [
    lambda x, g: random_crop(x, 2, g),
    lambda x, g: random_crop(x, 2, g, mode="zeros"),
    lambda x, g: random_crop(x, 2, g, flip=True),
    random_flip,
    lambda x, g: cutout(x, 5, g),
    lambda x, g: mixup(x, torch.arange(len(x)), 0.4, g)[0],
], ids=["crop-reflect", "crop-zeros", "crop-flip", "flip", "cutout", "mixup"])
def test_shape_preserved_deterministic_and_seed_dependent(fn, batch):
    a = fn(batch, make_generator(1))
    b = fn(batch, make_generator(1))
    c = fn(batch, make_generator(2))
    assert a.shape == batch.shape and a.dtype == batch.dtype
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_crop_output_is_a_window_of_the_padded_image(batch):
    out = random_crop(batch, 2, make_generator(3), mode="zeros")
    padded = F.pad(batch, (2, 2, 2, 2))
    offsets = set()
    for img, pad in zip(out, padded):
        found = [(dy, dx) for dy in range(5) for dx in range(5)
                 if torch.equal(pad[:, dy:dy + 12, dx:dx + 12], img)]
        assert found, "crop is not a window of the padded image"
        offsets.add(found[0])
    assert len(offsets) > 1, "every image got the same offset"


def test_crop_with_flip_is_a_window_or_its_mirror_image(batch):
    out = random_crop(batch, 2, make_generator(5), mode="reflect", flip=True)
    padded = F.pad(batch, (2, 2, 2, 2), mode="reflect")
    kinds = []
    for img, pad in zip(out, padded):
        windows = [pad[:, dy:dy + 12, dx:dx + 12] for dy in range(5) for dx in range(5)]
        plain = any(torch.equal(w, img) for w in windows)
        mirrored = any(torch.equal(w.flip(2), img) for w in windows)
        assert plain or mirrored, "output is neither a window of the padded image nor its mirror"
        kinds.append(mirrored and not plain)
    assert any(kinds) and not all(kinds), "flip=True should mirror some images, not all"


def test_flip_mirrors_some_images_and_keeps_others(batch):
    out = random_flip(batch, make_generator(0))
    flipped = [torch.equal(o, x.flip(2)) for o, x in zip(out, batch)]
    kept = [torch.equal(o, x) for o, x in zip(out, batch)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert any(flipped) and any(kept)


def test_cutout_mask_is_the_expected_square():
    """Centre (5, 6), length 4: rows 3..6, columns 4..7; a centre at the corner is clipped."""
    mask = cutout_mask(10, 10, torch.tensor([5, 0]), torch.tensor([6, 0]), 4)
    expected = torch.zeros(2, 1, 10, 10, dtype=torch.bool)
    expected[0, 0, 3:7, 4:8] = True
    expected[1, 0, 0:2, 0:2] = True
    assert torch.equal(mask, expected)


def test_cutout_zeroes_one_clipped_square_per_image():
    x = torch.ones(64, 2, 10, 10)
    out = cutout(x, 4, make_generator(5))
    zero = out == 0
    assert torch.equal(zero[:, 0], zero[:, 1]), "all channels share the square"
    for z in zero[:, 0]:
        rows = z.any(dim=1).nonzero().flatten()
        cols = z.any(dim=0).nonzero().flatten()
        assert 2 <= len(rows) <= 4 and 2 <= len(cols) <= 4
        assert rows.tolist() == list(range(rows[0], rows[0] + len(rows)))   # contiguous
        assert cols.tolist() == list(range(cols[0], cols[0] + len(cols)))
        assert int(z.sum()) == len(rows) * len(cols)                        # a full rectangle
    assert (zero[:, 0].sum(dim=(1, 2)) == 16).any(), "no square fully inside the image"


def test_cutout_length_zero_is_identity(batch):
    assert cutout(batch, 0, make_generator()) is batch


@pytest.mark.parametrize("alpha", [0.2, 1.0, 2.0])
def test_mixup_weight_has_beta_moments_across_seeds(alpha):
    lam = torch.tensor([mixup_weight(alpha, seed) for seed in range(20000)])
    assert ((lam >= 0) & (lam <= 1)).all()
    assert float(lam.mean()) == pytest.approx(0.5, abs=0.02)
    assert float(lam.var()) == pytest.approx(1 / (4 * (2 * alpha + 1)), rel=0.08)


def test_mixup_weight_is_a_function_of_its_seed():
    assert mixup_weight(0.2, 5) == mixup_weight(0.2, 5)
    assert mixup_weight(0.2, 5) != mixup_weight(0.2, 6)
    assert mixup_weight(0.0, 5) == 1.0 and mixup_weight(-1.0, 5) == 1.0


def test_mixup_mixes_with_a_permutation(batch):
    y = torch.arange(len(batch))
    lam = 0.3
    mixed, y_a, y_b = mixup(batch, y, lam, make_generator(4))
    assert torch.equal(y_a, y)
    assert sorted(y_b.tolist()) == y.tolist() and not torch.equal(y_b, y)
    assert torch.allclose(mixed, lam * batch + (1 - lam) * batch[y_b], atol=1e-6)


def test_mixup_weight_one_is_identity(batch):
    y = torch.arange(len(batch))
    mixed, y_a, y_b = mixup(batch, y, 1.0, make_generator())
    assert mixed is batch and torch.equal(y_b, y)
