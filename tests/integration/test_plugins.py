"""Plugins as a user meets them: dl-serve / dl-agent / dl-plugin subprocesses against the real
broker, with plugins written to a temporary folder put on PYTHONPATH (no pip install: the
pip-installed cases are in test_plugins_install.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from dripline.testing import unique_name

ENTITY = """
from dripline.implementations import KeyValueStore
__all__ = ["{cls}"]
class {cls}(KeyValueStore):
    def on_get(self):
        return {{"from": "{tag}", "value": self._value}}
"""


def write(root, rel: str, text: str) -> None:
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(textwrap.dedent(text))


def namespace_plugin(root, name: str, init: str) -> None:
    write(root, "dripline/extensions/__init__.py",
          "__path__ = __import__('pkgutil').extend_path(__path__, __name__)\n")
    write(root, f"dripline/extensions/{name}/__init__.py", init)


def entry_point_dist(root, dist: str, version: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    info = f"{dist.replace('-', '_')}-{version}.dist-info"
    write(root, f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    write(root, f"{info}/entry_points.txt",
          "[dripline.extensions]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))
    for module, text in modules.items():
        write(root, module + ".py", text)


def env_with(site) -> dict:
    return dict(os.environ, PYTHONPATH=str(site))


def dl(tool: str, *args: str, env=None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"dripline.cli.{tool}", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


class Served:
    """dl-serve in the background until the test ends."""

    def __init__(self, args: list[str], env=None, log=None, python=None, exe=None):
        self.log = log
        cmd = [exe] if exe else [python or sys.executable, "-m", "dripline.cli.serve"]
        self.proc = subprocess.Popen(cmd + args, stdout=subprocess.DEVNULL,
                                     stderr=open(log, "w"), env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if "listening on" in self.text():
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"dl-serve exited with {self.proc.returncode}:\n{self.text()}")
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"dl-serve did not start within 30 s:\n{self.text()}")

    def text(self) -> str:
        with open(self.log) as f:
            return f.read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def serve(tmp_path):
    started: list[Served] = []

    def start(args, **kw):
        s = Served(args, log=str(tmp_path / f"serve{len(started)}.log"), **kw)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def test_dl_serve_list_prints_every_buildable_class():
    r = dl("serve", "--list")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("Classes dl-serve can build")
    assert lines[1].split() == ["MODULE", "KIND", "FROM", "PACKAGE", "VERSION"]
    rows = {line.split()[0]: line.split() for line in lines[2:] if line.startswith("  ") and len(line.split()) == 5}
    import dripline
    assert rows["KeyValueStore"] == ["KeyValueStore", "Endpoint", "dripline.implementations", "dripline",
                                     dripline.__version__]
    assert rows["Service"][1] == "Service"
    r2 = dl("plugin", "list", "--json")
    data = json.loads(r2.stdout)
    assert {"name": "KeyValueStore", "kind": "Endpoint"}.items() <= \
        next(c for c in data["classes"] if c["name"] == "KeyValueStore").items()


def test_broken_plugin_is_reported_and_does_not_break_serve_or_agent(tmp_path, serve):
    site = tmp_path / "site"
    namespace_plugin(site, "exploding", "raise ImportError('libfoo.so: cannot open shared object file')\n")
    env = env_with(site)
    r = dl("plugin", "list", env=env)
    assert r.returncode == 1
    assert "[broken plugin] plugin 'exploding'" in r.stdout and "libfoo.so" in r.stdout
    assert "fix:" in r.stdout
    svc, ep = unique_name("svc"), unique_name("kv")
    cfg = tmp_path / "kv.yaml"
    cfg.write_text(f"name: {svc}\nheartbeat_interval_s: 0\nendpoints:\n  - name: {ep}\n"
                   f"    module: KeyValueStore\n    initial_value: 4\n")
    served = serve(["-c", str(cfg)], env=env)
    assert "exploding" in served.text() and "libfoo.so" in served.text()  # reported by dl-serve
    r = dl("agent", "get", ep, env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads("\n".join(r.stdout.splitlines()[2:])) == {"value_raw": 4}
    # dl-agent never looks for plugins (building a message discovers nothing), so a broken one
    # cannot disturb it and is not reported there
    assert "exploding" not in r.stderr


def test_two_plugins_with_one_class_name_are_reported_not_settled(tmp_path):
    site = tmp_path / "site"
    namespace_plugin(site, "alpha", ENTITY.format(cls="Twin", tag="alpha"))
    entry_point_dist(site, "beta-plugin", "0.2.0", {"Twin": "beta_twin:Twin"},
                     {"beta_twin": ENTITY.format(cls="Twin", tag="beta")})
    env = env_with(site)
    r = dl("serve", "--list", env=env)
    assert "[ambiguous name] module 'Twin' is ambiguous" in r.stdout
    assert "plugin 'alpha'" in r.stdout and "plugin 'beta_plugin'" in r.stdout
    cfg = tmp_path / "twin.yaml"
    cfg.write_text("name: twins\nendpoints:\n  - name: t1\n    module: Twin\n")
    r = dl("serve", "--check", "-c", str(cfg), env=env)
    assert r.returncode == 2
    assert "ambiguous" in r.stderr and "`module: alpha.Twin`" in r.stderr and "`module: beta_plugin.Twin`" in r.stderr
    cfg.write_text("name: twins\nendpoints:\n  - name: t1\n    module: beta_plugin.Twin\n")
    r = dl("serve", "--check", "-c", str(cfg), env=env)
    assert r.returncode == 0, r.stderr


def test_entry_point_plugin_is_served_and_its_version_sent(tmp_path, serve):
    site = tmp_path / "site"
    entry_point_dist(site, "gamma-plugin", "3.1.4", {"GammaThing": "gamma_mod:GammaThing"},
                     {"gamma_mod": ENTITY.format(cls="GammaThing", tag="gamma")})
    env = env_with(site)
    r = dl("serve", "--list", env=env)
    row = next(line.split() for line in r.stdout.splitlines() if line.strip().startswith("GammaThing"))
    assert row == ["GammaThing", "Endpoint", "gamma_plugin", "gamma-plugin", "3.1.4"]
    svc, ep = unique_name("svc"), unique_name("gamma")
    cfg = tmp_path / "gamma.yaml"
    cfg.write_text(f"name: {svc}\nheartbeat_interval_s: 0\nendpoints:\n  - name: {ep}\n"
                   f"    module: GammaThing\n    initial_value: 1\n")
    serve(["-c", str(cfg)], env=env)
    r = dl("agent", "get", ep, "--json-print", env=env)
    assert r.returncode == 0, r.stderr
    reply = json.loads(r.stdout)
    assert reply["payload"] == {"from": "gamma", "value": 1}
    assert reply["sender_info"]["versions"]["dripline.extensions.gamma_plugin"]["version"] == "3.1.4"


def test_module_path_next_to_the_yaml_file(tmp_path, serve):
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "local_endpoints.py").write_text(textwrap.dedent(ENTITY.format(cls="Local", tag="local")))
    svc, ep = unique_name("svc"), unique_name("local")
    (conf / "svc.yaml").write_text(f"name: {svc}\nheartbeat_interval_s: 0\nendpoints:\n  - name: {ep}\n"
                                   f"    module: Local\n    module_path: local_endpoints.py\n    initial_value: 9\n")
    r = dl("serve", "--check", "-c", str(conf / "svc.yaml"))
    assert r.returncode == 0, r.stderr
    serve(["-c", str(conf / "svc.yaml")])
    r = dl("agent", "get", ep)
    assert r.returncode == 0, r.stderr
    assert json.loads("\n".join(r.stdout.splitlines()[2:])) == {"from": "local", "value": 9}


def test_plugin_auth_group_is_read_from_the_auth_file_and_environment(tmp_path, serve):
    site = tmp_path / "site"
    namespace_plugin(site, "creds", """
        from dripline.core import Service
        __all__ = ["CredService"]
        auth_groups = {"slack": {"token": {"default": "none", "env": "TEST_SLACK_TOKEN"}}}

        class CredService(Service):
            def token(self):
                return self.auth.get("slack", "token")
    """)
    auth = tmp_path / "auths.json"
    auth.write_text(json.dumps({"slack": {"token": "from-file"}}))
    svc = unique_name("creds")
    cfg = tmp_path / "creds.yaml"
    cfg.write_text(f"name: {svc}\nmodule: CredService\nheartbeat_interval_s: 0\n")
    env = env_with(site)
    env.pop("TEST_SLACK_TOKEN", None)
    serve(["-c", str(cfg), "--auth-file", str(auth)], env=env)
    r = dl("agent", "cmd", svc, "-s", "token", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == '"from-file"'
    svc2 = unique_name("creds")
    serve(["-c", str(cfg), f"name={svc2}"], env=dict(env, TEST_SLACK_TOKEN="from-env"))
    r = dl("agent", "cmd", svc2, "-s", "token", env=env)
    assert r.stdout.strip().splitlines()[-1] == '"from-env"'


def test_dl_plugin_versions_lists_plugin_versions(tmp_path):
    site = tmp_path / "site"
    namespace_plugin(site, "delta", "import scarab\nversion = scarab.VersionSemantic(0, 0, 7)\n")
    r = dl("plugin", "versions", env=env_with(site))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["dripline.extensions.delta"] == {"version": "0.0.7"}
