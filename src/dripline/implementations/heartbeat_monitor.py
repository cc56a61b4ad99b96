"""HeartbeatMonitor: watch the heartbeats of the services on a mesh and raise the alarm when one stops.

Every service sends ``heartbeat.<service name>`` every `heartbeat_interval_s` (60 s by default).
The monitor keeps one `HeartbeatTracker` endpoint per watched service and, every
`time_between_checks_s`, rates the time since that service's last heartbeat: OK, WARNING (more than
`warning_threshold_s`), CRITICAL (more than `critical_threshold_s`), or UNKNOWN (tracker switched
off with ``set <tracker> false`` or ``is_active``). ::

    name: hbmon
    module: HeartbeatMonitor
    time_between_checks_s: 20
    warning_threshold_s: 120
    critical_threshold_s: 300
    endpoints:
      - name: hbmon_my_store
        module: HeartbeatTracker
        service_name: my_store

Beyond the reference:
* A service the monitor has not heard of is added (``hbmon_<service>``, with
  `add_unknown_heartbeats`) and can be asked at once (``dl-agent get hbmon_<service>``); the
  reference could not bind new endpoints while running.
* Every change of a service's status is sent as an alert ``status_message.<monitor>.<severity>``
  (severity ``ok``, ``warning``, ``critical`` or ``unknown``) with a readable text payload, so a
  notifier (or ``dl-mon -a 'status_message.#'``) sees problems without reading the logs.
* ``get`` on the monitor returns the report (services grouped by status, with the seconds since
  their last heartbeat); ``get`` on a tracker returns that service's status.
* The age of a heartbeat is measured from when the monitor received it, not from the sender's
  timestamp, so a clock that is off on another host does not raise false alarms.
* Without configuration, `alert_keys` is ``["heartbeat.#"]`` and `alert_key_parser_re` takes the
  service name from the second token; an alert without a service name is logged and ignored
  (the reference stops the service).
* The checks run on the service's worker thread (no extra thread); an error in one check is logged
  and the next check runs as usual.
"""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from enum import Enum
from typing import Any, cast

from dripline.service.alert_consumer import AlertConsumer
from dripline.service.endpoint import Endpoint
from dripline.protocol.errors import ConfigError

__all__ = ["HeartbeatMonitor", "HeartbeatTracker"]

logger = logging.getLogger(__name__)

STATUS_PREFIX = "status_message"


class HeartbeatTracker(Endpoint):
    """The heartbeat state of one monitored service (`service_name`; default: the endpoint name)."""

    class Status(Enum):
        OK = 0
        WARNING = 1
        CRITICAL = 2
        UNKNOWN = -1

    def __init__(self, service_name: str | None = None, **kwargs: Any) -> None:
        Endpoint.__init__(self, **kwargs)
        self.service_name = service_name or self.name
        self.last_timestamp = time.time()
        self.last_sent_timestamp: str | None = None
        self.heartbeats = 0
        self.is_active = True
        self.status = HeartbeatTracker.Status.UNKNOWN

    def process_heartbeat(self, timestamp: str | None = None) -> None:
        """Record a heartbeat, received now (`timestamp`, the sender's clock, is kept for reports)."""
        self.last_timestamp = time.time()
        self.last_sent_timestamp = timestamp or None
        self.heartbeats += 1

    def check_delay(self, now: float | None = None) -> dict[str, Any]:
        """Rate the time since the last heartbeat; updates and returns the status."""
        diff = (time.time() if now is None else now) - self.last_timestamp
        monitor = cast("HeartbeatMonitor", self.service)  # a tracker belongs to a monitor
        if not self.is_active:
            status = HeartbeatTracker.Status.UNKNOWN
        elif diff > monitor.critical_threshold_s:
            status = HeartbeatTracker.Status.CRITICAL
        elif diff > monitor.warning_threshold_s:
            status = HeartbeatTracker.Status.WARNING
        else:
            status = HeartbeatTracker.Status.OK
        self.status = status
        return {"status": status, "time_since_last_hb": diff}

    def on_get(self) -> dict[str, Any]:
        return {
            "service_name": self.service_name,
            "status": self.status.name,
            "time_since_last_hb": round(time.time() - self.last_timestamp, 3),
            "heartbeats": self.heartbeats,
            "last_heartbeat": (datetime.fromtimestamp(self.last_timestamp, timezone.utc).isoformat()
                               if self.heartbeats else None),
            "is_active": self.is_active,
        }

    def on_set(self, value: Any) -> None:
        """``set <tracker> false`` stops rating the service (status UNKNOWN); true resumes."""
        if isinstance(value, str):
            value = value.strip().lower() not in ("false", "0", "no", "off", "")
        self.is_active = bool(value)


class HeartbeatMonitor(AlertConsumer):
    """An alert consumer that rates the heartbeats of services (see the module documentation)."""

    def __init__(self, time_between_checks_s: float = 20, warning_threshold_s: float = 120,
                 critical_threshold_s: float = 300, add_unknown_heartbeats: bool = True,
                 endpoint_name_prefix: str = "hbmon_", **kwargs: Any) -> None:
        """
        Args:
            time_between_checks_s: seconds between two ratings of every watched service.
            warning_threshold_s: a service silent for longer than this is WARNING.
            critical_threshold_s: a service silent for longer than this is CRITICAL.
            add_unknown_heartbeats: start tracking a service as soon as its first heartbeat
                arrives, as endpoint ``<endpoint_name_prefix><service>``.
            endpoint_name_prefix: the name prefix of the trackers added that way.
        """
        add_now = kwargs.pop("add_endpoints_now", True)
        default_keys = kwargs.get("alert_keys") is None
        default_re = not kwargs.get("alert_key_parser_re")
        AlertConsumer.__init__(self, add_endpoints_now=False, **kwargs)
        prefix = self.core.heartbeat_routing_key
        if default_keys:
            self.alert_keys = [f"{prefix}.#"]
        if default_re:
            self.alert_key_parser_re = rf"{_re_escape(prefix)}\.(?P<service_name>[^.]+)"
            import re
            self._alert_regex = re.compile(self.alert_key_parser_re)
        for option, value in (("time_between_checks_s", time_between_checks_s),
                              ("warning_threshold_s", warning_threshold_s),
                              ("critical_threshold_s", critical_threshold_s)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(f"service {self.name!r}: {option} must be a positive number of "
                                  f"seconds, not {value!r}")
        if critical_threshold_s < warning_threshold_s:
            raise ConfigError(f"service {self.name!r}: critical_threshold_s ({critical_threshold_s}) "
                              f"is below warning_threshold_s ({warning_threshold_s})")
        self.time_between_checks_s = float(time_between_checks_s)
        self.warning_threshold_s = float(warning_threshold_s)
        self.critical_threshold_s = float(critical_threshold_s)
        self.add_unknown_heartbeats = bool(add_unknown_heartbeats)
        self.endpoint_name_prefix = endpoint_name_prefix or ""
        self.monitoring_names: dict[str, str] = {}
        if add_now:
            self.add_endpoints_from_config()

    def add_child(self, endpoint: Endpoint) -> bool:
        result = AlertConsumer.add_child(self, endpoint)
        if isinstance(endpoint, HeartbeatTracker):
            self.monitoring_names[endpoint.service_name] = endpoint.name
        return result

    @property
    def trackers(self) -> list[HeartbeatTracker]:
        return [e for e in list(self.sync_children.values()) if isinstance(e, HeartbeatTracker)]

    # ------------------------------------------------------------------ heartbeats in
    def process_payload(self, payload: Any, routing_key_data: dict[str, Any], timestamp: str) -> None:
        service_name = routing_key_data.get("service_name")
        if not service_name:
            plain = payload.to_python() if hasattr(payload, "to_python") else payload
            service_name = plain.get("name") if isinstance(plain, dict) else None
        if not service_name:
            logger.warning("%s: heartbeat without a service name (routing key data %r); ignored",
                           self.name, routing_key_data)
            return
        endpoint_name = self.monitoring_names.get(service_name)
        if endpoint_name is None:
            if not self.add_unknown_heartbeats:
                logger.debug("%s: heartbeat from unmonitored service %s ignored", self.name, service_name)
                return
            endpoint_name = f"{self.endpoint_name_prefix}{service_name}"
            tracker = HeartbeatTracker(service_name=service_name, name=endpoint_name)
            self.add_child(tracker)
            logger.info("%s: now monitoring the heartbeats of %s (endpoint %s)", self.name,
                        service_name, endpoint_name)
        child = self.sync_children.get(endpoint_name)
        if isinstance(child, HeartbeatTracker):
            child.process_heartbeat(timestamp)

    # ------------------------------------------------------------------ checks
    def run_checks(self) -> dict[HeartbeatTracker.Status, list[dict[str, Any]]]:
        """Rate every tracker now; status changes are announced. Returns the reference's report
        shape: {Status: [{"name", "time_since_last_hb"}, ...]}."""
        report: dict[HeartbeatTracker.Status, list[dict[str, Any]]] = {s: [] for s in (
            HeartbeatTracker.Status.OK, HeartbeatTracker.Status.WARNING,
            HeartbeatTracker.Status.CRITICAL, HeartbeatTracker.Status.UNKNOWN)}
        now = time.time()
        for tracker in self.trackers:
            try:
                before = tracker.status
                result = tracker.check_delay(now)
                report[result["status"]].append({"name": tracker.name,
                                                 "service_name": tracker.service_name,
                                                 "time_since_last_hb": result["time_since_last_hb"]})
                if result["status"] is not before:
                    self.on_status_change(tracker, before, result["status"], result["time_since_last_hb"])
            except Exception:
                logger.exception("%s: cannot rate the heartbeats of %s", self.name, tracker.name)
        return report

    def on_status_change(self, tracker: HeartbeatTracker, before: HeartbeatTracker.Status,
                         after: HeartbeatTracker.Status, age_s: float) -> None:
        """Announce a status change as ``status_message.<monitor>.<severity>`` (override to add more)."""
        text = (f"{tracker.service_name}: heartbeat status {after.name} (was {before.name}); "
                f"last heartbeat {age_s:.1f} s ago")
        level = {HeartbeatTracker.Status.CRITICAL: logging.ERROR,
                 HeartbeatTracker.Status.WARNING: logging.WARNING}.get(after, logging.INFO)
        logger.log(level, "%s: %s", self.name, text)
        if not self.make_connection:
            return
        try:
            self.send_alert(f"{STATUS_PREFIX}.{self.name}.{after.name.lower()}", text)
        except Exception as err:
            logger.warning("%s: could not send the status message: %s", self.name, err)

    def process_report(self, report_data: dict[HeartbeatTracker.Status, list[dict[str, Any]]]) -> None:
        """Log the report of one check (override to handle it differently)."""
        for status, level in ((HeartbeatTracker.Status.CRITICAL, logging.ERROR),
                              (HeartbeatTracker.Status.WARNING, logging.WARNING),
                              (HeartbeatTracker.Status.OK, logging.DEBUG),
                              (HeartbeatTracker.Status.UNKNOWN, logging.DEBUG)):
            entries = report_data.get(status) or []
            if entries:
                logger.log(level, "%s: services with %s status: %s", self.name, status.name,
                           ", ".join(f"{e['service_name']} ({e['time_since_last_hb']:.0f} s)" for e in entries))

    def monitor_once(self) -> dict[HeartbeatTracker.Status, list[dict[str, Any]]]:
        report = self.run_checks()
        self.process_report(report)
        return report

    def report(self) -> dict[str, list[dict[str, Any]]]:
        """The current report as plain data: {"OK": [...], "WARNING": [...], ...}."""
        return {status.name: [dict(e, time_since_last_hb=round(e["time_since_last_hb"], 3))
                              for e in entries]
                for status, entries in self.run_checks().items()}

    def on_get(self) -> dict[str, list[dict[str, Any]]]:
        return self.report()

    def do_get(self) -> dict[str, list[dict[str, Any]]]:
        return self.report()

    # ------------------------------------------------------------------ lifecycle
    async def listen(self) -> None:
        self.runtime.spawn(self._monitor_loop())
        await super().listen()

    async def _monitor_loop(self) -> None:
        while True:
            self.runtime.run_on_worker(self.monitor_once)
            await asyncio.sleep(self.time_between_checks_s)


def _re_escape(text: str) -> str:
    import re
    return re.escape(text)
