"""Details of the command-line tools that need no broker: logging levels, argument checks, usage
text, dl-mon's header, dl-plugin's name checks and errors, dl-sim-scpi's errors, auth-file items."""
from __future__ import annotations

import json
import logging
import socket

import pytest

from dripline.protocol.errors import ConfigError, DriplineError


@pytest.fixture
def restore_logging():
    root, pika = logging.getLogger(), logging.getLogger("pika")
    saved = root.handlers[:], root.level, pika.level
    yield
    root.handlers[:], root.level = saved[0], saved[1]
    pika.setLevel(saved[2])


# --- 1. pika is quiet unless -vv ---------------------------------------------------------------

@pytest.mark.parametrize("verbose, quiet, default, pika_level", [
    (0, 0, logging.WARNING, logging.CRITICAL),   # dl-agent, dl-mon
    (1, 0, logging.WARNING, logging.CRITICAL),
    (2, 0, logging.WARNING, logging.DEBUG),
    (3, 0, logging.WARNING, logging.DEBUG),
    (2, 1, logging.WARNING, logging.CRITICAL),   # -vv -q: INFO, not DEBUG
    (0, 0, logging.INFO, logging.CRITICAL),      # dl-serve
    (1, 0, logging.INFO, logging.CRITICAL),
    (2, 0, logging.INFO, logging.DEBUG),
    (0, 2, logging.WARNING, logging.CRITICAL),
])
def test_pika_logger_is_critical_unless_vv(restore_logging, verbose, quiet, default, pika_level):
    from dripline.cli.common import setup_logging
    setup_logging(verbose, quiet, default=default)
    assert logging.getLogger("pika").level == pika_level
    assert logging.getLogger("pika.adapters.utils.connection_workflow").getEffectiveLevel() == pika_level


def test_pika_errors_are_not_printed_at_default_verbosity(restore_logging, capsys):
    from dripline.cli.common import setup_logging
    setup_logging(0, 0)
    logging.getLogger("pika.adapters.base_connection").error("Full-stack connection workflow failed")
    logging.getLogger("dripline.client.session").warning("ours")
    err = capsys.readouterr().err
    assert "pika" not in err and "ours" in err


# --- 2. an invalid lockout key is a client error (400) ------------------------------------------

def test_build_request_rejects_a_non_uuid_lockout_key_with_400():
    from dripline.protocol.message import op_t
    from dripline.client.request_sender import build_request
    with pytest.raises(DriplineError) as info:
        build_request(op_t.get, "x", lockout_key="notauuid")
    assert info.value.return_code == 400
    assert info.value.message.startswith("Lockout key [notauuid] is not uuid format compliant "
                                         "(expected a UUID such as 0f1e")
    key = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    assert str(build_request(op_t.get, "x", lockout_key=key).lockout_key) == key


def test_agent_bad_lockout_key_exits_4_without_connecting(restore_logging, capsys):
    from dripline.cli import agent
    with pytest.raises(SystemExit) as info:  # port 1: a connection attempt would say so
        agent.main(["get", "x", "-k", "notauuid", "-p", "1", "--max-connection-attempts", "1"])
    assert info.value.code == 4
    err = capsys.readouterr().err
    assert err.splitlines() == ["dl-agent: Lockout key [notauuid] is not uuid format compliant "
                                "(expected a UUID such as 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0)"]


# --- 3. / 4. / 8. dl-agent's arguments and usage text -------------------------------------------

def _agent_error(capsys, *argv: str) -> str:
    from dripline.cli.agent import build_parser
    with pytest.raises(SystemExit) as info:
        build_parser().parse_intermixed_args(list(argv))
    assert info.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize("bad", ["-1", "-0.5", "nan"])
def test_agent_rejects_a_negative_timeout(capsys, bad):
    line = _agent_error(capsys, "get", "x", "-t", bad)
    assert line == "dl-agent: error: argument -t/--timeout: timeout must be >= 0 seconds; 0 waits forever"


def test_agent_timeout_zero_and_positive_are_accepted(capsys):
    from dripline.cli.agent import build_parser
    assert build_parser().parse_intermixed_args(["get", "x", "-t", "0"]).timeout == 0
    assert build_parser().parse_intermixed_args(["get", "x", "-t", "2.5"]).timeout == 2.5
    assert "invalid timeout 'soon'" in _agent_error(capsys, "get", "x", "-t", "soon")


def test_agent_missing_arguments_names_only_what_is_missing(capsys):
    assert _agent_error(capsys, "get").endswith("the following arguments are required: routing_key")
    assert _agent_error(capsys, "get", "-s", "x").endswith("required: routing_key")
    assert _agent_error(capsys).endswith("the following arguments are required: operation, routing_key")


def test_agent_values_stay_optional_and_intermixed():
    from dripline.cli.agent import build_parser
    parse = build_parser().parse_intermixed_args
    assert parse(["get", "x"]).words == []
    args = parse(["cmd", "pump", "-s", "start", "3", "-t", "1", "rate=fast", "-2"])
    assert args.words == ["3", "rate=fast", "-2"] and args.specifier == "start"


def test_agent_epilog_has_one_example_per_line(capsys):
    from dripline.cli.agent import build_parser
    with pytest.raises(SystemExit):
        build_parser().parse_args(["-h"])
    out = capsys.readouterr().out
    examples = out.split("examples:\n", 1)[1].splitlines()
    commands = [line.split("(")[0].strip() for line in examples if line.strip()]
    assert all(c.startswith("dl-agent ") and c.count("dl-agent") == 1 for c in commands)
    assert any(c.startswith("dl-agent get ") for c in commands)
    assert any(c.startswith("dl-agent set ") and " -k " not in c for c in commands)
    assert any(c.startswith("dl-agent cmd ") and "=" in c and " -s " in c for c in commands)
    assert any("-s lock" in c for c in commands)
    assert any("-s unlock -k " in c for c in commands)
    assert any("--json-print" in c for c in commands)
    # --values documents that its strings are appended after the positional values
    assert '[5, "6"]' in " ".join(out.split())


def test_agent_values_option_is_appended_after_positional_values(capsys):
    from dripline.cli import agent
    args = agent.build_parser().parse_intermixed_args(["set", "x", "5", "--values", "6", "--dry-run-msg",
                                                       "--json-print"])
    assert agent.run(args) == 3
    assert json.loads(capsys.readouterr().out)["payload"] == {"values": [5, "6"]}


# --- 5. dl-mon's header -------------------------------------------------------------------------

def test_mon_header_lists_only_the_kinds_given():
    from dripline.cli.mon import describe_keys
    assert describe_keys([], ["#"]) == "alerts '#'"
    assert describe_keys(["a.#", "b"], []) == "requests 'a.#', 'b'"
    assert describe_keys(["a.#"], ["sensor_value.#", "status.x"]) == \
        "requests 'a.#' and alerts 'sensor_value.#', 'status.x'"


# --- 6. dl-plugin -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["json", "os", "email", "logging", "asyncio", "yaml", "pika", "asteval",
                                  "orjson", "uvloop", "sqlalchemy", "SQLAlchemy", "psycopg", "pytest",
                                  "dripline", "scarab", "PyYAML", "Test"])
def test_new_plugin_refuses_names_that_shadow_modules(tmp_path, capsys, name):
    from dripline.cli.plugin import build_parser, run
    assert run(build_parser().parse_args(["new", name, "--dir", str(tmp_path / "p")])) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "choose another" in err
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("name", ["json-tools", "thermo-sensor", "yaml_sensor", "my_pika"])
def test_new_plugin_accepts_names_that_shadow_nothing(tmp_path, name):
    from dripline.cli.plugin import new_plugin
    assert new_plugin(name, str(tmp_path / "p"))


def test_new_plugin_reports_an_unwritable_folder_in_one_line(tmp_path, capsys):
    from dripline.cli.plugin import build_parser, run
    (tmp_path / "afile").write_text("")
    assert run(build_parser().parse_args(["new", "myplug", "--dir", str(tmp_path / "afile" / "sub")])) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert err.startswith("dl-plugin: cannot write the plugin to ") and str(tmp_path / "afile") in err


def test_new_plugin_next_steps_use_python_m(tmp_path, capsys, monkeypatch):
    from dripline.cli.plugin import build_parser, run
    monkeypatch.chdir(tmp_path)
    assert run(build_parser().parse_args(["new", "thermo-sensor"])) == 0
    out = capsys.readouterr().out
    assert "cd thermo-sensor && python -m pip install -e '.[test]' && python -m pytest" in out
    assert "dl-serve -c example.yaml" in out and "python -m dripline.cli.serve -c example.yaml" in out
    readme = (tmp_path / "thermo-sensor" / "README.md").read_text()
    assert "python -m pip install -e '.[test]'" in readme and "python -m pytest" in readme


def test_plugin_and_sim_have_a_version_option(capsys):
    from dripline import __version__
    from dripline.cli.plugin import build_parser as plugin_parser
    from dripline.implementations.sim.__main__ import build_parser as sim_parser
    for prog, parser in (("dl-plugin", plugin_parser()), ("dl-sim-scpi", sim_parser())):
        for flag in ("-V", "--version"):
            with pytest.raises(SystemExit) as info:
                parser.parse_args([flag])
            assert info.value.code == 0
            out = capsys.readouterr().out
            assert out.startswith(prog + " ") and __version__ in out


def test_sim_reports_a_taken_port_in_one_line(capsys):
    from dripline.implementations.sim.__main__ import main
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert f"port {port}" in err and "already in use" in err and "--port" in err


def test_sim_reports_other_listen_errors_in_one_line():
    import errno

    from dripline.implementations.sim.__main__ import listen_error
    assert "--port" in listen_error("127.0.0.1", 80, OSError(errno.EACCES, "Permission denied"))
    line = listen_error("10.1.2.3", 5025, OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address"))
    assert line == "cannot listen on 10.1.2.3:5025: Cannot assign requested address; check --host and --port"


# --- 7. misspelt items in the auth file ---------------------------------------------------------

SECRET = "v3ry-s3cret-value"


def _auth_file(tmp_path, content: dict):
    path = tmp_path / "auth.json"
    path.write_text(json.dumps(content))
    return path


@pytest.mark.parametrize("group, item, closest", [
    ("dripline", "pasword", "password"), ("dripline", "user", "username"),
    ("dripline", "Password", "password"), ("postgres", "usrname", "username"),
])
def test_misspelt_auth_item_is_an_error_naming_file_group_key_and_closest(tmp_path, group, item, closest):
    from dripline.assembly.config import build_authentication
    path = _auth_file(tmp_path, {group: {item: SECRET}})
    with pytest.raises(ConfigError) as info:
        build_authentication(auth_file=path, env={})
    text = str(info.value)
    assert str(path) in text and repr(group) in text and repr(item) in text and repr(closest) in text
    assert SECRET not in text


def test_misspelt_item_without_a_close_match_lists_the_valid_items(tmp_path):
    from dripline.assembly.config import build_authentication
    path = _auth_file(tmp_path, {"dripline": {"broker": SECRET}})
    with pytest.raises(ConfigError, match="valid items are password, username") as info:
        build_authentication(auth_file=path, env={})
    assert SECRET not in str(info.value)


def test_plugin_auth_group_items_come_from_its_spec(tmp_path):
    from dripline.assembly.config import build_authentication
    spec = {"influx": {"token": {"default": "", "env": "INFLUX_TOKEN"}, "org": "lab"}}
    ok = build_authentication(auth_file=_auth_file(tmp_path, {"influx": {"token": "t", "org": "o"}}),
                              extra_groups=spec, env={})
    assert ok.get("influx", "token") == "t"
    with pytest.raises(ConfigError, match=r"'tokn' in group 'influx'.*did you mean 'token'"):
        build_authentication(auth_file=_auth_file(tmp_path, {"influx": {"tokn": SECRET}}),
                             extra_groups=spec, env={})


def test_unknown_auth_groups_stay_allowed(tmp_path):
    from dripline.assembly.config import build_authentication
    auth = build_authentication(auth_file=_auth_file(tmp_path, {
        "dripline": {"username": "bob", "password": "pw"}, "slack": {"tokn": "x", "anything": 1}}), env={})
    assert auth.get("dripline", "username") == "bob" and auth.get("slack", "tokn") == "x"


def test_agent_reports_a_misspelt_auth_item_without_the_value(tmp_path, restore_logging, capsys):
    from dripline.cli import agent
    path = _auth_file(tmp_path, {"dripline": {"username": "bob", "pasword": SECRET}})
    with pytest.raises(SystemExit) as info:
        agent.main(["get", "x", "--auth-file", str(path), "-p", "1", "--max-connection-attempts", "1"])
    assert info.value.code != 0
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "'pasword'" in err and "'password'" in err
    assert SECRET not in err


@pytest.mark.parametrize("key, empty_ok", [("alert_keys", False), ("services", False),
                                           ("allowed_hosts", True)])
def test_http_server_list_settings_take_a_string_or_a_list_of_strings(key, empty_ok):
    from dripline.cli.http_server import build_settings
    assert getattr(build_settings({key: "a"}), key) == ["a"]
    assert getattr(build_settings({key: ["a", "b"]}), key) == ["a", "b"]
    for bad in ("", ["a", ""], ["a", 3], 5, ("a",)):
        with pytest.raises(ValueError, match=key):
            build_settings({key: bad})
    if empty_ok:
        assert getattr(build_settings({key: []}), key) == []
    else:
        with pytest.raises(ValueError, match=key):
            build_settings({key: []})
