"""The MCP bundle starts the way its host starts it, with every optional setting left empty.

Packed, validated and unpacked with the official @anthropic-ai/mcpb CLI; mcp_config resolved by the host
code that package publishes; started with uv (a host ships its own for `server.type: "uv"`) on a PATH
without this venv, on this test run's Python. Slow (~15 s) and needs Node.js (npx): marked
`packaging`; without npx it fails under CI and is skipped elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.install_kit import ROOT, SYSTEM_PATH, list_tools

pytestmark = [pytest.mark.packaging, pytest.mark.anyio]

MCPB = "@anthropic-ai/mcpb@2.1.2"  # pinned: npx reuses its cached copy instead of asking the registry each run
MANIFEST: dict[str, Any] = json.loads((ROOT / "manifest.json").read_text(encoding="utf-8"))
# The user's values as the host stores them: the key left empty, the sandbox on, nothing else touched.
USER_CONFIG = {"api_key": "", "sandbox": True}
# How this machine reaches the package index (a TLS proxy here); a desktop's uv needs none of it.
NETWORK = (
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "UV_NATIVE_TLS",
    "UV_SYSTEM_CERTS",
    "UV_INDEX_URL",
    "UV_DEFAULT_INDEX",
    "UV_CACHE_DIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
)


def _mcpb(*args: str | Path, cwd: Path) -> str:
    """Run the official mcpb CLI through npx; its output."""
    npx = shutil.which("npx")
    if npx is None:
        if os.environ.get("CI"):
            pytest.fail("npx (Node.js) is not installed: CI packs and starts the bundle with the official mcpb CLI")
        pytest.skip("npx (Node.js) is not installed; CI runs this test")
    done = subprocess.run(
        [npx, "--yes", "--prefer-offline", "--package", MCPB, "--", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _uv_alone(bin_dir: Path) -> Path:
    """A directory holding only uv (from this venv's test extra), for the host's PATH."""
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    assert uv is not None, "uv is not installed: pip install -e '.[test]'"
    bin_dir.mkdir()
    (bin_dir / "uv").symlink_to(uv)
    return bin_dir


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundle packed from this checkout, validated, and unpacked where a host would install it."""
    work = tmp_path_factory.mktemp("bundle")
    assert "Manifest schema validation passes" in _mcpb("mcpb", "validate", ROOT / "manifest.json", cwd=work)
    _mcpb("mcpb", "pack", ROOT, work / "outboundcalls-mcp.mcpb", cwd=work)
    _mcpb("mcpb", "unpack", work / "outboundcalls-mcp.mcpb", work / "installed", cwd=work)
    return work / "installed"


@pytest.fixture(scope="module")
def host_config(bundle: Path) -> dict[str, Any]:
    """mcp_config as the host resolves it for this bundle and USER_CONFIG."""
    script = ROOT / "tests" / "mcpb_host_config.mjs"
    return dict(json.loads(_mcpb("node", script, bundle, json.dumps(USER_CONFIG), cwd=bundle)))


@pytest.fixture
def host_env(host_config: dict[str, Any], tmp_path: Path) -> dict[str, str]:
    """The resolved env plus what a host's process has: a system PATH with its uv, a home, the network set-up."""
    base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    assert base.is_file(), base
    return {
        **{name: os.environ[name] for name in NETWORK if name in os.environ},
        "HOME": os.environ.get("HOME", str(tmp_path)),  # uv's cache lives there
        "PATH": os.pathsep.join([str(_uv_alone(tmp_path / "host-bin")), SYSTEM_PATH]),
        # The user data directory (the default state dir, which the bundle leaves unset) in tmp.
        "XDG_DATA_HOME": str(tmp_path / "data"),
        # This run's Python, never one downloaded: the suite proves the bundle on each supported version.
        "UV_PYTHON": str(base),
        "UV_PYTHON_DOWNLOADS": "never",
        **host_config["env"],
    }


def test_the_bundle_holds_the_server_and_what_uv_installs_it_from_and_nothing_else(bundle: Path) -> None:
    packed = {path.relative_to(bundle).as_posix() for path in bundle.rglob("*") if path.is_file()}
    assert {
        "manifest.json",
        "pyproject.toml",
        "README.md",
        "LICENSE",
        "icon.png",
        MANIFEST["server"]["entry_point"],
        "outboundcalls/openapi.yaml",
        "tools/py.typed",
    } <= packed
    assert {path.split("/")[0] for path in packed} == {
        "manifest.json",
        "pyproject.toml",
        "README.md",
        "LICENSE",
        "icon.png",
        "outboundcalls",
        "tools",
        "server",
    }
    assert not [path for path in packed if "__pycache__" in path or path.endswith(".pyc")]


def test_optional_settings_left_empty_reach_the_server_empty_or_as_placeholders(host_config: dict[str, Any]) -> None:
    # What the host really sends (mcpb's known behaviour), which server/settings.py reads as "not set".
    env = host_config["env"]
    assert env["OUTBOUNDCALLS_API_KEY"] == "" and env["OUTBOUNDCALLS_SANDBOX"] == "true"
    assert env["OUTBOUNDCALLS_MAX_CALLS_PER_DAY"] == "${user_config.max_calls_per_day}"
    assert env["OUTBOUNDCALLS_STATE_DIR"] == "${user_config.state_dir}"


async def test_the_server_starts_from_the_unpacked_bundle_as_the_host_starts_it_and_lists_every_tool(
    host_config: dict[str, Any], host_env: dict[str, str], bundle: Path, tmp_path: Path
) -> None:
    names = await list_tools(host_config["command"], host_config["args"], host_env, cwd=tmp_path)
    assert names == sorted(tool["name"] for tool in MANIFEST["tools"]) and len(names) == 12
    # The state directory was left unset, so the sandbox ledger went to the user data directory.
    assert (tmp_path / "data" / "outboundcalls-mcp" / "sandbox").is_dir()


async def test_the_entry_point_runs_as_a_script_in_the_bundle_environment(
    host_env: dict[str, str], bundle: Path, tmp_path: Path
) -> None:
    # A host that runs the entry point itself: `uv run` on the file, which puts server/ first on sys.path.
    entry = str(bundle / MANIFEST["server"]["entry_point"])
    names = await list_tools("uv", ["run", "--directory", str(bundle), entry], host_env, cwd=tmp_path)
    assert len(names) == 12
