"""The endpoints a service owns: name rules, and the hook that builds them from configuration.

Why a hook: turning ``{name: peaches, module: KeyValueStore}`` into an object means finding
classes in plugins, files and packages — the assembly's job (`dripline.assembly.objects`), which
the service package must not import (ARCHITECTURE.md). The assembly installs its builder here when
it is imported (``dl-serve``, ``dripline.core`` and ``dripline.testing`` all import it), so that
the reference's ``Service(endpoints=[{...}])`` and a subclass calling
``self.add_endpoints_from_config()`` keep working; `Service` only ever calls `build_endpoints`.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from dripline.protocol.errors import ConfigError, DriplineError
from dripline.service.endpoint import Endpoint

__all__ = ["EndpointBuilder", "build_endpoints", "check_child_name", "install_endpoint_builder"]

#: builder(service, configs): build each endpoint mapping and attach it with service.add_child
EndpointBuilder = Callable[[Any, list], None]

_builder: EndpointBuilder | None = None


def install_endpoint_builder(builder: EndpointBuilder) -> None:
    """Make `builder` the one `Service.add_endpoints_from_config` uses (the assembly calls this)."""
    global _builder
    _builder = builder


def build_endpoints(service: Any, configs: list) -> None:
    """Attach every entry of `configs`: Endpoint objects as they are, mappings through the builder."""
    mappings = []
    for conf in configs:
        if isinstance(conf, Endpoint):
            service.add_child(conf)
        else:
            mappings.append(conf)
    if not mappings:
        return
    if _builder is None:
        raise ConfigError(f"service {service.name!r}: endpoints given as mappings are built by "
                          "dripline.assembly; import dripline.assembly.objects (dripline.core and "
                          "dl-serve do) or pass Endpoint objects")
    _builder(service, mappings)


def check_child_name(service_name: str, name: Any, taken: Iterable[str]) -> None:
    """DriplineError 300 unless `name` can be routed and is not used in this service yet."""
    if not isinstance(name, str) or "." in name or not name:
        raise DriplineError(f"endpoint name {name!r} is not usable as a routing key "
                            "(it must be non-empty and contain no '.')", 300)
    if name == service_name or name in taken:
        raise DriplineError(f"service {service_name!r} already has an endpoint named {name!r}; "
                            "endpoint names must be unique", 300)
