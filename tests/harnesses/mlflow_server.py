"""A real `mlflow server` process group, run from the compose file's `mlflow` service command."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from .processes import _http_status, _tail, _terminate_session


class MlflowServer:
    """An ``mlflow server`` process (group) on 127.0.0.1; ``stop()`` and ``start()`` again keep
    the same port, backend store and artifacts, like a restarted container."""

    def __init__(self, command: list[str], env: dict[str, str], port: int, workdir: Path):
        self.command, self.env, self.port, self.workdir = command, env, port, workdir
        self.uri = f"http://127.0.0.1:{port}"
        self.log_path = workdir / "mlflow-server.log"
        self.proc: subprocess.Popen | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 90) -> None:
        """Start and wait until GET /health answers 200; on failure, stop and raise with the
        log's tail."""
        if self.running:
            return
        with open(self.log_path, "a") as log:
            log.write(f"\n=== start: {' '.join(self.command)}\n")
            log.flush()
            self.proc = subprocess.Popen(self.command, env=self.env, cwd=self.workdir, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if _http_status(f"{self.uri}/health") == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        code = self.proc.poll()
        self.stop()
        raise RuntimeError(
            f"mlflow server did not become healthy on {self.uri} "
            f"({'exited with ' + str(code) if code is not None else f'timeout {timeout}s'})\n"
            f"command: {' '.join(self.command)}\n--- {self.log_path} ---\n{_tail(self.log_path)}"
        )

    def stop(self) -> None:
        """Terminate the whole process group (uvicorn/gunicorn workers included); idempotent."""
        if self.proc is not None:
            _terminate_session(self.proc, grace=15)
