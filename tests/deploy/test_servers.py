"""The server fixtures of tests/conftest.py, exercised for real.

Each test starts real processes (PostgreSQL, ``mlflow server``, ``ray start``) from the same
command lines docker-compose.yml gives its services, and checks what a client sees.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request

import pytest

pytestmark = pytest.mark.slow


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _request(url: str, *, method: str = "GET", body: dict | None = None,
             headers: dict | None = None) -> tuple[int, str]:
    """(status, body) of one HTTP request; HTTP errors are returned, not raised."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def _basic(user: str, password: str) -> dict:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------


class TestPostgres:
    def test_password_user_can_query_over_loopback(self, make_postgres):
        """The URI's user and password open a SQLAlchemy/psycopg2 session on 127.0.0.1; a
        wrong password is refused (the cluster really uses password auth over TCP)."""
        sqlalchemy = pytest.importorskip("sqlalchemy")
        pytest.importorskip("psycopg2", reason="pip install psycopg2-binary (docker/NOTES-for-ci.md)")
        server = make_postgres()
        assert server.uri.startswith(f"postgresql+psycopg2://{server.user}:")
        assert server.uri.endswith(f"@127.0.0.1:{server.port}/{server.database}")

        engine = sqlalchemy.create_engine(server.uri)
        try:
            with engine.connect() as conn:
                assert conn.execute(sqlalchemy.text("SELECT 1")).scalar() == 1
                assert conn.execute(sqlalchemy.text("SHOW listen_addresses")).scalar() == "127.0.0.1"
                assert conn.execute(sqlalchemy.text("SELECT current_user")).scalar() == server.user
        finally:
            engine.dispose()

        wrong = sqlalchemy.create_engine(server.uri.replace(server.password, "not-the-password"))
        with pytest.raises(sqlalchemy.exc.OperationalError, match="password authentication failed"):
            with wrong.connect():
                pass

    def test_stop_closes_the_port(self, make_postgres):
        """stop() shuts the server down (and may be called twice)."""
        server = make_postgres()
        assert _port_open(server.port)
        server.stop()
        server.stop()
        assert not _port_open(server.port)


# --------------------------------------------------------------------------------------------
# MLflow tracking server
# --------------------------------------------------------------------------------------------


def _log_run(uri: str) -> tuple[str, str]:
    """Create an experiment and a run with a param, a metric and an artifact; (exp id, run id)."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment_id = client.create_experiment("fixture-check")
    run = client.create_run(experiment_id)
    client.log_param(run.info.run_id, "depth", "8")
    client.log_metric(run.info.run_id, "val_loss", 0.25, step=3)
    client.log_text(run.info.run_id, "hello", "notes/hello.txt")  # through the artifact proxy
    client.set_terminated(run.info.run_id)
    return experiment_id, run.info.run_id


def _assert_run_readable(uri: str, experiment_id: str, run_id: str) -> None:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    assert client.get_experiment_by_name("fixture-check").experiment_id == experiment_id
    run = client.get_run(run_id)
    assert run.data.params == {"depth": "8"}
    assert run.data.metrics == {"val_loss": 0.25}
    assert run.info.status == "FINISHED"
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # proxied, no bucket creds
    assert [a.path for a in client.list_artifacts(run_id, "notes")] == ["notes/hello.txt"]


def _restart_and_check(server, experiment_id: str, run_id: str) -> None:
    port = server.port
    server.stop()
    assert not _port_open(port)
    server.start()
    assert server.port == port and server.uri == f"http://127.0.0.1:{port}"
    _assert_run_readable(server.uri, experiment_id, run_id)


class TestMlflowServer:
    def test_sqlite_store_survives_restart(self, make_mlflow_server, tmp_path, sqlite_uri):
        """A run logged before stop() is read back after start() on the same port; artifacts
        go through the server into artifacts_dir."""
        artifacts = tmp_path / "artifacts"
        server = make_mlflow_server(sqlite_uri, artifacts)
        experiment_id, run_id = _log_run(server.uri)
        assert list(artifacts.rglob("hello.txt")), "artifact was not stored in artifacts_dir"
        _restart_and_check(server, experiment_id, run_id)

    def test_postgres_store_survives_restart(self, make_postgres, make_mlflow_server, tmp_path):
        """The same on PostgreSQL, the compose backend store."""
        pytest.importorskip("psycopg2", reason="pip install psycopg2-binary (docker/NOTES-for-ci.md)")
        postgres = make_postgres()
        server = make_mlflow_server(postgres.uri, tmp_path / "artifacts")
        experiment_id, run_id = _log_run(server.uri)
        _restart_and_check(server, experiment_id, run_id)

    def test_compose_hostname_is_an_allowed_host(self, make_mlflow_server, tmp_path, sqlite_uri):
        """Inside the compose network clients send ``Host: mlflow:5000``, which MLflow's
        default host check rejects; the compose command's --allowed-hosts admits it and still
        rejects other names (DNS-rebinding protection stays on)."""
        server = make_mlflow_server(sqlite_uri, tmp_path / "art")
        url = f"{server.uri}/api/2.0/mlflow/experiments/search?max_results=1"
        assert _request(url, headers={"Host": "mlflow:5000"})[0] == 200
        assert _request(url, headers={"Host": "attacker.example:5000"})[0] in (400, 403)


class TestMlflowBasicAuth:
    def test_refuses_anonymous_and_admits_admin(self, make_postgres, make_mlflow_server,
                                                tmp_path, monkeypatch):
        """With MLFLOW_AUTH=basic-auth (the compose setting) and the users kept in the same
        PostgreSQL database as the runs: no credentials or a wrong password -> 401; the admin
        with the configured password creates an experiment; /health stays open for the
        healthcheck."""
        pytest.importorskip("flask_wtf", reason="pip install 'mlflow[auth]' (docker/NOTES-for-ci.md)")
        pytest.importorskip("psycopg2", reason="pip install psycopg2-binary (docker/NOTES-for-ci.md)")
        import mlflow

        postgres = make_postgres()
        password = "admin-" + os.urandom(8).hex()
        server = make_mlflow_server(
            postgres.uri, tmp_path / "artifacts",
            env={"MLFLOW_AUTH": "basic-auth", "MLFLOW_AUTH_ADMIN_PASSWORD": password,
                 "MLFLOW_AUTH_DATABASE_URI": postgres.uri,
                 "MLFLOW_FLASK_SERVER_SECRET_KEY": os.urandom(16).hex()},
        )
        create = f"{server.uri}/api/2.0/mlflow/experiments/create"

        assert _request(f"{server.uri}/health")[0] == 200
        assert _request(create, method="POST", body={"name": "anon"})[0] == 401
        status, _ = _request(create, method="POST", body={"name": "wrong"},
                             headers=_basic("admin", "not-" + password))
        assert status == 401

        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
        client = mlflow.MlflowClient(tracking_uri=server.uri)
        experiment_id = client.create_experiment("with-auth")
        assert client.get_experiment(experiment_id).name == "with-auth"
        tables = postgres.psql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
                               database=postgres.database).split()
        assert {"users", "experiments", "alembic_version_auth"} <= set(tables)

    def test_the_search_job_gets_its_own_non_admin_user(self, make_mlflow_server, compose_environment,
                                                         native_env, tmp_path, monkeypatch):
        """docker/mlflow-create-user, run as the compose `mlflow-users` service runs it: the
        search user it creates can write its own experiment but not delete the admin's, and
        running it again (every `up`) only resets the password."""
        pytest.importorskip("flask_wtf", reason="pip install 'mlflow[auth]' (docker/NOTES-for-ci.md)")
        import mlflow

        admin_pw, user_pw = "admin-" + os.urandom(8).hex(), "js-" + os.urandom(8).hex()
        server = make_mlflow_server(
            f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "artifacts",
            env={"MLFLOW_AUTH": "basic-auth", "MLFLOW_AUTH_ADMIN_PASSWORD": admin_pw,
                 "MLFLOW_AUTH_DATABASE_URI": f"sqlite:///{tmp_path / 'auth.db'}",
                 "MLFLOW_FLASK_SERVER_SECRET_KEY": os.urandom(16).hex()},
        )
        secrets = dict(MLFLOW_AUTH_ADMIN_PASSWORD=admin_pw, JS_MLFLOW_PASSWORD=user_pw,
                       MLFLOW_HOST="127.0.0.1", MLFLOW_PORT=server.port)
        script = os.path.join(os.path.dirname(__file__), "..", "..", "docker", "mlflow-create-user")
        for _ in range(2):  # the second `up` finds the user there
            made = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=120,
                                  env=native_env(compose_environment("mlflow-users", **secrets)))
            assert made.returncode == 0, made.stderr
        assert "updated" in made.stdout

        search_env = compose_environment("search", **secrets)
        user = search_env["MLFLOW_TRACKING_USERNAME"]
        admin_exp = _request(f"{server.uri}/api/2.0/mlflow/experiments/create", method="POST",
                             body={"name": "admins"}, headers=_basic("admin", admin_pw))
        assert admin_exp[0] == 200
        admin_exp_id = json.loads(admin_exp[1])["experiment_id"]
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", search_env["MLFLOW_TRACKING_PASSWORD"])
        client = mlflow.MlflowClient(tracking_uri=server.uri)
        own = client.create_experiment("search-own")
        run = client.create_run(own)
        client.log_metric(run.info.run_id, "val_error", 0.5)
        client.get_experiment(admin_exp_id)  # READ on others' experiments
        status, _ = _request(f"{server.uri}/api/2.0/mlflow/experiments/delete", method="POST",
                             body={"experiment_id": admin_exp_id}, headers=_basic(user, user_pw))
        assert status == 403
        status, body = _request(f"{server.uri}/api/2.0/mlflow/users/get?username={user}",
                                headers=_basic("admin", admin_pw))
        assert status == 200 and json.loads(body)["user"]["is_admin"] is False

    def test_the_database_password_is_not_on_any_command_line(self, make_postgres, make_mlflow_server,
                                                              compose_command, tmp_path):
        """Compose's URI has no password; libpq takes it from PGPASSWORD. No process of the
        server shows it in /proc/*/cmdline, which every local user can read."""
        pytest.importorskip("psycopg2", reason="pip install psycopg2-binary (docker/NOTES-for-ci.md)")
        postgres = make_postgres()
        uri = compose_command("mlflow", POSTGRES_USER=postgres.user, POSTGRES_HOST="127.0.0.1",
                              POSTGRES_PORT=postgres.port, POSTGRES_DB=postgres.database)
        uri = uri[uri.index("--backend-store-uri") + 1]
        assert postgres.password not in uri
        server = make_mlflow_server(uri, tmp_path / "artifacts", env={"PGPASSWORD": postgres.password})
        assert _request(f"{server.uri}/api/2.0/mlflow/experiments/search?max_results=1")[0] == 200
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
        for pid in pids:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmdline = f.read()
            except OSError:
                continue
            assert postgres.password.encode() not in cmdline or b"pytest" in cmdline, pid

    def test_refuses_to_start_without_admin_password(self, compose_command, native_env, tmp_path):
        """MLflow ships no default admin password: the wrapper stops with one clear line."""
        command = compose_command("mlflow", replace={"--backend-store-uri": "sqlite:///x.db"},
                                  MLFLOW_PORT=1)
        result = subprocess.run(
            command, cwd=tmp_path, capture_output=True, text=True, timeout=60,
            env=native_env({"MLFLOW_AUTH": "basic-auth", "MLFLOW_AUTH_ADMIN_PASSWORD": "",
                            "MLFLOW_FLASK_SERVER_SECRET_KEY": "k", "MLFLOW_AUTH_CONFIG_PATH": ""}),
        )
        assert result.returncode != 0
        assert "MLFLOW_AUTH_ADMIN_PASSWORD" in result.stderr


# --------------------------------------------------------------------------------------------
# Ray cluster
# --------------------------------------------------------------------------------------------

_RAY_CLIENT = textwrap.dedent(
    """
    import json, sys, time
    import ray

    ray.init(address=sys.argv[1], log_to_driver=False)
    deadline = time.monotonic() + 30
    while len([n for n in ray.nodes() if n["Alive"]]) < int(sys.argv[2]):
        assert time.monotonic() < deadline, ray.nodes()
        time.sleep(0.2)

    @ray.remote(num_cpus=1, scheduling_strategy="SPREAD")
    def where(seconds):
        time.sleep(seconds)
        return ray.get_runtime_context().get_node_id()

    ran_on = ray.get([where.remote(0.5) for _ in range(4)])
    print(json.dumps({"nodes": [n["NodeID"] for n in ray.nodes() if n["Alive"]],
                      "ran_on": ran_on}))
    """
)


def _ray_client(cluster, nodes: int, env: dict | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess:
    """Run _RAY_CLIENT in a fresh interpreter (the pytest process never calls ray.init)."""
    full_env = {k: v for k, v in os.environ.items()
                if k not in {"RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN"}}
    full_env.update(cluster.env if env is None else env)
    return subprocess.run([sys.executable, "-c", _RAY_CLIENT, cluster.address, str(nodes)],
                          capture_output=True, text=True, timeout=timeout, env=full_env)


class TestRayCluster:
    def test_two_nodes_run_tasks_and_stop_cleanly(self, make_ray_cluster):
        """A head and a worker node (1 CPU each) form one cluster: tasks land on both; stop()
        leaves no process of the cluster behind and closes its port."""
        cluster = make_ray_cluster(num_cpus=1, worker_cpus=1)
        result = _ray_client(cluster, nodes=2)
        assert result.returncode == 0, result.stderr[-3000:]
        report = json.loads(result.stdout.strip().splitlines()[-1])
        assert len(report["nodes"]) == 2
        assert set(report["ran_on"]) == set(report["nodes"])

        cluster.stop()
        assert cluster.leftover_processes() == []
        assert not _port_open(cluster.port)

    def test_token_is_required(self, make_ray_cluster, native_env, tmp_path):
        """Token auth (compose keeps it on): the compose healthcheck command passes with the
        cluster's token and fails without it or with a wrong one.

        HOME is an empty folder for every call: with no token in the environment Ray falls back
        to ~/.ray/auth_token, so a developer's own token file would otherwise decide the result
        (with one, an empty RAY_AUTH_TOKEN is a wrong token; without, Ray refuses to connect)."""
        cluster = make_ray_cluster(num_cpus=1)
        check = ["ray", "health-check", "--address", cluster.address]

        def health(**env):
            return subprocess.run(check, env=native_env({**env, "HOME": str(tmp_path)}),
                                  capture_output=True, text=True, timeout=60)

        assert health(**cluster.env).returncode == 0
        for env, refusal in (({**cluster.env, "RAY_AUTH_TOKEN": "0" * 64}, "AuthenticationError"),
                             ({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": ""},
                              "couldn't find an authentication token")):
            refused = health(**env)
            assert refused.returncode != 0
            assert refusal in refused.stdout + refused.stderr

    def test_stop_spares_other_ray_clusters(self, make_ray_cluster):
        """Stopping one cluster leaves another one on the same machine running."""
        first = make_ray_cluster(num_cpus=1)
        second = make_ray_cluster(num_cpus=1)
        first.stop()
        assert first.leftover_processes() == []
        assert second.leftover_processes(), "the second cluster was stopped too"
        assert _port_open(second.port)
