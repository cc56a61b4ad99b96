"""Sphinx directives that write the reference pages from the code, at build time.

A reference copied by hand drifts from the code the day after it is written. These directives
ask the code instead, every time the site is built:

``.. dripline-keywords::``
    every class dripline itself can build (``module:`` in a service file), with the keywords it
    accepts, their defaults and their docs: the same description ``dl-serve --list NAME`` prints.
``.. dripline-cli::``
    every command of ``[project.scripts]`` in pyproject.toml: the ``--help`` text of its argparse
    parser (and of each sub-command), and its exit status.
``.. dripline-exit-codes::``
    the exit status of every command, from the "Exit status" paragraph of its module docstring;
    a command without one is a build error, so a new command cannot go undocumented.
``.. dripline-return-codes::``
    the return-code registry: value, name, description, and the class name ``DL_<Name>``.

Directives emit reStructuredText and parse it in place, so they belong in ``.rst`` pages.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import os
import re
import sys
import tomllib
from pathlib import Path
from typing import Any, Iterator

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

logger = logging.getLogger(__name__)


# -- the one place this extension reaches into dripline ------------------------------------
# (the modules moved once already; if they move again, only these lines change)

def _introspection() -> Any:
    """dripline's own description of its buildable classes (also behind ``dl-serve --list NAME``)."""
    from dripline.assembly import keywords
    return keywords


def _return_codes() -> list[Any]:
    """The registered return codes, lowest value first."""
    from dripline.core import get_return_codes_map
    return [code for _, code in sorted(get_return_codes_map().items())]


def _return_code_class_names() -> dict[int, str]:
    """value -> ``DL_<Name>``, the class a plugin can raise or compare with."""
    from dripline.protocol import return_codes
    out: dict[int, str] = {}
    for name in dir(return_codes):
        obj = getattr(return_codes, name)
        if name.startswith("DL_") and isinstance(obj, type):
            out.setdefault(int(obj.value), name)
    return out


# ------------------------------------------------------------------------------------------

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
HELP_COLUMNS = "100"


def _console_scripts() -> list[tuple[str, str]]:
    """``(command, "module:function")`` for every script the package installs, by name."""
    with open(PYPROJECT, "rb") as fh:
        scripts = tomllib.load(fh)["project"]["scripts"]
    return sorted(scripts.items())


def _module_of(target: str) -> Any:
    return importlib.import_module(target.split(":", 1)[0])


def _exit_status(module: Any) -> str | None:
    """The paragraph of the module docstring that starts with "Exit status"."""
    doc = inspect.getdoc(module) or ""
    for para in re.split(r"\n\s*\n", doc):
        lines = para.splitlines()
        for i, line in enumerate(lines):
            if line.lstrip().lower().startswith("exit status"):
                return " ".join(rest.strip() for rest in lines[i:])
    return None


@contextlib.contextmanager
def _fixed_width() -> Iterator[None]:
    """argparse wraps help to the terminal: make the pages the same on every machine."""
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_COLUMNS
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:  # argparse keeps sub-parsers only here
        if isinstance(action, argparse._SubParsersAction):
            return list(action.choices.items())
    return []


def _literal(lines: list[str], text: str) -> None:
    lines += [".. code-block:: text", ""]
    lines += ["   " + line if line.strip() else "" for line in text.rstrip().splitlines()]
    lines.append("")


_CODE_SPAN = re.compile(r"(``[^`]+``|`[^`]+`)")


def _rst_inline(text: str) -> str:
    """Docstring prose made safe to paste into reStructuredText.

    Code spans (````x```` and `x`) are kept, so they render as code; everywhere else the
    characters RST would read as markup (``*``, ``|``, ``_``, a lone backquote, a backslash) are
    escaped. A docstring that is fine as Markdown-ish prose must never break the build.
    """
    out = []
    for i, part in enumerate(_CODE_SPAN.split(" ".join(text.split()))):
        if i % 2:
            out.append(part)
        else:
            out.append(re.sub(r"([\\*|_`])", r"\\\1", part))
    return "".join(out)


def _cell(text: str) -> str:
    """One table cell's text: single line, RST-safe, never empty (an empty cell breaks list-table)."""
    return _rst_inline(text) or "\\ "


def _title(lines: list[str], text: str, char: str) -> None:
    lines += [text, char * len(text), ""]


class _GeneratedDirective(SphinxDirective):
    has_content = False
    required_arguments = 0
    optional_arguments = 0

    def lines(self) -> list[str]:
        raise NotImplementedError

    def run(self) -> list[nodes.Node]:
        try:
            text = self.lines()
        except Exception as err:  # a build error naming the directive, never a silent gap
            logger.warning("%s: cannot generate the reference: %s: %s", self.name,
                           type(err).__name__, err, location=self.get_location())
            return []
        container = nodes.section() if any(line.startswith(("===", "---", "~~~")) for line in text) \
            else nodes.container()
        nested_parse_with_titles(self.state, StringList(text, source=f"<{self.name}>"), container)
        return list(container.children)


class KeywordsDirective(_GeneratedDirective):
    """Every built-in class with its keywords; inherited keywords point at the base's section."""

    def lines(self) -> list[str]:
        kw = _introspection()
        classes = kw.builtin_classes()
        by_name = {c.name: c for c in classes}
        out: list[str] = []
        for info in classes:
            out += [f".. _keywords-{info.name}:", ""]
            _title(out, info.name, "-")
            out += [f"*{info.kind}* — ``{info.qualname}`` — ``module: {info.name}``", ""]
            if info.summary:
                out += [_rst_inline(info.summary), ""]
            names = {k.name for k in info.keywords}
            own: list[Any] = []
            also: list[str] = []
            covered: set[str] = set()
            for base in dict.fromkeys(k.defined_in for k in info.keywords):
                if base in covered:
                    continue
                documented = by_name.get(base)
                if base != info.name and documented is not None and \
                        {k.name for k in documented.keywords} <= names:
                    also.append(base)  # its own section lists them, and what it inherits
                    covered |= {k.defined_in for k in documented.keywords}
                    continue
                own += [k for k in info.keywords if k.defined_in == base]
            if own:
                out += [".. list-table::", "   :header-rows: 1", "   :widths: 22 18 18 42", "",
                        "   * - keyword", "     - default", "     - declared in", "     - description"]
                for k in own:
                    default = "**required**" if k.required else f"``{k.default!r}``"
                    typed = f" ({k.annotation})" if k.annotation else ""
                    out += [f"   * - ``{k.name}``", f"     - {default}", f"     - {k.defined_in}{typed}",
                            f"     - {_cell(k.doc)}"]
                out.append("")
            for base in also:
                listed = ", ".join(f"``{k.name}``" for k in by_name[base].keywords)
                out += [f"Also every keyword of :ref:`{base} <keywords-{base}>`: {listed}.", ""]
        return out


class CliDirective(_GeneratedDirective):
    """``--help`` of every command in pyproject's [project.scripts], and its exit status."""

    def lines(self) -> list[str]:
        out: list[str] = []
        for command, target in _console_scripts():
            module = _module_of(target)
            build = getattr(module, "build_parser", None)
            if build is None:
                raise LookupError(f"{target.split(':')[0]} has no build_parser() for {command}")
            with _fixed_width():
                parser = build()
                help_text = parser.format_help()
                subs = [(name, sub.format_help()) for name, sub in _subcommands(parser)]
            out += [f".. _cli-{command}:", ""]
            _title(out, command, "-")
            summary = (inspect.getdoc(module) or "").split("\n", 1)[0]
            if summary:
                out += [_rst_inline(summary), ""]
            _literal(out, help_text)
            for name, text in subs:
                _title(out, f"{command} {name}", "~")
                _literal(out, text)
            status = _exit_status(module)
            if status is None:
                raise LookupError(f"{target.split(':')[0]} ({command}): its module docstring has "
                                  "no 'Exit status' paragraph")
            text = re.sub(r"^exit status\s*[:=]?\s*", "", status, flags=re.I)
            out += [f"**Exit status:** {_rst_inline(text)}", ""]
        return out


class ExitCodesDirective(_GeneratedDirective):
    """One row per command: its exit status as the command's module documents it."""

    def lines(self) -> list[str]:
        out = [".. list-table::", "   :header-rows: 1", "   :widths: 18 82", "",
               "   * - command", "     - exit status"]
        for command, target in _console_scripts():
            status = _exit_status(_module_of(target))
            if status is None:
                raise LookupError(f"{target.split(':')[0]} ({command}): its module docstring has "
                                  "no 'Exit status' paragraph")
            text = re.sub(r"^exit status\s*[:=]?\s*", "", status, flags=re.I)
            out += [f"   * - :ref:`{command} <cli-{command}>`", f"     - {_cell(text)}"]
        out.append("")
        return out


class ReturnCodesDirective(_GeneratedDirective):
    """The return-code registry as a table."""

    def lines(self) -> list[str]:
        classes = _return_code_class_names()
        out = [".. list-table::", "   :header-rows: 1", "   :widths: 10 36 30 24", "",
               "   * - value", "     - name", "     - description", "     - class"]
        for code in _return_codes():
            value = int(code.value)
            cls = classes.get(value)
            out += [f"   * - {value}", f"     - ``{code.name}``", f"     - {_cell(code.description)}",
                    f"     - {'``' + cls + '``' if cls else '—'}"]
        out.append("")
        return out


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("dripline-keywords", KeywordsDirective)
    app.add_directive("dripline-cli", CliDirective)
    app.add_directive("dripline-exit-codes", ExitCodesDirective)
    app.add_directive("dripline-return-codes", ReturnCodesDirective)
    # the pages depend on the code, not only on their sources: always rebuild them
    app.connect("env-get-outdated", lambda app, env, added, changed, removed:
                [d for d in env.found_docs if d.startswith("reference/")])
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
