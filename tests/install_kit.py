"""What the packaging tests share: a copy of the source to build from, a PATH without this venv, tools over stdio."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from mcp import Client, StdioServerParameters

__all__ = ["ROOT", "SYSTEM_PATH", "copy_source", "list_tools"]

ROOT = Path(__file__).resolve().parents[1]
# What a host or a login shell has on PATH: nothing of this checkout or of the venv running the tests.
SYSTEM_PATH = os.pathsep.join(["/usr/local/bin", "/usr/bin", "/bin"])
# Never part of a build: local venvs, build output, caches, and the parts no distribution installs.
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "*.mcpb", "tests", "bench"
)


def copy_source(to: Path) -> Path:
    """The checkout's source, copied so that builds leave nothing (build/, *.egg-info) in the checkout."""
    shutil.copytree(ROOT, to, ignore=NOT_SOURCE)
    return to


async def list_tools(command: str, args: list[str], env: dict[str, str], cwd: Path) -> list[str]:
    """The tool names a server started with command and args lists over stdio, in a handshake-era session."""
    # Resolved here on the child's own PATH, as a host's spawn does, not on the test runner's.
    found = shutil.which(command, path=env["PATH"])
    assert found is not None, f"{command} is not on the PATH the server is started with: {env['PATH']}"
    params = StdioServerParameters(command=found, args=args, env=env, cwd=str(cwd))
    async with Client(params, mode="legacy") as client:  # today's hosts connect with initialize
        return sorted(tool.name for tool in (await client.list_tools()).tools)
