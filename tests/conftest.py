"""Shared fixtures: real servers started and stopped by the tests, and the compose bridge.

Servers (factory fixtures, SMAC3-style ``make_*``; each call starts one, teardown stops all):

* ``make_postgres(database="mlflow", user="jointsearch")`` -> :class:`PostgresServer`
  A fresh PostgreSQL cluster in a temporary directory, on a free loopback port.
* ``make_mlflow_server(backend_store_uri, artifacts_dir, *, extra_args=(), env=None)``
  -> :class:`MlflowServer`. Runs the ``mlflow`` service command of docker-compose.yml.
* ``make_ray_cluster(num_cpus=1, worker_cpus=None, *, auth=True, timeout=60)``
  -> :class:`RayCluster`
  A head node and optionally one worker node, each a real ``ray start --block`` process tree,
  from the ``ray-head`` / ``ray-worker`` service commands of docker-compose.yml.

One source for both: :func:`compose_command` (also a fixture) loads docker-compose.yml and
returns a service's ``command:`` list with its ``${VAR:-default}`` substitutions done. The
fixtures override only the variables that name hosts, ports and paths, so what the tests run is
what the containers run. Programs are found on :func:`native_env`'s PATH: this interpreter's
bin directory first (ray, mlflow, jointsearch of this virtualenv), then docker/ (mlflow-server).

``ray_runtime`` (session-scoped) is one in-process local Ray for tests that call ``run_search``
in the pytest process (tests/search, tests/dashboards/test_browser.py).

Plain helpers are exposed as fixtures too (``free_port``, ``compose_command``,
``compose_environment``, ``compose_spec``, ``native_env``) because pytest runs with --import-mode=importlib and test
files cannot import this module.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
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

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKER_DIR = REPO_ROOT / "docker"


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# docker-compose.yml -> native command lines
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------


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


@pytest.fixture
def make_postgres() -> Callable[..., PostgresServer]:
    """Factory: ``make_postgres(database="mlflow", user="jointsearch") -> PostgresServer``.

    initdb's a fresh cluster in /tmp/jspgXXXX (owned by the ``postgres`` user when the tests
    run as root, because the server refuses to run as root), starts it with pg_ctl on a free
    port with listen_addresses=127.0.0.1 and its unix socket inside that directory, creates a
    password user (scram-sha-256 over TCP) owning a new database. Every cluster is stopped
    and its directory removed at teardown, also when the test failed.
    Skips when the PostgreSQL server binaries are not installed (see docker/NOTES-for-ci.md).
    """
    bindir = _postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl, psql) not found; "
                    "apt-get install postgresql, or set JS_PG_BINDIR")
    run_as: list[str] = []
    owner = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run PostgreSQL as")
        run_as = ["runuser", "-u", "postgres", "--"]
    servers: list[PostgresServer] = []

    def factory(database: str = "mlflow", user: str = "jointsearch") -> PostgresServer:
        root = _short_tmpdir("jspg")
        if owner is not None:
            os.chown(root, owner.pw_uid, owner.pw_gid)
        server = PostgresServer(bindir=bindir, root=root, port=free_port(), user=user,
                                password=secrets.token_hex(16), database=database, run_as=run_as)
        servers.append(server)
        result = server._run(
            str(bindir / "initdb"), "-D", str(server.data_dir), "-U", "postgres", "-E", "UTF8",
            "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync",
        )
        server._check(result, "initdb")
        server._run("mkdir", "-p", str(server.socket_dir))
        server.start()
        server.psql(f"CREATE ROLE {user} LOGIN PASSWORD '{server.password}'")
        server.psql(f"CREATE DATABASE {database} OWNER {user}")
        return server

    yield factory
    for server in servers:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# MLflow tracking server
# --------------------------------------------------------------------------------------------


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


@pytest.fixture
def make_mlflow_server(tmp_path_factory) -> Callable[..., MlflowServer]:
    """Factory: ``make_mlflow_server(backend_store_uri, artifacts_dir, *, extra_args=(), env=None)
    -> MlflowServer`` (started and healthy).

    Runs the ``mlflow`` service command of docker-compose.yml (``mlflow-server`` = ``mlflow
    server`` with ``--serve-artifacts``, and the basic-auth app when ``MLFLOW_AUTH=basic-auth``
    is in ``env``) with --backend-store-uri replaced by ``backend_store_uri``, the artifacts in
    ``artifacts_dir``, host 127.0.0.1, a free port and one worker; ``extra_args`` are
    appended. The environment is :func:`native_env` + the service's compose ``environment:``
    (no job runner, ...) with MLFLOW_AUTH=none + ``env``. Every server is stopped at teardown.
    """
    servers: list[MlflowServer] = []

    def factory(backend_store_uri: str, artifacts_dir, *, extra_args: Iterable[str] = (),
                env: Mapping[str, str] | None = None) -> MlflowServer:
        port = free_port()
        command = compose_command(
            "mlflow",
            replace={"--backend-store-uri": backend_store_uri},
            MLFLOW_ARTIFACTS_DESTINATION=str(artifacts_dir),
            MLFLOW_BIND_HOST="127.0.0.1",
            MLFLOW_PORT=port,
            MLFLOW_WORKERS=1,
        ) + [str(arg) for arg in extra_args]
        # compose turns basic-auth on by default; these servers are open unless env says otherwise
        server_env = native_env({**compose_environment("mlflow", MLFLOW_AUTH="none"), **(env or {})})
        server = MlflowServer(command, server_env, port, tmp_path_factory.mktemp("mlflow-server"))
        servers.append(server)
        server.start()
        return server

    yield factory
    for server in servers:
        server.stop()


# --------------------------------------------------------------------------------------------
# Ray cluster
# --------------------------------------------------------------------------------------------


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


@pytest.fixture
def make_ray_cluster() -> Callable[..., RayCluster]:
    """Factory: ``make_ray_cluster(num_cpus=1, worker_cpus=None, *, auth=True, timeout=60)
    -> RayCluster``.

    Starts the ``ray-head`` service command of docker-compose.yml (``ray start --head --block``)
    on a free port with ``--num-cpus num_cpus`` appended, then, if ``worker_cpus`` is given,
    the ``ray-worker`` command pointed at 127.0.0.1 with ``--num-cpus worker_cpus``. Each node
    gets its own /tmp/rayXXXXXX temp dir (short: Ray's unix sockets live there). With ``auth``
    (the compose default) the cluster requires a fresh token (RAY_AUTH_MODE=token), which
    ``RayCluster.env`` carries for clients. Every cluster is stopped at teardown, and only it.
    """
    clusters: list[RayCluster] = []

    def factory(num_cpus: int = 1, worker_cpus: int | None = None, *, auth: bool = True,
                timeout: float = 60) -> RayCluster:
        # The compose environment of the nodes (RAY_AUTH_MODE=token, ...) with a fresh token.
        env = compose_environment("ray-head", RAY_AUTH_TOKEN=secrets.token_hex(32))
        if not auth:
            env = {**env, "RAY_AUTH_MODE": "disabled", "RAY_AUTH_TOKEN": ""}
        cluster = RayCluster(free_port(), env)
        clusters.append(cluster)
        head_dir = _short_tmpdir("ray")
        cluster._start_node(
            compose_command("ray-head", RAY_PORT=cluster.port, RAY_DASHBOARD_PORT=free_port(),
                            RAY_HEAD_TEMP_DIR=head_dir) + ["--num-cpus", str(num_cpus)],
            head_dir, timeout)
        if worker_cpus is not None:
            worker_dir = _short_tmpdir("ray")
            cluster._start_node(
                compose_command("ray-worker", RAY_HEAD_HOST="127.0.0.1", RAY_PORT=cluster.port,
                                RAY_WORKER_TEMP_DIR=worker_dir) + ["--num-cpus", str(worker_cpus)],
                worker_dir, timeout)
            cluster.wait_for_cpus(num_cpus + worker_cpus, timeout)
        return cluster

    yield factory
    for cluster in clusters:
        cluster.stop()
        for _, temp_dir in cluster.nodes:
            shutil.rmtree(temp_dir, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# In-process Ray (for tests that call run_search in the pytest process)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def ray_runtime():
    """One local Ray runtime for the whole session (starting Ray costs seconds on 2 cores),
    for tests that run a search in-process; the server fixtures above never use it."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private, loopback-only test runtime
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


# --------------------------------------------------------------------------------------------
# The helpers as fixtures (test files cannot import this module)
# --------------------------------------------------------------------------------------------


@pytest.fixture(name="free_port")
def _free_port_fixture() -> Callable[[], int]:
    """``free_port() -> int``."""
    return free_port


@pytest.fixture(name="compose_command")
def _compose_command_fixture() -> Callable[..., list[str]]:
    """``compose_command(service, *, replace=None, **overrides) -> list[str]``."""
    return compose_command


@pytest.fixture(name="compose_environment")
def _compose_environment_fixture() -> Callable[..., dict[str, str]]:
    """``compose_environment(service, **overrides) -> dict[str, str]``."""
    return compose_environment


@pytest.fixture(name="native_env")
def _native_env_fixture() -> Callable[..., dict[str, str]]:
    """``native_env(extra=None) -> dict``: the environment the native commands run with."""
    return native_env


@pytest.fixture(name="compose_spec")
def _compose_spec_fixture():
    """What the deploy tests need from docker-compose.yml, in one namespace: ``path``,
    ``data`` (parsed), ``strings`` (every string value in it), ``variables`` (name -> has a
    default), ``interpolate``, ``ComposeVariableError``."""

    class ComposeSpec:
        path = COMPOSE_FILE
        data = load_compose()
        variables = compose_variables()

    ComposeSpec.strings = compose_strings(ComposeSpec.data)
    ComposeSpec.interpolate = staticmethod(interpolate)
    ComposeSpec.ComposeVariableError = ComposeVariableError
    return ComposeSpec
