"""dl-plugin: create and inspect dripline plugins.

    dl-plugin new NAME [--base BASE] [--class CLS] [--dir DIR] [--namespace]
                                                   generate a complete plugin package
    dl-plugin list [--json]                        every class dl-serve can build (= dl-serve --list)
    dl-plugin versions                             the sender_info.versions this process reports

`new` writes a package that installs and passes its own test as generated: pyproject.toml, the
plugin module (version from importlib.metadata, one example class named after the plugin and
derived from `--base`: Entity, KeyValueStore, Service or EthernetSCPIService), tests that run it
against the test broker with the fixtures of `dripline.testing` (and, for the SCPI base, the
simulated instrument), an example service YAML, a Dockerfile and a README. By default the classes are declared as entry points (no namespace
folders); ``--namespace`` writes the reference's ``dripline/extensions/<name>/`` layout instead,
which the reference implementation can load too.

Exit status: 0 on success (also when the reader of `list` goes away, as with `| head`); 1 when
`list` found problems (broken plugins, ambiguous names) or `new` cannot write its files; 2 for a
usage error (bad plugin or class name, unknown --base, target folder not empty).
"""
from __future__ import annotations

import argparse
import json
import keyword
import os
import re
import sys
from typing import Any, NamedTuple, TextIO

__all__ = ["main", "print_class_list", "new_plugin"]


# ------------------------------------------------------------------------------------------
# list
# ------------------------------------------------------------------------------------------

def print_class_list(stream: TextIO | None = None, as_json: bool = False) -> int:
    """Print the classes dl-serve can build, the plugins and any problems; 1 if there are problems."""
    from dripline.assembly import plugins
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


def _names(name: str, base: str = "Entity", cls: str | None = None) -> dict[str, str]:
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
    cls = class_name(name, base, cls)
    from dripline import __version__
    major_minor = ".".join(__version__.split(".")[:2])
    return {"name": name, "package": package, "cls": cls, "dripline_req": f"dripline>={major_minor}",
            "endpoint": package, "base": base, "module": BASES[base].module}


class _Base(NamedTuple):
    role: str     # the word a class name of this kind ends with
    module: str   # the plugin module the class is written to


#: the classes `dl-plugin new --base` can start from
BASES: dict[str, _Base] = {
    "Entity": _Base("Entity", "entities"),
    "KeyValueStore": _Base("Entity", "entities"),
    "Service": _Base("Service", "service"),
    "EthernetSCPIService": _Base("Service", "service"),
}

_BUILTIN_NAMES = frozenset({"Entity", "Endpoint", "Service", "KeyValueStore", "EthernetSCPIService",
                            "AlertConsumer", "HeartbeatMonitor", "PostgresSensorLogger",
                            "SimpleSCPIEntity", "SimpleSCPIGetEntity", "SimpleSCPISetEntity",
                            "FormatEntity", "SQLTable", "PostgreSQLInterface"})


def class_name(name: str, base: str = "Entity", explicit: str | None = None) -> str:
    """The generated class's name: the plugin's name in CamelCase (capitals the user wrote kept:
    `lakeShore336` gives `LakeShore336Entity`), ending with the base's role word."""
    if base not in BASES:
        raise ValueError(f"unknown base {base!r}; choose one of {', '.join(BASES)}")
    if explicit is not None:
        cls = explicit
        if not cls.isidentifier() or keyword.iskeyword(cls):
            raise ValueError(f"class name {cls!r} is not a Python identifier")
    else:
        cls = "".join(part[0].upper() + part[1:] for part in re.split(r"[-_]+", name) if part)
        role = BASES[base].role
        if not cls.lower().endswith(role.lower()):
            cls += role
    if cls in _BUILTIN_NAMES:
        raise ValueError(f"class name {cls!r} is a class dripline already has, so `module: {cls}` "
                         "would be ambiguous; choose another with --class")
    return cls


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
test = ["pytest>=8", "pytest-asyncio>=0.24"]

'''

_PYPROJECT_TAIL = '''
[tool.pytest.ini_options]
testpaths = ["tests"]
# dripline's test extra brings pytest-asyncio, which warns (DeprecationWarning) when this is unset
asyncio_default_fixture_loop_scope = "function"
'''

_PYPROJECT_ENTRY = _PYPROJECT_HEAD + '''\
# The classes this plugin adds: `module: {cls}` in a service YAML file builds one.
[project.entry-points."dripline.extensions"]
{cls} = "{package}.{module}:{cls}"

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

from .{module} import {cls}

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

from .{module} import {cls}

version = scarab.VersionSemantic()
try:
    version.parse(_metadata.version("{name}"))
except _metadata.PackageNotFoundError:  # imported from a source tree that is not installed
    pass
version.package = "{name}"

__all__ = ["{cls}", "version"]
'''

_CODE: dict[str, str] = {}
_TESTS: dict[str, str] = {}
_EXAMPLES: dict[str, str] = {}

_CODE["Entity"] = '''\
\"\"\"The endpoints of {name}. Replace the example with your instrument's logic.\"\"\"
from dripline.core import Entity, ThrowReply, calibrate

__all__ = ["{cls}"]


class {cls}(Entity):
    \"\"\"An example endpoint: stores a number, reads it back plus `offset`.

    get -> {{"value_raw": stored + offset[, "value_cal": ...]}} (with `calibration`, e.g. '2*{{}}');
    set -> stores a number; cmd `reset` -> stores 0. Every keyword of the YAML entry except
    `module` reaches __init__ (unknown ones are reported by `dl-serve --check`).
    \"\"\"

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
        \"\"\"A command: `dl-agent cmd <endpoint> -s reset`.\"\"\"
        self._stored = 0.0
        return self._stored
'''

_CODE["KeyValueStore"] = '''\
\"\"\"The endpoints of {name}. Replace the example with your instrument's logic.\"\"\"
from dripline.core import ThrowReply
from dripline.implementations import KeyValueStore

__all__ = ["{cls}"]


class {cls}(KeyValueStore):
    \"\"\"An example endpoint: a stored set-point that refuses values outside [minimum, maximum].

    KeyValueStore already answers get (the stored value, calibrated with `calibration`) and stores
    on set; this class adds the limits. Every keyword of the YAML entry except `module` reaches
    __init__: `initial_value`, `calibration`, `log_interval` ... go on to KeyValueStore.
    \"\"\"

    def __init__(self, minimum=None, maximum=None, **kwargs):
        KeyValueStore.__init__(self, **kwargs)
        self.minimum = minimum
        self.maximum = maximum

    def on_set(self, value):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ThrowReply("service_error_invalid_value", f"{{self.name}} takes a number, not {{value!r}}")
        if (self.minimum is not None and value < self.minimum) or \\
                (self.maximum is not None and value > self.maximum):
            raise ThrowReply("service_error_invalid_value",
                             f"{{self.name}}: {{value}} is outside [{{self.minimum}}, {{self.maximum}}]")
        KeyValueStore.on_set(self, value)
'''

_CODE["Service"] = '''\
\"\"\"The service of {name}. Replace the example with your own commands.\"\"\"
from dripline.core import Service

__all__ = ["{cls}"]


class {cls}(Service):
    \"\"\"An example service with a command of its own: `dl-agent cmd <service> -s summary`.

    A service answers requests addressed to its own name; its public methods are its commands.
    Its endpoints come from the `endpoints:` list of the YAML file as usual. Every keyword of the
    YAML file except `module` and `endpoints` reaches __init__ (`name`, `site` ...).
    \"\"\"

    def __init__(self, site="lab", **kwargs):
        Service.__init__(self, **kwargs)
        self.site = site

    def summary(self):
        \"\"\"A command: where this service runs and the names of its endpoints.\"\"\"
        names = sorted([*self.sync_children, *self.async_children])
        return {{"site": self.site, "endpoints": names}}
'''

_CODE["EthernetSCPIService"] = '''\
\"\"\"The instrument service of {name}. Replace the example with your instrument's commands.\"\"\"
from dripline.implementations import EthernetSCPIService

__all__ = ["{cls}"]


class {cls}(EthernetSCPIService):
    \"\"\"An instrument on a TCP socket (`socket_info`), with a command of its own.

    EthernetSCPIService connects, sends each command with `command_terminator`, reads the answer
    up to `response_terminator`, and reconnects when needed; SCPI endpoints (SimpleSCPIEntity,
    FormatEntity ...) in `endpoints:` use it. `dl-agent cmd <service> -s identify` asks *IDN?.
    \"\"\"

    def identify(self):
        \"\"\"A command: the instrument's *IDN? answer, split into its four fields.\"\"\"
        fields = [part.strip() for part in self.send_to_device(["*IDN?"]).split(",")]
        fields += [""] * (4 - len(fields))
        return dict(zip(("maker", "model", "serial", "firmware"), fields))
'''

_TEST_HEAD = '''\
\"\"\"Tests of {name}: against the test broker (RabbitMQ on localhost:5672, or DRIPLINE_TEST_BROKER /
DRIPLINE_TEST_PORT) with the fixtures of dripline.testing, and without any broker.\"\"\"
'''

_TESTS["Entity"] = _TEST_HEAD + '''\
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

_TESTS["KeyValueStore"] = _TEST_HEAD + '''\
from dripline.core import MsgRequest, op_t

from {import_from} import {cls}


def test_set_then_get(dl_endpoint):
    thing = dl_endpoint("{cls}", initial_value=1.0, minimum=0, maximum=10, calibration="2*{{}}")
    assert thing.get() == {{"value_raw": 1.0, "value_cal": 2.0}}
    thing.set(4)
    assert thing.get() == {{"value_raw": 4, "value_cal": 8}}


def test_a_value_outside_the_limits_is_refused_without_a_broker():
    thing = {cls}(name="thing", initial_value=1.0, maximum=10)
    reply = thing.on_request_message(MsgRequest.create({{"values": [11]}}, op_t.set, "thing"))
    assert reply.return_code == 304  # service_error_invalid_value
    assert "outside" in reply.return_message
'''

_TESTS["Service"] = _TEST_HEAD + '''\
from dripline.testing import unique_name


def test_summary_command(dl_service, dl_interface):
    name, setpoint = unique_name("{package}"), unique_name("setpoint")
    dl_service({{"name": name, "module": "{cls}", "site": "test bench", "heartbeat_interval_s": 0,
                "endpoints": [{{"name": setpoint, "module": "KeyValueStore", "initial_value": 1}}]}})
    assert dl_interface.cmd(name, "summary") == {{"site": "test bench", "endpoints": [setpoint]}}
    assert dl_interface.get(setpoint)["value_raw"] == 1
'''

_TESTS["EthernetSCPIService"] = _TEST_HEAD + '''\
import pytest

from dripline.implementations.sim import SimulatedSCPIInstrument
from dripline.testing import unique_name


@pytest.fixture
def instrument():
    \"\"\"dripline's simulated SCPI power supply on a free loopback port.\"\"\"
    with SimulatedSCPIInstrument() as sim:
        yield sim


def test_identify_and_an_scpi_endpoint(dl_service, dl_interface, instrument):
    name, voltage = unique_name("{package}"), unique_name("voltage")
    dl_service({{"name": name, "module": "{cls}", "heartbeat_interval_s": 0,
                "socket_info": f"('127.0.0.1', {{instrument.port}})",
                "command_terminator": "\\n", "response_terminator": "\\n",
                "endpoints": [{{"name": voltage, "module": "SimpleSCPIEntity", "base_str": "SOUR:VOLT"}}]}})
    assert dl_interface.cmd(name, "identify")["maker"] == "dripline"
    dl_interface.set(voltage, 2.5)
    assert float(dl_interface.get(voltage)["value_raw"]) == 2.5
'''

_EXAMPLES["Entity"] = '''\
# dl-serve -c example.yaml        (after `python -m pip install .`)
# dl-agent set {endpoint} 2 ; dl-agent get {endpoint} ; dl-agent cmd {endpoint} -s reset
name: {package}_service
endpoints:
  - name: {endpoint}
    module: {cls}
    offset: 1.0
    calibration: '2*{{}}'
'''

_EXAMPLES["KeyValueStore"] = '''\
# dl-serve -c example.yaml        (after `python -m pip install .`)
# dl-agent set {endpoint} 2 ; dl-agent get {endpoint} ; dl-agent set {endpoint} 99  (refused)
name: {package}_service
endpoints:
  - name: {endpoint}
    module: {cls}
    initial_value: 1.0
    minimum: 0
    maximum: 10
    calibration: '2*{{}}'
'''

_EXAMPLES["Service"] = '''\
# dl-serve -c example.yaml        (after `python -m pip install .`)
# dl-agent cmd {package}_service -s summary ; dl-agent get {endpoint}_setpoint
name: {package}_service
module: {cls}
site: lab
endpoints:
  - name: {endpoint}_setpoint
    module: KeyValueStore
    initial_value: 0
'''

_EXAMPLES["EthernetSCPIService"] = '''\
# dl-sim-scpi --port 5025 &       (dripline's simulated instrument; or your instrument's address)
# dl-serve -c example.yaml        (after `python -m pip install .`)
# dl-agent cmd {package}_service -s identify ; dl-agent set {endpoint}_voltage 2.5
name: {package}_service
module: {cls}
socket_info: "('127.0.0.1', 5025)"
command_terminator: "\\n"
response_terminator: "\\n"
endpoints:
  - name: {endpoint}_voltage
    module: SimpleSCPIEntity
    base_str: "SOUR:VOLT"
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

A dripline plugin. It adds the class `{cls}` (derived from `{base}`) to what `dl-serve` can
build.

    python -m pip install -e '.[test]'
    dl-serve --list | grep {cls}
    dl-serve -c example.yaml        # or: python -m dripline.cli.serve -c example.yaml
    python -m pytest

`dl-serve --list` shows the class, where it comes from and its version; the service and the tests
need a RabbitMQ on localhost:5672 (or DRIPLINE_TEST_BROKER / DRIPLINE_TEST_PORT for the tests).

Edit `{where}` to implement your {what}; {how}
'''

_GITIGNORE = "__pycache__/\n*.egg-info/\nbuild/\ndist/\n"


def new_plugin(name: str, directory: str | None = None, namespace: bool = False,
               force: bool = False, base: str = "Entity", cls: str | None = None) -> list[str]:
    """Write the plugin package; returns the files written. ValueError for a bad name, base or
    class name, or a non-empty target folder (unless `force`); OSError when the files cannot be
    written."""
    names = _names(name, base, cls)
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
    code_file = os.path.join(code_dir, names["module"] + ".py")
    where = code_file.replace(os.sep, "/")
    files.update({
        code_file: _CODE[base],
        os.path.join("tests", f"test_{p}.py"): _TESTS[base],
        "example.yaml": _EXAMPLES[base],
        "Dockerfile": _DOCKERFILE,
        "README.md": _README,
        ".gitignore": _GITIGNORE,
        ".dockerignore": _GITIGNORE,
    })
    what = "service" if BASES[base].role == "Service" else "endpoints"
    values = dict(names, import_from=import_from, where=where, how=how, what=what)
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
    new.add_argument("--base", choices=list(BASES), default="Entity",
                     help="the class the generated one derives from (default: Entity)")
    new.add_argument("--class", dest="class_name", metavar="NAME",
                     help="name of the generated class (default: the plugin's name in CamelCase "
                          "plus Entity or Service, e.g. ThermoSensorEntity)")
    new.add_argument("--dir", help="where to write it (default: ./NAME)")
    new.add_argument("--namespace", action="store_true",
                     help="use the reference's dripline/extensions/<name>/ layout instead of entry points")
    new.add_argument("--force", action="store_true", help="write into a non-empty folder")
    lst = sub.add_parser("list", help="every class dl-serve can build, the plugins, and problems")
    lst.add_argument("--json", action="store_true", help="machine-readable output")
    sub.add_parser("versions", help="the sender_info.versions table this process sends")
    return parser


def main(argv: list[str] | None = None) -> None:
    from .common import stdout_gone
    args = build_parser().parse_args(argv)
    try:
        code = run(args)
        sys.stdout.flush()
    except BrokenPipeError:  # `dl-plugin list | head`: the reader has seen enough
        stdout_gone()
        code = 0
    sys.exit(code)


def run(args: Any) -> int:
    if args.command == "list":
        return print_class_list(as_json=args.json)
    if args.command == "versions":
        from dripline.assembly.plugins import discover
        from dripline.client.identity import get_versions
        discover()  # what dl-serve reports: its assembly step registers the plugins' versions
        json.dump(get_versions(), sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
        return 0
    try:
        written = new_plugin(args.name, args.dir, args.namespace, args.force, args.base,
                             args.class_name)
    except ValueError as err:
        print(f"dl-plugin: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        where = err.filename or os.path.abspath(args.dir or args.name)
        print(f"dl-plugin: cannot write the plugin to {where}: {err.strerror or err}",
              file=sys.stderr)
        return 1
    root = os.path.abspath(args.dir or args.name)
    cls = class_name(args.name, args.base, args.class_name)
    print(f"dl-plugin: wrote plugin {args.name!r} (class {cls}, from {args.base}) to {root} "
          f"({len(written)} files). Next:\n"
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
