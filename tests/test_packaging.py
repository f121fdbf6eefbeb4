"""A regular (non-editable) install must carry the four code folders under `jointsearch`."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_installs_the_four_folders_under_one_namespace(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path), str(ROOT)], check=True, timeout=300)
    wheel = next(tmp_path.glob("jointsearch-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for package in ("search", "spaces", "trainers", "dashboards"):
        assert f"jointsearch/{package}/__init__.py" in names
    assert not any(n.startswith(("spaces/", "search/", "tests/")) for n in names)  # no bare top-level names
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, timeout=300)
    # Import from the installed copy, from a directory where the source folders are not visible.
    proc = subprocess.run([sys.executable, "-c", "import jointsearch.spaces as s, jointsearch.search.cli as c; "
                           "print(s.__file__); print(sorted(s.list()))"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(target)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].startswith(str(target))
    assert "zela2018" in proc.stdout
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "jointsearch = jointsearch.search.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
