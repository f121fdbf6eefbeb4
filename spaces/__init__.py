"""Search spaces: a registry of named ConfigSpace spaces and their JSON I/O.

Imports neither torch nor Ray: the search layer and the dashboards use spaces on machines
that may have neither set up. Names are exported lazily (PEP 562), so that a Ray trial process
that needs only ``spaces.values`` does not import ConfigSpace and SciPy (spaces/values.py).
"""

from __future__ import annotations

from jointsearch._lazy import lazy_exports

# name -> the submodule that defines it
_EXPORTS = {
    "SpaceError": "errors", "ZELA2018_BEST": "definitions", "config_dict": "values", "to_python": "values",
    "describe": "io", "from_json": "io", "load_space": "io", "to_json": "io", "validate_config": "io",
    "entries": "registry", "get": "registry", "list": "registry", "register": "registry",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
