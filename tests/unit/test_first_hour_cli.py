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
