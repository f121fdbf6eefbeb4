"""A fresh PostgreSQL cluster in a temporary directory, on a free loopback port (started as the `postgres` user when run as root: PostgreSQL refuses root)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

from .processes import _tail


def _postgres_bindir() -> Path | None:
    """JS_PG_BINDIR, else the newest /usr/lib/postgresql/<major>/bin, else initdb on PATH."""
    candidates = []
    if os.environ.get("JS_PG_BINDIR"):
        candidates.append(Path(os.environ["JS_PG_BINDIR"]))
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates += versions
    if shutil.which("initdb"):
        candidates.append(Path(shutil.which("initdb")).parent)
    for bindir in candidates:
        if all((bindir / tool).exists() for tool in ("initdb", "pg_ctl", "psql")):
            return bindir
    return None


class PostgresServer:
    """A running PostgreSQL cluster. ``uri`` is SQLAlchemy/MLflow style with psycopg2."""

    def __init__(self, *, bindir, root, port, user, password, database, run_as):
        self.bindir, self.root, self.port = bindir, root, port
        self.user, self.password, self.database = user, password, database
        self.host = "127.0.0.1"
        self.data_dir, self.socket_dir, self.log_path = root / "data", root / "sock", root / "log"
        self._run_as = run_as
        self.uri = f"postgresql+psycopg2://{user}:{password}@{self.host}:{port}/{database}"
        self.running = False

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*self._run_as, *args], capture_output=True, text=True, timeout=timeout, check=False
        )

    def _check(self, result: subprocess.CompletedProcess, what: str) -> None:
        if result.returncode != 0:
            raise RuntimeError(
                f"postgres: {what} failed ({result.returncode})\n{result.stdout}\n{result.stderr}"
                f"\n--- server log ---\n{_tail(self.log_path)}"
            )

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.socket_dir}"
            " -c fsync=off -c full_page_writes=off"  # a test cluster: speed over durability
        )
        pg_ctl = str(self.bindir / "pg_ctl")
        result = self._run(pg_ctl, "-D", str(self.data_dir), "-l", str(self.log_path), "-o", options,
                           "-w", "-t", "30", "start")
        self._check(result, "pg_ctl start")
        self.running = True

    def stop(self) -> None:
        """Fast shutdown; idempotent. The data directory stays until fixture teardown."""
        if not self.running:
            return
        self.running = False
        pg_ctl = str(self.bindir / "pg_ctl")
        result = self._run(pg_ctl, "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "30", "stop")
        if result.returncode != 0:  # last resort: the postmaster's pid from its lock file
            try:
                pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
                os.kill(pid, signal.SIGKILL)
            except (OSError, ValueError, IndexError):
                pass

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL as the cluster's superuser over the unix socket; returns stdout."""
        result = self._run(
            str(self.bindir / "psql"), "-h", str(self.socket_dir), "-p", str(self.port),
            "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql,
        )
        self._check(result, f"psql {sql!r}")
        return result.stdout
