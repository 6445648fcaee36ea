"""The design card's rules, checked on the source: layers point one way, env is read in one place, modules stay small."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("outboundcalls", "tools", "server")
# Each directory's installed name: server/ and tools/ install under this project's own name.
INSTALLED = {"outboundcalls": "outboundcalls", "tools": "outboundcalls_mcp.tools", "server": "outboundcalls_mcp.server"}
# What each layer may not import: server -> tools -> outboundcalls, never back up.
FORBIDDEN = {
    "outboundcalls": ("mcp", "mcp_types", "outboundcalls_mcp"),
    "tools": ("outboundcalls_mcp.server",),
    "server": (),
}
# The repository's directory names are not importable names: importing them would load a second copy.
NOT_IMPORTABLE = ("server", "tools")


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", PACKAGES)
def test_a_layer_never_imports_the_layers_above_it(package: str) -> None:
    offending = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in _modules(package)
        for name in _imported(path)
        if any(name == top or name.startswith(top + ".") for top in FORBIDDEN[package])
    }
    assert not offending


def test_nothing_imports_a_directory_name_instead_of_its_installed_name() -> None:
    offending = {
        f"{path.relative_to(ROOT)}: {name}"
        for directory in (*PACKAGES, "tests", "bench")
        for path in sorted((ROOT / directory).rglob("*.py"))
        for name in _imported(path)
        if name.split(".")[0] in NOT_IMPORTABLE
    }
    assert not offending


def test_only_the_settings_module_reads_the_environment() -> None:
    readers = sorted(
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in _modules(package)
        if "os.environ" in path.read_text(encoding="utf-8") or "os.getenv" in path.read_text(encoding="utf-8")
    )
    assert readers == ["server/settings.py"]


def test_no_module_is_named_for_no_concept() -> None:
    vague = [p for pkg in PACKAGES for p in _modules(pkg) if p.stem in {"utils", "helpers", "misc", "common"}]
    assert not vague
