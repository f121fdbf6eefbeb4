"""The layer boundaries of shared/STYLE.md, checked on a fresh interpreter.

Each case imports one package in a subprocess (so nothing this test session already imported can
hide a violation) and lists which forbidden top-level modules ended up in ``sys.modules``.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CASES = {
    # package imported            modules it must not pull in
    "jointsearch.spaces": ("torch", "ray", "mlflow"),
    "jointsearch.dashboards.analysis": ("torch", "ray", "mlflow"),
    "jointsearch.dashboards.records": ("torch", "ray", "mlflow"),
    # issue 15: the Pareto maths, shared by the search and the dashboards
    "jointsearch.dashboards.pareto": ("torch", "ray", "mlflow"),
    "jointsearch.search.objectives": ("torch", "ray", "mlflow"),
    "jointsearch.trainers": ("ray", "mlflow"),
    # What the search validates settings against: the trainer's vocabulary, without torch.
    "jointsearch.trainers.facts": ("torch", "ray", "mlflow"),
    "jointsearch.trainers.entry": ("ray", "mlflow"),
    # The search layer reaches torch only through trainer import paths resolved at run time.
    "jointsearch.search": ("torch",),
    "jointsearch.search.cli": ("torch",),
    # What every Ray trial process imports: it starts them all at once when a search fills its
    # slots, so it stays light (no MLflow; no ConfigSpace, which brings SciPy: 1.4 CPU-s each).
    "jointsearch.search.ray_trainable": ("torch", "mlflow", "ConfigSpace", "scipy"),
    "jointsearch.search.trainer_api": ("torch", "ray", "mlflow", "ConfigSpace", "scipy"),
    "jointsearch.spaces.values": ("ConfigSpace", "scipy"),
    # the benchmarks' trainers run in trial processes too
    "bench.problems": ("ConfigSpace", "scipy", "torch", "mlflow"),
}


def _loaded_after_import(module: str, forbidden: tuple[str, ...]) -> list[str]:
    code = ("import importlib, json, sys; importlib.import_module(%r); "
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & set(%r))))" % (module, list(forbidden)))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module", sorted(CASES))
def test_layer_does_not_import_what_it_must_not(module):
    assert _loaded_after_import(module, CASES[module]) == []


def test_the_check_sees_an_import():
    """The probe itself works: importing the trainer does load torch."""
    assert _loaded_after_import("jointsearch.trainers.models", ("torch",)) == ["torch"]
