"""dl-serve's checks that need no broker: service timing options, --check builds (dry run, no
instrument or database contacted), error lines for build failures, refusal wording."""
from __future__ import annotations

import socket
import textwrap

import pytest

from dripline.cli import serve
from dripline.core import Service
from dripline.transport.connection import _channel_error
from dripline.protocol.errors import ConfigError
from dripline.protocol.message import MsgRequest, op_t
from dripline.assembly.validation import check_service_config


def dry(**kw) -> Service:
    return Service("dry", make_connection=False, **kw)


# ---------------------------------------------------------------------------------------------
# item 1: heartbeat_interval_s, loop_timeout_ms, message_wait_ms, request_prefetch

@pytest.mark.parametrize("value", [-5, 0.0001, 0.09, "abc", "", None, True, [1], float("nan"),
                                   float("inf"), "-1"])
def test_bad_heartbeat_interval_is_a_config_error_naming_key_and_value(value):
    with pytest.raises(ConfigError) as info:
        dry(heartbeat_interval_s=value)
    text = info.value.message
    assert "heartbeat_interval_s" in text and repr(value) in text
    assert "0 (disabled)" in text and "0.1" in text


@pytest.mark.parametrize("value, expected", [("10", 10.0), (" 2.5 ", 2.5), (0, 0), ("0", 0.0),
                                             (0.1, 0.1), (60, 60)])
def test_heartbeat_interval_accepts_numbers_and_numeric_strings(value, expected):
    svc = dry(heartbeat_interval_s=value)
    assert svc.heartbeat_interval_s == expected
    assert isinstance(svc.heartbeat_interval_s, (int, float))


@pytest.mark.parametrize("key", ["loop_timeout_ms", "message_wait_ms"])
@pytest.mark.parametrize("value", [0, -1, "x", None, float("nan")])
def test_bad_millisecond_options(key, value):
    with pytest.raises(ConfigError) as info:
        dry(**{key: value})
    assert key in info.value.message and repr(value) in info.value.message
    assert "greater than 0" in info.value.message


def test_millisecond_options_from_strings():
    svc = dry(loop_timeout_ms="250", message_wait_ms="1500")
    assert (svc.loop_timeout_ms, svc.message_wait_ms) == (250.0, 1500.0)


@pytest.mark.parametrize("value", [0, -3, 2.5, "many", None, True, float("inf")])
def test_bad_request_prefetch(value):
    with pytest.raises(ConfigError) as info:
        dry(request_prefetch=value)
    assert "request_prefetch" in info.value.message and repr(value) in info.value.message
    assert "at least 1" in info.value.message


@pytest.mark.parametrize("value", [1, "20", 30.0])
def test_request_prefetch_whole_numbers(value):
    assert dry(request_prefetch=value).runtime.window.size == int(float(value))


# ---------------------------------------------------------------------------------------------
# item 7: refusal wording

def _cmd(spec):
    return MsgRequest.create(payload={}, msg_op=op_t.cmd, routing_key="dry", specifier=spec,
                             reply_to="r")


@pytest.mark.parametrize("method", ["run", "stop", "send_alert"])
def test_lifecycle_method_refusal_says_not_available_through_requests(method):
    reply = dry().on_request_message(_cmd(method))
    assert reply.return_code == 306
    assert "not available through requests" in reply.return_message
    assert "private" not in reply.return_message


def test_private_name_refusal_keeps_its_wording():
    reply = dry().on_request_message(_cmd("_stop_event"))
    assert reply.return_code == 306 and "private name" in reply.return_message


def test_denylisted_get_is_refused_with_the_same_code():
    req = MsgRequest.create(msg_op=op_t.get, routing_key="dry", specifier="core", reply_to="r")
    reply = dry().on_request_message(req)
    assert reply.return_code == 310 and "not available through requests" in reply.return_message


# ---------------------------------------------------------------------------------------------
# item 5: unknown modules name the file and the object

def test_unknown_endpoint_module_names_file_and_endpoint():
    config = {"name": "s", "endpoints": [{"name": "a", "module": "KeyValueStor"}]}
    with pytest.raises(ConfigError) as info:
        check_service_config(config, "f.yaml")
    assert info.value.message.startswith("f.yaml: endpoint 'a': unknown module 'KeyValueStor'")
    assert "KeyValueStore" in info.value.message


def test_unknown_service_module_names_file_and_service():
    with pytest.raises(ConfigError) as info:
        check_service_config({"name": "s", "module": "Servcie"}, "f.yaml")
    assert info.value.message.startswith("f.yaml: service 's': unknown module 'Servcie'")


# ---------------------------------------------------------------------------------------------
# items 3, 4, 8: dl-serve run() in this process

def run_serve(*argv: str) -> int:
    return serve.run(serve.build_parser().parse_intermixed_args(list(argv)))


def test_check_needs_no_global_flag():
    """Constructors do no I/O, so --check is an ordinary build (issue 11 item 3)."""
    import dripline.assembly.validation as validation
    assert not hasattr(validation, "checking_only") and not hasattr(validation, "config_check")


def test_check_reports_entity_value_errors_with_endpoint(tmp_path, capsys):
    cfg = tmp_path / "s.yaml"
    cfg.write_text("name: s\nendpoints:\n  - name: peaches\n    module: KeyValueStore\n"
                   "    log_interval: 10\n")
    assert run_serve("--check", "-c", str(cfg)) == 0
    assert "is valid" in capsys.readouterr().out
    assert run_serve("--check", "-c", str(cfg), "endpoints.0.log_interval=abc") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"dl-serve: {cfg}: cannot build service 's': endpoint 'peaches': "
                          "ThrowReply: log_interval must be")
    assert "-v" in err


def test_check_reports_service_option_errors(tmp_path, capsys):
    cfg = tmp_path / "s.yaml"
    cfg.write_text("name: s\nheartbeat_interval_s: 0.0001\n")
    assert run_serve("--check", "-c", str(cfg)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dl-serve: {cfg}: service 's': heartbeat_interval_s must be")
    assert "0.0001" in err


def test_check_reports_plugin_constructor_errors(tmp_path, capsys):
    (tmp_path / "mine.py").write_text(textwrap.dedent("""
        from dripline.core import Endpoint

        class Picky(Endpoint):
            def __init__(self, gain=1, **kwargs):
                super().__init__(**kwargs)
                if gain <= 0:
                    raise ValueError(f"gain must be positive, got {gain}")
    """))
    cfg = tmp_path / "s.yaml"
    cfg.write_text("name: s\nendpoints:\n  - name: amp\n    module: Picky\n    module_path: mine.py\n"
                   "    gain: -2\n")
    assert run_serve("--check", "-c", str(cfg)) == 2
    err = capsys.readouterr().err
    assert err.strip().endswith("(run with -v for the traceback)")
    assert (f"dl-serve: {cfg}: cannot build service 's': endpoint 'amp': ValueError: gain must be "
            "positive, got -2") in err


def test_check_reports_database_url_errors(tmp_path, capsys):
    cfg = tmp_path / "s.yaml"
    cfg.write_text(textwrap.dedent("""
        name: logger
        module: PostgresSensorLogger
        insertion_table_endpoint_name: t
        database_url: nonsense://x
        endpoints:
          - name: t
            module: SQLTable
            table_name: numeric_data
    """))
    assert run_serve("--check", "-c", str(cfg)) == 2
    err = capsys.readouterr().err
    assert f"dl-serve: {cfg}: cannot build service 'logger': NoSuchModuleError" in err


def test_check_does_not_touch_the_database(tmp_path, capsys):
    db = tmp_path / "data.db"
    cfg = tmp_path / "s.yaml"
    cfg.write_text(textwrap.dedent(f"""
        name: logger
        module: PostgresSensorLogger
        insertion_table_endpoint_name: t
        database_url: sqlite:///{db}
        setup_sql: CREATE TABLE numeric_data (id INTEGER PRIMARY KEY)
        endpoints:
          - name: t
            module: SQLTable
            table_name: numeric_data
    """))
    assert run_serve("--check", "-c", str(cfg)) == 0, capsys.readouterr().err
    assert not db.exists()  # neither setup_sql nor the table look-up ran


def test_check_does_not_contact_the_instrument(tmp_path, capsys):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.3)
    port = listener.getsockname()[1]
    cfg = tmp_path / "s.yaml"
    cfg.write_text(textwrap.dedent(f"""
        name: scpi
        module: EthernetSCPIService
        socket_info: 127.0.0.1:{port}
        response_terminator: "\\n"
        socket_timeout: 0.3
    """))
    try:
        assert run_serve("--check", "-c", str(cfg)) == 0, capsys.readouterr().err
        with pytest.raises(socket.timeout):
            listener.accept()[0].close()
    finally:
        listener.close()


def test_check_keeps_dripline_mesh_of_the_file_but_never_connects(tmp_path, capsys):
    cfg = tmp_path / "s.yaml"
    cfg.write_text("name: s\ndripline_mesh:\n  make_connection: true\n  broker_port: 1\n")
    assert run_serve("--check", "-c", str(cfg)) == 0
    assert "is valid" in capsys.readouterr().out


def test_help_texts_for_service_options():
    text = serve.build_parser().format_help()
    text = text[text.index("\nservice:"):]  # the option list, not the usage line
    block = text[text.index("--loop-timeout-ms"):text.index("--message-wait-ms")]
    assert "compatib" in block
    check = " ".join(text[text.index("--check"):text.index("--list")].split())
    assert "instrument and database connections are not tried" in check


# ---------------------------------------------------------------------------------------------
# AMQP channel errors carry their code (queue_exists tells 404 from 405 by it)

class _Reason:
    def __init__(self, code, text):
        self.reply_code, self.reply_text = code, text


def test_channel_error_keeps_the_amqp_code():
    assert _channel_error(_Reason(404, "NOT_FOUND - no queue 'x'")).amqp_code == 404
    locked = _channel_error(_Reason(405, "RESOURCE_LOCKED"))
    assert locked.amqp_code == 405 and locked.return_code == 101
