"""What a newcomer meets at the terminal (issue 10), checked without a broker."""
from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


def cli(tool: str, *args: str, cwd: pathlib.Path | str | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"dripline.cli.{tool}", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd)


# ---------------------------------------------------------------------------------------------
# dl-serve positional arguments: a lone existing YAML/JSON file is the configuration file; any
# other word that is not key=value is refused, never ignored

def test_serve_takes_a_lone_yaml_file_as_the_configuration():
    r = cli("serve", "--check", "my_store.yaml", cwd=EXAMPLES)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "dl-serve: my_store.yaml is valid: service 'my_store' with 3 endpoint(s)"
    assert r.stderr == ""  # nothing extra printed


def test_serve_file_word_and_overrides_mix(tmp_path):
    (tmp_path / "svc.json").write_text('{"name": "s", "endpoints": []}')
    r = cli("serve", "--check", "name=other", "svc.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "service 'other' with 0 endpoint(s)" in r.stdout


@pytest.mark.parametrize("args, expected", [
    (["peaches"], "unexpected argument 'peaches'"),
    (["my_stor.yaml"], "unexpected argument 'my_stor.yaml': no such file"),
    (["-c", "my_store.yaml", "key_value_store.yaml"], "the configuration file is already given"),
    (["my_store.yaml", "key_value_store.yaml"], "unexpected argument 'my_store.yaml'"),
    (["README"], "unexpected argument 'README'"),
])
def test_serve_refuses_a_word_it_cannot_use(args, expected, tmp_path):
    r = cli("serve", "--check", *args, cwd=EXAMPLES)
    assert r.returncode == 2
    assert r.stdout == ""
    assert expected in r.stderr
    assert "-c FILE" in r.stderr or "(-c my_store.yaml)" in r.stderr
    assert "valid" not in r.stderr


def test_serve_does_not_take_a_non_config_file(tmp_path):
    (tmp_path / "notes.txt").write_text("name: x\n")
    r = cli("serve", "--check", "notes.txt", cwd=tmp_path)
    assert r.returncode == 2 and "unexpected argument 'notes.txt'" in r.stderr


# ---------------------------------------------------------------------------------------------
# dl-plugin new: the class is named after the plugin, from the chosen base

@pytest.mark.parametrize("name, base, expected", [
    ("thermo-sensor", "Entity", "ThermoSensorEntity"),
    ("lakeShore336", "Entity", "LakeShore336Entity"),       # the user's capitals are kept
    ("SR830", "KeyValueStore", "SR830Entity"),
    ("cryo_plant", "Service", "CryoPlantService"),
    ("lakeShore336", "EthernetSCPIService", "LakeShore336Service"),
    ("level-entity", "Entity", "LevelEntity"),               # no "EntityEntity"
])
def test_plugin_class_is_named_after_the_plugin(name, base, expected):
    from dripline.cli.plugin import class_name
    assert class_name(name, base) == expected


def test_plugin_class_name_can_be_chosen_but_not_a_builtin_one():
    from dripline.cli.plugin import class_name
    assert class_name("thermo", "Entity", "Thermometer") == "Thermometer"
    with pytest.raises(ValueError, match="dripline already has"):
        class_name("key-value-store", "Entity", "KeyValueStore")
    with pytest.raises(ValueError, match="not a Python identifier"):
        class_name("thermo", "Entity", "2fast")


@pytest.mark.parametrize("base, module, parent", [
    ("Entity", "entities", "(Entity)"),
    ("KeyValueStore", "entities", "(KeyValueStore)"),
    ("Service", "service", "(Service)"),
    ("EthernetSCPIService", "service", "(EthernetSCPIService)"),
])
def test_plugin_new_writes_the_chosen_base(tmp_path, base, module, parent):
    r = cli("plugin", "new", "cryo-plant", "--base", base, "--dir", str(tmp_path / "p"))
    assert r.returncode == 0, r.stderr
    cls = "CryoPlant" + ("Service" if "Service" in base else "Entity")
    assert f"(class {cls}, from {base})" in r.stdout
    code = (tmp_path / "p" / "src" / "cryo_plant" / f"{module}.py").read_text()
    assert f"class {cls}{parent}:" in code
    compile(code, module, "exec")
    compile((tmp_path / "p" / "tests" / "test_cryo_plant.py").read_text(), "test", "exec")
    assert f'{cls} = "cryo_plant.{module}:{cls}"' in (tmp_path / "p" / "pyproject.toml").read_text()
    assert f"module: {cls}" in (tmp_path / "p" / "example.yaml").read_text()


def test_plugin_new_refuses_an_unknown_base(tmp_path):
    r = cli("plugin", "new", "cryo", "--base", "Thing", "--dir", str(tmp_path / "p"))
    assert r.returncode == 2 and "invalid choice: 'Thing'" in r.stderr
    assert not (tmp_path / "p").exists()


# ---------------------------------------------------------------------------------------------
# a missing optional dependency is named, with the extra that installs it

def serve_without(module: str, *args: str) -> subprocess.CompletedProcess:
    """dl-serve in a process where `module` cannot be imported (as if it were not installed)."""
    code = (f"import sys; sys.modules[{module!r}] = None\n"
            "from dripline.cli.serve import main\n"
            f"main({list(args)!r})")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=EXAMPLES / "first-mesh")


def test_a_class_whose_dependency_is_missing_names_the_extra():
    r = serve_without("sqlalchemy", "--check", "-c", "sensor-logger-sqlite.yaml")
    assert r.returncode == 2
    assert ("module 'PostgresSensorLogger': it needs the Python package 'sqlalchemy', which is not "
            "installed") in r.stderr
    assert "pip install 'dripline[sql]'" in r.stderr
    assert "did you mean" not in r.stderr and "unknown module" not in r.stderr


def test_a_postgresql_url_without_its_driver_names_the_extra():
    r = serve_without("psycopg", "--check", "-c", "sensor-logger.yaml")
    assert r.returncode == 2
    assert "it needs the Python package 'psycopg'" in r.stderr
    assert "pip install 'dripline[sql]'" in r.stderr
    assert "ModuleNotFoundError" not in r.stderr


def test_the_sqlite_sensor_logger_needs_no_postgresql_driver():
    r = serve_without("psycopg", "--check", "-c", "sensor-logger-sqlite.yaml")
    assert r.returncode == 0, r.stderr
    assert "is valid: service 'sensor_data_logger'" in r.stdout


def test_the_default_install_includes_sqlalchemy():
    from importlib import metadata
    base = [r for r in metadata.requires("dripline") or [] if "extra ==" not in r]
    assert any(r.lower().startswith("sqlalchemy") for r in base)


# ---------------------------------------------------------------------------------------------
# output into a pipe whose reader has gone (`... | head`) is no error

@pytest.mark.parametrize("tool, args", [
    ("serve", ["--list"]),
    ("plugin", ["list"]),
    ("agent", ["set", "x", "5", "--dry-run-msg", "--pretty-print"]),
])
def test_a_closed_pipe_is_no_error(tool, args):
    import os
    read, write = os.pipe()
    os.close(read)  # the reader is gone before anything is written
    try:
        r = subprocess.run([sys.executable, "-m", f"dripline.cli.{tool}", *args], stdout=write,
                           stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write)
    assert "BrokenPipeError" not in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 0
