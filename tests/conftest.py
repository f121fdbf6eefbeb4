"""Shared fixtures: real servers and clusters started and stopped by the tests.

The harnesses themselves live in tests/harnesses/ (one module each: processes, compose,
mlflow_server, ray_cluster, postgres); here are the fixtures that more than one test folder uses.
tests/deploy/conftest.py adds PostgreSQL and the compose bridge, which only the deploy tests use.

* ``make_mlflow_server(backend_store_uri, artifacts_dir, *, extra_args=(), env=None)``
  -> :class:`MlflowServer`. Runs the ``mlflow`` service command of docker-compose.yml.
* ``make_ray_cluster(num_cpus=1, worker_cpus=None, *, auth=True, timeout=60)``
  -> :class:`RayCluster`. A head node and optionally one worker node, each a real
  ``ray start --block`` process tree, from the ``ray-head`` / ``ray-worker`` service commands.
* ``sqlite_uri`` -> ``sqlite:///<tmp_path>/mlflow.db``, an empty MLflow store with its tables made,
  and ``fresh_store(path) -> uri`` for a store at another path (a copy of one store the session
  migrated once: creating MLflow's tables costs seconds of CPU per store on 2 cores; the tests of
  a store's very first creation, test_store_lock.py and the fuzz test, make theirs from nothing).
* ``ray_runtime`` (session-scoped): one in-process local Ray for tests that call ``run_search``
  in the pytest process (tests/search, tests/dashboards/test_browser.py).

What the harnesses run is what the containers run: :func:`harnesses.compose.compose_command`
loads docker-compose.yml and returns a service's ``command:`` with its substitutions done; the
fixtures override only hosts, ports and paths. Plain helpers are fixtures too (``free_port``,
``native_env``) because pytest runs with --import-mode=importlib and test files cannot import
this module or the harnesses.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the harnesses package, for the conftests only

from harnesses.compose import compose_command, compose_environment  # noqa: E402
from harnesses.mlflow_server import MlflowServer  # noqa: E402
from harnesses.processes import _short_tmpdir, free_port, native_env  # noqa: E402
from harnesses.ray_cluster import RayCluster  # noqa: E402


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


@pytest.fixture(scope="session")
def _migrated_store(tmp_path_factory) -> Path:
    """One empty MLflow SQLite store whose tables MLflow made, for :func:`fresh_store` to copy."""
    import mlflow

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{path}").search_experiments()  # creates and migrates the tables
    return path


@pytest.fixture(name="fresh_store", scope="session")
def _fresh_store_fixture(_migrated_store) -> Callable[[Path], str]:
    """``fresh_store(path) -> 'sqlite:///path'``: an empty store at ``path``, tables made."""

    def make(path: Path) -> str:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_migrated_store, path)
        return f"sqlite:///{path}"

    return make


@pytest.fixture
def sqlite_uri(tmp_path, fresh_store) -> str:
    return fresh_store(tmp_path / "mlflow.db")


@pytest.fixture(scope="session")
def ray_runtime():
    """One local Ray runtime for the whole session (starting Ray costs seconds on 2 cores),
    for tests that run a search in-process; the server fixtures above never use it."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private, loopback-only test runtime
    # address="local": never join a cluster that another test (or xdist worker) started on this machine
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(name="free_port")
def _free_port_fixture() -> Callable[[], int]:
    """``free_port() -> int``."""
    return free_port


@pytest.fixture(name="native_env")
def _native_env_fixture() -> Callable[..., dict[str, str]]:
    """``native_env(extra=None) -> dict``: the environment the native commands run with."""
    return native_env
