"""Misspelt structural keys of a service file (issue 10, item 5): refused with the right word,
never a cascade of wrong errors nor a service that silently lacks its endpoints or its class."""
from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from dripline.assembly.validation import check_service_config
from dripline.protocol.errors import ConfigError


def check(text: str) -> list:
    return check_service_config(yaml.safe_load(text), "svc.yaml")


def refused(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        check(text)
    return info.value.message


@pytest.mark.parametrize("typo", ["modul", "Module", "moduel", "modlue"])
def test_a_misspelt_endpoint_module_is_named_alone(typo):
    message = refused(f"""
        name: s
        endpoints:
          - name: peaches
            {typo}: KeyValueStore
            initial_value: 0.75
    """)
    assert message == (f"svc.yaml: endpoint 'peaches': unknown keyword {typo!r}; did you mean "
                       "'module'? (without `module:` it would be built as a plain Endpoint)")


def test_a_misspelt_service_module_is_an_error_not_a_warning():
    message = refused("""
        name: s
        modul: EthernetSCPIService
        socket_info: "('127.0.0.1', 5025)"
    """)
    assert "service 's': unknown keyword 'modul'; did you mean 'module'?" in message
    assert "socket_info" not in message  # no second, wrong complaint about a valid key


def test_a_missing_endpoint_module_names_the_keyword_and_the_class():
    message = refused("""
        name: s
        endpoints:
          - name: peaches
            initial_value: 0.75
            calibration: '2*{}'
    """)
    assert message.startswith("svc.yaml: endpoint 'peaches': no `module:` is given, so it would be "
                              "a plain Endpoint, which takes no keyword 'initial_value'; did you "
                              "mean `module: KeyValueStore`")  # the most general class first;
    assert message.endswith("(it takes 'initial_value' and 'calibration')")  # plugins may follow


def test_a_missing_service_module_names_the_keyword_and_the_class():
    message = refused("""
        name: s
        socket_info: "('127.0.0.1', 5025)"
    """)
    assert "which takes no keyword 'socket_info'" in message
    assert "did you mean `module: EthernetSCPIService`" in message  # installed plugins may follow


@pytest.mark.parametrize("key", ["endpoint", "Endpoints", "endpionts"])
def test_endpoints_under_a_misspelt_key_are_refused(key):
    message = refused(f"""
        name: s
        {key}:
          - name: peaches
            module: KeyValueStore
    """)
    assert f"unknown keyword {key!r}; did you mean 'endpoints'?" in message
    assert "no endpoints" in message


def test_an_endpoint_list_beside_the_real_one_is_refused():
    message = refused("""
        name: s
        endpoints:
          - name: a
            module: KeyValueStore
        more_endpoints:
          - name: b
            module: KeyValueStore
    """)
    assert "keyword 'more_endpoints' holds a list of endpoint mappings" in message


def test_a_misspelt_endpoint_name_is_suggested():
    message = refused("""
        name: s
        endpoints:
          - nmae: peaches
            module: KeyValueStore
    """)
    assert message == "svc.yaml: endpoints[0] has no 'name'; did you mean 'name' for 'nmae'?"


def test_other_unknown_service_keywords_stay_warnings():
    problems = check("""
        name: s
        auths_file: /root/auths.json
        endpoints:
          - name: peaches
            module: KeyValueStore
    """)
    assert [(p.key, p.fatal, p.suggestions) for p in problems] == [("auths_file", False, ["auth_file"])]


def test_a_valid_file_has_no_problems():
    assert check("""
        name: s
        module: Service
        endpoints:
          - name: peaches
            module: KeyValueStore
            calibration: '2*{}'
    """) == []


def test_an_unknown_key_given_on_the_command_line_is_an_error(tmp_path):
    (tmp_path / "s.yaml").write_text("name: s\nauths_file: x\nendpoints: []\n")
    run = [sys.executable, "-m", "dripline.cli.serve", "--check", "-c", "s.yaml"]
    r = subprocess.run(run + ["heartbeat_intervl_s=5"], capture_output=True, text=True, timeout=60,
                       cwd=tmp_path)
    assert r.returncode == 2
    assert ("dl-serve: command line: service 's': unknown keyword 'heartbeat_intervl_s'; did you "
            "mean 'heartbeat_interval_s'?") in r.stderr
    r = subprocess.run(run + ["heartbeat_interval_s=5"], capture_output=True, text=True, timeout=60,
                       cwd=tmp_path)
    assert r.returncode == 0, r.stderr  # the file's own unknown key stays a warning
    assert "unknown keyword 'auths_file'" in r.stderr
