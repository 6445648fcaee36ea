"""The installed console script's own commands, run as a subprocess: --help, --version, and refusing bad settings."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from outboundcalls_mcp.server.settings import ENV_PREFIX, Settings
from tests.harness import console_script


def _run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the console script with a clean environment plus `env`, and stdin closed."""
    base = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "OUTBOUNDCALLS_STATE_DIR": str(tmp_path)}
    return subprocess.run(
        [console_script(), *args], env=base | env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60
    )


def test_help_lists_every_setting_with_its_variable_name(tmp_path: Path) -> None:
    done = _run(["--help"], tmp_path)
    assert done.returncode == 0
    for name in Settings.model_fields:
        assert f"{ENV_PREFIX}{name.upper()}" in done.stdout
    for flag in ("--sandbox", "--read-only", "--transport", "--host", "--port", "--version", "demo"):
        assert flag in done.stdout


def test_version_prints_the_installed_version(tmp_path: Path) -> None:
    done = _run(["--version"], tmp_path)
    assert (done.returncode, done.stdout.strip()) == (0, f"outboundcalls-mcp {version('outboundcalls-mcp')}")


def test_python_dash_m_server_is_the_same_entry_point(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "outboundcalls_mcp.server", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert (done.returncode, done.stdout.strip()) == (0, f"outboundcalls-mcp {version('outboundcalls-mcp')}")


def test_an_unknown_setting_exits_non_zero_naming_it_and_writes_nothing_to_stdout(tmp_path: Path) -> None:
    done = _run(["--sandbox"], tmp_path, OUTBOUNDCALLS_MAX_CALL_PER_DAY="5")
    assert done.returncode != 0
    assert "OUTBOUNDCALLS_MAX_CALL_PER_DAY" in done.stderr
    assert done.stdout == ""  # stdout belongs to the protocol


@pytest.mark.parametrize(
    ("name", "value"), [("OUTBOUNDCALLS_CONFIRM", "sometimes"), ("OUTBOUNDCALLS_TIMEOUT_SECONDS", "soon")]
)
def test_an_invalid_value_exits_non_zero_naming_the_variable(tmp_path: Path, name: str, value: str) -> None:
    done = _run(["--sandbox"], tmp_path, **{name: value})
    assert done.returncode != 0
    assert name in done.stderr and done.stdout == ""


def test_a_bad_setting_never_echoes_the_key(tmp_path: Path) -> None:
    key = "oc_live_" + "Zk3v9QpL2mXr7TbW4nYc8HsJ6dFg1AeU"
    done = _run([], tmp_path, OUTBOUNDCALLS_API_KEY=key, OUTBOUNDCALLS_LOG_LEVEL="LOUD")
    assert done.returncode != 0 and "OUTBOUNDCALLS_LOG_LEVEL" in done.stderr
    assert key not in done.stderr + done.stdout
