"""Lazy package exports (PEP 562), the one implementation for search/, spaces/ and dashboards/.

Why lazy: a Ray trial process imports these packages to reach a few light modules
(search/ray_trainable.py, spaces/values.py, dashboards/pareto.py), and every process a search
starts pays for what the packages' ``__init__`` imports, all of them at once (MLflow, ConfigSpace
with SciPy: seconds of CPU each). tests/test_import_boundaries.py keeps it so.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``, whose names come from its submodules
    (``exports``: name -> submodule); a name is imported at first use and then cached."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{module}", package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
