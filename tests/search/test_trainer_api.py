import math

import pytest

from jointsearch.search.errors import UsageError
from jointsearch.search.trainer_api import accepted_kwargs, call_trainer, resolve


def test_resolve_finds_a_function_and_refuses_bad_paths():
    assert resolve("jointsearch.search.testing:minimal_trainer")({"learning_rate": 0.1}, 1) < 1
    for bad in ("no_colon", "jointsearch.search.testing:missing", "not_a_module_xyz:fn", ":fn"):
        with pytest.raises(UsageError):
            resolve(bad)


def test_only_accepted_keywords_are_passed():
    def plain(config, budget):
        return 0.5

    def with_ckpt(config, budget, *, checkpoint_dir=None):
        return 0.5

    def anything(config, budget, **kw):
        return 0.5

    offered = {"checkpoint_dir": "x", "dataset": "digits"}
    assert accepted_kwargs(plain, offered) == {}
    assert accepted_kwargs(with_ckpt, offered) == {"checkpoint_dir": "x"}
    assert accepted_kwargs(anything, offered) == offered


def test_answers_are_normalised():
    assert call_trainer(lambda c, b: 0.25, {}, 1) == {"val_error": 0.25, "status": "ok"}
    assert call_trainer(lambda c, b: {"loss": 2, "acc": 0.5}, {}, 1)["val_error"] == 2.0
    nan = call_trainer(lambda c, b: float("nan"), {}, 1)
    assert nan["status"] == "diverged" and math.isnan(nan["val_error"])
    with pytest.raises(TypeError):
        call_trainer(lambda c, b: {"acc": 1}, {}, 1)
