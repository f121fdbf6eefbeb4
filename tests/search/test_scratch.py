"""Scratch folders of killed workers are deleted by the next trial or the driver; live ones stay."""

import os
import subprocess
import sys

from jointsearch.search import scratch


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_sweep_deletes_only_the_folders_of_processes_that_are_gone(tmp_path):
    dead = tmp_path / f"{_dead_pid()}-abc"
    (dead / "restored").mkdir(parents=True)
    (dead / "restored" / "state.bin").write_bytes(b"x" * 1000)
    live = tmp_path / f"{os.getpid()}-def"
    live.mkdir()
    other = tmp_path / "not-a-scratch-folder"
    other.mkdir()
    assert scratch.sweep(tmp_path) == 1
    assert not dead.exists() and live.exists() and other.exists()


def test_a_new_trial_folder_sweeps_the_root_first(tmp_path, monkeypatch):
    monkeypatch.setattr(scratch.tempfile, "gettempdir", lambda: str(tmp_path))
    root = scratch.scratch_root()
    root.mkdir()
    leaked = root / f"{_dead_pid()}-xyz"
    leaked.mkdir()
    work = scratch.trial_work_dir()
    assert work.parent == root and work.name.startswith(f"{os.getpid()}-")
    assert not leaked.exists()
