"""A real Ray head node and optional worker node, each a `ray start --block` process tree, from the compose file's `ray-head` / `ray-worker` commands."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from .processes import _kill_until_gone, _live_processes, _tail, native_env


class RayCluster:
    """A Ray head node and optional worker node, each a ``ray start --block`` process tree in
    its own session, with its own short temp dir (/tmp/rayXXXXXX).

    ``address`` is what ``ray.init(address=...)`` takes; ``env`` holds what a client process
    needs besides it (the token-auth variables). Ray itself resolves 127.0.0.1 to the
    machine's outward address and listens on all interfaces: the token is what keeps others out.
    """

    def __init__(self, port: int, env: dict[str, str]):
        self.port = port
        self.address = f"127.0.0.1:{port}"
        self.env = env
        self.nodes: list[tuple[subprocess.Popen, Path]] = []  # (ray start process, temp dir)

    def _start_node(self, command: list[str], temp_dir: Path, timeout: float) -> None:
        log_path = temp_dir / "ray-start.log"
        with open(log_path, "w") as log:
            proc = subprocess.Popen(command, env=native_env(self.env), stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.nodes.append((proc, temp_dir))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "Ray runtime started." in log_path.read_text(errors="replace"):
                return
            if proc.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"ray node did not start: {' '.join(command)}\n"
                           f"--- {log_path} ---\n{_tail(log_path)}")

    def leftover_processes(self) -> list[tuple[int, str]]:
        """Live processes of this cluster: in a node's session or naming its temp dir."""
        return _live_processes(sessions=[proc.pid for proc, _ in self.nodes],
                               mentions=[str(temp_dir) for _, temp_dir in self.nodes])

    def wait_for_cpus(self, cpus: float, timeout: float = 90) -> None:
        """Block until the cluster's resource view shows ``cpus`` CPUs: ``ray start`` reports a
        node started before the head's scheduler counts its resources, and a search that starts
        in between sees one node and can keep all its trials there (reused actors stay put)."""
        probe = ("import sys, time, ray\n"
                 "ray.init(address=sys.argv[1], log_to_driver=False, logging_level='ERROR')\n"
                 "deadline = time.monotonic() + float(sys.argv[3])\n"
                 "while ray.cluster_resources().get('CPU', 0) < float(sys.argv[2]):\n"
                 "    if time.monotonic() > deadline:\n"
                 "        sys.exit(f'cluster resources: {ray.cluster_resources()}')\n"
                 "    time.sleep(0.5)\n")
        out = subprocess.run([sys.executable, "-c", probe, self.address, str(cpus), str(timeout)],
                             env=native_env(self.env), capture_output=True, text=True, timeout=timeout + 60)
        if out.returncode != 0:
            raise RuntimeError(f"cluster never showed {cpus} CPUs: {out.stderr[-2000:]}")

    def kill_node(self, index: int) -> None:
        """SIGKILL node ``index`` (0 = head) and everything of it, as a machine dying would:
        no clean shutdown, its running tasks and actors vanish."""
        proc, temp_dir = self.nodes[index]
        _kill_until_gone(lambda: _live_processes(sessions=[proc.pid], mentions=[str(temp_dir)]))
        proc.wait(timeout=10)

    def stop(self) -> None:
        """Stop this cluster only (never a bare ``ray stop``, which would stop every Ray on
        the machine): SIGTERM each ``ray start --block`` (it stops its node's processes), then
        SIGKILL whatever is left in its session or names its temp dir. Idempotent."""
        for proc, _ in reversed(self.nodes):  # workers first, the head last
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _ in reversed(self.nodes):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        _kill_until_gone(self.leftover_processes)
        for proc, _ in self.nodes:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
