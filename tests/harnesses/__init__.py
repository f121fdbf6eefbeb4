"""The test harnesses: real servers and clusters started and stopped by the tests (see tests/conftest.py
and tests/deploy/conftest.py for the fixtures that use them)."""
