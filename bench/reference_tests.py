"""Run the reference implementation's own unit tests against this package and count the passes.

The reference (dripline-python 5.x) keeps pytest unit tests in its `tests/` folder. They are not
part of this repository (their code is not ours to copy); fetch them into a folder of your own and
point this script at it::

    python3 bench/reference_tests.py /tmp/dlpy-ref-tests          # prints "N of M ... pass"
    python3 bench/reference_tests.py /tmp/dlpy-ref-tests --list   # and why each failure fails

The tests import the reference's compiled module as ``_dripline.core``; that name is made an alias
of ``dripline.core`` for the run (the only adaptation). The total counts every module-level
``test_*`` function found in the files, so a module that cannot even be imported counts all of its
tests as failed rather than vanishing from the figure.
"""
from __future__ import annotations

import argparse
import ast
import pathlib
import sys
from typing import Any

import pytest


def count_tests(folder: pathlib.Path) -> dict[str, int]:
    """Module-level test functions per file, read without importing anything."""
    counts = {}
    for path in sorted(folder.glob("test_*.py")):
        tree = ast.parse(path.read_text(), str(path))
        counts[path.name] = sum(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                                and node.name.startswith("test") for node in tree.body)
    return counts


class Outcomes:
    """A pytest plugin that records each test's outcome and, for failures, a one-line reason."""

    def __init__(self) -> None:
        self.passed: set[str] = set()
        self.failed: dict[str, str] = {}
        self.broken_modules: dict[str, str] = {}

    def pytest_runtest_logreport(self, report: Any) -> None:
        if report.failed:
            self.failed[report.nodeid] = _reason(report)
        elif report.when == "call" and report.passed:
            self.passed.add(report.nodeid)

    def pytest_collectreport(self, report: Any) -> None:
        if report.failed:
            self.broken_modules[pathlib.Path(report.nodeid).name] = _reason(report)


def _reason(report: Any) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    lines = [line for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("E ")]
    return (errors[-1][2:] if errors else lines[-1] if lines else "?").strip()[:160]


def alias_reference_module() -> None:
    """``import _dripline.core`` gives ``dripline.core``."""
    import dripline
    import dripline.core
    sys.modules.setdefault("_dripline", dripline)
    sys.modules.setdefault("_dripline.core", dripline.core)


def run(folder: pathlib.Path, show: bool) -> tuple[int, int]:
    counts = count_tests(folder)
    total = sum(counts.values())
    alias_reference_module()
    outcomes = Outcomes()
    pytest.main([str(folder), "-q", "-p", "no:cacheprovider", "--rootdir", str(folder),
                 "--no-header", "-o", "console_output_style=classic", "--tb=line", "-rN"],
                plugins=[outcomes])
    passed = len(outcomes.passed - set(outcomes.failed))
    print(f"\n{passed} of {total} reference unit tests pass ({folder})")
    if show:
        for module, why in sorted(outcomes.broken_modules.items()):
            print(f"  {module}: all {counts.get(module, '?')} tests fail to import: {why}")
        for nodeid, why in sorted(outcomes.failed.items()):
            print(f"  {nodeid}: {why}")
    return passed, total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=pathlib.Path, help="folder holding the reference's test_*.py")
    parser.add_argument("--list", action="store_true", help="list each failing test and why")
    args = parser.parse_args(argv)
    if not args.folder.is_dir() or not count_tests(args.folder):
        print(f"reference_tests: no test_*.py files in {args.folder}", file=sys.stderr)
        return 2
    passed, total = run(args.folder.resolve(), args.list)
    return 0 if passed == total else 1


if __name__ == "__main__":
    sys.exit(main())
