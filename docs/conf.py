"""Sphinx configuration of the dripline-python documentation site.

Built by the test suite (tests/test_docs_build.py) with warnings as errors, offline: the theme is
Sphinx's bundled alabaster, nothing is fetched at build or view time, and no page needs the
network. Build it by hand with

    python3 -m pip install -e '.[docs]'
    sphinx-build -W --keep-going -b html docs docs/_build/html

The reference pages (keywords, command lines, return and exit codes) are generated from the code
at build time by the extension in docs/_ext/dripline_docs.py, so they cannot drift from it.
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "_ext"))

project = "dripline for Python"
author = "the dripline-python developers"
copyright = "the dripline-python developers; Apache-2.0"


def _version() -> str:
    try:
        from importlib import metadata
        return metadata.version("dripline")
    except Exception:  # building from a checkout that is not installed
        return "unknown"


release = version = _version()

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "dripline_docs",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "README.md"]

# single backticks in docstrings mean a name in code, as they do in Markdown
default_role = "code"

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"
autodoc_default_options = {"show-inheritance": True}

html_theme = "alabaster"
html_title = f"dripline for Python {release}"
html_theme_options = {
    "description": "pure-Python, wire-compatible slow controls on RabbitMQ",
    "fixed_sidebar": False,
    "page_width": "1180px",
    "sidebar_width": "230px",
    "show_powered_by": False,
    "show_relbars": True,
}
html_static_path: list[str] = []
# nothing on a page is fetched from elsewhere: no web fonts, no analytics, no search CDN
html_copy_source = False
html_show_sourcelink = False
