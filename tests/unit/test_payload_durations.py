"""Durations in payloads go out as seconds (the unit of the YAML interval keywords), silently."""
from __future__ import annotations

import logging
from datetime import timedelta

from dripline.protocol.message import dumps_payload, loads_payload


def test_a_timedelta_is_sent_as_seconds_without_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        body = dumps_payload({"log_interval": timedelta(seconds=10), "nested": [timedelta(minutes=1)]})
    assert loads_payload(body) == {"log_interval": 10.0, "nested": [60.0]}
    assert "cannot be represented" not in caplog.text


def test_describe_of_an_entity_reports_its_interval_in_seconds(caplog):
    from dripline.testing import memory_endpoint
    with caplog.at_level(logging.WARNING), \
            memory_endpoint("KeyValueStore", name="kv", log_interval=5) as kv:
        payload = kv.cmd("describe")  # through the real dispatch and codec
    assert payload["settings"]["log_interval"] == 5.0
    assert "cannot be represented" not in caplog.text
