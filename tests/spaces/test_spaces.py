"""Every registered space samples valid configurations and survives ConfigSpace's JSON (timm-style walk)."""

import json

import ConfigSpace
import pytest

from jointsearch import spaces
from jointsearch.spaces.definitions import ARCHITECTURE_RANGES, TRAINING_RANGES

# The table of shared/reference/zela2018.md, written out independently of spaces/definitions.py.
PAPER_TABLE = {
    "learning_rate": (0.001, 1.0, True), "batch_size": (32, 128, True), "weight_decay": (1e-5, 1e-3, True),
    "momentum": (0.001, 0.99, False), "mixup_alpha": (0.0, 1.0, False), "cutout_length": (0, 20, False),
    "shakedrop_death_rate": (0.0, 1.0, False),
    "res_blocks_1": (1, 16, True), "res_blocks_2": (1, 16, True), "res_blocks_3": (1, 16, True),
    "res_branches_1": (1, 5, False), "res_branches_2": (1, 5, False), "res_branches_3": (1, 5, False),
    "filters_0": (8, 32, True),
    "widen_factor_1": (0.5, 8.0, True), "widen_factor_2": (0.5, 8.0, True), "widen_factor_3": (0.5, 8.0, True),
}


@pytest.mark.parametrize("name", spaces.list())
def test_every_registered_space_samples_valid_configs_and_round_trips(name):
    space = spaces.get(name)
    space.seed(1)
    for config in space.sample_configuration(20):
        space.check_configuration(config)
    again = spaces.from_json(spaces.to_json(space))
    assert again == space
    # and through ConfigSpace's own reader, as a user's tool would read our JSON
    assert ConfigSpace.ConfigurationSpace.from_serialized_dict(json.loads(spaces.to_json(space))) == space


def test_zela2018_is_exactly_the_papers_table():
    space = spaces.get("zela2018")
    assert len(space) == 17
    for name, (low, high, log) in PAPER_TABLE.items():
        hp = space[name]
        assert (hp.lower, hp.upper, hp.log) == (low, high, log), name
    assert isinstance(space["batch_size"], ConfigSpace.UniformIntegerHyperparameter)
    assert isinstance(space["widen_factor_1"], ConfigSpace.UniformFloatHyperparameter)


def test_the_papers_best_configuration_is_valid_in_zela2018():
    config = spaces.validate_config(spaces.get("zela2018"), spaces.ZELA2018_BEST)
    assert config["res_branches_3"] == 4


def test_baselines_fix_the_architecture_and_vary_training():
    r18 = spaces.get("resnet18")
    assert r18["res_blocks_4"].value == 2 and r18["filters_0"].value == 64
    wrn = spaces.get("wrn28-10")
    assert wrn["widen_factor_1"].value == 10.0 and wrn["res_blocks_3"].value == 4
    for space in (r18, wrn):
        assert space["learning_rate"].log and (space["learning_rate"].lower, space["learning_rate"].upper) == (0.001, 1.0)
    assert set(TRAINING_RANGES) | set(ARCHITECTURE_RANGES) == set(spaces.get("zela2018").keys())


def test_tiny_has_the_same_names_as_zela2018():
    assert set(spaces.get("tiny").keys()) == set(spaces.get("zela2018").keys())


def test_get_returns_independent_copies():
    a, b = spaces.get("tiny"), spaces.get("tiny")
    a.seed(3)
    b.seed(3)
    assert dict(a.sample_configuration()) == dict(b.sample_configuration())
    assert a is not b


def test_unknown_name_is_one_line_that_names_the_known_spaces():
    with pytest.raises(spaces.SpaceError) as err:
        spaces.load_space("nope")
    assert "tiny" in str(err.value) and "\n" not in str(err.value)


def test_user_json_file_loads(tmp_path):
    space = ConfigSpace.ConfigurationSpace({"x": (0.0, 1.0), "opt": ["sgd", "adam"]})
    path = tmp_path / "mine.json"
    path.write_text(spaces.to_json(space))
    loaded = spaces.load_space(path)
    assert set(loaded.keys()) == {"x", "opt"}


@pytest.mark.parametrize("content, fragment", [
    ("{bad", "not valid JSON"),
    ("[1, 2]", "not a ConfigSpace JSON space"),
    ('{"hyperparameters": [{"name": "x", "type": "nonsense"}]}', "not a valid ConfigSpace space"),
])
def test_bad_space_files_raise_one_line(tmp_path, content, fragment):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(spaces.SpaceError) as err:
        spaces.load_space(path)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_missing_space_file_is_a_space_error(tmp_path):
    with pytest.raises(spaces.SpaceError, match="cannot read"):
        spaces.load_space(tmp_path / "missing.json")


def test_validate_config_coerces_strings_and_refuses_out_of_range():
    space = spaces.get("tiny")
    config = dict(space.sample_configuration())
    as_strings = {k: str(v) for k, v in config.items()}
    assert dict(spaces.validate_config(space, as_strings)) == config
    with pytest.raises(spaces.SpaceError):
        spaces.validate_config(space, {**config, "learning_rate": 5.0})
    with pytest.raises(spaces.SpaceError, match="not in the space"):
        spaces.validate_config(space, {**config, "bogus": 1})
    with pytest.raises(spaces.SpaceError, match="not an integer"):
        spaces.validate_config(space, {**config, "batch_size": 3.5})


def test_describe_lists_every_hyperparameter():
    text = spaces.describe(spaces.get("zela2018"))
    assert all(name in text for name in PAPER_TABLE)
    assert "[0.001, 1] log" in text
