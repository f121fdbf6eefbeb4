"""Loading, saving and checking spaces and configurations.

Anywhere a space is taken, a registered name or a ConfigSpace JSON file works; the JSON is
ConfigSpace's own format, so a space written by a user with ConfigSpace loads unchanged.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

from ConfigSpace import Configuration, ConfigurationSpace

from . import registry
from .errors import SpaceError
from .values import config_dict, to_python  # noqa: F401  (re-exported: spaces.io was their home)


def to_json(space: ConfigurationSpace) -> str:
    """The space in ConfigSpace's JSON format (``ConfigurationSpace.from_serialized_dict`` reads it)."""
    return json.dumps(space.to_serialized_dict(), indent=2)


def from_json(text: str, source: str = "<string>") -> ConfigurationSpace:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpaceError(f"{source} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    except RecursionError:
        raise SpaceError(f"{source} is nested too deeply to be a space") from None
    if not isinstance(data, dict) or "hyperparameters" not in data:
        raise SpaceError(f"{source} is not a ConfigSpace JSON space (no 'hyperparameters' list)")
    try:
        return ConfigurationSpace.from_serialized_dict(data)
    except Exception as exc:  # ConfigSpace raises many types for malformed input
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SpaceError(f"{source} is not a valid ConfigSpace space: {first}") from None


MAX_SPACE_FILE_BYTES = 10 * 2**20  # the paper's 17-dimensional space is ~10 kB


def load_space(name_or_path: str | Path) -> ConfigurationSpace:
    """A registered space by name, or a user's ConfigSpace JSON file (anything ending in .json or that exists)."""
    text = str(name_or_path)
    path = Path(text)
    if text.endswith(".json") or path.exists():
        try:
            if path.stat().st_size > MAX_SPACE_FILE_BYTES:
                raise SpaceError(f"space file {text} is larger than {MAX_SPACE_FILE_BYTES} bytes")
            content = path.read_bytes().decode("utf-8")
        except OSError as exc:
            raise SpaceError(f"cannot read space file {text}: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise SpaceError(f"space file {text} is not UTF-8 text (byte {exc.start})") from None
        space = from_json(content, source=text)
        if not space.name:
            space.name = path.stem
        return space
    return registry.get(text)


def optuna_distribution(hp):
    """The Optuna distribution of one ConfigSpace hyperparameter, or None (constants, unsupported types).

    The one ConfigSpace -> Optuna mapping: the tpe preset samples with it and the dashboards'
    fANOVA importance reads configurations with it. Optuna is imported only when this is called.
    """
    from ConfigSpace.hyperparameters import (CategoricalHyperparameter, FloatHyperparameter, IntegerHyperparameter,
                                             OrdinalHyperparameter)
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(hp, FloatHyperparameter):
        return FloatDistribution(float(hp.lower), float(hp.upper), log=bool(hp.log))
    if isinstance(hp, IntegerHyperparameter):
        return IntDistribution(int(hp.lower), int(hp.upper), log=bool(hp.log))
    if isinstance(hp, CategoricalHyperparameter):
        return CategoricalDistribution([to_python(c) for c in hp.choices])
    if isinstance(hp, OrdinalHyperparameter):
        return CategoricalDistribution([to_python(c) for c in hp.sequence])
    return None


def validate_config(space: ConfigurationSpace, config: Mapping[str, Any]) -> Configuration:
    """The configuration as a ConfigSpace ``Configuration``; ``SpaceError`` when the space rejects it.

    Values are coerced to each hyperparameter's type first (JSON and MLflow params turn ints into
    floats or strings) so that only genuinely invalid values are refused.
    """
    values = {}
    names = set(space.keys())
    unknown = sorted(set(config) - names)
    if unknown:
        raise SpaceError(f"configuration has hyperparameters not in the space: {', '.join(unknown)}")
    for name, value in config.items():
        values[name] = _coerce(space[name], value)
    try:
        configuration = Configuration(space, values=values)
        space.check_configuration(configuration)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SpaceError(f"configuration is not valid in space {space.name or ''}: {first}".replace("  ", " ")) from None
    return configuration


def _coerce(hp, value):
    value = to_python(value)
    kind = type(hp).__name__
    try:
        if "Integer" in kind:
            as_float = float(value)
            if math.isfinite(as_float) and as_float == int(as_float):
                return int(as_float)
        if "Float" in kind:
            return float(value)
        if kind == "Constant":
            return type(hp.value)(value) if not isinstance(hp.value, str) else str(value)
    except (TypeError, ValueError):
        raise SpaceError(f"{hp.name}={value!r} has the wrong type") from None
    if "Integer" in kind:
        raise SpaceError(f"{hp.name}={value!r} is not an integer")
    if kind in ("CategoricalHyperparameter", "OrdinalHyperparameter"):
        choices = list(getattr(hp, "choices", None) or getattr(hp, "sequence", ()))
        for choice in choices:
            if choice == value or str(choice) == str(value):
                return choice
    return value


def describe(space: ConfigurationSpace) -> str:
    """A human-readable table of the space (the ``--format text`` of ``spaces show``)."""
    lines = [f"space {space.name or '(unnamed)'}: {len(space)} hyperparameters"]
    width = max((len(n) for n in space.keys()), default=4)
    for hp in space.values():
        kind = type(hp).__name__.replace("Hyperparameter", "").replace("Uniform", "")
        if hasattr(hp, "lower"):
            rng = f"[{hp.lower:g}, {hp.upper:g}]" + (" log" if hp.log else "")
        elif hasattr(hp, "choices"):
            rng = "{" + ", ".join(map(str, hp.choices)) + "}"
        elif hasattr(hp, "value"):
            rng = f"= {hp.value}"
        else:
            rng = ""
        lines.append(f"  {hp.name:<{width}}  {kind:<11} {rng}")
    for cond in space.conditions:
        lines.append(f"  condition: {cond}")
    return "\n".join(lines)
