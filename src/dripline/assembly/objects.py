"""Turn a YAML mapping (`module: KeyValueStore`, keywords...) into an object.

Resolution order for the class name (reference §9.3): the file given as `module_path`; the plugins
(`dripline.assembly.plugins`: the `dripline.extensions` namespace and entry points); `dripline.implementations`;
`dripline.core`. Unlike the reference, an unknown name fails with the closest known names and the
places searched; a name two plugins offer is an error naming both (`module: <plugin>.<Class>` picks
one); and a dotted ``module: package.module.Class`` naming an Endpoint subclass is imported directly.

A relative `module_path` is read relative to the directory of the YAML file (dl-serve passes it as
`base_dir`); endpoints built while their service is being built inherit that directory.

A service's `endpoints` mappings are built here too (`attach_endpoints`, installed into
`dripline.service.children` when this module is imported): each endpoint is created and handed to
``service.add_child``, and an error raised while building one carries that endpoint's name
(`failing_endpoint`), so that dl-serve can say which one it was.
"""
from __future__ import annotations

import contextvars
import difflib
import importlib
import importlib.util
import logging
import os
import re
import sys
from typing import Any

from dripline.protocol.errors import ConfigError
from dripline.service.children import install_endpoint_builder
from dripline.service.options import positive_interval

__all__ = ["ObjectCreator", "attach_endpoints", "create_object", "failing_endpoint", "find_class",
           "known_class_names", "load_module_path", "missing_dependency"]

logger = logging.getLogger(__name__)

_path_modules: dict[str, Any] = {}
# directory of the YAML file whose objects are being built (for endpoints' relative module_path)
_base_dir: contextvars.ContextVar[str | None] = contextvars.ContextVar("dripline_base_dir", default=None)


def load_module_path(path: str, base_dir: str | None = None) -> Any:
    """Import a single .py file (a `module_path` entry), relative to base_dir when not absolute
    (and, as the reference does, relative to the working directory when it is not there)."""
    full = path if os.path.isabs(path) or base_dir is None else os.path.join(base_dir, path)
    full = os.path.abspath(full)
    if not os.path.isfile(full) and not os.path.isabs(path) and os.path.isfile(path):
        full = os.path.abspath(path)
    if full in _path_modules:
        return _path_modules[full]
    if not os.path.isfile(full):
        raise ConfigError(f"module_path {path!r}: no such file ({full})")
    name = "dripline_module_path_" + str(len(_path_modules))
    spec = importlib.util.spec_from_file_location(name, full)
    if spec is None or spec.loader is None:
        raise ConfigError(f"module_path {path!r}: not a Python file ({full})")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        del sys.modules[name]
        raise ConfigError(f"module_path {path!r} could not be imported: {type(err).__name__}: {err}") from err
    _path_modules[full] = module
    return module


def _plugins() -> Any:
    try:
        from dripline.assembly import plugins
    except ImportError:  # pragma: no cover - plugin discovery not available
        return None
    return plugins


def _builtin_spaces() -> list[tuple[str, Any]]:
    return [("dripline.implementations", importlib.import_module("dripline.implementations")),
            ("dripline.core", importlib.import_module("dripline.core"))]


def _import_path(name: str) -> type | None:
    """`package.module.Class` naming an Endpoint subclass, else None."""
    module_name, _, attr = name.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except Exception:
        return None
    cls = getattr(module, attr, None)
    from dripline.service.endpoint import Endpoint
    return cls if isinstance(cls, type) and issubclass(cls, Endpoint) else None


def find_class(name: str, module_path: str | None = None, base_dir: str | None = None) -> type:
    if base_dir is None:
        base_dir = _base_dir.get()
    searched = []
    if module_path:
        module = load_module_path(module_path, base_dir)
        searched.append(f"module_path {module_path}")
        cls = getattr(module, name, None)
        if isinstance(cls, type):
            return cls
    plugins = _plugins()
    if plugins is not None:
        cls = plugins.lookup(name)  # ConfigError when two plugins offer the name
        if cls is not None:
            return cls
        searched.extend(plugins.searched_places())
    for label, space in _builtin_spaces():
        searched.append(label)
        try:
            cls = getattr(space, name)
        except ModuleNotFoundError as err:
            missing = (err.name or "").split(".")[0]
            if missing and missing != "dripline":  # a built-in class whose dependency is absent
                raise ConfigError(f"module {name!r}: {missing_dependency(missing)}") from None
            continue
        except (AttributeError, ImportError):
            continue
        if isinstance(cls, type):
            return cls
    if "." in name:
        cls = _import_path(name)
        if cls is not None:
            return cls
        searched.append(f"import path {name}")
    close = difflib.get_close_matches(name, known_class_names(module_path, base_dir), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    broken = ""
    if plugins is not None:
        failed = [p for p in plugins.problems() if p.kind == "broken plugin"]
        if failed:
            broken = (" Note: " + "; ".join(p.message for p in failed)
                      + " — the class may come from " + ("it" if len(failed) == 1 else "one of them") + ".")
    raise ConfigError(f"unknown module {name!r} (searched: {'; '.join(searched)}){hint or '.'} "
                      f"`dl-serve --list` shows every class that can be built; a plugin's classes "
                      f"appear only when the plugin is installed for this Python ({sys.executable})."
                      f"{broken}")


def missing_dependency(module: str) -> str:
    """What to say when the Python package `module` is missing: the dripline extra that installs
    it (from dripline's own metadata, so it cannot drift), else the package itself."""
    fix = f"pip install {module}"
    try:
        from importlib import metadata
        requires = metadata.requires("dripline") or []
    except Exception:  # dripline not installed as a distribution (a source tree on sys.path)
        requires = []
    wanted = module.lower().replace("-", "_")
    extras = []
    for req in requires:
        match = re.match(r"\s*([A-Za-z0-9_.-]+)", req)
        extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", req)
        if match and extra and match.group(1).lower().replace("-", "_") == wanted:
            extras.append(extra.group(1))
    chosen = [e for e in extras if e not in ("test", "docs")] or extras
    if chosen:
        fix = f"pip install 'dripline[{chosen[0]}]'"
    return (f"it needs the Python package {module!r}, which is not installed for this Python "
            f"({sys.executable}); install it with: {fix}")


def known_class_names(module_path: str | None = None, base_dir: str | None = None) -> list[str]:
    names: set[str] = set()
    if module_path:
        try:
            module = load_module_path(module_path, base_dir if base_dir is not None else _base_dir.get())
            names.update(n for n, v in vars(module).items() if isinstance(v, type))
        except ConfigError:
            pass
    plugins = _plugins()
    if plugins is not None:
        names.update(plugins.class_names())
    for _, space in _builtin_spaces():
        for n in getattr(space, "__all__", None) or dir(space):
            if n[:1].isupper():
                names.add(n)
    return sorted(names)


def create_object(config: dict, default_module: str, auth: Any = None, base_dir: str | None = None) -> Any:
    """Build the object a config mapping describes; `config` is consumed (reference behaviour)."""
    module = config.pop("module", None) or default_module
    module_path = config.pop("module_path", None)
    if base_dir is None:
        base_dir = _base_dir.get()
    cls = find_class(module, module_path, base_dir)
    logger.debug("creating %s from %s", module, cls.__module__)
    token = _base_dir.set(base_dir)  # endpoints built by this object's constructor
    try:
        if auth is not None:
            return cls(authentication_obj=auth, **config)
        return cls(**config)
    finally:
        _base_dir.reset(token)


_ENDPOINT_ATTRIBUTE = "dripline_endpoint"


def attach_endpoints(service: Any, configs: list) -> None:
    """Build each endpoint mapping of `configs` and attach it with ``service.add_child``.

    An entity with a positive `log_interval` starts logging (the reference does this here too).
    An exception names the endpoint being built (`failing_endpoint`).
    """
    for conf in configs:
        name = conf.get("name") if isinstance(conf, dict) else None
        try:
            endpoint = create_object(dict(conf), "Endpoint")
            service.add_child(endpoint)
            if positive_interval(getattr(endpoint, "log_interval", 0)):
                endpoint.start_logging()
        except Exception as err:
            if isinstance(name, str) and getattr(err, _ENDPOINT_ATTRIBUTE, None) is None:
                try:  # the innermost endpoint wins (an endpoint may build endpoints of its own)
                    setattr(err, _ENDPOINT_ATTRIBUTE, name)
                except AttributeError:  # an exception type with __slots__
                    pass
            raise


def failing_endpoint(err: BaseException) -> str | None:
    """The name of the endpoint whose building raised `err`, when it was one."""
    name = getattr(err, _ENDPOINT_ATTRIBUTE, None)
    return name if isinstance(name, str) else None


install_endpoint_builder(attach_endpoints)


class ObjectCreator:
    """Reference-era name: ObjectCreator().create_object(config, default_module, auth)."""

    def create_object(self, config: dict, default_module: str, auth: Any = None) -> Any:
        return create_object(config, default_module, auth)
