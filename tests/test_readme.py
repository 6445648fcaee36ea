"""The README is part of the product: its tables must match the code they describe."""

from __future__ import annotations

from pathlib import Path

from outboundcalls_mcp.server.settings import ENV_PREFIX, Settings
from outboundcalls_mcp.tools import READ_TOOLS, WRITE_TOOLS

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
TEST_COMMAND = "python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]' && .venv/bin/python -m pytest"


def test_every_setting_is_documented_in_the_readme_settings_table() -> None:
    missing = [name for name in Settings.model_fields if f"| `{ENV_PREFIX}{name.upper()}` |" not in README]
    assert not missing


def test_every_tool_is_in_the_readme_tool_table() -> None:
    missing = [name for name in (*READ_TOOLS, *WRITE_TOOLS) if f"| `{name}` |" not in README]
    assert not missing


def test_the_readme_test_command_is_what_ci_runs_in_the_venv_of_each_python() -> None:
    assert f"```sh\n{TEST_COMMAND}\n```" in README
    in_ci = (
        TEST_COMMAND.replace("python3 -m venv .venv", '"$python" -m venv --clear "$venv"')
        .replace(".venv/bin/pip", '"$venv/bin/pip"')
        .replace(".venv/bin/python", '"$venv/bin/python"')
    )
    assert in_ci in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_the_readme_has_no_unfilled_placeholder() -> None:
    assert not [
        word
        for word in ("SETTINGS_TABLE", "SAFETY_MODEL", "PERFORMANCE\n")
        if word in README.replace("## Performance\n", "")
    ]
