"""The process identity (dripline.client.identity): what a sender stamps on its messages, and the
purity of the protocol package (building a message reads nothing and discovers no plugin)."""
from __future__ import annotations

import subprocess
import sys
import textwrap

from dripline.client import identity
from dripline.client.identity import SenderIdentity, process_identity, sender_info_for
from dripline.protocol.version import PROTOCOL_VERSION

SENDER_KEYS = {"exe", "hostname", "username", "service_name", "versions"}


def test_sender_info_is_cached_per_service_and_follows_the_versions():
    a = sender_info_for("svc_a")
    assert a is sender_info_for("svc_a")
    b = sender_info_for("svc_b")
    assert b is not a and b["service_name"] == "svc_b" and a["service_name"] == "svc_a"
    assert set(a) == SENDER_KEYS
    assert a["versions"]["dripline"] == {"version": PROTOCOL_VERSION}
    assert a["versions"]["dripline-python"]["package"] == "driplineorg/dripline-python"
    identity.add_version("test-plugin-xyz", "1.2.3")
    try:
        c = sender_info_for("svc_a")
        assert c is not a and c["versions"]["test-plugin-xyz"] == {"version": "1.2.3"}
        assert (c["exe"], c["hostname"], c["username"]) == (a["exe"], a["hostname"], a["username"])
    finally:
        identity.remove_version("test-plugin-xyz")
    assert "test-plugin-xyz" not in sender_info_for("svc_a")["versions"]


def test_version_entries_keep_only_what_is_set():
    class Semantic:  # what scarab.VersionSemantic offers
        version, commit, package = "1.0.0", "", "me/pkg"
    identity.add_version("test-sem", Semantic())
    identity.add_version("test-map", {"version": "2", "commit": "abc", "other": "x"})
    try:
        table = identity.get_versions()
        assert table["test-sem"] == {"version": "1.0.0", "package": "me/pkg"}
        assert table["test-map"] == {"version": "2", "commit": "abc"}
        assert identity.get_version("test-map") == {"version": "2", "commit": "abc", "other": "x"}
    finally:
        identity.remove_version("test-sem")
        identity.remove_version("test-map")
    assert identity.get_version("test-sem") is None


def test_set_program_names_the_program_not_the_interpreter(monkeypatch):
    monkeypatch.setattr(identity, "_program", None)
    monkeypatch.setattr(identity, "_identity", None)
    identity.set_program("dl-agent")
    assert process_identity().exe == "dl-agent"
    assert sender_info_for()["exe"] == "dl-agent"
    identity.set_program("/usr/local/bin/dl-serve")
    assert sender_info_for("my_store")["exe"] == "/usr/local/bin/dl-serve"


def test_an_identity_is_plain_data():
    me = SenderIdentity("/opt/take_data.py", "daq1", "alice", {"dripline": {"version": "3.0.0"}})
    info = me.sender_info("logger")
    assert info == {"exe": "/opt/take_data.py", "hostname": "daq1", "username": "alice",
                    "service_name": "logger", "versions": {"dripline": {"version": "3.0.0"}}}
    assert me.sender_info("logger") is info


def test_now_timestamp_has_the_wire_form():
    import re
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", identity.now_timestamp())


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=60)


def test_building_and_encoding_a_message_imports_nothing_beyond_the_protocol():
    r = _run("""
        import sys
        import dripline
        from dripline.protocol.message import MsgRequest
        req = MsgRequest.create({"values": [1]}, 1, "peaches")
        req.encode(10000, timestamp="2024-01-01T00:00:00.000000Z")
        ours = sorted(m for m in sys.modules if m.startswith("dripline.")
                      and not m.startswith("dripline.protocol"))
        assert ours == [], ours
        for name in ("socket", "pwd", "getpass", "dripline.assembly.plugins",
                     "dripline.extensions"):
            assert name not in sys.modules, name
        print("ok")
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_import_dripline_registers_nothing():
    r = _run("""
        import sys
        import dripline
        import dripline.protocol.version as v
        assert not hasattr(v, "add_version_source") and not hasattr(v, "get_versions")
        assert sorted(m for m in sys.modules if m.startswith("dripline")) == [
            "dripline", "dripline.protocol", "dripline.protocol.version"]
        print("ok")
    """)
    assert r.returncode == 0, r.stderr
