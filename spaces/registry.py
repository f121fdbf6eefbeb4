"""The registry of named search spaces (timm's ``@register_model`` idea, for spaces).

A space is registered as a *factory* rather than an object because ConfigurationSpace objects
carry a random state: every ``get`` returns a fresh space, so seeding one search cannot change
what another one samples.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import Callable

from ConfigSpace import ConfigurationSpace

from .errors import SpaceError


@dataclass(frozen=True)
class SpaceEntry:
    name: str
    factory: Callable[[], ConfigurationSpace]
    description: str


_REGISTRY: dict[str, SpaceEntry] = {}


def register(name: str, description: str = "") -> Callable:
    """Decorator: register ``factory`` (a zero-argument function returning a space) as ``name``."""

    def decorate(factory: Callable[[], ConfigurationSpace]) -> Callable[[], ConfigurationSpace]:
        if name in _REGISTRY:
            raise ValueError(f"space {name!r} is registered twice")
        doc = description or (factory.__doc__ or "").strip().splitlines()[0]
        _REGISTRY[name] = SpaceEntry(name, factory, doc)
        return factory

    return decorate


def _builtins() -> None:
    """The built-in spaces register themselves when spaces/definitions.py is imported; importing
    it here, at the first lookup, means no caller has to remember to (``jointsearch.spaces``
    exports its names lazily, so importing the package no longer does it)."""
    from . import definitions  # noqa: F401


def get(name: str) -> ConfigurationSpace:
    """A fresh copy of the registered space ``name``; ``SpaceError`` names the known ones."""
    _builtins()
    try:
        entry = _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise SpaceError(f"unknown space {name!r}; registered spaces: {known} (or pass a ConfigSpace JSON file)") from None
    space = entry.factory()
    space.name = name
    return space


def entries() -> builtins.list[SpaceEntry]:
    _builtins()
    return [_REGISTRY[n] for n in sorted(_REGISTRY)]


def list() -> builtins.list[str]:  # noqa: A001 - the issue asks for spaces.list()
    """Names of the registered spaces, sorted."""
    _builtins()
    return sorted(_REGISTRY)
