"""Fixtures of the deploy tests only: a real PostgreSQL server and the docker-compose.yml bridge
(tests/harnesses/postgres.py and compose.py hold the code)."""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
from collections.abc import Callable

import pytest

from harnesses.compose import (ComposeVariableError, compose_command, compose_environment, compose_strings,
                               compose_variables, interpolate, load_compose)
from harnesses.postgres import PostgresServer, _postgres_bindir
from harnesses.processes import COMPOSE_FILE, _short_tmpdir, free_port


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


@pytest.fixture(name="compose_command")
def _compose_command_fixture() -> Callable[..., list[str]]:
    """``compose_command(service, *, replace=None, **overrides) -> list[str]``."""
    return compose_command


@pytest.fixture(name="compose_environment")
def _compose_environment_fixture() -> Callable[..., dict[str, str]]:
    """``compose_environment(service, **overrides) -> dict[str, str]``."""
    return compose_environment


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
