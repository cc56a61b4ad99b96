"""The documentation site builds with warnings as errors, and its generated pages say what the code does.

Built once per test session into a temporary folder (never into docs/), exactly as a user would:
``python -m sphinx -W --keep-going -b html docs OUT``. No link check: it would need the network.
"""
from __future__ import annotations

import html
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

KEY_PAGES = [
    "index.html",
    "tutorial/index.html",
    "howto/plugin.html",
    "howto/scpi.html",
    "howto/testing.html",
    "howto/production.html",
    "reference/keywords.html",
    "reference/cli.html",
    "reference/codes.html",
    "reference/api.html",
    "compatibility.html",
    "design-notes.html",
    "internals.html",
    "security.html",
]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs")
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html",
         "-d", str(out / "doctrees"), str(DOCS), str(out / "html")],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"sphinx-build failed:\n{result.stderr[-6000:]}"
    return out / "html"


def text_of(site: Path, page: str) -> str:
    """The page's visible text, roughly: tags dropped, entities decoded, spaces squashed."""
    raw = (site / page).read_text(encoding="utf-8")
    raw = re.sub(r"<(script|style)\b.*?</\1>", " ", raw, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", raw)).split())


def test_key_pages_exist(site: Path) -> None:
    missing = [p for p in KEY_PAGES if not (site / p).is_file()]
    assert not missing, f"pages not built: {missing}"


def test_nothing_is_fetched_from_elsewhere_when_reading(site: Path) -> None:
    for page in site.rglob("*.html"):
        raw = page.read_text(encoding="utf-8")
        remote = re.findall(r"<(?:script|link|img)\b[^>]*(?:src|href)=\"(?:https?:)?//[^\"]*\"", raw)
        assert not remote, f"{page.relative_to(site)} loads {remote}"


def test_keyword_reference_lists_every_builtin_class_and_keyword(site: Path) -> None:
    from dripline.assembly.keywords import builtin_classes
    page = text_of(site, "reference/keywords.html")
    raw = (site / "reference/keywords.html").read_text(encoding="utf-8")
    for info in builtin_classes():
        assert f'id="keywords-{info.name.lower()}"' in raw, f"no section for {info.name}"
        for kw in info.keywords:
            assert kw.name in page, f"{info.name}.{kw.name} missing from the keyword reference"
    # a default and a description, as dl-serve --list KeyValueStore prints them
    section = page.split("KeyValueStore", 1)[1]
    assert "initial_value None KeyValueStore (Any) initial_value is what a get returns before any set" in section


def test_cli_reference_has_every_command_with_its_help_and_exit_status(site: Path) -> None:
    import tomllib
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    page = text_of(site, "reference/cli.html")
    for command in scripts:
        assert f"usage: {command}" in page, f"no --help text for {command}"
    from dripline.cli.serve import build_parser
    for option in ("--check", "--list [MODULE]", "--heartbeat-interval-s S"):
        assert option in build_parser().format_help()
        assert option in page
    assert "dl-plugin new" in page and "dl-plugin list" in page  # sub-commands too
    codes = text_of(site, "reference/codes.html")
    for command in scripts:
        assert re.search(rf"{re.escape(command)} [^.]{{0,40}}\b[0-9]\b", codes), \
            f"no exit status row for {command}"


def test_return_code_table_is_the_registry(site: Path) -> None:
    from dripline.core import get_return_codes_map
    page = text_of(site, "reference/codes.html")
    for value, code in get_return_codes_map().items():
        assert f"{value} {code.name} {code.description}" in page


def test_api_reference_documents_the_public_names(site: Path) -> None:
    raw = (site / "reference/api.html").read_text(encoding="utf-8")
    for name in ("Interface", "AsyncInterface", "Service", "Endpoint", "Entity", "ThrowReply",
                 "calibrate", "AlertConsumer", "KeyValueStore", "DriplineError"):
        assert re.search(rf'id="dripline\.[\w.]*\b{name}"', raw), f"{name} not documented"


def test_tutorial_walks_from_install_to_a_database(site: Path) -> None:
    page = text_of(site, "tutorial/index.html")
    steps = ["pip install", "dl-serve --check -c my_store.yaml", "dl-serve -c my_store.yaml",
             "dl-agent get peaches", "dl-mon -a", "dl-serve -c sensor-logger-sqlite.yaml",
             "sqlite3", "createdb", "dl-serve -c sensor-logger.yaml", "select * from numeric_data"]
    at = 0
    for step in steps:
        found = page.find(step, at)
        assert found >= 0, f"tutorial step {step!r} missing (or out of order)"
        at = found


@pytest.mark.parametrize("page", ["tutorial/index.md", "howto/plugin.md", "howto/scpi.md",
                                  "howto/production.md"])
def test_service_files_in_the_guides_are_valid(page: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Each complete service file a page asks the reader to write passes dl-serve --check, which
    builds every object as a dry run (no broker, instrument or database is contacted)."""
    from dripline.cli import serve
    text = (DOCS / page).read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
              if b.startswith("name:") and "module: ThermoSensorEntity" not in b]
    if page == "tutorial/index.md":
        assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)
    for i, block in enumerate(blocks):
        path = tmp_path / f"service{i}.yaml"
        path.write_text(block, encoding="utf-8")
        with pytest.raises(SystemExit) as exit_info:
            serve.main(["--check", "-c", str(path)])
        assert exit_info.value.code == 0, block


def test_docstring_prose_cannot_break_the_generated_pages() -> None:
    """Keyword docs are pasted into reStructuredText: markup characters in them are escaped,
    code spans are kept."""
    import docutils.core
    import docutils.utils
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        from dripline_docs import _rst_inline
    finally:
        sys.path.remove(str(DOCS / "_ext"))
    nasty = "a *b c|d hbmon_ [1]_ `x_y` ``a*b`` back\\slash a stray ` here"
    text = _rst_inline(nasty)
    from docutils.writers.html5_polyglot import Writer
    html_out = docutils.core.publish_parts(
        text, writer=Writer(),
        settings_overrides={"report_level": docutils.utils.Reporter.INFO_LEVEL + 1,
                            "halt_level": docutils.utils.Reporter.WARNING_LEVEL})["body"]
    plain = html.unescape(re.sub(r"<[^>]+>", "", html_out))
    assert "a *b c|d hbmon_ [1]_" in plain and "x_y" in plain and "a*b" in plain
    assert "back\\slash a stray ` here" in plain


@pytest.mark.integration
def test_the_testing_guide_examples_pass_against_the_broker(tmp_path: Path) -> None:
    """The self-contained test examples of howto/testing.md run green as written (real broker)."""
    text = (DOCS / "howto" / "testing.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S)
              if "dl_service" in b and "thermo_sensor" not in b and "ThermoSensorEntity" not in b]
    assert blocks, "no self-contained example in the testing guide"
    (tmp_path / "test_guide.py").write_text("\n\n".join(blocks), encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             str(tmp_path / "test_guide.py")],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert re.search(r"\b2 passed\b", result.stdout)


def test_tutorial_keyword_excerpt_is_what_dl_serve_prints(capsys: pytest.CaptureFixture[str]) -> None:
    """The tutorial shows part of `dl-serve --list KeyValueStore`: every line shown is printed."""
    text = (DOCS / "tutorial" / "index.md").read_text(encoding="utf-8")
    block = re.search(r"\$ dl-serve --list KeyValueStore\n(.*?)\n\.\.\.\n", text, flags=re.S)
    assert block, "the tutorial no longer shows dl-serve --list KeyValueStore"
    from dripline.cli import serve
    assert serve.print_class_keywords("KeyValueStore") == 0
    printed = capsys.readouterr().out.splitlines()
    for line in block.group(1).splitlines():
        assert line in printed, f"tutorial line not printed by dl-serve --list: {line!r}"


def test_the_in_memory_examples_of_the_testing_guide_pass(tmp_path: Path) -> None:
    """The in-memory harness examples of howto/testing.md run green as written (no broker)."""
    text = (DOCS / "howto" / "testing.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "memory_" in b]
    assert blocks, "no in-memory example in the testing guide"
    (tmp_path / "test_memory_guide.py").write_text("\n\n".join(blocks), encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             str(tmp_path / "test_memory_guide.py")],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert re.search(r"\b2 passed\b", result.stdout)
