"""SCPI service and entities through the broker, against the simulated instrument."""
from __future__ import annotations

import pathlib
import selectors
import socket
import subprocess
import sys
import threading

import pytest
import yaml

from dripline.protocol.errors import DriplineError
from dripline.client.interface import Interface
from dripline.implementations.sim import SimulatedSCPIInstrument
from dripline.testing import test_mesh, unique_name

EXAMPLE = pathlib.Path(__file__).parents[2] / "examples" / "scpi" / "scpi_demo.yaml"
GUIDE_EXAMPLE = EXAMPLE.with_name("guide-walkthrough.yaml")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scpi_config(port: int, **service_options) -> tuple[dict, dict]:
    """A service with one endpoint of each kind; returns (config, {role: endpoint name})."""
    names = {role: unique_name(role) for role in ("volt", "curr", "limit", "out", "idn", "mv")}
    config = {
        "name": unique_name("scpi"), "module": "EthernetSCPIService", "heartbeat_interval_s": 0,
        "socket_info": f"('127.0.0.1', {port})", "socket_timeout": 1.0,
        "command_terminator": "\n", "response_terminator": "\n",
        "endpoints": [
            {"name": names["volt"], "module": "SimpleSCPIEntity", "base_str": "SOUR:VOLT",
             "calibration": "1000*{}"},
            {"name": names["curr"], "module": "SimpleSCPIGetEntity", "base_str": "MEAS:CURR",
             "calibration": "1000*{}"},
            {"name": names["limit"], "module": "SimpleSCPISetEntity", "base_str": "SOUR:CURR"},
            {"name": names["out"], "module": "FormatEntity", "get_str": "OUTP?",
             "set_str": "OUTP {};OUTP?", "set_value_map": {"on": "ON", "off": "OFF"},
             "calibration": {"0": "off", "1": "on"}},
            {"name": names["idn"], "module": "FormatEntity", "get_str": "*IDN?",
             "extract_raw_regex": r"^[^,]*,(?P<value_raw>[^,]*),"},
            {"name": names["mv"], "module": "FormatEntity", "get_str": "SOUR:VOLT?",
             "set_str": "SOUR:VOLT {};SOUR:VOLT?", "set_value_map": "{}/1000",
             "calibration": "1000*{}"},
        ],
    }
    config.update(service_options)
    return config, names


@pytest.fixture
def sim():
    with SimulatedSCPIInstrument() as instrument:
        yield instrument


@pytest.fixture
def scpi(dl_service, sim):
    config, names = scpi_config(sim.port)
    service = dl_service(config)
    return service, names


def code_of(call, *args, **kwargs) -> DriplineError:
    with pytest.raises(DriplineError) as info:
        call(*args, **kwargs)
    return info.value


class SimProcess:
    """The simulator as a child process (always killed at the end)."""

    def __init__(self, port: int, *options: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "dripline.implementations.sim",
                                      "--port", str(port), *options], stdout=subprocess.PIPE,
                                     text=True)
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            ready = sel.select(20)
        line = self.proc.stdout.readline() if ready else ""
        if "listening on" not in line:
            self.kill()
            raise RuntimeError(f"the simulator did not start: {line!r}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc.stdout.close()


# ---- each entity type --------------------------------------------------------------------

def test_simple_entity_get_and_set(scpi, dl_interface, sim):
    _, n = scpi
    assert dl_interface.set(n["volt"], 2.5) == "2.5"
    assert dl_interface.get(n["volt"]) == {"value_raw": "2.5", "value_cal": 2500.0}
    assert sim.model.get("VOLT") == 2.5


def test_get_entity_reads_and_refuses_set(scpi, dl_interface, sim):
    _, n = scpi
    sim.model.execute("VOLT 5;OUTP ON")
    assert dl_interface.get(n["curr"]) == {"value_raw": "0.05", "value_cal": 50.0}
    err = code_of(dl_interface.set, n["curr"], 1)
    assert err.return_code == 306


def test_set_entity_sets_and_refuses_get(scpi, dl_interface, sim):
    _, n = scpi
    assert dl_interface.set(n["limit"], 0.25) == "1"
    assert sim.model.get("CURR") == 0.25
    assert code_of(dl_interface.get, n["limit"]).return_code == 306


def test_format_entity_with_dict_map_and_calibration_table(scpi, dl_interface, sim):
    _, n = scpi
    assert dl_interface.set(n["out"], "On") == "1"
    assert dl_interface.get(n["out"]) == {"value_raw": "1", "value_cal": "on"}
    assert dl_interface.set(n["out"], "off") == "0"
    err = code_of(dl_interface.set, n["out"], "sideways")
    assert err.return_code == 304 and "'on', 'off'" in err.message
    assert sim.model.get("OUTP") is False


def test_format_entity_with_expression_map(scpi, dl_interface, sim):
    _, n = scpi
    assert dl_interface.set(n["mv"], 1500) == "1.5"
    assert dl_interface.get(n["mv"]) == {"value_raw": "1.5", "value_cal": 1500.0}


def test_regex_extraction(scpi, dl_interface, sim):
    _, n = scpi
    assert dl_interface.get(n["idn"]) == {"value_raw": "SIM-SCPI"}
    sim.model.idn = "no commas here"
    err = code_of(dl_interface.get, n["idn"])
    assert err.return_code == 304 and "unparsable" in err.message


def test_raw_commands_through_the_service(scpi, dl_interface, sim):
    service, _ = scpi
    assert dl_interface.cmd(service.name, "send_to_device", ["*IDN?"]) == sim.model.idn
    assert dl_interface.cmd(service.name, "send_to_device", [["*OPC?", "VOLT?"]]) == "1;0.0"
    assert dl_interface.get(service.name, specifier="connected") == {"values": [True]}


# ---- faults -----------------------------------------------------------------------------------

def test_an_answer_to_a_setting_that_never_comes_is_202(scpi, dl_interface, sim):
    _, n = scpi
    sim.set_fault("silent", 2)
    err = code_of(dl_interface.set, n["volt"], 5, timeout_s=8)
    assert err.return_code == 202 and "Timeout" in err.message and "not a query" in err.message
    assert sim.fault == ("silent", 1)  # sent once, never again
    sim.set_fault("none")
    assert dl_interface.get(n["volt"])["value_raw"] == "0.0"


def test_a_query_without_answer_is_sent_again(scpi, dl_interface, sim):
    _, n = scpi
    assert dl_interface.get(n["volt"])["value_raw"] == "0.0"  # connected
    sim.set_fault("silent", 1)
    assert dl_interface.get(n["volt"], timeout_s=8)["value_raw"] == "0.0"


def test_a_slow_instrument_is_202_and_then_fine(scpi, dl_interface, sim):
    _, n = scpi
    sim.delay = 3.0
    assert code_of(dl_interface.get, n["curr"], timeout_s=9).return_code == 202
    sim.delay = 0
    assert dl_interface.set(n["volt"], 1) == "1.0"


def test_a_garbage_answer_is_202_and_the_next_is_right(scpi, dl_interface, sim):
    _, n = scpi
    sim.set_fault("garbage", 1)
    err = code_of(dl_interface.get, n["volt"])
    assert err.return_code == 202 and "not text" in err.message
    assert dl_interface.set(n["volt"], 3) == "3.0"


@pytest.mark.parametrize("fault", ["drop", "reset"])
def test_a_dropped_connection_is_not_seen_by_the_client(scpi, dl_interface, sim, fault):
    _, n = scpi
    sim.set_fault(fault, 1)
    assert dl_interface.set(n["volt"], 4) == "4.0"


def test_twenty_concurrent_clients_are_served_one_at_a_time(scpi, sim):
    _, n = scpi
    rounds = 5
    before = sim.model.lines_executed
    barrier = threading.Barrier(20, timeout=60)
    results: dict[int, list] = {}
    errors: list[BaseException] = []

    def client(i: int) -> None:
        try:
            with Interface(dripline_mesh=test_mesh(), timeout_s=30) as dl:
                barrier.wait()
                got = []
                for k in range(rounds):
                    value = i + k / 10
                    got.append(float(dl.set(n["volt"], value)) == value)  # read back in the same line
                    got.append("value_raw" in dl.get(n["idn"]))
                results[i] = got
        except BaseException as err:  # reported by the main thread
            errors.append(err)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors[:3]
    assert results == {i: [True] * (2 * rounds) for i in range(20)}
    assert sim.model.lines_executed - before == 20 * rounds * 2  # none lost, none repeated
    assert sim.connections_accepted == 1


# ---- the instrument's availability ------------------------------------------------------------

def test_the_service_starts_while_the_instrument_is_off(dl_service, dl_interface):
    port = free_port()
    config, n = scpi_config(port)
    service = dl_service(config)
    err = code_of(dl_interface.get, n["volt"])
    assert err.return_code == 201 and str(port) in err.message
    with SimulatedSCPIInstrument(port=port):
        assert dl_interface.set(n["volt"], 6) == "6.0"
        assert dl_interface.get(service.name, specifier="connected") == {"values": [True]}


def test_the_instrument_restarts_mid_session(dl_service, dl_interface):
    port = free_port()
    first = SimProcess(port)
    try:
        config, n = scpi_config(port)
        dl_service(config)
        assert dl_interface.set(n["volt"], 7) == "7.0"
        first.kill()
        assert code_of(dl_interface.get, n["volt"]).return_code == 201
        second = SimProcess(port)
        try:
            # a new instrument (its set-point is back to 0) on a new connection, by itself
            assert dl_interface.get(n["volt"])["value_raw"] == "0.0"
            assert dl_interface.set(n["volt"], 8) == "8.0"
            second.kill()
            third = SimProcess(port)
            try:  # restarted between two requests: the stale socket is noticed, no error at all
                assert dl_interface.get(n["volt"])["value_raw"] == "0.0"
            finally:
                third.kill()
        finally:
            second.kill()
    finally:
        first.kill()


def test_the_example_configuration(dl_service, dl_interface, sim):
    config = yaml.safe_load(EXAMPLE.read_text())
    config["name"] = unique_name("scpi_demo")
    config["socket_info"] = f"('127.0.0.1', {sim.port})"
    names = {}
    for ep in config["endpoints"]:
        names[ep["name"]] = ep["name"] = unique_name(ep["name"])
    dl_service(config)
    assert dl_interface.get(names["identity"]) == {"value_raw": "dripline,SIM-SCPI"}
    assert dl_interface.set(names["voltage"], 2.5) == "2.5"
    assert dl_interface.set(names["output"], "on") == "1"
    assert dl_interface.get(names["current"]) == {"value_raw": "0.025", "value_cal": 25.0}


# ---- the controls guide's walkthrough: one query per connection -------------------------------

def guide_config(port: int) -> tuple[dict, dict]:
    """The walkthrough's service file with unique names and the simulator's port."""
    config = yaml.safe_load(GUIDE_EXAMPLE.read_text())
    config["name"] = unique_name("my_device")
    config["socket_info"] = f"('127.0.0.1',{port})"
    config["heartbeat_interval_s"] = 0
    names = {}
    for ep in config["endpoints"]:
        names[ep["name"]] = ep["name"] = unique_name(ep["name"])
    return config, names


def executed_lines(port: int) -> int:
    """SIM:COUNt? on a connection of its own (the guide-like simulator answers one line each)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"SIM:COUNt?\n")
        return int(sock.makefile("rb").readline())


def test_the_guide_walkthrough_gets_and_sets(dl_service, dl_interface):
    port = free_port()
    device = SimProcess(port, "--profile", "guide", "--one-query-per-connection")
    try:
        config, n = guide_config(port)
        service = dl_service(config)
        idn = dl_interface.get(n["idn"])["value_raw"]
        assert idn.startswith("dripline,SIM-SCPI")
        assert dl_interface.set(n["voltage"], 5) == "5.0"
        assert dl_interface.get(n["voltage"]) == {"value_raw": "5.0"}
        assert dl_interface.get(service.name, specifier="keeps_connections") == {"values": [False]}
        assert dl_interface.get(n["opt"]) == {"value_raw": "SIM-OPT-A,SIM-OPT-B"}
        assert dl_interface.set(n["frequency"], 60) == "60.0"
        assert dl_interface.get(n["frequency"]) == {"value_raw": "60.0"}
        assert dl_interface.get(n["READ"]) == {"value_raw": "12.5"}
        assert dl_interface.get(n["idn"])["value_raw"] == idn
        # the device carried out each of the eight requests exactly once
        assert executed_lines(port) == 8
    finally:
        device.kill()


def test_the_guide_walkthrough_with_an_entity_that_never_resends(dl_service, dl_interface):
    port = free_port()
    device = SimProcess(port, "--profile", "guide", "--one-query-per-connection")
    try:
        config, n = guide_config(port)
        for ep in config["endpoints"]:
            if ep["name"] == n["voltage"]:
                ep["resend_on_timeout"] = "never"
        dl_service(config)
        assert dl_interface.get(n["idn"])["value_raw"].startswith("dripline,SIM-SCPI")
        err = code_of(dl_interface.get, n["voltage"])  # silence on the used connection, no resend
        assert err.return_code == 202 and "resend_on_timeout: never" in err.message
        assert dl_interface.get(n["voltage"]) == {"value_raw": "3.3"}  # a new connection
        assert executed_lines(port) == 2
    finally:
        device.kill()
