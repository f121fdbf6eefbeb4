"""Every registered space, walked (timm's registry test): sample it, build its network, run it.

A space added with ``@register`` is covered here without anyone remembering to add a test.
"""

from __future__ import annotations

import pytest
import torch

from jointsearch import spaces
from jointsearch.trainers.models import build_model, count_parameters

# The networks of the paper's ranges reach billions of parameters; a forward pass is only run on
# samples small enough for a test on 2 CPU cores (the count, on the meta device, is always taken).
FORWARD_LIMIT = 40_000_000


@pytest.mark.parametrize("name", spaces.list())
def test_every_space_samples_builds_and_runs_forward(name):
    space = spaces.get(name)
    space.seed(0)
    ran = 0
    for sample in space.sample_configuration(8):
        config = spaces.config_dict(sample)
        n = count_parameters(config, in_channels=3, num_classes=10)
        assert n > 0
        if n > FORWARD_LIMIT:
            continue
        model = build_model(config, in_channels=3, num_classes=10)
        assert sum(p.numel() for p in model.parameters()) == n
        model.eval()
        with torch.no_grad():
            out = model(torch.randn(2, 3, 32, 32))
        assert out.shape == (2, 10) and torch.isfinite(out).all()
        ran += 1
    assert ran > 0, f"no sample of {name!r} was small enough to run forward"
