"""Check a service configuration against the classes it names, before anything connects.

The reference passes every YAML key to the constructors and either ignores misspellings (service
level) or dies with a bare TypeError (endpoint level). Here each key is checked against the
keywords the class and its bases accept, and every problem names the file, the object, the key and
the closest valid keywords.
"""
from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass

from dripline.protocol.errors import ConfigError
from dripline.assembly.objects import find_class

__all__ = ["Problem", "accepted_keywords", "check_service_config"]

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


# keys that decide what an entry IS: a misspelling of one of them changes the class that is built
# (or drops every endpoint), so it is refused rather than reported as one unknown keyword among others
_STRUCTURAL = {"service": ("module", "module_path", "endpoints"),
               "endpoint": ("module", "module_path", "name")}


def _resembles(key: str, word: str) -> bool:
    """`key` looks like a misspelling of `word` (case, a letter dropped, doubled or swapped)."""
    low = key.lower().replace("-", "_")
    return (low == word or sorted(low) == sorted(word)
            or difflib.SequenceMatcher(None, low, word).ratio() >= 0.8)


def _structural_typo(conf: dict, unknown: list[str], level: str) -> tuple[str, str] | None:
    """(key, structural word) for an unknown key that misspells a structural key not present."""
    for key in unknown:
        for word in _STRUCTURAL[level]:
            if word not in conf and isinstance(key, str) and _resembles(key, word):
                return key, word
    return None


def _classes_accepting(keys: list[str], kind: str) -> list[str]:
    """Names of the classes of `kind` ("Endpoint" or "Service") accepting every one of `keys`,
    the most general (fewest keywords) first: what a missing `module:` most likely meant."""
    try:
        from dripline.assembly import plugins
        infos, _ = plugins.available_classes()
    except Exception:  # discovery itself failed: no suggestion rather than a second error
        return []
    found: list[tuple[int, str]] = []
    for info in infos:
        if info.kind != kind:
            continue
        cls = info.cls
        if cls is None:
            try:
                cls = find_class(info.name)
            except Exception:
                continue
        accepted = accepted_keywords(cls)
        if all(k in accepted for k in keys):
            found.append((len(accepted), info.name))
    return [name for _, name in sorted(found)]


def _check(conf: dict, default_module: str, where: str, fatal: bool, source: str | None,
           base_dir: str | None, ignore: set[str]) -> list[Problem]:
    module = conf.get("module") or default_module
    src = f"{source}: " if source else ""
    try:
        cls = find_class(module, conf.get("module_path"), base_dir)
    except ConfigError as err:  # unknown module, broken module_path: say where, as for keywords
        raise ConfigError(f"{src}{where}: {err.message}") from None
    accepted = accepted_keywords(cls) | ignore | {"module", "module_path"}
    unknown = [key for key in conf if key not in accepted]
    if not unknown:
        return []
    level = "service" if default_module == "Service" else "endpoint"
    typo = _structural_typo(conf, unknown, level)
    if typo is not None:
        key, word = typo
        consequence = {"module": f"without `module:` it would be built as a plain {default_module}",
                       "module_path": "without `module_path:` the class file is not loaded",
                       "endpoints": "as written, the service would start with no endpoints",
                       "name": "the entry has no name"}[word]
        raise ConfigError(f"{src}{where}: unknown keyword {key!r}; did you mean {word!r}? "
                          f"({consequence})")
    if level == "service":
        listed = _misplaced_endpoint_list(conf, unknown)
        if listed is not None:
            raise ConfigError(f"{src}{where}: keyword {listed!r} holds a list of endpoint mappings, "
                              "which only `endpoints:` can hold; did you mean 'endpoints'? (as "
                              "written, the service would start with none of them)")
    if "module" not in conf and "module_path" not in conf:
        # no module: the keywords that the default class rejects tell which class was meant
        kind = "Service" if level == "service" else "Endpoint"
        meant = [k for k in unknown if isinstance(k, str) and _classes_accepting([k], kind)]
        if meant:
            classes = _classes_accepting(meant, kind) or _classes_accepting(meant[:1], kind)
            names = " or ".join(f"`module: {c}`" for c in classes[:3])
            takes = " and ".join(repr(k) for k in (meant if len(classes) > 0 else meant[:1]))
            raise ConfigError(
                f"{src}{where}: no `module:` is given, so it would be a plain {default_module}, "
                f"which takes no keyword {meant[0]!r}; did you mean {names}? (it takes {takes})")
    problems = []
    for key in unknown:
        close = difflib.get_close_matches(key, sorted(accepted - {"module", "module_path"}), n=3, cutoff=0.6)
        problems.append(Problem(where, key, close, fatal, source))
    return problems


def _misplaced_endpoint_list(conf: dict, unknown: list[str]) -> str | None:
    """An unknown service keyword whose value is a list of endpoint mappings (`endpoint:` for
    `endpoints:`): the intent is unmistakable, so the file is refused rather than half-served."""
    for key in unknown:
        value = conf.get(key)
        if (isinstance(value, list) and value
                and all(isinstance(v, dict) and "name" in v for v in value)
                and any("module" in v for v in value)):
            return key
    return None


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
            typo = next((k for k in ep if isinstance(k, str) and k != "name" and _resembles(k, "name")), None)
            hint = f"; did you mean 'name' for {typo!r}?" if typo else ""
            raise ConfigError(f"{source or 'configuration'}: endpoints[{i}] has no 'name'{hint}")
        if "." in ep_name:
            raise ConfigError(f"{source or 'configuration'}: endpoint name {ep_name!r} contains '.', "
                              "which routing keys cannot carry")
        if ep_name in seen or ep_name == name:
            raise ConfigError(f"{source or 'configuration'}: endpoint name {ep_name!r} is used twice")
        seen.add(ep_name)
        problems += _check(ep, "Endpoint", f"endpoint {ep_name!r}", True, source, base_dir, set())
    return problems
