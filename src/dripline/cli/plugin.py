"""dl-plugin: create and inspect dripline plugins.

    dl-plugin new NAME [--dir DIR] [--namespace]   generate a complete plugin package
    dl-plugin list [--json]                        every class dl-serve can build (= dl-serve --list)
    dl-plugin versions                             the sender_info.versions this process reports

`new` writes a package that installs and passes its own test as generated: pyproject.toml, the
plugin module (version from importlib.metadata, one example Entity), a test that runs the entity
against the test broker with the `dl_endpoint` fixture of `dripline.testing`, an example service
YAML, a Dockerfile and a README. By default the classes are declared as entry points (no namespace
folders); ``--namespace`` writes the reference's ``dripline/extensions/<name>/`` layout instead,
which the reference implementation can load too.

Exit status: 0 on success; 1 when `list` found problems (broken plugins, ambiguous names) or
`new` cannot write its files; 2 for a usage error (bad name, target folder not empty).
"""
from __future__ import annotations

import argparse
import json
import keyword
import os
import re
import sys
from typing import Any, TextIO

__all__ = ["main", "print_class_list", "new_plugin"]


# ------------------------------------------------------------------------------------------
# list
# ------------------------------------------------------------------------------------------

def print_class_list(stream: TextIO | None = None, as_json: bool = False) -> int:
    """Print the classes dl-serve can build, the plugins and any problems; 1 if there are problems."""
    from dripline import plugins
    out = stream or sys.stdout
    infos, problems = plugins.available_classes()
    found = plugins.plugins()
    if as_json:
        json.dump({
            "classes": [{"name": i.name, "kind": i.kind, "from": i.source, "package": i.package,
                         "version": i.version, "class": i.qualname} for i in infos],
            "plugins": [{"name": p.name, "kind": p.kind, "module": p.module_name,
                         "distribution": p.distribution or plugins._distribution_name(p),
                         "version": p.version_string or plugins._dist_version(p) or "",
                         "location": p.location, "error": p.error, "fix": p.hint} for p in found],
            "problems": [{"kind": p.kind, "message": p.message, "fix": p.hint} for p in problems],
        }, out, indent=2)
        out.write("\n")
        return 1 if problems else 0
    rows = [("MODULE", "KIND", "FROM", "PACKAGE", "VERSION")]
    rows += [(i.name, i.kind, i.source, i.package, i.version) for i in infos]
    widths = [max(len(r[c]) for r in rows) for c in range(4)]
    out.write("Classes dl-serve can build (the `module:` of a service or endpoint):\n")
    for r in rows:
        out.write("  " + "  ".join(r[c].ljust(widths[c]) for c in range(4)) + "  " + r[4] + "\n")
    out.write("\nPlugins:\n")
    if not found:
        out.write("  none installed (see `dl-plugin new --help`)\n")
    for p in found:
        dist = p.distribution or plugins._distribution_name(p) or "?"
        version = p.version_string or plugins._dist_version(p) or "?"
        state = "ok" if p.ok else "BROKEN"
        out.write(f"  {p.name}: {p.kind} plugin, {p.module_name or 'entry points'}, distribution "
                  f"{dist} {version}, {state}{', at ' + p.location if p.location else ''}\n")
    if problems:
        out.write("\nProblems:\n")
        for problem in problems:
            out.write(f"  - [{problem.kind}] {problem}\n")
    return 1 if any(p.kind in ("broken plugin", "ambiguous name") for p in problems) else 0


# ------------------------------------------------------------------------------------------
# new
# ------------------------------------------------------------------------------------------

_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")

# import names a plugin package must not take: importing it would shadow (or be shadowed by) the
# module dripline, its dependencies or the test tools need; the standard library is checked too
_TAKEN_PACKAGES = frozenset({
    "dripline", "scarab", "test", "tests", "yaml", "pika", "asteval", "orjson", "uvloop",
    "sqlalchemy", "psycopg", "psycopg2", "pytest", "_pytest", "pytest_asyncio", "hypothesis",
    "pluggy", "setuptools", "pkg_resources", "pip",
    # distribution names (normalised like the package name): installing the plugin would replace them
    "pyyaml", "dripline_python", "psycopg_binary", "psycopg2_binary",
})


def _names(name: str) -> dict[str, str]:
    if not _NAME_RE.fullmatch(name):
        raise ValueError(f"plugin name {name!r}: use letters, digits, '-' and '_', starting with a "
                         "letter (e.g. 'thermo-sensor')")
    package = re.sub(r"[-_]+", "_", name).lower()
    if keyword.iskeyword(package):
        raise ValueError(f"plugin name {name!r} would make a package called {package!r}, which "
                         "is a Python keyword; choose another")
    if package in sys.stdlib_module_names or package in _TAKEN_PACKAGES:
        what = ("shadows a standard-library module" if package in sys.stdlib_module_names
                else "clashes with a package dripline or its tools use")
        raise ValueError(f"plugin name {name!r} would make a package called {package!r}, which "
                         f"{what}; choose another (e.g. '{name}-plugin')")
    cls = "".join(part.capitalize() for part in re.split(r"[-_]+", name) if part)
    if not cls.endswith("Entity"):
        cls += "Entity"
    from dripline import __version__
    major_minor = ".".join(__version__.split(".")[:2])
    return {"name": name, "package": package, "cls": cls, "dripline_req": f"dripline>={major_minor}",
            "endpoint": package}


# what both plugin layouts' pyproject.toml files share; each layout adds how its code is found
_PYPROJECT_HEAD = '''\
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "{name}"
version = "0.1.0"
description = "dripline plugin {name}"
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["{dripline_req}"]

[project.optional-dependencies]
test = ["pytest>=8"]

'''

_PYPROJECT_TAIL = '''
[tool.pytest.ini_options]
testpaths = ["tests"]
'''

_PYPROJECT_ENTRY = _PYPROJECT_HEAD + '''\
# The classes this plugin adds: `module: {cls}` in a service YAML file builds one.
[project.entry-points."dripline.extensions"]
{cls} = "{package}.entities:{cls}"

[tool.setuptools.packages.find]
where = ["src"]
''' + _PYPROJECT_TAIL

_PYPROJECT_NAMESPACE = _PYPROJECT_HEAD + '''\
# The reference layout: dripline/extensions/{package}/ joins the dripline.extensions namespace.
# Only dripline.extensions.* is shipped, never dripline/__init__.py or dripline/extensions/__init__.py.
[tool.setuptools.packages.find]
include = ["dripline.extensions.*"]
namespaces = true
''' + _PYPROJECT_TAIL

_INIT_ENTRY = '''\
"""{name}: a dripline plugin.

Its classes are declared as entry points (group "dripline.extensions") in pyproject.toml, so
dl-serve finds them without any namespace folders; dripline reports this distribution's version in
every message it sends.
"""
from importlib import metadata as _metadata

from .entities import {cls}

try:
    __version__ = _metadata.version("{name}")
except _metadata.PackageNotFoundError:  # imported from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = ["{cls}"]
'''

_INIT_NAMESPACE = '''\
"""{name}: a dripline plugin in the dripline.extensions namespace.

As the plugin guide asks, this module imports the plugin's classes, lists them in __all__ and
defines `version` (a scarab.VersionSemantic), which dripline sends in every message as
sender_info.versions["dripline.extensions.{package}"].
"""
from importlib import metadata as _metadata

import scarab

from .entities import {cls}

version = scarab.VersionSemantic()
try:
    version.parse(_metadata.version("{name}"))
except _metadata.PackageNotFoundError:  # imported from a source tree that is not installed
    pass
version.package = "{name}"

__all__ = ["{cls}", "version"]
'''

_ENTITIES = '''\
"""The endpoints of {name}. Replace the example with your instrument's logic."""
from dripline.core import Entity, ThrowReply
from dripline.service.calibrate import calibrate

__all__ = ["{cls}"]


class {cls}(Entity):
    """An example endpoint: stores a number, reads it back plus `offset`.

    get -> {{"value_raw": stored + offset[, "value_cal": ...]}} (with `calibration`, e.g. '2*{{}}');
    set -> stores a number; cmd `reset` -> stores 0. Every keyword of the YAML entry except
    `module` reaches __init__ (unknown ones are reported by `dl-serve --check`).
    """

    def __init__(self, offset=0.0, **kwargs):
        Entity.__init__(self, **kwargs)
        self.offset = offset
        self._stored = 0.0

    @calibrate()
    def on_get(self):
        return self._stored + self.offset

    def on_set(self, value):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ThrowReply("service_error_invalid_value", f"{{self.name}} takes a number, not {{value!r}}")
        self._stored = value

    def reset(self):
        """A command: `dl-agent cmd <endpoint> -s reset`."""
        self._stored = 0.0
        return self._stored
'''

_TEST = '''\
"""Tests of {name}: against the test broker (RabbitMQ on localhost:5672, or DRIPLINE_TEST_BROKER /
DRIPLINE_TEST_PORT) with the fixtures of dripline.testing, and without any broker."""
from dripline.core import MsgRequest, op_t

from {import_from} import {cls}


def test_set_then_get(dl_endpoint):
    thing = dl_endpoint("{cls}", offset=1.0, calibration="2*{{}}")
    thing.set(2.5)
    assert thing.get() == {{"value_raw": 3.5, "value_cal": 7.0}}


def test_reset_command(dl_endpoint):
    thing = dl_endpoint("{cls}")
    thing.set(4)
    thing.cmd("reset")
    assert thing.get()["value_raw"] == 0.0


def test_a_handler_without_a_broker():
    thing = {cls}(name="thing")
    reply = thing.on_request_message(MsgRequest.create({{"values": ["not a number"]}}, op_t.set, "thing"))
    assert reply.return_code == 304  # service_error_invalid_value
'''

_EXAMPLE_YAML = '''\
# dl-serve -c example.yaml        (after `python -m pip install .`)
# dl-agent set {endpoint} 2 ; dl-agent get {endpoint} ; dl-agent cmd {endpoint} -s reset
name: {package}_service
endpoints:
  - name: {endpoint}
    module: {cls}
    offset: 1.0
    calibration: '2*{{}}'
'''

_DOCKERFILE = '''\
# docker build -t {package} . && docker run --rm --network host {package}
# DRIPLINE_SPEC is what pip installs as dripline (a version, a wheel, or a git URL).
FROM python:3.12-slim
ARG DRIPLINE_SPEC=dripline
RUN pip install --no-cache-dir "${{DRIPLINE_SPEC}}"
WORKDIR /usr/local/src/{package}
COPY . .
RUN pip install --no-cache-dir .
CMD ["dl-serve", "-c", "/usr/local/src/{package}/example.yaml"]
'''

_README = '''\
# {name}

A dripline plugin. It adds the class `{cls}` to what `dl-serve` can build.

    python -m pip install -e '.[test]'
    dl-serve --list | grep {cls}
    dl-serve -c example.yaml        # or: python -m dripline.cli.serve -c example.yaml
    python -m pytest

`dl-serve --list` shows the class, where it comes from and its version; the service and the tests
need a RabbitMQ on localhost:5672 (or DRIPLINE_TEST_BROKER / DRIPLINE_TEST_PORT for the tests).

Edit `{where}` to implement your endpoints; {how}
'''

_GITIGNORE = "__pycache__/\n*.egg-info/\nbuild/\ndist/\n"


def new_plugin(name: str, directory: str | None = None, namespace: bool = False,
               force: bool = False) -> list[str]:
    """Write the plugin package; returns the files written. ValueError for a bad name or a
    non-empty target folder (unless `force`); OSError when the files cannot be written."""
    names = _names(name)
    target = os.path.abspath(directory or name)
    if os.path.exists(target) and os.listdir(target) and not force:
        raise ValueError(f"{target} exists and is not empty (use --force to write into it)")
    p = names["package"]
    if namespace:
        code_dir = os.path.join("dripline", "extensions", p)
        files = {
            "pyproject.toml": _PYPROJECT_NAMESPACE,
            os.path.join("dripline", "extensions", "__init__.py"):
                "__path__ = __import__('pkgutil').extend_path(__path__, __name__)\n",
            os.path.join(code_dir, "__init__.py"): _INIT_NAMESPACE,
        }
        import_from = f"dripline.extensions.{p}"
        how = ("list new classes in `__all__` of `" + code_dir.replace(os.sep, "/") +
               "/__init__.py` (dl-serve finds them through the dripline.extensions namespace).")
    else:
        code_dir = os.path.join("src", p)
        files = {"pyproject.toml": _PYPROJECT_ENTRY, os.path.join(code_dir, "__init__.py"): _INIT_ENTRY}
        import_from = p
        how = ("declare each new class under `[project.entry-points.\"dripline.extensions\"]` in "
               "pyproject.toml and reinstall.")
    where = os.path.join(code_dir, "entities.py").replace(os.sep, "/")
    files.update({
        os.path.join(code_dir, "entities.py"): _ENTITIES,
        os.path.join("tests", f"test_{p}.py"): _TEST,
        "example.yaml": _EXAMPLE_YAML,
        "Dockerfile": _DOCKERFILE,
        "README.md": _README,
        ".gitignore": _GITIGNORE,
        ".dockerignore": _GITIGNORE,
    })
    values = dict(names, import_from=import_from, where=where, how=how)
    written = []
    for rel, template in files.items():
        path = os.path.join(target, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(template.format(**values))
        written.append(path)
    return written


# ------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    from .common import version_string
    parser = argparse.ArgumentParser(prog="dl-plugin", description="Create and inspect dripline plugins.")
    parser.add_argument("-V", "--version", action="version", version=version_string("dl-plugin"))
    sub = parser.add_subparsers(dest="command", required=True)
    new = sub.add_parser("new", help="generate a complete plugin package")
    new.add_argument("name", help="distribution name of the plugin, e.g. thermo-sensor")
    new.add_argument("--dir", help="where to write it (default: ./NAME)")
    new.add_argument("--namespace", action="store_true",
                     help="use the reference's dripline/extensions/<name>/ layout instead of entry points")
    new.add_argument("--force", action="store_true", help="write into a non-empty folder")
    lst = sub.add_parser("list", help="every class dl-serve can build, the plugins, and problems")
    lst.add_argument("--json", action="store_true", help="machine-readable output")
    sub.add_parser("versions", help="the sender_info.versions table this process sends")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    sys.exit(run(args))


def run(args: Any) -> int:
    if args.command == "list":
        return print_class_list(as_json=args.json)
    if args.command == "versions":
        from dripline.protocol.version import get_versions
        json.dump(get_versions(), sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
        return 0
    try:
        written = new_plugin(args.name, args.dir, args.namespace, args.force)
    except ValueError as err:
        print(f"dl-plugin: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        where = err.filename or os.path.abspath(args.dir or args.name)
        print(f"dl-plugin: cannot write the plugin to {where}: {err.strerror or err}",
              file=sys.stderr)
        return 1
    root = os.path.abspath(args.dir or args.name)
    print(f"dl-plugin: wrote plugin {args.name!r} to {root} ({len(written)} files). Next:\n"
          f"    cd {_shell_path(root)} && python -m pip install -e '.[test]' && python -m pytest\n"
          f"    dl-serve -c example.yaml    (or: python -m dripline.cli.serve -c example.yaml)")
    return 0


def _shell_path(path: str) -> str:
    """`path` relative to the working folder when that is shorter, quoted for a POSIX shell."""
    import shlex
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        rel = path
    return shlex.quote(rel if len(rel) < len(path) else path)


if __name__ == "__main__":  # pragma: no cover
    main()
