"""Small process and network helpers of the test harnesses: free ports, the native environment, killing a process tree for good."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKER_DIR = REPO_ROOT / "docker"




def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago (the OS picks it; races are rare)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def native_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """os.environ with this virtualenv's bin/ and docker/ first on PATH, plus ``extra``.

    RAY_ADDRESS and MLFLOW_TRACKING_URI are dropped so a developer's shell cannot point a test
    at a real cluster or tracking server.
    """
    env = {k: v for k, v in os.environ.items() if k not in {"RAY_ADDRESS", "MLFLOW_TRACKING_URI"}}
    path = [str(Path(sys.executable).parent), str(DOCKER_DIR), env.get("PATH", "")]
    env["PATH"] = os.pathsep.join(p for p in path if p)
    env.update({k: str(v) for k, v in (extra or {}).items()})
    return env


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log: {exc})"


def _short_tmpdir(prefix: str) -> Path:
    """A directory directly under /tmp: Ray and PostgreSQL put unix sockets in it, and a
    socket path must stay under ~107 bytes (pytest's tmp_path is often longer)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def _proc_table() -> list[tuple[int, str, int, str]]:
    """(pid, state, session id, command line) of every process, read from /proc."""
    rows = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        # "pid (comm) state ppid pgrp session ..."; comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        rows.append((int(entry.name), fields[0], int(fields[3]), cmdline.strip()))
    return rows


def _live_processes(sessions: Iterable[int], mentions: Iterable[str]) -> list[tuple[int, str]]:
    """Processes (not zombies) in one of ``sessions`` or whose command line mentions one of
    ``mentions``; (pid, command line)."""
    sessions, mentions = set(sessions), [m for m in mentions if m]
    me = os.getpid()
    return [
        (pid, cmd)
        for pid, state, sid, cmd in _proc_table()
        if pid != me and state != "Z" and (sid in sessions or any(m in cmd for m in mentions))
    ]


def _kill_until_gone(live: Callable[[], list[tuple[int, str]]], timeout: float = 10) -> None:
    """SIGKILL what ``live()`` lists until it lists nothing or ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while (left := live()) and time.monotonic() < deadline:
        for pid, _ in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.2)


def _terminate_session(proc: subprocess.Popen, grace: float) -> None:
    """SIGTERM the process group that ``proc`` leads, SIGKILL it after ``grace`` seconds."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait(timeout=10)


def _http_status(url: str, timeout: float = 2.0, headers: Mapping[str, str] | None = None) -> int:
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
