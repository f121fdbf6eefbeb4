"""--recipe zela2018 and --budget-scale: what they fill in, what an explicit flag overrides, and
the user errors they can cause."""

import os
import subprocess
import sys

import pytest

from jointsearch.search import cli
from jointsearch.search.errors import UsageError
from jointsearch.search.recipes import apply_recipe, hyperband_configurations, recipe_values


class Captured(Exception):
    def __init__(self, settings):
        self.settings = settings


@pytest.fixture
def launched(monkeypatch):
    """The SearchSettings `jointsearch search ...` would run, captured instead of run."""
    import jointsearch.search.api as api

    def fake_run_search(settings, **_):
        raise Captured(settings)

    monkeypatch.setattr(api, "run_search", fake_run_search)

    def launch(*argv):
        with pytest.raises(Captured) as caught:
            cli.main(["search", *argv])
        return caught.value.settings

    return launch


def test_32_hpbandster_iterations_of_the_paper_are_368_configurations():
    """Brackets of 27, 9, 6 and 4 configurations (hpbandster's floor rule), 8 times."""
    assert hyperband_configurations(400, 10800, 3, 4) == 27 + 9 + 6 + 4
    assert hyperband_configurations(400, 10800, 3, 32) == 368


def test_recipe_is_the_papers_search(launched):
    s = launched("--recipe", "zela2018")
    assert (s.space, s.dataset, s.scheduler, s.budget_unit) == ("zela2018", "cifar10", "bohb", "seconds")
    assert (s.min_budget, s.max_budget, s.eta, s.num_samples) == (400.0, 10800.0, 3.0, 368)
    assert s.fidelity == "restarts" and s.max_params == 50_000_000  # the project's defaults


def test_explicit_flags_override_the_recipe_even_when_equal_to_the_defaults(launched):
    """--dataset digits is the CLI's default too: given explicitly, it still wins."""
    s = launched("--recipe", "zela2018", "--dataset", "digits", "--num-samples", "20", "--fidelity", "scratch",
                 "--eta", "3")
    assert (s.dataset, s.num_samples, s.fidelity) == ("digits", 20, "scratch")
    assert (s.space, s.min_budget, s.max_budget) == ("zela2018", 400.0, 10800.0)


def test_budget_scale_multiplies_both_budgets(launched):
    s = launched("--recipe", "zela2018", "--budget-scale", "0.25")
    assert (s.min_budget, s.max_budget) == (100.0, 2700.0)
    plain = launched("--budget-scale", "2")  # also without a recipe
    assert (plain.min_budget, plain.max_budget) == (2.0, 18.0)


def test_new_flags_reach_the_settings(launched):
    s = launched("--fidelity", "continue", "--max-params", "0")
    assert (s.fidelity, s.max_params) == ("continue", 0)


def test_apply_recipe_refuses_a_bad_scale_and_an_unknown_recipe():
    with pytest.raises(UsageError, match="--budget-scale"):
        apply_recipe({"min_budget": 1, "max_budget": 9}, set(), None, 0.0)
    with pytest.raises(UsageError, match="--recipe"):
        recipe_values("nope")


@pytest.mark.parametrize("args", [
    ["--fidelity", "sometimes"], ["--max-params", "-5"], ["--budget-scale", "0"], ["--recipe", "nope"],
])
def test_bad_new_flags_are_one_line_exit_2_and_write_nothing(tmp_path, args):
    before = set(os.listdir(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "jointsearch.search.cli", "search", *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jointsearch: error:") and "Traceback" not in proc.stderr
    assert set(os.listdir(tmp_path)) == before
