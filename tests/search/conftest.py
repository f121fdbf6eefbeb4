"""Fixtures of the search tests: one local Ray runtime for the whole session (starting Ray
costs seconds on 2 cores), a fresh MLflow SQLite store per test, and a factory of settings."""

import os

import pytest

from jointsearch.search import SearchSettings


@pytest.fixture(scope="session")
def ray_runtime():
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private, loopback-only test runtime
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture
def sqlite_uri(tmp_path):
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def make_settings(tmp_path, sqlite_uri):
    def make(**overrides):
        values = dict(space="tiny", dataset="digits", min_budget=1, max_budget=9, eta=3, num_samples=9,
                      mlflow_uri=sqlite_uri, experiment="test", storage_path=str(tmp_path / "ray_results"),
                      trainer="jointsearch.search.testing:fake_trainer", seed=1)
        values.update(overrides)
        return SearchSettings(**values)

    return make
