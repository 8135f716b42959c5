"""Each component builds from its build context as Docker sends it (.dockerignore applied):
`pip install --no-deps /app` in the Dockerfile makes a wheel of exactly these files."""
from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest

from deploy_files import COMPONENTS, docker_context_copy

# Files each image cannot run without (its entry points and data files).
REQUIRED_IN_WHEEL = {
    "web-server": ["dss_server/__init__.py", "dss_server/__main__.py", "dss_server/wsgi.py",
                   "dss_server/config.py", "dss_server/migrations/env.py"],
    "dispatcher": ["dss_dispatcher/__main__.py", "dss_dispatcher/config.py", "dss_client/__init__.py"],
    "inference-server": ["dss_inference/__init__.py", "dss_inference/config.py"],
}
# The distribution names users install by; the client's carries the `dss` command.
DISTRIBUTION = {"web-server": "dss_server", "dispatcher": "dss_client", "inference-server": "dss_inference"}


@pytest.mark.parametrize("name", COMPONENTS)
def test_package_builds_from_the_docker_context(name, tmp_path):
    pytest.importorskip("setuptools", reason="setuptools builds the wheel offline here")
    source = docker_context_copy(name, tmp_path / "context")
    assert not list(source.rglob("__pycache__")) and not list(source.glob("*.egg-info"))
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                             "--no-index", "-q", "-w", str(tmp_path / "wheels"), str(source)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = (tmp_path / "wheels").glob("*.whl")
    assert wheel.name.startswith(DISTRIBUTION[name] + "-")
    members = set(zipfile.ZipFile(wheel).namelist())
    for required in REQUIRED_IN_WHEEL[name]:
        if not (source / required).exists():
            pytest.skip(f"{name}/{required} not written yet")
        assert required in members, f"{required} is not in the image's installed package"
    # `pip install ./<component>` outside the images installs what requirements.txt pins
    assert _requires_dist(wheel) == _pins(source / "requirements.txt")
    if name == "dispatcher":
        assert "dss = dss_client.cli:main" in _dist_info(wheel, "entry_points.txt")


def _dist_info(wheel, filename: str) -> str:
    with zipfile.ZipFile(wheel) as archive:
        (member,) = (n for n in archive.namelist() if n.endswith(".dist-info/" + filename))
        return archive.read(member).decode()


def _requires_dist(wheel) -> list[str]:
    lines = _dist_info(wheel, "METADATA").splitlines()
    return [line.removeprefix("Requires-Dist: ") for line in lines
            if line.startswith("Requires-Dist: ")]


def _pins(requirements) -> list[str]:
    lines = (line.split("#")[0].strip() for line in requirements.read_text().splitlines())
    return [line for line in lines if line]
