"""docker-compose.yml -> native command lines: the harnesses run exactly the commands the containers run, with only hosts, ports and paths overridden."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import yaml

from .processes import COMPOSE_FILE

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^{}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)
_BRACED = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|-|:\?|\?)(?P<arg>.*))?\Z", re.S)


class ComposeVariableError(LookupError):
    """A required compose variable (``${NAME:?message}`` / ``${NAME?message}``) has no value."""


def interpolate(text: str, values: Mapping[str, str]) -> str:
    """Expand compose variables in ``text`` the way ``docker compose`` does.

    Supports ``$$``, ``$NAME``, ``${NAME}``, ``${NAME:-default}``, ``${NAME-default}``,
    ``${NAME:?error}``, ``${NAME?error}``. ``values`` replaces the shell environment and .env;
    a missing variable with no default expands to "" (compose warns and does the same),
    except the ``?`` forms, which raise :class:`ComposeVariableError`. Nested substitutions in
    a default are not supported (docker-compose.yml keeps them flat on purpose).
    """

    def expand(match: re.Match) -> str:
        if match["escaped"]:
            return "$"
        if match["named"]:
            return values.get(match["named"], "")
        parsed = _BRACED.match(match["braced"])
        if not parsed:
            raise ValueError(f"unsupported compose substitution ${{{match['braced']}}} in {text!r}")
        name, op, arg = parsed["name"], parsed["op"], parsed["arg"] or ""
        value = values.get(name)
        if op == ":-":
            return value if value else arg
        if op == "-":
            return arg if value is None else value
        if op in (":?", "?") and (value is None or (op == ":?" and not value)):
            raise ComposeVariableError(f"{name}: {arg or 'required variable is not set'}")
        return value or ""

    return _VARIABLE.sub(expand, text)


def compose_strings(node) -> list[str]:
    """Every string value in parsed compose data (comments are gone, anchors resolved)."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in compose_strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in compose_strings(value)]
    return []


def compose_variables(path: Path = COMPOSE_FILE) -> dict[str, bool]:
    """Every variable docker-compose.yml substitutes -> whether each use has a default
    (``:-``/``-``). ``$$`` escapes (expanded inside the container) are not variables."""
    found: dict[str, bool] = {}
    for match in _VARIABLE.finditer("\n".join(compose_strings(load_compose(path)))):
        if match["escaped"]:
            continue
        if match["named"]:
            name, has_default = match["named"], False
        else:
            parsed = _BRACED.match(match["braced"])
            name, has_default = parsed["name"], parsed["op"] in (":-", "-")
        found[name] = found.get(name, True) and has_default
    return found


def load_compose(path: Path = COMPOSE_FILE) -> dict:
    """docker-compose.yml as plain data (anchors and ``<<`` merges resolved, no substitution)."""
    with open(path) as handle:
        return yaml.safe_load(handle)


def compose_command(
    service: str, *, replace: Mapping[str, str] | None = None, **overrides: object
) -> list[str]:
    """The ``command:`` of ``service`` in docker-compose.yml, substituted, as an argv list.

    ``overrides`` are variable values (hosts, ports, paths: ``MLFLOW_PORT=5123``,
    ``RAY_HEAD_HOST="127.0.0.1"``); every other variable takes its default from the file. The
    shell environment and .env are NOT read, so a test gets the same list on every machine.
    ``replace`` swaps the value after an option before substitution, for the rare value the
    compose file cannot express (``{"--backend-store-uri": "sqlite:///..."}``: compose always
    uses PostgreSQL); a replaced option that the command lacks is an error.
    """
    spec = load_compose()
    try:
        command = spec["services"][service]["command"]
    except KeyError:
        raise KeyError(f"docker-compose.yml has no service {service!r} with a command") from None
    if not isinstance(command, list):
        raise TypeError(f"service {service!r}: command must be a list (one source for both)")
    command = [str(arg) for arg in command]
    for option, value in (replace or {}).items():
        if option not in command[:-1]:
            raise KeyError(f"service {service!r}: command has no option {option!r} to replace")
        command[command.index(option) + 1] = str(value).replace("$", "$$")
    values = {name: str(value) for name, value in overrides.items()}
    return [interpolate(arg, values) for arg in command]


def compose_environment(service: str, **overrides: object) -> dict[str, str]:
    """The ``environment:`` of ``service`` in docker-compose.yml, substituted like
    :func:`compose_command`. An entry that needs a required variable (``${NAME:?...}``) that
    ``overrides`` does not give is left out (compose would refuse to start; the native tests
    pass what they need instead, e.g. ``RAY_AUTH_TOKEN``)."""
    environment = load_compose()["services"][service].get("environment") or {}
    if isinstance(environment, list):  # the ["NAME=value", ...] form
        environment = dict(item.split("=", 1) for item in environment)
    values = {name: str(value) for name, value in overrides.items()}
    result = {}
    for name, value in environment.items():
        try:
            result[name] = interpolate(str(value), values)
        except ComposeVariableError:
            continue
    return result
