"""Fixtures of the search tests: a factory of settings on a fresh MLflow SQLite store per test
(``sqlite_uri``, tests/conftest.py).
The session's local Ray runtime, ``ray_runtime``, lives in tests/conftest.py (shared with
tests/dashboards/test_browser.py)."""

import pytest

from jointsearch.search import SearchSettings


@pytest.fixture
def make_settings(tmp_path, sqlite_uri):
    def make(**overrides):
        values = dict(space="tiny", dataset="digits", min_budget=1, max_budget=9, eta=3, num_samples=9,
                      mlflow_uri=sqlite_uri, experiment="test", storage_path=str(tmp_path / "ray_results"),
                      trainer="jointsearch.search.testing:fake_trainer", seed=1)
        values.update(overrides)
        return SearchSettings(**values)

    return make
