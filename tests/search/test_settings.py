"""Settings are declared once (search/settings.py) and the CLI is built from those declarations."""

from __future__ import annotations

import dataclasses

import pytest

from jointsearch.search import cli
from jointsearch.search.errors import UsageError
from jointsearch.search.settings import SearchSettings


def _parse(*argv: str):
    return cli._build_parser().parse_args(["search", *argv])


def test_every_setting_is_documented_and_every_flag_setting_has_its_default():
    args, defaults = _parse(), SearchSettings()
    for f in dataclasses.fields(SearchSettings):
        assert f.metadata.get("help"), f"{f.name} has no help text"
        if f.metadata["cli"]:
            assert getattr(args, f.name) == getattr(defaults, f.name), f.name
        else:
            assert not hasattr(args, f.name), f"{f.name} is not a flag but the parser has it"


def test_flags_build_the_settings_with_the_declared_types():
    args = _parse("--num-samples", "7", "--eta", "2.5", "--fidelity", "scratch", "--seed", "3",
                  "--ray-address", "127.0.0.1:6379", "--eval-timeout", "30")
    values = {f.name: getattr(args, f.name) for f in cli.search_flags()}
    settings = SearchSettings(**values)
    assert (settings.num_samples, settings.eta, settings.fidelity, settings.seed) == (7, 2.5, "scratch", 3)
    assert isinstance(settings.num_samples, int) and isinstance(settings.eta, float)
    assert settings.ray_address == "127.0.0.1:6379" and settings.eval_timeout == 30.0


@pytest.mark.parametrize("argv, message", [
    (("--fidelity", "sometimes"), "invalid choice"),
    (("--num-samples", "many"), "invalid int value"),
    (("--budget-unit", "hours"), "invalid choice"),
])
def test_a_bad_flag_value_is_a_usage_error(argv, message):
    with pytest.raises(UsageError, match=message):
        _parse(*argv)


def test_help_shows_each_settings_default(capsys):
    with pytest.raises(SystemExit):
        _parse("--help")
    text = " ".join(capsys.readouterr().out.split())
    assert "--max-params MAX_PARAMS" in text and f"(default: {SearchSettings().max_params})" in text
