"""Search spaces: a registry of named ConfigSpace spaces and their JSON I/O.

Imports neither torch nor Ray: the search layer and the dashboards use spaces on machines
that may have neither set up.
"""

from . import definitions as _definitions  # noqa: F401  (registers the built-in spaces)
from .definitions import ZELA2018_BEST
from .errors import SpaceError
from .io import config_dict, describe, from_json, load_space, to_json, to_python, validate_config
from .registry import entries, get, list, register

__all__ = [
    "SpaceError", "ZELA2018_BEST", "config_dict", "describe", "entries", "from_json", "get", "list",
    "load_space", "register", "to_json", "to_python", "validate_config",
]
