"""Check a service configuration against the classes it names, before anything connects.

The reference passes every YAML key to the constructors and either ignores misspellings (service
level) or dies with a bare TypeError (endpoint level). Here each key is checked against the
keywords the class and its bases accept, and every problem names the file, the object, the key and
the closest valid keywords.
"""
from __future__ import annotations

import contextlib
import contextvars
import difflib
import inspect
from dataclasses import dataclass
from typing import Iterator

from dripline.protocol.errors import ConfigError
from dripline.assembly.objects import find_class

__all__ = ["Problem", "accepted_keywords", "check_service_config", "config_check", "checking_only"]

# keys dl-serve consumes itself at the top level, whatever the service class
SERVE_KEYS = {"module", "module_path", "auth_file", "auth_groups", "dripline_mesh", "runtime-config"}


@dataclass
class Problem:
    where: str          # "service 'my_store'" or "endpoint 'peaches'"
    key: str
    suggestions: list[str]
    fatal: bool
    source: str | None = None

    def __str__(self) -> str:
        hint = f"; did you mean {' or '.join(repr(s) for s in self.suggestions)}?" if self.suggestions else ""
        src = f"{self.source}: " if self.source else ""
        return f"{src}{self.where}: unknown keyword {self.key!r}{hint}"


def accepted_keywords(cls: type) -> set[str]:
    """Keyword names `cls(...)` accepts, following **kwargs up through the base classes."""
    names: set[str] = set()
    for klass in inspect.getmro(cls):
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            params = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            break
        passes_on = False
        for p in params:
            if p.kind is p.VAR_KEYWORD:
                passes_on = True
            elif p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self":
                names.add(p.name)
        if not passes_on:
            break
    return names


def _check(conf: dict, default_module: str, where: str, fatal: bool, source: str | None,
           base_dir: str | None, ignore: set[str]) -> list[Problem]:
    module = conf.get("module") or default_module
    try:
        cls = find_class(module, conf.get("module_path"), base_dir)
    except ConfigError as err:  # unknown module, broken module_path: say where, as for keywords
        src = f"{source}: " if source else ""
        raise ConfigError(f"{src}{where}: {err.message}") from None
    accepted = accepted_keywords(cls) | ignore | {"module", "module_path"}
    problems = []
    for key in conf:
        if key not in accepted:
            close = difflib.get_close_matches(key, sorted(accepted - {"module", "module_path"}), n=3, cutoff=0.6)
            problems.append(Problem(where, key, close, fatal, source))
    return problems


def check_service_config(config: dict, source: str | None = None, base_dir: str | None = None,
                         strict: bool = False) -> list[Problem]:
    """Problems in a dl-serve configuration; raises ConfigError for a structural error."""
    if not isinstance(config, dict):
        raise ConfigError(f"{source or 'configuration'}: the top level must be a mapping")
    name = config.get("name", "dlpy_service")
    problems = _check(config, "Service", f"service {name!r}", strict, source, base_dir, SERVE_KEYS)
    endpoints = config.get("endpoints") or []
    if not isinstance(endpoints, list):
        raise ConfigError(f"{source or 'configuration'}: 'endpoints' must be a list of mappings, "
                          f"not {type(endpoints).__name__}")
    seen: set[str] = set()
    for i, ep in enumerate(endpoints):
        if not isinstance(ep, dict):
            raise ConfigError(f"{source or 'configuration'}: endpoints[{i}] must be a mapping, not {ep!r}")
        ep_name = ep.get("name")
        if not ep_name or not isinstance(ep_name, str):
            raise ConfigError(f"{source or 'configuration'}: endpoints[{i}] has no 'name'")
        if "." in ep_name:
            raise ConfigError(f"{source or 'configuration'}: endpoint name {ep_name!r} contains '.', "
                              "which routing keys cannot carry")
        if ep_name in seen or ep_name == name:
            raise ConfigError(f"{source or 'configuration'}: endpoint name {ep_name!r} is used twice")
        seen.add(ep_name)
        problems += _check(ep, "Endpoint", f"endpoint {ep_name!r}", True, source, base_dir, set())
    return problems


# ---------------------------------------------------------------------------------------------
# dl-serve --check builds every object without touching the network

_checking: contextvars.ContextVar[bool] = contextvars.ContextVar("dripline_config_check",
                                                                 default=False)


def checking_only() -> bool:
    """True while objects are built only to check a configuration (``dl-serve --check``).

    Constructors that would contact hardware or a database (EthernetSCPIService connecting to its
    instrument, the SQL classes reading tables or running setup SQL) skip that while this is
    true; everything else (keywords, types, values) is checked as in a real build.
    """
    return _checking.get()


@contextlib.contextmanager
def config_check() -> Iterator[None]:
    """Within this block `checking_only()` is true (see there)."""
    token = _checking.set(True)
    try:
        yield
    finally:
        _checking.reset(token)
