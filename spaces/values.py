"""Plain Python values of a configuration, without importing ConfigSpace.

Their own module because every Ray trial process needs them (search/ray_trainable.py and
search/trainer_api.py hand the trainer plain values) and ConfigSpace brings SciPy with it: 1.4
CPU-seconds per trial process, paid by all of a search's processes at once when it fills its
slots. ``jointsearch.spaces`` exports its names lazily for the same reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["config_dict", "to_python"]


def to_python(value: Any) -> Any:
    """Numpy scalars -> Python values (Pyro4, JSON and MLflow refuse numpy types).

    The one place for this conversion: ConfigSpace 1.x hands out numpy scalars (``numpy.str_``
    for categoricals too), and every boundary that serialises a configuration goes through here.
    """
    item = getattr(value, "item", None)
    if callable(item) and not isinstance(value, (str, bytes)):
        try:
            return item()
        except (TypeError, ValueError):
            return value
    if isinstance(value, str) and type(value) is not str:  # numpy.str_
        return str(value)
    return value


def config_dict(config: Mapping[str, Any]) -> dict[str, Any]:
    return {k: to_python(v) for k, v in dict(config).items()}
