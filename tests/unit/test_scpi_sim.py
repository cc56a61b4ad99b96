"""The simulated SCPI instrument: command language (no I/O) and the TCP server with its faults."""
from __future__ import annotations

import selectors
import socket
import subprocess
import sys

import pytest

from dripline.implementations.sim import (GARBAGE, InstrumentModel, SimulatedSCPIInstrument, Value,
                                          guide_device_values, parse_value_spec,
                                          power_supply_values)
from dripline.implementations.sim.__main__ import build_parser


# ---- the command language -------------------------------------------------------------------

@pytest.fixture
def psu():
    return InstrumentModel(power_supply_values(load_ohms=100.0), idn="ACME,PSU-1,42,2.0")


def test_identity_and_operation_complete(psu):
    assert psu.execute("*IDN?") == "ACME,PSU-1,42,2.0"
    assert psu.execute("*OPC?") == "1"
    assert psu.execute("*OPC") is None


@pytest.mark.parametrize("header", ["VOLT", "volt", "VOLTage", "SOUR:VOLT", ":SOURCE:VOLTAGE:LEVEL",
                                    "sour:volt:lev", "VOLT:LEV"])
def test_short_long_and_optional_header_forms(psu, header):
    assert psu.execute(f"{header} 1.5") is None
    assert psu.execute(f"{header}?") == "1.5"
    assert psu.errors == []


@pytest.mark.parametrize("header", ["VOL", "VOLTA", "SOUR", "SOUR:VOLT:LEV:X", "LEV"])
def test_headers_that_do_not_match_are_errors_and_get_no_answer(psu, header):
    assert psu.execute(f"{header}?") is None
    assert psu.execute("SYST:ERR?").startswith("-113,")
    assert psu.execute("SYST:ERR?") == '0,"No error"'


def test_compound_line_answers_all_queries_joined(psu):
    assert psu.execute("VOLT 2;VOLT?;OUTP ON;OUTP?;MEAS:CURR?") == "2.0;1;0.02"
    assert psu.execute("VOLT 3") is None
    assert psu.execute("  ;VOLT?; ") == "3.0"


def test_computed_readonly_values_follow_the_settings(psu):
    assert psu.execute("MEAS:VOLT?;MEAS:CURR?") == "0.0;0.0"  # output off
    psu.execute("VOLT 50;CURR 0.2;OUTP 1")
    assert psu.execute("MEAS:VOLT?;MEAS:CURR?") == "50.0;0.2"  # current limited
    psu.execute("MEAS:CURR 5")
    assert psu.execute("SYST:ERR?").startswith("-113,")


def test_bad_values_are_queued_errors_and_leave_the_value(psu):
    psu.execute("VOLT 1")
    psu.execute("VOLT 100")
    psu.execute("VOLT banana")
    psu.execute("OUTP maybe")
    psu.execute("VOLT")
    assert psu.execute("VOLT?;OUTP?") == "1.0;0"
    assert [psu.execute("SYST:ERR?").split(",")[0] for _ in range(5)] == \
        ["-222", "-224", "-224", "-109", "0"]


def test_reset_and_clear(psu):
    psu.execute("VOLT 7;BOGUS")
    psu.execute("*RST;*CLS")
    assert psu.execute("VOLT?;SYST:ERR?") == '0.0;0,"No error"'


def test_quoted_strings_keep_semicolons(psu):
    psu.execute('SYST:LAB "a;b, c"')
    assert psu.execute("SYST:LAB?") == "a;b, c"


def test_value_specs_infer_kinds():
    assert parse_value_spec("FREQuency=1e3").kind == "float"
    assert parse_value_spec("COUNt=3").kind == "int"
    assert parse_value_spec("ENABle=ON").kind == "bool"
    assert parse_value_spec("MODE=fast").kind == "str"
    assert parse_value_spec("NUMber/str=12").kind == "str"
    with pytest.raises(ValueError):
        parse_value_spec("NOEQUALS")
    model = InstrumentModel([parse_value_spec("FREQuency=1e3"), parse_value_spec("TEMP=4.2", readonly=True)])
    assert model.execute("FREQ 250;FREQ?;TEMP?") == "250.0;4.2"
    model.execute("TEMP 3")
    assert model.get("TEMP") == 4.2


def test_python_access_and_bad_definitions(psu):
    psu.set("VOLT", "4.5")
    assert psu.get("SOURce:VOLTage") == 4.5
    with pytest.raises(KeyError):
        psu.get("NOPE")
    with pytest.raises(ValueError):
        Value("X", kind="complex")


# ---- the TCP server -------------------------------------------------------------------------

def _client(sim, timeout=2.0):
    sock = socket.create_connection(("127.0.0.1", sim.port), timeout=timeout)
    return sock, sock.makefile("rb")


def _ask(sock, reader, line):
    sock.sendall(line.encode() + b"\n")
    return reader.readline()


def test_server_answers_over_tcp_with_any_line_ending():
    with SimulatedSCPIInstrument() as sim:
        sock, reader = _client(sim)
        with sock:
            assert _ask(sock, reader, "VOLT 1.25;VOLT?") == b"1.25\n"
            sock.sendall(b"VOLT?\r\nCURR?\r")
            assert reader.readline() == b"1.25\n"
            assert reader.readline() == b"0.1\n"


def test_custom_terminator_echo_and_greeting():
    with SimulatedSCPIInstrument(terminator="\r\n", echo=True, greeting="HELLO") as sim:
        sock, reader = _client(sim)
        with sock:
            assert reader.readline() == b"HELLO\r\n"
            assert _ask(sock, reader, "*OPC?") == b"*OPC?\r\n"
            assert reader.readline() == b"1\r\n"


def test_silent_and_count_limited_faults():
    with SimulatedSCPIInstrument() as sim:
        sim.set_fault("silent", 1)
        sock, reader = _client(sim, timeout=0.3)
        with sock:
            sock.sendall(b"*OPC?\n")
            with pytest.raises(socket.timeout):
                reader.readline()
        sock, reader = _client(sim)
        with sock:
            assert _ask(sock, reader, "*OPC?") == b"1\n"
        assert sim.fault == ("none", 0)


def test_garbage_partial_drop_and_reset_faults():
    with SimulatedSCPIInstrument() as sim:
        sim.set_fault("garbage", 1)
        sock, reader = _client(sim)
        with sock:
            assert _ask(sock, reader, "VOLT?") == GARBAGE + b"\n"
            assert _ask(sock, reader, "VOLT?") == b"0.0\n"
        sim.set_fault("drop", 1)
        sock, reader = _client(sim)
        with sock:
            sock.sendall(b"VOLT?\n")
            assert sock.recv(10) == b""
        sim.set_fault("reset", 1)
        sock, reader = _client(sim)
        with sock:
            sock.sendall(b"VOLT?\n")
            with pytest.raises(ConnectionResetError):
                sock.recv(10)
                sock.recv(10)


def test_partial_answer_has_no_terminator():
    with SimulatedSCPIInstrument(model=InstrumentModel([], idn="ABCDEFGH")) as sim:
        sim.set_fault("partial")
        sock, _ = _client(sim, timeout=0.3)
        with sock:
            sock.sendall(b"*IDN?\n")
            assert sock.recv(100) == b"ABCD"
            with pytest.raises(socket.timeout):
                sock.recv(100)


def test_control_commands_over_the_wire_are_exempt_from_faults():
    with SimulatedSCPIInstrument() as sim:
        sock, reader = _client(sim)
        with sock:
            sock.sendall(b"SIM:FAUL SIL,2\n")
            assert _ask(sock, reader, "SIM:FAULT?") == b"SILENT,2\n"
            sock.sendall(b"SIM:DEL 0.01\n")
            assert _ask(sock, reader, "SIM:DEL?") == b"0.01\n"
            sock.sendall(b"SIM:FAUL NONE\n")
            assert _ask(sock, reader, "VOLT?") == b"0.0\n"
            assert _ask(sock, reader, "SIM:COUN?") == b"1\n"
            other, other_reader = _client(sim)
            assert _ask(other, other_reader, "*OPC?") == b"1\n"  # served, so counted
            assert _ask(sock, reader, "SIM:CONN?") == b"2\n"
            sock.sendall(b"SIM:DROP\n")
            other.settimeout(2)
            assert other.recv(10) == b""
            other.close()
            sock.sendall(b"SIM:FAULT sideways\n")
            assert _ask(sock, reader, "SYST:ERR?").startswith(b"-224,")


def test_stop_closes_connections_and_restart_keeps_the_port():
    sim = SimulatedSCPIInstrument().start()
    try:
        port = sim.port
        sock, reader = _client(sim)
        assert _ask(sock, reader, "*OPC?") == b"1\n"
        sim.stop()
        sock.settimeout(2)
        assert sock.recv(10) == b""
        sock.close()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        sim.start()
        assert sim.port == port
        sock, reader = _client(sim)
        with sock:
            assert _ask(sock, reader, "*OPC?") == b"1\n"
    finally:
        sim.stop()


def test_bad_fault_names_and_terminator():
    with pytest.raises(ValueError):
        SimulatedSCPIInstrument(fault="explode")
    with pytest.raises(ValueError):
        SimulatedSCPIInstrument(terminator="")
    sim = SimulatedSCPIInstrument()
    sim.set_fault("gar", 3)
    assert sim.fault == ("garbage", 3)
    with pytest.raises(ValueError):
        sim.set_fault("silent", -1)


def test_command_line_runs_as_its_own_process():
    proc = subprocess.Popen([sys.executable, "-m", "dripline.implementations.sim", "--port", "0",
                             "--idn", "X,Y,Z,1", "--value", "FREQuency=10", "--terminator", "\\r\\n"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert selectors_wait(proc.stdout, 20), "the simulator did not report its port"
        line = proc.stdout.readline()
        assert "listening on 127.0.0.1:" in line
        port = int(line.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"*IDN?;FREQ?\n")
            data = b""
            while not data.endswith(b"\r\n"):
                chunk = sock.recv(100)
                assert chunk
                data += chunk
            assert data == b"X,Y,Z,1;10\r\n"
    finally:
        proc.terminate()
        try:
            assert proc.wait(10) == 0
        finally:
            proc.kill()
            proc.wait()


def selectors_wait(stream, timeout: float) -> bool:
    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        return bool(sel.select(timeout))


def test_command_line_options_parse():
    args = build_parser().parse_args(["--port", "5025", "--fault", "silent", "--fault-count", "2",
                                      "--delay", "0.5", "--echo"])
    assert (args.port, args.fault, args.fault_count, args.delay, args.echo) == (5025, "silent", 2, 0.5, True)


# ---- one query per connection (the controls guide's toy device) -------------------------------

def _guide_sim() -> SimulatedSCPIInstrument:
    return SimulatedSCPIInstrument(model=InstrumentModel(guide_device_values(), idn="T,GUIDE,1,0"),
                                   one_query_per_connection=True)


def test_guide_profile_answers_the_walkthrough_headers():
    model = InstrumentModel(guide_device_values(), idn="T,GUIDE,1,0")
    assert model.execute("IDN?") == "T,GUIDE,1,0" == model.execute("*IDN?")
    assert model.execute("OPT?") == "SIM-OPT-A,SIM-OPT-B"
    assert model.execute("VOLTage 7;VOLT?") == "7.0"
    assert model.execute("freq 60;FREQuency?") == "60.0"
    assert model.execute("READ?") == "12.5"
    assert model.execute("IDN X") is None and model.errors  # IDN is read-only here


def test_one_query_per_connection_leaves_the_used_connection_silent_but_open():
    with _guide_sim() as sim:
        first, first_reader = _client(sim)
        with first:
            assert _ask(first, first_reader, "IDN?") == b"T,GUIDE,1,0\n"
            first.sendall(b"VOLT?\n")  # nobody reads this any more
            first.settimeout(0.3)
            with pytest.raises(socket.timeout):
                first.recv(100)
            assert sim.open_connections == 1 and sim.model.lines_executed == 1
            second, second_reader = _client(sim)
            with second:
                assert _ask(second, second_reader, "VOLT 2;VOLT?") == b"2.0\n"
                first.settimeout(5)
                assert first.recv(100) == b""  # closed once the new connection was served
                assert sim.model.lines_executed == 2 and sim.connections_accepted == 2


def test_one_query_per_connection_serves_connections_one_at_a_time():
    with _guide_sim() as sim:
        quiet, _ = _client(sim)          # connected, but has not sent its line yet
        waiting, waiting_reader = _client(sim)
        with quiet, waiting:
            waiting.sendall(b"OPT?\n")
            waiting.settimeout(0.3)
            with pytest.raises(socket.timeout):
                waiting.recv(100)        # the device is still busy reading the first connection
            quiet.sendall(b"READ?\n")
            assert quiet.makefile("rb").readline() == b"12.5\n"
            waiting.settimeout(5)
            assert waiting_reader.readline() == b"SIM-OPT-A,SIM-OPT-B\n"


def test_stop_releases_a_parked_connection():
    sim = _guide_sim().start()
    sock, reader = _client(sim)
    with sock:
        assert _ask(sock, reader, "OPT?") == b"SIM-OPT-A,SIM-OPT-B\n"
        sim.stop()
        sock.settimeout(5)
        assert sock.recv(100) == b""


def test_command_line_one_query_mode_and_guide_profile():
    args = build_parser().parse_args(["--profile", "guide", "--one-query-per-connection"])
    assert args.profile == "guide" and args.one_query_per_connection
    assert not build_parser().parse_args([]).one_query_per_connection
