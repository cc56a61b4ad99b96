"""Turn a YAML mapping (`module: KeyValueStore`, keywords...) into an object.

Resolution order for the class name (reference §9.3): the file given as `module_path`; the
`dripline.extensions` namespace (plugins); `dripline.implementations`; `dripline.core`. Unlike the
reference, an unknown name fails with the closest known names and the places searched.
"""
from __future__ import annotations

import difflib
import importlib
import importlib.util
import logging
import os
import sys
from typing import Any

from .exceptions import ConfigError

__all__ = ["ObjectCreator", "create_object", "find_class", "known_class_names", "load_module_path"]

logger = logging.getLogger(__name__)

_path_modules: dict[str, Any] = {}


def load_module_path(path: str, base_dir: str | None = None) -> Any:
    """Import a single .py file (a `module_path` entry), relative to base_dir when not absolute."""
    full = path if os.path.isabs(path) or base_dir is None else os.path.join(base_dir, path)
    full = os.path.abspath(full)
    if full in _path_modules:
        return _path_modules[full]
    if not os.path.isfile(full):
        raise ConfigError(f"module_path {path!r}: no such file ({full})")
    name = "dripline_module_path_" + str(len(_path_modules))
    spec = importlib.util.spec_from_file_location(name, full)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        del sys.modules[name]
        raise ConfigError(f"module_path {path!r} could not be imported: {type(err).__name__}: {err}") from err
    _path_modules[full] = module
    return module


def _namespaces() -> list[tuple[str, Any]]:
    """(label, object with attributes) in resolution order, after module_path."""
    spaces: list[tuple[str, Any]] = []
    try:
        from dripline import plugins
        spaces.extend(plugins.class_namespaces())
    except ImportError:  # plugin discovery not available
        pass
    spaces.append(("dripline.implementations", importlib.import_module("dripline.implementations")))
    spaces.append(("dripline.core", importlib.import_module("dripline.core")))
    return spaces


def find_class(name: str, module_path: str | None = None, base_dir: str | None = None) -> type:
    searched = []
    if module_path:
        module = load_module_path(module_path, base_dir)
        searched.append(f"module_path {module_path}")
        cls = getattr(module, name, None)
        if isinstance(cls, type):
            return cls
    for label, space in _namespaces():
        searched.append(label)
        try:
            cls = getattr(space, name)
        except (AttributeError, ImportError):
            continue
        if isinstance(cls, type):
            return cls
    close = difflib.get_close_matches(name, known_class_names(module_path, base_dir), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ConfigError(f"unknown module {name!r} (searched: {', '.join(searched)}){hint}. "
                      "`dl-serve --list` shows every class that can be built")


def known_class_names(module_path: str | None = None, base_dir: str | None = None) -> list[str]:
    names: set[str] = set()
    if module_path:
        try:
            module = load_module_path(module_path, base_dir)
            names.update(n for n, v in vars(module).items() if isinstance(v, type))
        except ConfigError:
            pass
    for _, space in _namespaces():
        for n in getattr(space, "__all__", None) or dir(space):
            if n[:1].isupper():
                names.add(n)
    return sorted(names)


def create_object(config: dict, default_module: str, auth: Any = None, base_dir: str | None = None) -> Any:
    """Build the object a config mapping describes; `config` is consumed (reference behaviour)."""
    module = config.pop("module", None) or default_module
    module_path = config.pop("module_path", None)
    cls = find_class(module, module_path, base_dir)
    logger.debug("creating %s from %s", module, cls.__module__)
    if auth is not None:
        return cls(authentication_obj=auth, **config)
    return cls(**config)


class ObjectCreator:
    """Reference-era name: ObjectCreator().create_object(config, default_module, auth)."""

    def create_object(self, config: dict, default_module: str, auth: Any = None) -> Any:
        return create_object(config, default_module, auth)
