"""Plugins: the classes, versions and credential groups that installed packages add to dripline.

A plugin is written in one of two ways.

1. **Namespace package** (the reference's layout, see the plugin guide): the distribution ships
   ``dripline/extensions/__init__.py`` (only the ``extend_path`` line) and
   ``dripline/extensions/<plugin>/__init__.py``, which imports the plugin's classes, lists them in
   ``__all__`` and defines ``version`` (a ``scarab.VersionSemantic``).
2. **Entry points** (no namespace folders): the plugin's ``pyproject.toml`` says ::

       [project.entry-points."dripline.extensions"]
       JitterEntity = "my_plugin.jitter:JitterEntity"

   The key is the name YAML files use (``module: JitterEntity``); a value without ``:attribute``
   names a module, all of whose public classes are then offered. The version reported is the
   distribution's.

What discovery does (`discover`, run once per process, on first need — see below):

* every module under ``dripline.extensions`` is imported and is then ``dripline.extensions.<name>``;
  its ``version`` is registered (`dripline.core.add_version`) as ``dripline.extensions.<name>`` and
  so is sent in the ``sender_info.versions`` of every message this process sends afterwards;
* every distribution with ``dripline.extensions`` entry points has its version registered as
  ``dripline.extensions.<distribution>``; its modules are imported only when one of its classes is
  asked for (a class lookup, ``dl-serve --list``);
* a plugin that cannot be imported is logged (which plugin, from where, the error, how to fix it)
  and skipped: it never breaks ``import dripline``, dl-agent, or a service that does not use it.
  `problems()` lists such failures for ``dl-serve --list`` / ``dl-plugin list``.

**When**: not at ``import dripline`` (the reference imports every plugin there), and never
because a message is built or sent: `lookup` (dl-serve building its objects) and the listing
functions run it, which is dl-serve's assembly step filling the process's versions table
(`dripline.client.identity`). ``import dripline`` stays cheap, and a dl-agent or a script never
imports a plugin.

Both regular and editable installs are found, of dripline and of the plugin: ``dripline`` and
``dripline.extensions`` span every matching folder on ``sys.path`` (pkgutil ``extend_path``), and
plugins installed in editable mode through a setuptools import hook (which no folder scan can see)
are read from that hook's module map.

Class names (`lookup`): two plugins offering *different* classes under one name is an error naming
both (never settled by import order, unlike the reference); ``module: <plugin>.<Class>`` picks one.
A plugin's class with the name of a built-in class is used instead of the built-in (plugins come
first, as in the reference); the listing notes it.
"""
from __future__ import annotations

import functools
import importlib
import logging
import os
import pkgutil
import re
import sys
import threading
from typing import Any, Iterator

__all__ = [
    "ENTRY_POINT_GROUP", "AUTH_ENTRY_POINT_GROUP", "NAMESPACE", "Plugin", "ClassInfo", "Problem",
    "discover", "plugins", "problems", "lookup", "class_names", "class_namespaces",
    "available_classes", "auth_groups", "searched_places",
]

logger = logging.getLogger(__name__)

NAMESPACE = "dripline.extensions"
ENTRY_POINT_GROUP = "dripline.extensions"
AUTH_ENTRY_POINT_GROUP = "dripline.auth_groups"
AUTH_HOOK_MODULE = "add_auth_spec"  # dripline.extensions.add_auth_spec (reference hook)
_PREFIX = NAMESPACE + "."


class Plugin:
    """One plugin: a module under dripline.extensions, or a distribution with entry points.

    Attributes: ``name`` ('jitter', or the normalised distribution name), ``kind`` ("namespace" or
    "entry point"), ``module_name`` ('dripline.extensions.jitter'), ``location`` (folder or file),
    ``module`` (the imported module), ``version`` (what sender_info.versions reports),
    ``distribution`` / ``dist_version`` (when known), ``error`` / ``hint`` / ``origin`` (why it
    could not be imported, how to fix it, where it was raised), ``entry_points``,
    ``editable_finder`` (the setuptools editable hook module that maps it).
    """

    # a plain class, not a dataclass: this module is imported by every process that sends
    def __init__(self, name: str, kind: str, module_name: str | None = None,
                 location: str | None = None, distribution: str | None = None,
                 dist_version: str | None = None, editable_finder: str | None = None) -> None:
        self.name = name
        self.kind = kind
        self.module_name = module_name
        self.location = location
        self.module: Any = None
        self.version: Any = None
        self.distribution = distribution
        self.dist_version = dist_version
        self.error: str | None = None
        self.hint: str | None = None
        self.origin: str | None = None
        self.entry_points: list = []
        self.editable_finder = editable_finder
        self._loaded: dict = {}

    def __repr__(self) -> str:
        return f"<Plugin {self.name!r} ({self.kind}{', broken' if self.error else ''})>"

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def version_key(self) -> str:
        return _PREFIX + self.name

    @property
    def version_string(self) -> str:
        v = self.version
        if v is None:
            return self.dist_version or ""
        if isinstance(v, dict):
            return str(v.get("version", ""))
        return str(getattr(v, "version", v))

    def describe(self) -> str:
        where = self.module_name if self.kind == "namespace" else f"distribution {self.distribution}"
        return f"plugin {self.name!r} ({self.kind}: {where}{', at ' + self.location if self.location else ''})"


class ClassInfo:
    """A class dl-serve can build (for `dl-serve --list`): ``name`` (what `module:` says), ``kind``
    ("Service" or "Endpoint"), ``source`` (plugin, or dripline.core / dripline.implementations),
    ``package`` (distribution), ``version``, ``qualname`` (module.Class), ``cls``."""

    __slots__ = ("name", "kind", "source", "package", "version", "qualname", "cls")

    def __init__(self, name: str, kind: str, source: str, package: str, version: str,
                 qualname: str, cls: Any = None) -> None:
        self.name, self.kind, self.source, self.package = name, kind, source, package
        self.version, self.qualname, self.cls = version, qualname, cls

    def __repr__(self) -> str:
        return f"<ClassInfo {self.name} {self.kind} from {self.source}>"


class Problem:
    """``kind``: "broken plugin", "ambiguous name", "shadowed built-in" or "unavailable built-in";
    ``message``; ``hint`` (how to fix it)."""

    __slots__ = ("kind", "message", "hint")

    def __init__(self, kind: str, message: str, hint: str = "") -> None:
        self.kind, self.message, self.hint = kind, message, hint

    def __str__(self) -> str:
        return self.message + (f"\n    fix: {self.hint}" if self.hint else "")

    def __repr__(self) -> str:
        return f"<Problem {self.kind}: {self.message}>"


# Discovery's own lock (re-entrant: a plugin's import may look up another class). Reading
# versions never takes it, so a plugin that builds or sends a message while it is imported
# cannot deadlock against a thread that sends.
_lock = threading.RLock()

_plugins: list[Plugin] | None = None
_partial: list[Plugin] = []
_discovering = False
_registered: list[str] = []          # version keys this module registered
_namespace_error: Problem | None = None


# ------------------------------------------------------------------------------------------
# discovery
# ------------------------------------------------------------------------------------------

def discover(refresh: bool = False) -> list[Plugin]:
    """Find, import and register every plugin (once; `refresh` forgets and searches again).

    Safe to call from several threads and from inside a plugin's import (which then sees the
    plugins found so far).
    """
    global _plugins, _discovering, _partial
    with _lock:
        if _plugins is not None and not refresh:
            return _plugins
        if _discovering:
            return list(_partial)
        if refresh:
            _forget()
        _discovering = True
        _partial = []
        try:
            _discover_namespace(_partial)
            _discover_entry_points(_partial)
            _plugins = list(_partial)
        finally:
            _discovering = False
        return _plugins


def plugins() -> list[Plugin]:
    """Every plugin found (also those that failed to import)."""
    return list(discover())


def _forget() -> None:
    global _plugins, _namespace_error
    from dripline.client.identity import remove_version
    ext = sys.modules.get(NAMESPACE)
    for plugin in _plugins or []:
        if ext is not None and plugin.kind == "namespace" and plugin.module is not None \
                and getattr(ext, plugin.name, None) is plugin.module:
            try:
                delattr(ext, plugin.name)
            except AttributeError:
                pass
    for key in _registered:
        remove_version(key)
    _registered.clear()
    _plugins = None
    _namespace_error = None
    _dist_index.cache_clear()
    importlib.invalidate_caches()


def _register_version(plugin: Plugin) -> None:
    from dripline.client.identity import add_version
    key = plugin.version_key
    if plugin.version is None or key in _registered:
        return
    add_version(key, plugin.version)
    _registered.append(key)


def _refresh_paths(ext: Any) -> None:
    """Let `dripline` and `dripline.extensions` span every matching folder now on sys.path."""
    import dripline
    for pkg in (dripline, ext):
        path = getattr(pkg, "__path__", None)
        if isinstance(path, list):
            for entry in pkgutil.extend_path(list(path), pkg.__name__):
                if entry not in path:
                    path.append(entry)


def _editable_mappings() -> Iterator[tuple[str, str, str]]:
    """(short name, location, hook module) of plugins mapped by setuptools editable import hooks.

    Editable installs of a flat-layout project (such as the plugin guide's) do not put a folder
    on sys.path: a meta-path finder module ``__editable___<dist>_finder`` maps module names to
    folders in a dict ``MAPPING``. Only that dict tells which plugins it provides.
    """
    for finder in list(sys.meta_path):
        module = sys.modules.get(getattr(finder, "__module__", None) or "")
        mapping = getattr(module, "MAPPING", None)
        if module is None or not isinstance(mapping, dict):
            continue
        for key, path in list(mapping.items()):
            if not isinstance(key, str) or not isinstance(path, str):
                continue
            if key.startswith(_PREFIX) and key.count(".") == 2:
                yield key[len(_PREFIX):], path, module.__name__
            elif key in ("dripline", NAMESPACE):
                base = os.path.join(path, "extensions") if key == "dripline" else path
                for info in pkgutil.iter_modules([base]):
                    yield info.name, os.path.join(base, info.name), module.__name__


def _namespace_candidates(ext: Any) -> dict[str, tuple[str, str | None]]:
    found: dict[str, tuple[str, str | None]] = {}
    for info in pkgutil.iter_modules(list(ext.__path__)):
        if info.name.startswith("_"):
            continue
        base = getattr(info.module_finder, "path", "")
        location = os.path.join(base, info.name if info.ispkg else info.name + ".py")
        found.setdefault(info.name, (location, None))
    for name, location, hook in _editable_mappings():
        if not name.startswith("_"):
            found.setdefault(name, (location, hook))
    return found


def _discover_namespace(out: list[Plugin]) -> None:
    global _namespace_error
    try:
        ext = importlib.import_module(NAMESPACE)
    except Exception as err:  # e.g. a plugin overwrote dripline/extensions/__init__.py
        _namespace_error = Problem(
            "broken plugin", f"{NAMESPACE} could not be imported: {type(err).__name__}: {err}",
            f"{NAMESPACE}/__init__.py must contain only the line "
            "`__path__ = __import__('pkgutil').extend_path(__path__, __name__)`; a plugin that "
            "ships another one breaks every plugin: fix that plugin and reinstall dripline")
        logger.warning("%s", _namespace_error)
        return
    _refresh_paths(ext)
    for name, (location, hook) in sorted(_namespace_candidates(ext).items()):
        plugin = Plugin(name=name, kind="namespace", module_name=_PREFIX + name,
                        location=location, editable_finder=hook)
        out.append(plugin)
        _load_namespace_plugin(plugin, ext)


def _load_namespace_plugin(plugin: Plugin, ext: Any) -> None:
    try:
        module = importlib.import_module(plugin.module_name or _PREFIX + plugin.name)
    except BaseException as err:  # noqa: BLE001 - a plugin must not take the process down
        if isinstance(err, KeyboardInterrupt):
            raise
        _record_failure(plugin, err)
        return
    plugin.module = module
    setattr(ext, plugin.name, module)
    version = getattr(module, "version", None)
    if isinstance(version, str) or isinstance(getattr(version, "version", None), str):
        plugin.version = version
        _register_version(plugin)


def _record_failure(plugin: Plugin, err: BaseException, entry: str | None = None) -> None:
    message = f"{type(err).__name__}: {err}"
    origin = _origin(err, plugin)
    hint = _fix_hint(plugin, err)
    if plugin.error is None:
        plugin.error, plugin.hint, plugin.origin = message, hint, origin
    what = plugin.describe() + (f", entry point {entry!r}" if entry else "")
    logger.warning("dripline %s could not be imported and is skipped: %s%s\n    fix: %s", what,
                   message, f" (raised at {origin})" if origin else "", hint)


def _origin(err: BaseException, plugin: Plugin) -> str | None:
    if isinstance(err, SyntaxError) and err.filename:
        return f"{err.filename}:{err.lineno}"
    import traceback
    frames = [f for f in traceback.extract_tb(err.__traceback__)
              if "importlib" not in f.filename and "<frozen" not in f.filename]
    if not frames:
        return None
    root = plugin.location or ""
    root = root[:-3] if root.endswith(".py") else root
    inside = [f for f in frames if root and f.filename.startswith(root)]
    frame = (inside or frames)[-1]
    return f"{frame.filename}:{frame.lineno}"


def _fix_hint(plugin: Plugin, err: BaseException) -> str:
    dist = plugin.distribution or _distribution_name(plugin)
    remove = f"`pip uninstall {dist}`" if dist else "uninstall the package that installed it"
    own = plugin.module_name or ""
    if isinstance(err, ModuleNotFoundError) and err.name:
        top = err.name.split(".")[0]
        if top == "pkg_resources":
            return ("the plugin imports pkg_resources, which only setuptools provides (and which "
                    "is deprecated): `pip install setuptools`, or better change the plugin to use "
                    "importlib.metadata.version('<distribution>')")
        if own and (err.name == own or err.name.startswith(own + ".")):
            return f"the plugin is incomplete ({err.name} is missing): reinstall it, or {remove}"
        if top == "dripline":
            return (f"the plugin imports {err.name}, which this dripline does not have: update "
                    f"the plugin (or dripline), or {remove} if you do not use it")
        return (f"the plugin needs the Python package providing {top!r}, which is not installed: "
                f"install it (`pip install {top}` if that is its name) or reinstall the plugin so "
                f"that pip installs its dependencies; or {remove} if you do not use it")
    if isinstance(err, ImportError) and (err.name or "").startswith("dripline"):
        return (f"the plugin uses a name that {err.name} does not provide here ({err}); adapt the "
                f"plugin or report the missing name; or {remove} if you do not use it")
    if isinstance(err, SyntaxError):
        return f"fix the syntax error in {err.filename} line {err.lineno}, or {remove}"
    return f"fix the plugin where the error is raised, or {remove} if you do not use it"


# -- entry points ---------------------------------------------------------------------------

def _may_have_entry_points(group: str) -> bool:
    """Quick test (a few hundred stat calls) that any distribution on sys.path declares `group`.

    importlib.metadata's entry_points() parses the metadata of every installed distribution, which
    costs more than the whole start-up of dl-agent; almost no environment has dripline entry
    points, so a plain text search of the entry_points.txt files decides whether to pay for it.
    """
    header = f"[{group}]"
    for entry in sys.path:
        directory = entry or "."
        if not isinstance(directory, str):
            continue
        if not os.path.isdir(directory):
            if os.path.isfile(directory):  # a zip on sys.path: cannot tell cheaply
                return True
            continue
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in names:
            if name.endswith((".dist-info", ".egg-info")):
                try:
                    with open(os.path.join(directory, name, "entry_points.txt"), encoding="utf-8",
                              errors="replace") as f:
                        if header in f.read():
                            return True
                except OSError:
                    pass
    return False


def _entry_points(group: str) -> list:
    if not _may_have_entry_points(group):
        return []
    from importlib import metadata
    try:
        return list(metadata.entry_points(group=group))
    except Exception as err:  # broken metadata of some unrelated distribution
        logger.warning("reading entry points %r failed: %s", group, err)
        return []


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _discover_entry_points(out: list[Plugin]) -> None:
    by_dist: dict[str, Plugin] = {}
    taken = {p.name for p in out}
    for ep in _entry_points(ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        dist_name = getattr(dist, "name", None) or ep.value.split(":")[0].split(".")[0]
        plugin = by_dist.get(dist_name)
        if plugin is None:
            name = _normalise(dist_name)
            if name in taken:
                name = f"{name}_entry_points"
            plugin = Plugin(name=name, kind="entry point", distribution=dist_name,
                            dist_version=getattr(dist, "version", None))
            if plugin.dist_version:
                plugin.version = {"version": plugin.dist_version, "package": dist_name}
            try:
                plugin.location = str(dist.locate_file("")) if dist is not None else None
            except Exception:
                plugin.location = None
            by_dist[dist_name] = plugin
            out.append(plugin)
            _register_version(plugin)
        plugin.entry_points.append(ep)


def _load_entry(plugin: Plugin, ep: Any) -> Any:
    """The object an entry point names (imported on first use; None when it fails)."""
    key = (ep.name, ep.value)
    if key in plugin._loaded:
        return plugin._loaded[key]
    try:
        obj = ep.load()
    except BaseException as err:  # noqa: BLE001
        if isinstance(err, KeyboardInterrupt):
            raise
        plugin.module_name = plugin.module_name or ep.value.split(":")[0]
        _record_failure(plugin, err, ep.name)
        obj = None
    plugin._loaded[key] = obj
    return obj


def _is_module_entry(ep: Any) -> bool:
    return ":" not in ep.value


# ------------------------------------------------------------------------------------------
# classes
# ------------------------------------------------------------------------------------------

def _exports(module: Any) -> dict[str, Any]:
    """Public classes a plugin module offers: those in __all__, else those it defines."""
    names = getattr(module, "__all__", None)
    out: dict[str, Any] = {}
    if names is not None:
        for n in names:
            obj = getattr(module, n, None)
            if isinstance(obj, type):
                out[n] = obj
        return out
    prefix = module.__name__
    for n, obj in vars(module).items():
        if isinstance(obj, type) and not n.startswith("_") and \
                (obj.__module__ == prefix or obj.__module__.startswith(prefix + ".")):
            out[n] = obj
    return out


def _owner(cls: type, found_in: Plugin | None) -> Plugin | None:
    """The plugin whose code defines `cls` (else the one it was found in)."""
    for plugin in discover():
        if plugin.module_name and (cls.__module__ == plugin.module_name
                                   or cls.__module__.startswith(plugin.module_name + ".")):
            return plugin
    return found_in


def _providers(name: str, only: Plugin | None = None) -> list[tuple[Plugin | None, type]]:
    found: list[tuple[Plugin | None, type]] = []

    def add(plugin: Plugin | None, obj: Any) -> None:
        if isinstance(obj, type) and all(obj is not c for _, c in found):
            found.append((_owner(obj, plugin), obj))

    everything = discover()
    ext = sys.modules.get(NAMESPACE)
    if only is None and ext is not None:
        add(None, getattr(ext, name, None))  # the reference's "attribute of dripline.extensions"
    for plugin in everything:
        if only is not None and plugin is not only:
            continue
        if plugin.kind == "namespace":
            if plugin.module is not None:
                add(plugin, getattr(plugin.module, name, None))
            continue
        for ep in plugin.entry_points:
            if _is_module_entry(ep):
                module = _load_entry(plugin, ep)
                if module is not None:
                    add(plugin, getattr(module, name, None))
            elif ep.name == name:
                add(plugin, _load_entry(plugin, ep))
    return found


def _label(plugin: Plugin | None, cls: type) -> str:
    qual = f"{cls.__module__}.{cls.__qualname__}"
    if plugin is None:
        return f"{NAMESPACE} ({qual})"
    dist = plugin.distribution or _distribution_name(plugin)
    version = plugin.version_string or _dist_version(plugin)
    pkg = f", distribution {dist}{' ' + version if version else ''}" if dist else ""
    return f"plugin {plugin.name!r} ({qual}{pkg})"


def _find_plugin(name: str) -> Plugin | None:
    for plugin in discover():
        if name in (plugin.name, plugin.module_name) or \
                (plugin.distribution and _normalise(name) == _normalise(plugin.distribution)):
            return plugin
    return None


def lookup(name: str) -> type | None:
    """The class a YAML ``module: <name>`` means among the plugins; None when none has it.

    ``<plugin>.<Class>`` (plugin name, module name or distribution name, a dot, the class) picks
    the class of one plugin. A ConfigError when two plugins offer different classes of that name.
    """
    from dripline.protocol.errors import ConfigError
    if "." in name:
        head, _, tail = name.rpartition(".")
        plugin = _find_plugin(head)
        if plugin is None:
            return None
        found = _providers(tail, only=plugin)
        return found[0][1] if found else None
    found = _providers(name)
    if len(found) > 1:
        raise ConfigError(_ambiguity(name, found))
    return found[0][1] if found else None


def _ambiguity(name: str, found: list[tuple[Plugin | None, type]]) -> str:
    labels = [_label(p, c) for p, c in found]
    choices = [f"`module: {p.name}.{name}`" for p, _ in found if p is not None]
    return (f"module {name!r} is ambiguous: {len(found)} plugins offer a class of that name: "
            f"{'; '.join(labels)}. dl-serve does not choose by import order: write "
            f"{' or '.join(choices) or '`module: <plugin>.' + name + '`'} to pick one, or "
            f"uninstall one of the plugins")


def class_names() -> set[str]:
    """Every class name the plugins offer (for "did you mean" suggestions)."""
    names: set[str] = set()
    ext = sys.modules.get(NAMESPACE)
    for plugin in discover():
        if plugin.kind == "namespace" and plugin.module is not None:
            names.update(_exports(plugin.module))
        for ep in plugin.entry_points:
            if _is_module_entry(ep):
                module = _load_entry(plugin, ep)
                if module is not None:
                    names.update(_exports(module))
            else:
                names.add(ep.name)
    if ext is not None:
        names.update(n for n, v in vars(ext).items() if isinstance(v, type) and not n.startswith("_"))
    return names


def class_namespaces() -> list[tuple[str, Any]]:
    """(label, module) of dripline.extensions and each imported plugin module, in search order."""
    spaces: list[tuple[str, Any]] = []
    ext = sys.modules.get(NAMESPACE)
    everything = discover()
    if ext is not None:
        spaces.append((NAMESPACE, ext))
    for plugin in everything:
        if plugin.module is not None:
            spaces.append((f"plugin {plugin.name}", plugin.module))
    return spaces


def searched_places() -> list[str]:
    """Where plugins were looked for, for 'unknown module' messages."""
    ext = sys.modules.get(NAMESPACE)
    paths = list(getattr(ext, "__path__", []) or [])
    places = [f"namespace {NAMESPACE} (folders: {', '.join(paths) or 'none'})"]
    eps = [p for p in discover() if p.kind == "entry point"]
    places.append(f"entry points {ENTRY_POINT_GROUP!r} ("
                  + (", ".join(p.distribution or p.name for p in eps) or "none installed") + ")")
    return places


def problems() -> list[Problem]:
    """Plugins that could not be imported (with how to fix them)."""
    out = [_namespace_error] if _namespace_error is not None else []
    for plugin in discover():
        if plugin.error is not None:
            origin = f" (raised at {plugin.origin})" if plugin.origin else ""
            out.append(Problem("broken plugin", f"{plugin.describe()} could not be imported: "
                                                f"{plugin.error}{origin}", plugin.hint or ""))
    return out


# ------------------------------------------------------------------------------------------
# listing
# ------------------------------------------------------------------------------------------

def _kind(cls: type) -> str | None:
    from dripline.service.endpoint import Endpoint
    from dripline.service.service import Service
    if not issubclass(cls, Endpoint):
        return None
    return "Service" if issubclass(cls, Service) else "Endpoint"


def _builtin_classes(problems_out: list[Problem]) -> list[ClassInfo]:
    import dripline
    out: list[ClassInfo] = []
    for space in ("dripline.core", "dripline.implementations"):
        module = importlib.import_module(space)
        for name in getattr(module, "__all__", []):
            try:
                obj = getattr(module, name)
            except ModuleNotFoundError as err:
                if err.name and not err.name.startswith("dripline"):
                    problems_out.append(Problem(
                        "unavailable built-in", f"{space}.{name} is not available: it needs the "
                        f"Python package providing {err.name.split('.')[0]!r}",
                        "install dripline's extra: pip install 'dripline[sql]'" if name in
                        _SQL_CLASSES else f"pip install {err.name.split('.')[0]}"))
                else:
                    logger.debug("built-in %s.%s not available: %s", space, name, err)
                continue
            except Exception as err:  # a built-in module still being written, say
                logger.debug("built-in %s.%s not available: %s", space, name, err)
                continue
            kind = _kind(obj) if isinstance(obj, type) else None
            if kind:
                out.append(ClassInfo(name, kind, space, "dripline", dripline.__version__,
                                     f"{obj.__module__}.{obj.__qualname__}", obj))
    return out


_SQL_CLASSES = {"PostgreSQLInterface", "SQLTable", "PostgresSensorLogger"}


def available_classes() -> tuple[list[ClassInfo], list[Problem]]:
    """Every class dl-serve can build, and the problems found on the way (`dl-serve --list`)."""
    found_problems = problems()
    builtins = _builtin_classes(found_problems)
    builtin_names = {c.name: c for c in builtins}
    offered: dict[str, list[tuple[Plugin | None, type, str]]] = {}

    def offer(plugin: Plugin | None, name: str, cls: type) -> None:
        entries = offered.setdefault(name, [])
        if all(cls is not c for _, c, _ in entries):
            entries.append((_owner(cls, plugin), cls, name))

    everything = discover()
    for plugin in everything:
        if plugin.kind == "namespace" and plugin.module is not None:
            for name, cls in _exports(plugin.module).items():
                offer(plugin, name, cls)
        for ep in plugin.entry_points:
            obj = _load_entry(plugin, ep)
            if obj is None:
                continue
            if _is_module_entry(ep):
                for name, cls in _exports(obj).items():
                    offer(plugin, name, cls)
            elif isinstance(obj, type):
                offer(plugin, ep.name, obj)
    ext = sys.modules.get(NAMESPACE)
    if ext is not None:
        for name, obj in list(vars(ext).items()):
            if isinstance(obj, type) and not name.startswith("_"):
                offer(None, name, obj)
    # failures met while loading entry points above
    for plugin in everything:
        if plugin.error is not None and not any(plugin.describe() in p.message for p in found_problems):
            origin = f" (raised at {plugin.origin})" if plugin.origin else ""
            found_problems.append(Problem("broken plugin", f"{plugin.describe()} could not be "
                                          f"imported: {plugin.error}{origin}", plugin.hint or ""))

    infos: list[ClassInfo] = []
    for name, entries in sorted(offered.items()):
        entries = [(p, c, n) for p, c, n in entries if _kind(c)]
        if not entries:
            continue
        if len(entries) > 1:
            found_problems.append(Problem("ambiguous name", _ambiguity(name, [(p, c) for p, c, _ in entries])))
        builtin = builtin_names.get(name)
        if builtin is not None and all(c is not builtin.cls for _, c, _ in entries):
            found_problems.append(Problem(
                "shadowed built-in", f"{name}: {_label(entries[0][0], entries[0][1])} is used "
                f"instead of dripline's built-in {builtin.qualname} (plugins come first)"))
        for owner, cls, _ in entries:
            if builtin is not None and cls is builtin.cls:
                continue
            infos.append(_plugin_class_info(name, cls, owner))
    plugin_names = {i.name for i in infos}
    infos += [c for c in builtins if c.name not in plugin_names]
    infos.sort(key=lambda i: (i.name.lower(), i.source))
    return infos, found_problems


def _plugin_class_info(name: str, cls: type, plugin: Plugin | None) -> ClassInfo:
    qual = f"{cls.__module__}.{cls.__qualname__}"
    if plugin is None:
        return ClassInfo(name, _kind(cls) or "", NAMESPACE, "?", "", qual, cls)
    dist = plugin.distribution or _distribution_name(plugin) or "?"
    version = plugin.version_string or _dist_version(plugin) or ""
    source = plugin.name if plugin.kind == "entry point" else f"{plugin.name} ({NAMESPACE})"
    return ClassInfo(name, _kind(cls) or "", source, dist, version, qual, cls)


# -- which distribution installed a namespace plugin ----------------------------------------

def _distribution_name(plugin: Plugin) -> str | None:
    found = _distribution_of(plugin)
    return found[0] if found else None


def _dist_version(plugin: Plugin) -> str | None:
    if plugin.dist_version:
        return plugin.dist_version
    found = _distribution_of(plugin)
    return found[1] if found else None


def _distribution_of(plugin: Plugin) -> tuple[str, str] | None:
    if plugin.distribution:
        return plugin.distribution, plugin.dist_version or ""
    if not plugin.location:
        return None
    index = _dist_index()
    if plugin.editable_finder and plugin.editable_finder in index["finders"]:
        return index["finders"][plugin.editable_finder]
    location = os.path.realpath(plugin.location)
    hit = index["files"].get(location)
    if hit:
        return hit
    for root, dist in index["editable_roots"]:
        if location == root or location.startswith(root + os.sep):
            return dist
    return None


@functools.lru_cache(maxsize=1)
def _dist_index() -> dict[str, Any]:
    """Installed files under dripline/extensions, editable hooks and editable roots -> (dist, version)."""
    from importlib import metadata
    files: dict[str, tuple[str, str]] = {}
    finders: dict[str, tuple[str, str]] = {}
    roots: list[tuple[str, tuple[str, str]]] = []
    for dist in metadata.distributions():
        try:
            ident = (dist.metadata["Name"], dist.version)
            for f in dist.files or []:
                parts = f.parts
                if len(parts) >= 3 and parts[0] == "dripline" and parts[1] == "extensions":
                    located = dist.locate_file(f"dripline/extensions/{parts[2]}")
                    files.setdefault(os.path.realpath(str(located)), ident)
                elif len(parts) == 1 and parts[0].startswith("__editable__") and parts[0].endswith("_finder.py"):
                    finders[parts[0][:-3]] = ident
            direct = dist.read_text("direct_url.json")
            if direct:
                import json
                info = json.loads(direct)
                url = info.get("url", "")
                if info.get("dir_info", {}).get("editable") and url.startswith("file://"):
                    from urllib.parse import unquote, urlparse
                    roots.append((os.path.realpath(unquote(urlparse(url).path)), ident))
        except Exception:  # unreadable metadata of an unrelated distribution
            continue
    return {"files": files, "finders": finders, "editable_roots": roots}


# ------------------------------------------------------------------------------------------
# credential groups
# ------------------------------------------------------------------------------------------

def _valid_groups(groups: Any, source: str) -> dict[str, dict]:
    from scarab import to_python
    groups = to_python(groups)
    if not isinstance(groups, dict):
        logger.warning("%s: credential groups must be a mapping {group: {item: {default, env}}}, "
                       "not %s; ignored", source, type(groups).__name__)
        return {}
    out = {}
    for name, spec in groups.items():
        spec = to_python(spec)
        if isinstance(name, str) and isinstance(spec, dict):
            out[name] = spec
        else:
            logger.warning("%s: credential group %r must map item names to {default, env}; ignored",
                           source, name)
    return out


def auth_groups() -> dict[str, dict]:
    """Credential groups beyond ``dripline`` that dl-serve reads from the auth file and environment.

    ``postgres`` always; then what plugins add, in three forms:

    * the reference hook: module ``dripline.extensions.add_auth_spec`` with a class
      ``AddAuthSpec(app)`` (subclass of `dripline.implementations.BaseAddAuthSpec`) that calls
      ``app.add_default_auth_spec_group(name, spec)``;
    * an ``auth_groups`` attribute of a plugin module: ``{group: {item: {"default", "env"}}}`` or a
      callable returning it;
    * entry points of the group ``dripline.auth_groups``: name = group name, value = its spec
      ``{item: {"default", "env"}}`` (or a callable returning it).
    """
    from dripline.implementations.base_add_auth_spec import AuthSpecCollector, postgres_auth_spec
    groups: dict[str, dict] = {"postgres": postgres_auth_spec()}
    everything = discover()
    for plugin in everything:
        if plugin.module is None:
            continue
        if plugin.name == AUTH_HOOK_MODULE and plugin.kind == "namespace":
            hook = getattr(plugin.module, "AddAuthSpec", None)
            if hook is not None:
                collector = AuthSpecCollector()
                try:
                    hook(collector)
                except Exception as err:
                    logger.warning("%s.AddAuthSpec failed (%s: %s); its credential groups are "
                                   "not available", plugin.module_name, type(err).__name__, err)
                else:
                    groups.update(_valid_groups(collector.groups, plugin.module_name or plugin.name))
        spec = getattr(plugin.module, "auth_groups", None)
        if spec is not None:
            try:
                spec = spec() if callable(spec) else spec
            except Exception as err:
                logger.warning("%s.auth_groups() failed: %s", plugin.module_name, err)
                continue
            groups.update(_valid_groups(spec, f"{plugin.module_name}.auth_groups"))
    for ep in _entry_points(AUTH_ENTRY_POINT_GROUP):
        try:
            spec = ep.load()
            spec = spec() if callable(spec) else spec
        except Exception as err:
            logger.warning("credential group entry point %s = %s failed: %s: %s", ep.name, ep.value,
                           type(err).__name__, err)
            continue
        groups.update(_valid_groups({ep.name: spec}, f"entry point {ep.name} = {ep.value}"))
    return groups
