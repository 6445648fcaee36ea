"""The wheel, built from this checkout and installed (not editable) in a fresh venv, works from any directory.

Slow (a build and an install, ~20 s): marked `packaging`, and run by CI on every supported Python.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.install_kit import ROOT, SYSTEM_PATH, copy_source, list_tools

pytestmark = [pytest.mark.packaging, pytest.mark.anyio]

MANIFEST_TOOLS = sorted(
    tool["name"] for tool in json.loads((ROOT / "manifest.json").read_text(encoding="utf-8"))["tools"]
)


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv, on this test run's Python, with the wheel of this checkout installed in it."""
    work = tmp_path_factory.mktemp("wheel")
    # pip builds in an isolated environment (setuptools from the configured indexes or its cache).
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "--wheel-dir",
            work / "dist",
            copy_source(work / "src"),
        ],
        check=True,
    )
    (wheel,) = (work / "dist").glob("outboundcalls_mcp-*.whl")
    subprocess.run([sys.executable, "-m", "venv", work / "venv"], check=True)
    python = work / "venv" / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "--quiet", wheel], check=True)
    return work / "venv"


def _env(home: Path) -> dict[str, str]:
    """What a host passes: a system PATH (not this venv's), a home, nothing of the checkout."""
    return {"PATH": SYSTEM_PATH, "HOME": str(home), "TMPDIR": str(home)}


def _venv_python(venv: Path, home: Path, *args: str) -> str:
    """What the venv's python prints, run from `home` with a host's environment."""
    return subprocess.run(
        [venv / "bin" / "python", *args], cwd=home, env=_env(home), check=True, capture_output=True, text=True
    ).stdout


def _site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3.*/site-packages"))


def test_the_installed_packages_come_from_the_venv_not_from_the_checkout(venv: Path, tmp_path: Path) -> None:
    code = (
        "import outboundcalls, outboundcalls_mcp.server as s, outboundcalls_mcp.tools as t; "
        "print('\\n'.join(m.__file__ for m in (outboundcalls, s, t)))"
    )
    found = _venv_python(venv, tmp_path, "-c", code).split()
    site_packages = _site_packages(venv)
    assert all(Path(path).is_relative_to(site_packages) for path in found), found
    for data in (
        "outboundcalls/openapi.yaml",
        "outboundcalls/py.typed",
        "outboundcalls_mcp/tools/py.typed",
        "outboundcalls_mcp/server/py.typed",
    ):
        assert (site_packages / data).is_file(), data


def test_the_distribution_installs_only_this_projects_top_level_names(venv: Path, tmp_path: Path) -> None:
    """No generic name (server, tools) lands in site-packages, where it would collide with another package's."""
    code = (
        "import importlib.metadata as m; files = m.distribution('outboundcalls-mcp').files or []; "
        "print('\\n'.join(sorted({f.parts[0] for f in files if not f.parts[0].endswith('.dist-info')})))"
    )
    listed = _venv_python(venv, tmp_path, "-c", code).split()
    site_packages = _site_packages(venv)
    assert [name for name in listed if name not in ("..",)] == ["outboundcalls", "outboundcalls_mcp"], listed
    assert not (site_packages / "server").exists() and not (site_packages / "tools").exists()
    shown = _venv_python(venv, tmp_path, "-m", "pip", "show", "-f", "outboundcalls-mcp")
    tops = {line.strip().split("/")[0] for line in shown.split("Files:", 1)[1].splitlines() if "/" in line}
    assert {top for top in tops if not top.endswith(".dist-info") and top != ".."} == {
        "outboundcalls",
        "outboundcalls_mcp",
    }


def test_every_source_package_is_in_the_distribution() -> None:
    """A package directory pyproject.toml does not list would be missing from the wheel, silently."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"])
    installed = {
        "outboundcalls": "outboundcalls",
        "server": "outboundcalls_mcp.server",
        "tools": "outboundcalls_mcp.tools",
    }
    found = {
        ".".join([installed[init.relative_to(ROOT).parts[0]], *init.relative_to(ROOT).parts[1:-1]])
        for directory in installed
        for init in (ROOT / directory).rglob("__init__.py")
    }
    assert found == listed


def test_the_demo_runs_from_another_directory(venv: Path, tmp_path: Path) -> None:
    demo = subprocess.run(
        [venv / "bin" / "outboundcalls-mcp", "demo"],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "Done." in demo.stdout


async def test_the_console_script_lists_every_tool_over_stdio(venv: Path, tmp_path: Path) -> None:
    env = _env(tmp_path) | {"OUTBOUNDCALLS_STATE_DIR": str(tmp_path / "state")}
    names = await list_tools(str(venv / "bin" / "outboundcalls-mcp"), ["--sandbox"], env, cwd=tmp_path)
    assert names == MANIFEST_TOOLS and len(names) == 12
