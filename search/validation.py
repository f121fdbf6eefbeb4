"""Checks of user input that must pass before anything is written (MLflow, Ray, files).

One place, table-driven, so that a new setting adds a row instead of an if-chain:
``SETTING_RULES`` holds (field, predicate, message) for ``SearchSettings``; the other
functions check what a setting names (the tracking URI, a space, an output file, a data
directory). Every failure is a ``UsageError``: one line, exit 2 in the CLI.

Why these limits:

- MLflow logs at most 100 params per batch (``MAX_PARAMS_TAGS_PER_BATCH``) and a param key has
  MLflow's character and path rules, so a space that breaks them would crash the search at its
  first trial; it is refused here instead.
- A NaN or infinite resource passes every ``<=`` check and then makes Ray wait forever.
- A huge seed or sample count overflows numpy or Ray long after the parent run was created.
"""

from __future__ import annotations

import math
import os
import re
import socket
from pathlib import Path
from typing import Any, Callable

from .errors import UsageError

MAX_HYPERPARAMETERS = 100  # MLflow's params per log_batch call: a trial logs its configuration in one
MAX_NAME_LENGTH = 250  # MLflow's param/tag key length (and a safe experiment name length on every backend)
MAX_FILE_BYTES = 10 * 2**20  # a space or configuration file; the paper's space is ~10 kB
MAX_SEED = 2**31 - 1
MAX_SAMPLES = 1_000_000
_PARAM_KEY = re.compile(r"^[/\w.\- :]+$")
TRACKING_SCHEMES = ("sqlite", "http", "https", "file", "postgresql", "mysql", "mssql", "databricks")


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _whole(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


#: (field, check, message) for SearchSettings; the message gets the value as {value!r}.
SETTING_RULES: list[tuple[str, Callable[[Any], bool], str]] = [
    ("cpus_per_trial", lambda v: _finite(v) and 0 < v <= 1024, "--cpus-per-trial must be a number in (0, 1024], got {value!r}"),
    ("gpus_per_trial", lambda v: v == "auto" or (_finite(v) and 0 <= v <= 64),
     "--gpus-per-trial must be a number in [0, 64] or auto, got {value!r}"),
    ("gpu_memory_gib", lambda v: _finite(v) and 0 <= v <= 10**5, "--gpu-memory-gib must be 0 (probe) or a size in GiB, got {value!r}"),
    ("time_budget_s", lambda v: _finite(v) and 0 <= v <= 10**9, "--time-budget must be 0 (none) or a number of seconds, got {value!r}"),
    ("gpu_hours", lambda v: _finite(v) and 0 <= v <= 10**7, "--gpu-hours must be 0 (none) or a number of hours, got {value!r}"),
    ("num_samples", lambda v: _whole(v) and 1 <= v <= MAX_SAMPLES, f"--num-samples must be 1 to {MAX_SAMPLES}, got {{value!r}}"),
    ("max_concurrent", lambda v: _whole(v) and 0 <= v <= 100_000, "--max-concurrent must be 0 (no limit) to 100000, got {value!r}"),
    ("max_failures", lambda v: _whole(v) and 0 <= v <= 1000, "--max-failures must be 0 to 1000, got {value!r}"),
    ("dashboard_every", lambda v: _whole(v) and 1 <= v <= 10**9, "--dashboard-every must be at least 1, got {value!r}"),
    ("seed", lambda v: v is None or (_whole(v) and 0 <= v <= MAX_SEED), f"--seed must be 0 to {MAX_SEED}, got {{value!r}}"),
    ("experiment", lambda v: isinstance(v, str) and check_name(v) is None, "--experiment {value!r}: "
     f"use 1 to {MAX_NAME_LENGTH} printable characters"),
    ("eval_timeout", lambda v: v is None or (_finite(v) and 0 <= v <= 10**7),
     "--eval-timeout must be a number of seconds (0: no limit), got {value!r}"),
    ("adaptive_budgets", lambda v: v in ("auto", "on", "off"),
     "--adaptive-budgets must be auto, on or off, got {value!r}"),
    ("keep_checkpoints", lambda v: v in ("all", "promotable", "none"),
     "--keep-checkpoints must be all, promotable or none, got {value!r}"),
    # issue 15: the shape here; the grammar in objectives.check_objectives (dashboards/pareto.py parses it)
    ("objectives", lambda v: isinstance(v, tuple) and 1 <= len(v) <= 16 and all(isinstance(x, str) for x in v),
     "--objectives takes 1 to 16 metric names, got {value!r}"),
    ("constraints", lambda v: isinstance(v, tuple) and len(v) <= 64 and all(isinstance(x, str) for x in v),
     "--constraint takes METRIC<=VALUE strings (at most 64), got {value!r}"),
    ("trainer_kwargs", lambda v: isinstance(v, dict) and all(isinstance(k, str) and k.isidentifier() for k in v),
     "--trainer-arg keys must be Python identifiers, got {value!r}"),
]


def check_name(name: str) -> str | None:
    """None when ``name`` is fine as an experiment name, else why not."""
    if not name.strip():
        return "empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"longer than {MAX_NAME_LENGTH} characters"
    if not name.isprintable():
        return "has control characters"
    return None


def check_settings(settings) -> None:
    """Every row of ``SETTING_RULES`` (fields another branch has not added yet are skipped)."""
    for name, ok, message in SETTING_RULES:
        if not hasattr(settings, name):
            continue
        value = getattr(settings, name)
        try:
            good = ok(value)
        except (TypeError, ValueError, OverflowError):
            good = False
        if not good:
            shown = value if len(repr(value)) < 80 or not isinstance(value, str) else f"{value[:60]}..."
            raise UsageError(message.format(value=shown))


def check_space(space, source: str = "the space") -> None:
    """A space the search can log: 1..MAX_HYPERPARAMETERS hyperparameters whose names MLflow
    accepts as param keys."""
    n = len(space)
    if n == 0:
        raise UsageError(f"{source} has no hyperparameters; there is nothing to search")
    if n > MAX_HYPERPARAMETERS:
        raise UsageError(f"{source} has {n} hyperparameters; at most {MAX_HYPERPARAMETERS} are supported "
                         f"(one MLflow batch per trial)")
    for name in space:
        problem = param_key_problem(name)
        if problem:
            raise UsageError(f"hyperparameter {name[:80]!r} in {source}: {problem}")


def param_key_problem(name: str) -> str | None:
    """MLflow's rules for a param key (mlflow.utils.validation), restated so that a bad name is
    found before a run exists rather than at the first trial."""
    import posixpath

    if len(name) > MAX_NAME_LENGTH:
        return f"MLflow param names are at most {MAX_NAME_LENGTH} characters"
    if not _PARAM_KEY.match(name):
        return "MLflow param names may only contain letters, digits, _ - . : / and spaces"
    norm = posixpath.normpath(name)
    if norm != name or norm == "." or norm.startswith("..") or norm.startswith("/"):
        return "MLflow param names must not look like a path that resolves elsewhere ('/x', 'a/../b', 'a//b')"
    return None


def check_tracking_uri(uri: str, *, must_exist: bool = False) -> None:
    """A tracking URI MLflow can use, without creating directories nobody asked for; a server is
    reached with a bounded wait (``JOINTSEARCH_CONNECT_TIMEOUT_S``)."""
    if not isinstance(uri, str) or not uri.strip() or not uri.isprintable():
        raise UsageError(f"--mlflow-uri {uri!r} is not a URI")
    scheme = uri.split("://", 1)[0].split("+", 1)[0].lower() if "://" in uri else ""
    if scheme not in TRACKING_SCHEMES:
        raise UsageError(f"--mlflow-uri {uri!r}: use sqlite:///PATH/mlflow.db, http(s)://HOST:PORT, or a database "
                         f"URI ({', '.join(TRACKING_SCHEMES)})")
    if scheme == "sqlite":
        if not uri.startswith("sqlite:///") or uri == "sqlite:///":
            raise UsageError(f"--mlflow-uri {uri!r}: a SQLite store is sqlite:///PATH (absolute: sqlite:////PATH)")
        path = Path(uri[len("sqlite:///"):])
        _check_store_file(path, must_exist)
    elif scheme == "file":
        path = Path(uri[len("file://"):])
        if must_exist and not path.is_dir():
            raise UsageError(f"no MLflow store at {uri}")
        if not path.parent.is_dir():
            raise UsageError(f"--mlflow-uri {uri!r}: the folder {path.parent} does not exist")
    elif scheme in ("http", "https"):
        check_reachable(uri, "the MLflow tracking server", "--mlflow-uri")


def _check_store_file(path: Path, must_exist: bool) -> None:
    if path.is_dir():
        raise UsageError(f"--mlflow-uri: {path} is a directory, not a SQLite file")
    if must_exist and not path.is_file():
        raise UsageError(f"no MLflow store at sqlite:///{path} (wrong --mlflow-uri, or no search has run here yet)")
    if not path.parent.is_dir():
        raise UsageError(f"--mlflow-uri: the folder {path.parent} does not exist (it is not created for you)")
    if path.is_file():
        try:
            with open(path, "rb") as f:
                head = f.read(16)
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror}") from None
        if head and not head.startswith(b"SQLite format 3"):
            raise UsageError(f"{path} is not a SQLite database")


def check_output_file(out: str, *, force: bool, flag: str = "--out") -> Path:
    """Where ``export``/``report`` may write: an existing folder, not a directory, no overwrite
    unless ``force``; no folder is created."""
    if not out or not str(out).strip() or "\x00" in str(out):
        raise UsageError(f"{flag} must name a file")
    path = Path(out)
    if path.is_dir() or str(out).endswith(os.sep):
        raise UsageError(f"{flag} {out} is a directory; name a file")
    parent = path.parent
    if not parent.is_dir():
        raise UsageError(f"{flag} {out}: the folder {parent} does not exist (it is not created for you)")
    if path.exists() and not force:
        raise UsageError(f"{out} exists; pass --force to overwrite it")
    if path.exists() and not path.is_file():
        raise UsageError(f"{flag} {out} is not a regular file")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"{flag} {out}: cannot write in {parent}")
    return path


def write_atomically(path: Path, data: str | bytes) -> None:
    """Write to a temporary file in the same folder, then rename: a reader never sees half a file."""
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_user_file(path: str, what: str) -> str:
    """A user's JSON/text file as UTF-8, bounded in size; ``UsageError`` on anything odd."""
    p = Path(path)
    try:
        if p.is_dir():
            raise UsageError(f"{what} {path} is a directory")
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise UsageError(f"{what} {path} is {size} bytes; at most {MAX_FILE_BYTES} are read")
        return p.read_bytes().decode("utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{what} {path} is not UTF-8 text (byte {exc.start})") from None


def check_data_dir(data_dir: str | None, flag: str = "--data-dir") -> None:
    """A data directory may not exist yet (download creates it), but must not be a file."""
    if data_dir is None:
        return
    p = Path(data_dir)
    if not str(data_dir).strip() or "\x00" in str(data_dir):
        raise UsageError(f"{flag} must name a folder")
    if p.exists() and not p.is_dir():
        raise UsageError(f"{flag} {data_dir} is a file, not a folder")
    if not p.exists() and not p.parent.is_dir():
        raise UsageError(f"{flag} {data_dir}: the folder {p.parent} does not exist")


def check_budget(budget: float, flag: str = "--budget") -> None:
    if not (_finite(budget) and budget > 0 and budget < 1e9):
        raise UsageError(f"{flag} must be a positive finite number, got {budget}")


def connect_timeout_s() -> float:
    return float(os.environ.get("JOINTSEARCH_CONNECT_TIMEOUT_S", "10"))


def check_reachable(address: str, what: str, flag: str) -> None:
    """A bounded TCP connect to ``host:port`` (any scheme prefix is ignored); ``UsageError`` if it fails."""
    rest = address.split("://", 1)[-1].split("/", 1)[0]
    rest = rest.rsplit("@", 1)[-1]
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit() or not host:
        if address.startswith(("http://", "https://")):
            host, port = rest, ("443" if address.startswith("https") else "80")
        else:
            raise UsageError(f"{flag} must look like HOST:PORT, got {address!r}")
    host = host.strip("[]")
    try:
        with socket.create_connection((host, int(port)), timeout=connect_timeout_s()):
            pass
    except (OSError, ValueError, OverflowError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise UsageError(f"cannot reach {what} at {address} ({reason}); check {flag}") from None
