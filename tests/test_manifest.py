"""manifest.json (the MCP Bundle manifest) against the code: user_config onto settings, the tools onto the server."""

from __future__ import annotations

import json
import re
import tomllib
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from outboundcalls.version import __version__
from outboundcalls_mcp.server.app import build_server
from outboundcalls_mcp.server.settings import ENV_PREFIX, Settings

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent
MANIFEST: dict[str, Any] = json.loads((ROOT / "manifest.json").read_text(encoding="utf-8"))
USER_CONFIG: dict[str, dict[str, Any]] = MANIFEST["user_config"]
ENV: dict[str, str] = MANIFEST["server"]["mcp_config"]["env"]
REFERENCE = re.compile(r"\$\{user_config\.([a-z_]+)\}")
# How a user_config type is read into a Settings field's annotation.
TYPES = {
    "string": ("str", "SecretStr", "frozenset", "Literal"),
    "boolean": ("bool",),
    "number": ("int", "float"),
    "file": ("Path",),
    "directory": ("Path",),
}


def _references(key: str) -> list[str]:
    return [name for name, value in ENV.items() if (match := REFERENCE.fullmatch(value)) and match[1] == key]


@pytest.mark.parametrize("key", sorted(USER_CONFIG))
def test_each_user_config_key_feeds_exactly_one_variable_of_the_same_settings_field(key: str) -> None:
    assert _references(key) == [f"{ENV_PREFIX}{key.upper()}"]
    assert key in Settings.model_fields


def test_every_variable_passed_to_the_server_is_a_setting_fed_by_user_config() -> None:
    known = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    assert set(ENV) <= known
    for value in ENV.values():
        match = REFERENCE.fullmatch(value)
        assert match is not None and match[1] in USER_CONFIG, value


@pytest.mark.parametrize("key", sorted(USER_CONFIG))
def test_each_user_config_type_and_default_agree_with_the_settings_field(key: str) -> None:
    entry, field = USER_CONFIG[key], Settings.model_fields[key]
    annotation = str(field.annotation)
    assert any(kind in annotation for kind in TYPES[entry["type"]]), (key, entry["type"], annotation)
    if "default" in entry:
        default = field.default
        if isinstance(default, frozenset):
            assert set(filter(None, entry["default"].split(","))) == default
        else:
            assert entry["default"] == default, key


def test_the_api_key_is_sensitive_and_optional_so_the_sandbox_works_without_it() -> None:
    assert USER_CONFIG["api_key"]["sensitive"] is True
    assert USER_CONFIG["api_key"]["required"] is False
    assert [key for key, entry in USER_CONFIG.items() if entry.get("sensitive")] == ["api_key"]


async def test_the_manifest_lists_exactly_the_registered_tools(tmp_path: Path) -> None:
    server = build_server(Settings.model_validate({"state_dir": tmp_path}))
    async with Client(server) as client:
        registered = [tool.name for tool in (await client.list_tools()).tools]
    assert sorted(tool["name"] for tool in MANIFEST["tools"]) == sorted(registered)
    assert all(tool["description"] for tool in MANIFEST["tools"])


def test_the_manifest_version_license_python_and_repository_match_the_package() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    project = pyproject["project"]
    # One source: the package's constant, which setuptools reads into the distribution's metadata.
    assert "version" in project["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "outboundcalls.version.__version__"}
    assert MANIFEST["version"] == __version__ == version("outboundcalls-mcp")
    assert MANIFEST["license"] == project["license"]
    assert MANIFEST["compatibility"]["runtimes"]["python"] == project["requires-python"]
    assert MANIFEST["repository"]["url"] == project["urls"]["Repository"] == MANIFEST["homepage"]


def test_the_host_starts_the_console_script_with_uv_in_the_bundle_directory() -> None:
    # server.type "uv": the host installs the bundle's pyproject.toml with uv, then runs the one console
    # script, so the module path behind it lives only in pyproject.toml's [project.scripts].
    server = MANIFEST["server"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert MANIFEST["manifest_version"] == "0.4" and server["type"] == "uv"
    assert server["mcp_config"]["command"] == "uv"
    *uv_run, script = server["mcp_config"]["args"]
    assert uv_run == ["run", "--directory", "${__dirname}"] and script in scripts
    # A host may run the entry point itself; the bundle test runs it as a file in the bundle's environment.
    assert (ROOT / server["entry_point"]).is_file()


def test_the_icon_is_a_512_pixel_square_png() -> None:
    data = (ROOT / MANIFEST["icon"]).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    assert (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")) == (512, 512)
