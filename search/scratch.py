"""Per-trial scratch folders that a killed worker cannot leak.

Why: a trial restores its checkpoint into a scratch folder and deletes it in a ``finally``. A
worker that is killed (SIGKILL of a search, Tune force-stopping trials 5 s after an interrupt, a
node lost) never runs that ``finally``, and its folder, a restored checkpoint of up to hundreds
of MB for a real network, stayed in the temp directory for good. Every scratch folder now lives
under one root per user and is named after the process that owns it; each new trial, and the
driver when a search ends, deletes the folders of processes that no longer exist on this host.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["scratch_root", "sweep", "trial_work_dir"]


def scratch_root() -> Path:
    """``$TMPDIR/jointsearch-scratch-<uid>``: one per user, so users of one machine never share it."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"jointsearch-scratch-{uid}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def sweep(root: Path | None = None) -> int:
    """Delete the scratch folders whose owning process is gone; returns how many were deleted."""
    root = root or scratch_root()
    removed = 0
    try:
        children = list(root.iterdir())
    except OSError:
        return 0
    for child in children:
        owner = child.name.split("-", 1)[0]
        if owner.isdigit() and not _alive(int(owner)):
            shutil.rmtree(child, ignore_errors=True)
            removed += not child.exists()
    return removed


def trial_work_dir() -> Path:
    """A fresh scratch folder owned by this process (the caller deletes it when done)."""
    root = scratch_root()
    root.mkdir(mode=0o700, exist_ok=True)
    sweep(root)
    return Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=root))
