"""Plugins installed with pip into throwaway virtual environments, then used through dl-serve and
dl-agent run from those environments.

Two environments cover both install modes of both packages:

* ``regular``: dripline installed editable from this source tree (as the README's test command
  installs it) + the jitter example plugin installed normally;
* ``editable``: dripline installed normally into the venv (from a copy of this source tree) + the
  jitter plugin installed with ``pip install -e`` (a setuptools import hook, not a folder).

The venvs are isolated (no system site-packages): they see what is installed into them and
nothing else, so they work the same when the tests run from a fresh virtual environment (whose
base interpreter has neither pika nor dripline) and from CI's system interpreter, and plugins
installed where the tests run cannot confuse them. dripline's dependencies are installed into each
with pip, pinned to the versions of the interpreter running the tests (so pip takes them from its
cache). Nothing is installed into the environment running the tests. The venvs are built once per
module; every subprocess has a timeout.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import metadata

import pytest

from dripline.testing import unique_name

from .test_plugins import Served

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
JITTER = os.path.join(ROOT, "examples", "jitter-plugin")
PIP_TIMEOUT = 600


def run(cmd: list[str], timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


# what the throwaway environments need besides dripline: its own tests' tools (a generated plugin's
# tests run there); dripline's dependencies come with it
TEST_TOOLS = ("pytest", "pytest-asyncio")


def make_venv(path) -> str:
    """An isolated venv of the interpreter running the tests (no --system-site-packages)."""
    r = run([sys.executable, "-m", "venv", str(path)], timeout=120)
    assert r.returncode == 0, r.stderr
    return str(path / "bin" / "python")


def pip_install(python: str, *args: str, deps: bool = False) -> None:
    cmd = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    r = run(cmd + ([] if deps else ["--no-deps"]) + list(args), timeout=PIP_TIMEOUT)
    assert r.returncode == 0, f"pip install {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}"


def pinned_versions(path) -> str:
    """A pip constraints file: the versions of dripline's dependencies and the test tools that
    the interpreter running the tests has (those it lacks are left to pip)."""
    requires = metadata.requires("dripline") or []
    names = {r.split(";")[0].split("[")[0].split("<")[0].split(">")[0].split("=")[0].strip()
             for r in requires if "extra ==" not in r}
    lines = []
    for name in sorted(names | set(TEST_TOOLS)):
        try:
            lines.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def install_dripline(python: str, source: str, base, editable: bool) -> None:
    """dripline from `source` with its dependencies, and the test tools, into the venv."""
    pins = pinned_versions(base / "constraints.txt")
    pip_install(python, "-c", pins, *(["-e"] if editable else []), source, *TEST_TOOLS, deps=True)


def copy_jitter(dest) -> str:
    """A copy of the example (pip builds in the source tree; the repository stays clean)."""
    shutil.copytree(JITTER, dest, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    return str(dest)


@pytest.fixture(scope="module")
def regular(tmp_path_factory):
    base = tmp_path_factory.mktemp("regular")
    python = make_venv(base / "venv")
    install_dripline(python, ROOT, base, editable=True)
    pip_install(python, copy_jitter(base / "jitter-plugin"))
    return {"python": python, "serve": [python, "-m", "dripline.cli.serve"],
            "agent": [python, "-m", "dripline.cli.agent"], "plugin": [python, "-m", "dripline.cli.plugin"],
            "base": base}


@pytest.fixture(scope="module")
def editable(tmp_path_factory):
    base = tmp_path_factory.mktemp("editable")
    python = make_venv(base / "venv")
    src = base / "dripline-src"
    shutil.copytree(os.path.join(ROOT, "src"), src / "src",
                    ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(os.path.join(ROOT, name), src / name)
    install_dripline(python, str(src), base, editable=False)
    plugin = copy_jitter(base / "jitter-plugin")
    pip_install(python, "-e", plugin)
    bin_dir = os.path.dirname(python)
    return {"python": python, "serve": [os.path.join(bin_dir, "dl-serve")],
            "agent": [os.path.join(bin_dir, "dl-agent")], "plugin": [os.path.join(bin_dir, "dl-plugin")],
            "base": base, "plugin_src": plugin}


def agent(env, *args: str) -> subprocess.CompletedProcess:
    r = run(env["agent"] + list(args))
    assert r.returncode == 0, f"dl-agent {' '.join(args)}: {r.stdout}\n{r.stderr}"
    return r


def payload(r: subprocess.CompletedProcess):
    return json.loads("\n".join(r.stdout.splitlines()[2:]))


def serve_jitter(env, tmp_path) -> tuple[Served, str]:
    """The example YAML, unmodified, with unique names given on the command line.

    The broadcast key is private too: a client on the same broker that finds services by a
    broadcast request and then reads their endpoints (a mesh watcher) would draw numbers from the
    endpoint's random generator between the test's own gets (seen while other tests ran)."""
    svc, ep = unique_name("my_store"), unique_name("peaches")
    yml = os.path.join(JITTER, "jitter_example.yml")
    served = Served(["-c", yml, f"name={svc}", f"endpoints.0.name={ep}", "heartbeat_interval_s=0",
                     f"broadcast_key={unique_name('broadcast')}"],
                    log=str(tmp_path / "serve.log"), exe=env["serve"][0] if len(env["serve"]) == 1 else None,
                    python=env["serve"][0] if len(env["serve"]) > 1 else None)
    return served, ep


def readings(env, ep: str, n: int = 3) -> list[float]:
    return [payload(agent(env, "get", ep))["value_raw"] for _ in range(n)]


def test_regular_install_serves_jitter_and_seeds_reproducibly(regular, tmp_path):
    r = run(regular["serve"] + ["--list"])
    row = next(line.split() for line in r.stdout.splitlines() if line.strip().startswith("JitterEntity"))
    assert row == ["JitterEntity", "Endpoint", "jitter", "(dripline.extensions)", "jitter_plugin", "1.0.0"]
    served, ep = serve_jitter(regular, tmp_path)
    try:
        first = payload(agent(regular, "get", ep))
        assert 0.75 <= first["value_raw"] <= 0.75 * 1.1 and first["value_cal"] == pytest.approx(2 * first["value_raw"])
        assert agent(regular, "cmd", ep, "-s", "update_seed", "42").stdout.strip().splitlines()[-1] == "42"
        after_42 = readings(regular, ep)
        agent(regular, "set", ep, "-s", "seed", "7")
        assert payload(agent(regular, "get", ep, "-s", "seed")) == {"values": [7]}
        after_7 = readings(regular, ep)
        agent(regular, "set", ep, "-s", "seed", "7")
        assert readings(regular, ep) == after_7  # same seed, same sequence
        agent(regular, "cmd", ep, "-s", "update_seed", "42")
        assert readings(regular, ep) == after_42
        assert after_7 != after_42
        reply = json.loads(agent(regular, "get", ep, "--json-print").stdout)
        assert reply["sender_info"]["versions"]["dripline.extensions.jitter"] == {
            "version": "1.0.0", "package": "dripline-python/examples/jitter-plugin", "commit": "na"}
    finally:
        served.stop()


def test_editable_plugin_with_regular_dripline(editable, tmp_path):
    r = run([editable["python"], "-c", "import dripline, dripline.extensions.jitter as j; "
             "print(dripline.__file__); print(j.__file__)"])
    assert r.returncode == 0, r.stderr
    dripline_file, jitter_file = r.stdout.split()
    assert dripline_file.startswith(str(editable["base"] / "venv"))        # regular install
    assert jitter_file.startswith(editable["plugin_src"])                   # editable install
    r = run(editable["plugin"] + ["list"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "jitter: namespace plugin, dripline.extensions.jitter, distribution jitter_plugin 1.0.0, ok" in r.stdout
    served, ep = serve_jitter(editable, tmp_path)
    try:
        agent(editable, "set", ep, "-s", "seed", "7")
        first = readings(editable, ep, 2)
        agent(editable, "cmd", ep, "-s", "update_seed", "7")
        assert readings(editable, ep, 2) == first
        # an edit of the plugin's source is picked up by the next dl-serve (no reinstall)
    finally:
        served.stop()


@pytest.mark.parametrize("base, name, cls, kind, passed", [
    ("Entity", "thermo-sensor", "ThermoSensorEntity", "Endpoint", 3),
    ("KeyValueStore", "setpoint-store", "SetpointStoreEntity", "Endpoint", 2),
    ("Service", "cryo-plant", "CryoPlantService", "Service", 1),
    ("EthernetSCPIService", "lakeShore336", "LakeShore336Service", "Service", 1),
])
def test_generated_plugin_installs_and_its_own_test_passes(regular, base, name, cls, kind, passed):
    """Each base: the class is named after the plugin, installs, is listed, its example checks,
    and its generated tests pass with deprecation warnings as errors."""
    package = name.replace("-", "_").lower()
    target = regular["base"] / name
    r = run(regular["plugin"] + ["new", name, "--base", base, "--dir", str(target)])
    assert r.returncode == 0, r.stderr
    assert f"(class {cls}, from {base})" in r.stdout
    pip_install(regular["python"], "-e", str(target))
    r = run(regular["plugin"] + ["list"])
    row = next(line.split() for line in r.stdout.splitlines() if line.strip().startswith(cls + " "))
    assert row == [cls, kind, package, name, "0.1.0"]
    r = run(regular["serve"] + ["--check", "-c", str(target / "example.yaml")])
    assert r.returncode == 0, r.stderr
    r = run([regular["python"], "-m", "pytest", "-q", "-p", "no:cacheprovider",
             "-W", "error::DeprecationWarning"], cwd=str(target), timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{passed} passed" in r.stdout and "warning" not in r.stdout
