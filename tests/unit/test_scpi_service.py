"""EthernetSCPIService.send_to_device against the in-process simulator (no broker involved)."""
from __future__ import annotations

import socket
import threading

import pytest

from dripline.protocol.errors import ConfigError
from dripline.protocol.throw_reply import ThrowReply
from dripline.implementations import EthernetSCPIService
from dripline.implementations.ethernet_scpi_service import (SCPIConfigError, is_query,
                                                             parse_socket_info, resend_choice)
from dripline.implementations.sim import (InstrumentModel, SimulatedSCPIInstrument, Value,
                                          guide_device_values)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make(port: int, **kw) -> EthernetSCPIService:
    kw.setdefault("socket_timeout", 1.0)
    kw.setdefault("command_terminator", "\n")
    kw.setdefault("response_terminator", "\n")
    service = EthernetSCPIService(name="scpi_unit", make_connection=False, heartbeat_interval_s=0,
                                  socket_info=("127.0.0.1", port), **kw)
    service.on_start()  # what start() runs: the instrument is connected (constructors do no I/O)
    return service


@pytest.fixture
def sim():
    with SimulatedSCPIInstrument() as instrument:
        yield instrument


@pytest.fixture
def svc(sim):
    service = make(sim.port)
    yield service
    service._shutdown_socket()


def code_of(fn, *args) -> ThrowReply:
    with pytest.raises(ThrowReply) as info:
        fn(*args)
    return info.value


# ---- configuration ---------------------------------------------------------------------------

@pytest.mark.parametrize("given, expected", [
    (("localhost", 5025), ("localhost", 5025)),
    (["10.0.0.2", "5025"], ("10.0.0.2", 5025)),
    ("('localhost', 5025)", ("localhost", 5025)),
    ('("my-host.lan",1234)', ("my-host.lan", 1234)),
    ("(my-host.lan, 1234)", ("my-host.lan", 1234)),
    ("my-host.lan:1234", ("my-host.lan", 1234)),
    ("[::1]:5025", ("::1", 5025)),
])
def test_socket_info_forms(given, expected):
    assert parse_socket_info(given) == expected


@pytest.mark.parametrize("bad", ["localhost", "('localhost',)", ("h", 0), ("h", 70000), ("h", "x"),
                                 ("", 5), 5025, ("h", True), ("h", 1.5)])
def test_bad_socket_info(bad):
    with pytest.raises(SCPIConfigError):
        parse_socket_info(bad)


@pytest.mark.parametrize("kwargs, text", [
    ({"response_terminator": None}, "response_terminator is required"),
    ({"response_terminator": ""}, "response_terminator is required"),
    ({"cmd_at_reconnect": []}, "must not be an empty list"),
    ({"cmd_at_reconnect": [1]}, "strings or null"),
    ({"socket_timeout": 0}, "socket_timeout"),
    ({"socket_timeout": "soon"}, "socket_timeout"),
    ({"socket_info": "nowhere"}, "socket_info"),
])
def test_configuration_errors_are_config_and_value_errors(kwargs, text):
    kw = {"response_terminator": "\n", "socket_info": ("127.0.0.1", 1), **kwargs}
    with pytest.raises(ConfigError) as info:
        EthernetSCPIService(name="bad_scpi", make_connection=False, **kw)
    assert isinstance(info.value, ValueError)
    assert text in info.value.message and "bad_scpi" in info.value.message


def test_literal_escapes_in_terminators_are_decoded():
    svc = EthernetSCPIService(name="t", make_connection=False, socket_info=("127.0.0.1", free_port()),
                              command_terminator="\\r\\n", response_terminator="\\n", socket_timeout=0.2)
    assert (svc.command_terminator, svc.response_terminator) == ("\r\n", "\n")


def test_the_service_starts_without_the_instrument_and_connects_later():
    port = free_port()
    svc = make(port)
    assert not svc.connected
    err = code_of(svc.send_to_device, "*IDN?")
    assert err.return_code == 201 and f"127.0.0.1:{port}" in err.message
    with SimulatedSCPIInstrument(port=port):
        assert svc.send_to_device("*OPC?") == "1"
        assert svc.connected
    svc._shutdown_socket()


# ---- exchanges --------------------------------------------------------------------------------

def test_commands_one_by_one_answers_joined(svc, sim):
    assert svc.send_to_device("VOLT 2.5;VOLT?") == "2.5"
    assert svc.send_to_device(["VOLT?", "CURR?", "*IDN?"]) == "2.5;0.1;" + sim.model.idn
    assert svc.send_to_device(("OUTP?",), some_reference_kwarg=1) == "0"


@pytest.mark.parametrize("bad", [[], None, [1], ["VOLT?", None], 5])
def test_bad_commands_are_304(svc, bad):
    assert code_of(svc.send_to_device, bad).return_code == 304


def test_no_answer_to_a_setting_is_202_and_the_next_request_works(svc, sim):
    sim.set_fault("silent", 1)
    err = code_of(svc.send_to_device, "VOLT 1;VOLT?")
    assert err.return_code == 202 and "Timeout" in err.message and "'VOLT 1;VOLT?'" in err.message
    assert "not a query" in err.message
    assert not svc.connected  # a late answer cannot be mistaken for the next one
    assert svc.send_to_device("VOLT?") == "0.0"


def test_slow_answer_then_late_bytes_do_not_shift_answers(svc, sim):
    sim.delay = 1.5
    assert code_of(svc.send_to_device, "VOLT 9;VOLT?").return_code == 202
    sim.delay = 0
    assert svc.send_to_device("VOLT 1;VOLT?") == "1.0"
    assert svc.send_to_device("CURR?") == "0.1"


def test_partial_answer_is_202_naming_what_arrived(svc, sim):
    sim.set_fault("partial", 1)
    err = code_of(svc.send_to_device, "VOLT 1;*IDN?")
    assert err.return_code == 202 and "without terminator" in err.message
    assert svc.send_to_device("*OPC?") == "1"  # reconnected (the fault must not hit *OPC?)
    sim.set_fault("partial", 1)
    assert svc.send_to_device("*IDN?") == sim.model.idn  # a query: sent again, answered whole
    assert svc.send_to_device("*OPC?") == "1"


def test_garbage_answer_is_202_and_the_stream_recovers(svc, sim):
    sim.set_fault("garbage", 1)
    err = code_of(svc.send_to_device, "VOLT?")
    assert err.return_code == 202 and "not text" in err.message
    assert svc.send_to_device("VOLT?") == "0.0"


def test_latin1_text_is_accepted():
    with SimulatedSCPIInstrument(model=InstrumentModel([], idn="x")) as sim:
        svc = make(sim.port, cmd_at_reconnect=None)
        sim.model.idn = "25.0 \N{DEGREE SIGN}C"
        assert svc.send_to_device("*IDN?") == "25.0 \N{DEGREE SIGN}C"
        svc._shutdown_socket()


@pytest.mark.parametrize("fault", ["drop", "reset"])
def test_a_broken_connection_is_reopened_and_the_command_sent_again(svc, sim, fault):
    before = sim.connections_accepted
    sim.set_fault(fault, 1)
    assert svc.send_to_device("VOLT 3;VOLT?") == "3.0"
    assert sim.connections_accepted == before + 1


def test_instrument_restart_between_requests_is_transparent(svc, sim):
    assert svc.send_to_device("*OPC?") == "1"
    sim.stop()
    sim.start()
    assert svc.send_to_device("VOLT?") == "0.0"


def test_broken_twice_is_201(svc, sim):
    sim.set_fault("drop", 2)
    err = code_of(svc.send_to_device, "VOLT?")
    assert err.return_code == 201  # the reconnect test itself met the second drop


def test_broken_during_the_retry_is_201():
    with SimulatedSCPIInstrument() as sim:
        svc = make(sim.port, cmd_at_reconnect=None)
        sim.set_fault("reset", 2)
        err = code_of(svc.send_to_device, "VOLT?")
        assert err.return_code == 201 and "Broken ethernet socket" in err.message
        assert svc.send_to_device("VOLT?") == "0.0"
        svc._shutdown_socket()


def test_instrument_gone_is_201_and_back_works(svc, sim):
    sim.stop()
    err = code_of(svc.send_to_device, "VOLT?")
    assert err.return_code == 201
    sim.start()
    assert svc.send_to_device("*OPC?") == "1"


def test_unsolicited_bytes_are_discarded_before_a_command(svc, sim):
    assert svc.send_to_device("*OPC?") == "1"
    (conn,) = list(sim._connections)
    conn.sendall(b"SRQ!\nnoise")
    threading.Event().wait(0.1)
    assert svc.send_to_device("CURR?") == "0.1"


def test_two_answers_for_one_command_do_not_shift_the_next(svc, sim):
    assert svc.send_to_device("*OPC?;*OPC?") == "1;1"  # one line: fine
    (conn,) = list(sim._connections)
    conn.sendall(b"stale\n")  # an extra line the instrument volunteers
    threading.Event().wait(0.1)
    assert svc.send_to_device("VOLT?") == "0.0"


# ---- reconnect commands and echo --------------------------------------------------------------

def test_reconnect_test_mismatch_is_201():
    with SimulatedSCPIInstrument() as sim:
        svc = make(sim.port, cmd_at_reconnect=["*IDN?"], reconnect_test="something else")
        err = code_of(svc.send_to_device, "VOLT?")
        assert err.return_code == 201 and "Failed connection test" in err.message
        assert not svc.connected


def test_reconnect_commands_run_on_every_connection_and_none_reads_a_greeting():
    with SimulatedSCPIInstrument(greeting="WELCOME") as sim:
        svc = make(sim.port, cmd_at_reconnect=[None, "*RST;*OPC?", "*OPC?"], reconnect_test="1")
        assert svc.send_to_device("VOLT 5;VOLT?") == "5.0"
        svc.reconnect()
        assert svc.send_to_device("VOLT?") == "0.0"  # *RST ran again
        svc._shutdown_socket()


def test_no_reconnect_commands():
    with SimulatedSCPIInstrument(greeting="HI") as sim:
        svc = make(sim.port, cmd_at_reconnect=None)
        threading.Event().wait(0.2)  # the greeting has arrived: unsolicited, so discarded
        assert svc.send_to_device("*OPC?") == "1"
        svc._shutdown_socket()


def test_reply_echo_cmd_strips_the_echo():
    with SimulatedSCPIInstrument(echo=True) as sim:
        svc = make(sim.port, reply_echo_cmd=True)
        assert svc.send_to_device(["VOLT 1.5;VOLT?", "*IDN?"]) == "1.5;" + sim.model.idn
        svc._shutdown_socket()


def test_reply_echo_cmd_on_the_same_line_and_a_missing_echo():
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def instrument():
        conn, _ = server.accept()
        with conn:
            reader = conn.makefile("rb")
            assert reader.readline() == b"A?\n"
            conn.sendall(b"A?42\n")
            assert reader.readline() == b"B?\n"
            conn.sendall(b"nonsense\n")
            reader.readline()

    thread = threading.Thread(target=instrument, daemon=True)
    thread.start()
    try:
        svc = make(port, cmd_at_reconnect=None, reply_echo_cmd=True)
        assert svc.send_to_device("A?") == "42"
        err = code_of(svc.send_to_device, "B?")
        assert err.return_code == 201 and "did not echo" in err.message
        svc._shutdown_socket()
    finally:
        server.close()
        thread.join(5)


def test_blank_command_returns_whatever_arrives(svc, sim):
    assert svc.send_to_device("") == ""


# ---- concurrency and shutdown ----------------------------------------------------------------

def test_callers_on_several_threads_each_get_their_own_answer(sim):
    svc = make(sim.port, socket_timeout=5)
    sim.model.values.append(Value("SLOT", "", "str"))
    results, errors = {}, []

    def worker(i):
        try:
            results[i] = [svc.send_to_device(f'SLOT "{i}-{k}";SLOT?') for k in range(20)]
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert results == {i: [f"{i}-{k}" for k in range(20)] for i in range(8)}
    svc._shutdown_socket()


def test_shutdown_wakes_a_waiting_reader(sim):
    svc = make(sim.port, socket_timeout=30)
    svc.send_to_device("*OPC?")
    sim.set_fault("silent")
    svc._closing = True
    outcome = []
    t = threading.Thread(target=lambda: outcome.append(code_of(svc.send_to_device, "VOLT?")))
    t.start()
    threading.Event().wait(0.3)
    svc._shutdown_socket()
    t.join(10)
    assert not t.is_alive()
    assert outcome and outcome[0].return_code == 201


# ---- options changed at run time (set with a specifier) -----------------------------------------

def _set(svc, specifier, value):
    from dripline.protocol.message import MsgRequest, op_t
    request = MsgRequest.create(payload={"values": [value]}, msg_op=op_t.set, routing_key=svc.name,
                                specifier=specifier, reply_to="r")
    return svc.on_request_message(request)


def test_options_set_at_run_time_are_validated(svc, sim):
    for specifier, value in [("socket_info", "nowhere"), ("socket_timeout", -1),
                             ("response_terminator", ""), ("cmd_at_reconnect", [])]:
        reply = _set(svc, specifier, value)
        assert reply.return_code == 304, (specifier, reply.return_message)
    assert svc.send_to_device("*OPC?") == "1"
    assert _set(svc, "socket_timeout", 2).return_code == 0 and svc.socket_timeout == 2


def test_a_new_socket_info_takes_effect_on_the_next_command(svc, sim):
    assert svc.send_to_device("VOLT 9;VOLT?") == "9.0"
    with SimulatedSCPIInstrument() as other:
        assert _set(svc, "socket_info", f"127.0.0.1:{other.port}").return_code == 0
        assert svc.send_to_device("VOLT?") == "0.0"
        assert other.connections_accepted == 1


# ---- sending a command again after a timeout (resend_on_timeout) ------------------------------

@pytest.mark.parametrize("command, query", [
    ("*IDN?", True), ("MEAS:VOLT?", True), ("MEAS:VOLT? (@1)", True), ("*OPC?;SYST:ERR?", True),
    (" VOLT? ; CURR? ", True), ("VOLT 5;VOLT?", False), ("OUTP ON", False), ("*TRG", False),
    ('SYST:LAB "a;b?"', False), ("", False), ("VOLT?;", True), ("DISP:TEXT 'why?'", False),
])
def test_what_counts_as_a_query(command, query):
    assert is_query(command) is query


@pytest.mark.parametrize("given, choice", [
    ("auto", "auto"), ("ALWAYS", "always"), (" never ", "never"), (True, "always"), (False, "never"),
])
def test_resend_choices(given, choice):
    assert resend_choice(given) == choice


@pytest.mark.parametrize("bad", ["sometimes", "", None, 1, ["auto"]])
def test_bad_resend_choice_is_a_config_error_naming_the_choices(bad):
    with pytest.raises(SCPIConfigError) as info:
        make(free_port(), resend_on_timeout=bad)
    assert "resend_on_timeout" in str(info.value) and "auto, always, never" in str(info.value)


def test_a_silent_query_is_sent_again_on_a_new_connection(svc, sim):
    before = sim.connections_accepted
    sim.set_fault("silent", 1)
    assert svc.send_to_device("VOLT?") == "0.0"
    assert sim.connections_accepted == before + 1
    assert svc.keeps_connections is True  # the reconnect test and the query: two answers


def test_a_query_silent_twice_is_202():
    with SimulatedSCPIInstrument() as sim:
        svc = make(sim.port, cmd_at_reconnect=None)
        sim.set_fault("silent", 2)
        err = code_of(svc.send_to_device, "VOLT?")
        assert err.return_code == 202 and "either" in err.message
        assert sim.fault == ("none", 0) and svc.send_to_device("VOLT?") == "0.0"
        svc._shutdown_socket()


def test_auto_never_sends_a_setting_twice(svc, sim):
    sim.set_fault("silent", 2)
    assert code_of(svc.send_to_device, "VOLT 7;VOLT?").return_code == 202
    assert sim.fault == ("silent", 1)  # the instrument saw the line once
    sim.set_fault("none")
    assert sim.model.get("VOLT") == 0.0


def test_always_sends_a_setting_again():
    with SimulatedSCPIInstrument() as sim:
        svc = make(sim.port, resend_on_timeout="always")
        sim.set_fault("silent", 1)
        assert svc.send_to_device("VOLT 7;VOLT?") == "7.0"
        assert sim.fault == ("none", 0)
        svc._shutdown_socket()


def test_never_sends_not_even_a_query_again():
    with SimulatedSCPIInstrument() as sim:
        svc = make(sim.port, resend_on_timeout="never")
        sim.set_fault("silent", 2)
        err = code_of(svc.send_to_device, "VOLT?")
        assert err.return_code == 202 and "resend_on_timeout: never" in err.message
        assert sim.fault == ("silent", 1)
        svc._shutdown_socket()


def test_the_caller_overrides_the_service_choice(svc, sim):
    sim.set_fault("silent", 2)
    with pytest.raises(ThrowReply) as info:
        svc.send_to_device("VOLT?", resend_on_timeout="never")
    assert info.value.return_code == 202 and sim.fault == ("silent", 1)
    sim.set_fault("none")
    assert svc.send_to_device("*OPC?") == "1"  # reconnected (the fault must not hit *OPC?)
    sim.set_fault("silent", 1)
    assert svc.send_to_device("VOLT 2;VOLT?", resend_on_timeout="always") == "2.0"
    with pytest.raises(ThrowReply) as info:
        svc.send_to_device("VOLT?", resend_on_timeout="twice")
    assert info.value.return_code == 304


def test_the_choice_can_be_changed_at_run_time_and_is_validated(svc):
    svc.resend_on_timeout = "never"
    assert svc.resend_on_timeout == "never"
    with pytest.raises(ThrowReply) as info:
        svc.resend_on_timeout = "often"
    assert info.value.return_code == 304 and svc.resend_on_timeout == "never"


# ---- instruments that answer one command per connection ---------------------------------------

@pytest.fixture
def guide_sim():
    model = InstrumentModel(guide_device_values(), idn="T,GUIDE,1,0")
    with SimulatedSCPIInstrument(model=model, one_query_per_connection=True) as instrument:
        yield instrument


def test_gets_and_sets_work_against_a_one_query_per_connection_instrument(guide_sim):
    svc = make(guide_sim.port, cmd_at_reconnect=None)
    try:
        assert svc.send_to_device("IDN?") == "T,GUIDE,1,0"
        assert svc.keeps_connections is None
        # a setting never goes out on a used connection while the instrument is unknown
        assert svc.send_to_device("VOLTage 5;VOLTage?") == "5.0"
        # a query tries the used connection, meets silence, and is answered on a new one
        assert svc.send_to_device("VOLTage?") == "5.0"
        assert svc.keeps_connections is False
        for command, answer in [("FREQ 60;FREQ?", "60.0"), ("OPT?", "SIM-OPT-A,SIM-OPT-B"),
                                ("READ?", "12.5"), ("VOLT 1;VOLT?", "1.0"), ("VOLT?", "1.0")]:
            assert svc.send_to_device(command) == answer
        # every command was carried out exactly once (the ignored one was never read)
        assert guide_sim.model.lines_executed == 8
    finally:
        svc._shutdown_socket()


def test_an_instrument_that_keeps_connections_is_not_reconnected_for_settings(sim):
    svc = make(sim.port, cmd_at_reconnect=None)
    try:
        assert svc.send_to_device("VOLT?") == "0.0"
        assert svc.send_to_device("VOLT 1;VOLT?") == "1.0"  # unknown yet: a new connection
        assert sim.connections_accepted == 2
        assert svc.send_to_device("VOLT?") == "1.0"         # second answer there: it keeps them
        assert svc.keeps_connections is True
        assert svc.send_to_device("VOLT 2;VOLT?") == "2.0"
        assert sim.connections_accepted == 2
    finally:
        svc._shutdown_socket()


def test_with_a_reconnect_test_the_first_setting_uses_the_connection(svc, sim):
    assert svc.send_to_device("VOLT 3;VOLT?") == "3.0"
    assert sim.connections_accepted == 1 and svc.keeps_connections is True


def test_a_passing_silence_does_not_make_a_known_instrument_one_query_per_connection(sim):
    svc = make(sim.port, cmd_at_reconnect=None)
    try:
        assert svc.send_to_device(["VOLT?", "CURR?"]) == "0.0;0.1"
        assert svc.keeps_connections is True
        sim.set_fault("silent", 1)
        assert svc.send_to_device("VOLT?") == "0.0"
        assert svc.keeps_connections is True
    finally:
        svc._shutdown_socket()


def test_a_new_address_forgets_what_was_learnt(guide_sim, sim):
    svc = make(guide_sim.port, cmd_at_reconnect=None)
    try:
        svc.send_to_device("IDN?")
        svc.send_to_device("OPT?")
        assert svc.keeps_connections is False
        svc.socket_info = ("127.0.0.1", sim.port)
        assert svc.keeps_connections is None
        assert svc.send_to_device("*IDN?") == sim.model.idn
    finally:
        svc._shutdown_socket()


def test_a_slow_instrument_stays_202_when_the_reconnect_test_is_slow_too(svc, sim):
    sim.delay = 1.5
    err = code_of(svc.send_to_device, "VOLT?")
    assert err.return_code == 202 and "reconnecting to send it again failed" in err.message
    sim.delay = 0
    assert svc.send_to_device("VOLT?") == "0.0"


# ---- the service's own built-ins are not shadowed by its instrument plumbing ------------------

def test_lock_instruction_and_requests_from_the_service_still_work():
    from dripline.core import MsgRequest, op_t
    from dripline.protocol.errors import DriplineError
    svc = make(free_port())
    reply = svc.on_request_message(MsgRequest.create(msg_op=op_t.cmd, routing_key="scpi_unit",
                                                     specifier="lock", reply_to="me"))
    assert reply.return_code == 0 and svc.is_locked
    with pytest.raises(DriplineError, match="not running"):  # RequestSender's path, not SCPI's
        svc.get("somebody")
