"""One process at a time creates a SQLite MLflow store and its experiment.

Two searches started together on a fresh ``sqlite:///`` store both ran MLflow's table
migrations at once and one died inside them (sqlalchemy CircularDependencyError), or both
created the same experiment. An advisory ``flock`` on the database file itself (SQLite locks
with ``fcntl`` byte-range locks, which are independent of ``flock`` on Linux) serialises just
that first step; everything after it is ordinary concurrent SQLite use, which MLflow handles.
Other stores (a tracking server, PostgreSQL) serialise this themselves.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def store_creation_lock(uri: str) -> Iterator[None]:
    if not uri.startswith("sqlite:///"):
        yield
        return
    import fcntl

    path = uri[len("sqlite:///"):]
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # its folder was checked by validation.check_tracking_uri
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def open_store(uri: str) -> None:
    """Make this process's MLflow client open (and, the first time, create) the store under the
    lock. MLflow caches the store per URI in the process, so every later client call finds its
    tables made; call it before the first read or write of a search."""
    from .tracking import client_for

    with store_creation_lock(uri):
        client_for(uri)  # MlflowClient opens (the first time: migrates) the store in its constructor
