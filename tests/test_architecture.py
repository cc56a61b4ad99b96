"""The rules of ARCHITECTURE.md, checked on every run of the suite.

import-linter keeps the layers, the pika boundary and the absence of import cycles (contracts in
pyproject.toml); mypy, with the project's configuration, must report no error in src/dripline and
src/scarab; and dl-agent's start-up must not import plugins, SQL or web code.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_import_contracts_are_kept() -> None:
    result = _run("-c", "import sys; from importlinter.cli import lint_imports_command as c; "
                        "sys.exit(c.main(args=[], standalone_mode=False))")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_mypy_reports_no_error() -> None:
    result = _run("-m", "mypy", "--no-incremental")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "Success: no issues found" in result.stdout


def test_dl_agent_start_up_imports_no_plugin_sql_or_web_code() -> None:
    result = _run("-X", "importtime", "-m", "dripline.cli.agent", "--help", timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()
                if line.startswith("import time:")}
    assert "dripline.cli.common" in imported  # the measurement saw our imports
    heavy = sorted(name for name in imported
                   if name.split(".")[0] in ("sqlalchemy", "psycopg", "aiohttp", "prometheus_client")
                   or name.startswith(("dripline.extensions.", "dripline.assembly.plugins",
                                       "dripline.web", "dripline.implementations")))
    assert heavy == []
