"""The design card's rules on the source: layers one way, no cycles, public SDK names only, env read in one place."""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Iterator
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
# The one module allowed to reach the SDK's private names (each use tested in tests/server/test_sdk_patches.py).
SDK_PATCHES = ROOT / "server" / "sdk_patches.py"
SDK_PACKAGES = ("mcp", "mcp_types")


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


def _module_name(path: Path) -> str:
    """The installed dotted name of one of our source files."""
    package = path.relative_to(ROOT).parts[0]
    parts = [*INSTALLED[package].split("."), *path.relative_to(ROOT / package).with_suffix("").parts]
    return ".".join(part for part in parts if part != "__init__")


def _imports_anywhere(path: Path, name: str) -> Iterator[str]:
    """Every module `path` imports, at the top, under TYPE_CHECKING or inside a function, relative ones resolved."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def _import_graph() -> dict[str, set[str]]:
    """Our modules, each with the modules of ours it imports (a name imported from a module counts as that module)."""
    paths = {_module_name(path): path for package in PACKAGES for path in _modules(package)}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        targets = set()
        for imported in _imports_anywhere(path, name):
            while imported and imported not in paths:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in graph[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while (member := stack.pop()) != module:
                component.append(member)
            if component:
                found.append(sorted([module, *component]))

    for module in graph:
        if module not in index:
            visit(module)
    return found


def test_no_module_imports_itself_back_through_others_even_under_type_checking_or_in_a_function() -> None:
    assert _cycles(_import_graph()) == []


def test_the_cycle_check_sees_type_checking_and_function_level_imports(tmp_path: Path) -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from x import y\ndef f():\n    from .z import w\n",
        encoding="utf-8",
    )
    assert {"x", "x.y", "outboundcalls.sandbox.z", "outboundcalls.sandbox.z.w"} <= set(
        _imports_anywhere(probe, "outboundcalls.sandbox.probe")
    )


def _sdk_private_attributes() -> frozenset[str]:
    """Every `_name` the SDK assigns on its own objects (self._name = ...), what reaching into them would use."""
    names: set[str] = set()
    for package in SDK_PACKAGES:
        spec = importlib.util.find_spec(package)
        assert spec is not None and spec.submodule_search_locations
        for location in spec.submodule_search_locations:
            for path in Path(location).rglob("*.py"):
                for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                    if (
                        isinstance(node, ast.Attribute)
                        and isinstance(node.ctx, ast.Store)
                        and node.attr.startswith("_")
                        and not node.attr.startswith("__")
                    ):
                        names.add(node.attr)
    return frozenset(names)


def _private_sdk_uses(path: Path, sdk_private: frozenset[str]) -> list[str]:
    """A private SDK module or name imported, or an SDK object's private attribute read, in one of our files."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in SDK_PACKAGES:
            parts = [*node.module.split("."), *(alias.name for alias in node.names)]
            found += [f"{node.lineno}: {part}" for part in parts if part.startswith("_") and not part.startswith("__")]
        elif isinstance(node, ast.Import):
            found += [
                f"{node.lineno}: {alias.name}"
                for alias in node.names
                if alias.name.split(".")[0] in SDK_PACKAGES
                and any(part.startswith("_") for part in alias.name.split("."))
            ]
        elif (
            isinstance(node, ast.Attribute)
            and node.attr in sdk_private
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
        ):
            found.append(f"{node.lineno}: .{node.attr}")
    return found


def test_no_private_sdk_name_is_used_outside_the_one_patches_module() -> None:
    sdk_private = _sdk_private_attributes()
    offending = {
        str(path.relative_to(ROOT)): uses
        for package in PACKAGES
        for path in _modules(package)
        if path != SDK_PATCHES and (uses := _private_sdk_uses(path, sdk_private))
    }
    assert offending == {}


def test_the_private_name_check_sees_the_patches_module_own_uses() -> None:
    assert _private_sdk_uses(SDK_PATCHES, _sdk_private_attributes()), "the check no longer sees a known private use"
