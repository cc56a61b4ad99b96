"""What a `module:` entry of a service file accepts: each class's keywords, defaults and docs.

One description serves both readers of the keyword reference, so the two cannot disagree:
``dl-serve --list NAME`` at the terminal and the documentation site's keyword reference (a Sphinx
extension under ``docs/_ext``). The *names* come from `accepted_keywords`, the very function
that validates service files, so the reference lists exactly the keywords ``dl-serve`` accepts;
defaults and annotations come from the constructors' signatures, and the prose from the
docstrings next to the code.

Docstrings are read in this order for each keyword: a structured entry in the defining
``__init__``'s or class's docstring (a Google-style ``Args:`` / ``Keywords:`` section, or
``:param name:``), else the first clause of the class's, its ``__init__``'s or its module's
docstring that names the keyword in backticks. A keyword no docstring mentions is listed without a
description rather than guessed at.
"""
from __future__ import annotations

import inspect
import re
import sys
from dataclasses import dataclass, field
from typing import Any

from dripline.assembly.validation import accepted_keywords

__all__ = ["Keyword", "ClassKeywords", "describe_class", "builtin_classes", "BUILTIN_SPACES"]

# where dripline's own buildable classes live (what `dl-serve --list` labels as built-in)
BUILTIN_SPACES = ("dripline.core", "dripline.implementations")

# keywords every buildable object accepts but which dl-serve fills in itself, or which only make
# sense inside a running process; they are documented, but marked as such
_SET_BY_DL_SERVE = {
    "dripline_mesh": "the mesh block of the file (broker, port, exchanges); filled in by dl-serve",
    "authentication_obj": "credentials; passed by dl-serve from --auth-file / the environment",
}


@dataclass
class Keyword:
    """One constructor keyword: ``default`` is ``Keyword.REQUIRED`` when the keyword must be given."""

    REQUIRED = object()

    name: str
    default: Any
    annotation: str
    defined_in: str           # the class whose __init__ declares it
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is Keyword.REQUIRED

    def default_text(self) -> str:
        """The default as a reader writes it in YAML-ish terms (``required`` when none)."""
        return "required" if self.required else repr(self.default)


@dataclass
class ClassKeywords:
    """A buildable class and its keywords, in the order they are declared, subclass first."""

    name: str                 # what `module:` says
    qualname: str             # module.Class
    kind: str                 # "Service" or "Endpoint"
    summary: str              # first paragraph of the class docstring
    keywords: list[Keyword] = field(default_factory=list)


def describe_class(cls: type, name: str | None = None, kind: str | None = None) -> ClassKeywords:
    """The keywords `cls(...)` accepts (as `accepted_keywords` finds them), with defaults and docs."""
    accepted = accepted_keywords(cls)
    found: dict[str, Keyword] = {}
    for klass in inspect.getmro(cls):
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            params = list(inspect.signature(init).parameters.values())
        except (TypeError, ValueError):
            break
        structured = _structured_docs(inspect.getdoc(init)) | _structured_docs(inspect.getdoc(klass))
        for p in params:
            if p.name == "self" or p.name not in accepted or p.name in found:
                continue
            if p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                continue
            default = Keyword.REQUIRED if p.default is p.empty else p.default
            annotation = "" if p.annotation is p.empty else _annotation_text(p.annotation)
            doc = (structured.get(p.name) or _SET_BY_DL_SERVE.get(p.name)
                   or _mention(p.name, accepted, klass, init))
            found[p.name] = Keyword(p.name, default, annotation, klass.__name__, doc)
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return ClassKeywords(name or cls.__name__, f"{cls.__module__}.{cls.__qualname__}",
                         kind or _kind(cls), _summary(cls), list(found.values()))


def builtin_classes() -> list[ClassKeywords]:
    """Every class dripline itself can build (what ``dl-serve --list`` shows as built-in).

    Plugins are left out: this is the reference of the package, not of one installation.
    ImportError when a built-in cannot be imported (the SQL classes need the ``sql`` extra), so
    that a documentation build never silently drops a class.
    """
    from dripline.assembly import plugins
    infos, problems = plugins.available_classes()
    missing = [p for p in problems if p.kind == "unavailable built-in"]
    if missing:
        raise ImportError("; ".join(p.message + (f" ({p.hint})" if p.hint else "") for p in missing))
    out = [describe_class(i.cls, i.name, i.kind) for i in infos
           if i.source in BUILTIN_SPACES and i.cls is not None]
    return sorted(out, key=lambda c: c.name.lower())


# ------------------------------------------------------------------------------------------
# docstring reading
# ------------------------------------------------------------------------------------------

_SECTION_RE = re.compile(r"^(Args|Arguments|Keywords|Keyword Args|Keyword Arguments|Parameters):\s*$")
_ENTRY_RE = re.compile(r"^(\w+)\s*(?:\(([^)]*)\))?\s*:\s*(.*)$")
_PARAM_RE = re.compile(r":param\s+(?:[\w\[\], |.]+\s+)?(\w+):\s*(.*?)(?=\n\s*:\w|\Z)", re.S)


def _structured_docs(doc: str | None) -> dict[str, str]:
    """``{name: text}`` from Google-style sections and ``:param name:`` fields of a docstring."""
    if not doc:
        return {}
    out: dict[str, str] = {}
    for m in _PARAM_RE.finditer(doc):
        out.setdefault(m.group(1), _squash(m.group(2)))
    lines = doc.splitlines()
    i = 0
    while i < len(lines):
        if not _SECTION_RE.match(lines[i].strip()):
            i += 1
            continue
        i += 1
        current: str | None = None
        base_indent: int | None = None
        while i < len(lines):
            line = lines[i]
            if not line.strip():
                i += 1
                if i < len(lines) and lines[i].strip() and _indent(lines[i]) <= (base_indent or 0) - 1:
                    break
                continue
            indent = _indent(line)
            if base_indent is None:
                base_indent = indent
            if indent < base_indent:
                break
            entry = _ENTRY_RE.match(line.strip()) if indent == base_indent else None
            if entry:
                current = entry.group(1)
                out.setdefault(current, entry.group(3).strip())
            elif current is not None and out.get(current) is not None:
                out[current] = (out[current] + " " + line.strip()).strip()
            i += 1
    return {k: _squash(v) for k, v in out.items() if v}


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _mention(name: str, accepted: set[str], klass: type, init: Any) -> str:
    """A clause of a nearby docstring that is about `name` ('' when none is clearly about it).

    First choice: a clause whose subject is the keyword (it starts with it in backticks, as in
    "`alert_keys`: binding keys ..."). Second: a clause that names this keyword first among the
    class's keywords and is either a bullet or names no other keyword. Anything looser would
    attach one keyword's text to another.
    """
    module = sys.modules.get(klass.__module__)
    docs = [d for d in (inspect.getdoc(klass), inspect.getdoc(init),
                        inspect.getdoc(module) if module else None) if d]
    clauses = [c for d in docs for c in _clauses(d)]
    subject = re.compile(r"^(?:``?\w+``?\s*(?:/|,|or|and)\s*)*``?" + re.escape(name) + r"``?(?!\w)")
    described = re.compile(r"(?<![\w`])``?" + re.escape(name) + r"``?(?: \(|:\s|\)|;)")
    for text, _bullet in clauses:
        for piece in _pieces(text):
            if subject.match(piece):
                # "`a`" alone says nothing: the clause it was cut from does; "`a` is new" neither
                said = _BACKTICKED.sub("", piece).split()
                if len(said) >= 3:
                    return _short(piece)
                if not said and piece != text:
                    return _short(text)
    # "header `base_str` (e.g. ...)", "(``get_on_set``)": the keyword is being explained
    for text, _bullet in clauses:
        for piece in _pieces(text):
            if described.search(piece) and len(_BACKTICKED.sub("", piece).split()) >= 3:
                named = [m.group(1) for m in _BACKTICKED.finditer(piece) if m.group(1) in accepted]
                if named and named[0] == name:
                    return _short(piece)
    # a clause that mentions only this keyword, outside the class's one-line summary (which
    # names keywords in passing: "reads it back plus `offset`")
    summary = _summary(klass)
    for text, bullet in clauses:
        if text.rstrip(".") in summary:
            continue
        named = [m.group(1) for m in _BACKTICKED.finditer(text) if m.group(1) in accepted]
        if (named and named[0] == name and (bullet or set(named) == {name})
                and len(_BACKTICKED.sub("", text).split()) >= 3):
            return _short(text)
    return ""


def _short(text: str) -> str:
    return text if len(text) <= 400 else text[:397].rstrip() + "..."


_BACKTICKED = re.compile(r"(?<![\w`])``?(\w+)``?(?![\w`])")
_OPEN, _CLOSE = "([{", ")]}"


def _split_top(text: str, at_sentence: bool) -> list[str]:
    """Cut `text` at ';' (and at a sentence's end when `at_sentence`, or else at ', `'), outside
    brackets and ``literals``."""
    out, start, depth, i, literal = [], 0, 0, 0, False
    while i < len(text):
        if text.startswith("``", i):
            literal = not literal
            i += 2
            continue
        ch = text[i]
        if not literal:
            if ch in _OPEN:
                depth += 1
            elif ch in _CLOSE:
                depth = max(0, depth - 1)
            elif depth == 0:
                cut = ch == ";"
                if at_sentence and ch == "." and text[i + 1:i + 2] == " ":
                    nxt = text[i + 2:i + 3]
                    cut = (nxt.isupper() or nxt in "`(") and not text[max(0, i - 3):i].endswith(("e.g", "i.e"))
                if not at_sentence and ch == "," and text[i + 1:i + 3] == " `":
                    cut = True
                if cut:
                    out.append(text[start:i])
                    start = i + 1
        i += 1
    out.append(text[start:])
    return [p.strip() for p in out if p.strip()]


def _clauses(doc: str) -> list[tuple[str, bool]]:
    """A docstring cut into (clause, is-bullet) pairs: paragraphs, bullets, then sentences and
    ';' outside brackets. Indented blocks and paragraphs introducing one (code) are skipped."""
    out: list[tuple[str, bool]] = []
    for para in re.split(r"\n\s*\n", doc):
        if para.startswith((" ", "\t")):
            continue
        items = re.split(r"\n\s*[*-]\s+", "\n" + para)
        for index, item in enumerate(items):
            text = _squash(item.lstrip("*- "))
            if not text or text.endswith("::"):
                continue
            bullet = index > 0 or item.lstrip().startswith(("* ", "- "))
            for piece in _split_top(text, at_sentence=True):
                piece = piece.rstrip(".;")
                if piece:
                    out.append((piece, bullet))
    return out


def _pieces(clause: str) -> list[str]:
    """A clause, and its items when it is a list of keywords ("Keywords: `a` (..), `b` (..)")."""
    body = re.sub(r"^[^`:]*:\s+(?=`)", "", clause)
    items = _split_top(body, at_sentence=False)
    return items if len(items) > 1 else [clause]


def _summary(cls: type) -> str:
    doc = inspect.getdoc(cls) or ""
    return _squash(doc.split("\n\n", 1)[0])


def _annotation_text(annotation: Any) -> str:
    if isinstance(annotation, str):
        return annotation
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _kind(cls: type) -> str:
    from dripline.service.endpoint import Endpoint
    from dripline.service.service import Service
    if issubclass(cls, Service):
        return "Service"
    return "Endpoint" if issubclass(cls, Endpoint) else ""
