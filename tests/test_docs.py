"""The documents people read keep working: every link leads somewhere, every command runs as written."""

from __future__ import annotations

import argparse
import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from outboundcalls_mcp.server.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = sorted(
    [ROOT / name for name in ("README.md", "CONTRIBUTING.md", "CHANGELOG.md", "ARCHITECTURE.md")]
    + list((ROOT / "docs").glob("*.md"))
    + [ROOT / "bench" / "README.md"]
)
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCED = re.compile(r"```sh\n(.*?)```", re.S)
INLINE = re.compile(r"`([^`\n]+)`")
# Programs a document may tell a person to run that this project does not provide; each is named here on purpose.
OTHER_PROGRAMS = {"python3", "pip", "pipx", "uvx", "claude", "npx", "command", "tail", "openssl", "git"}
OURS = re.compile(r"^(?:\S*/)?outboundcalls-mcp(?:\s|$)")


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it: lowercase, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(document: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", document.read_text(encoding="utf-8"), flags=re.S)
    return {_slug(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}


def _commands(document: Path) -> list[str]:
    """Every command a document shows: the lines of its sh blocks, and inline code that starts with a program."""
    text = document.read_text(encoding="utf-8")
    found: list[str] = []
    for block in FENCED.findall(text):
        for line in block.splitlines():
            line = line.split(" # ")[0].strip()
            if line and not line.startswith("#"):
                found.append(line)
    outside = FENCED.sub("", text)
    for span in INLINE.findall(outside):
        if OURS.match(span) or span.startswith((".venv/bin/", "python -m ", "bash .ci/run")):
            found.append(span)
    return found


def _simple_commands(line: str) -> list[list[str]]:
    """A shell line as its simple commands, environment assignments dropped."""
    commands = []
    for part in re.split(r"&&|\|\||;", line):
        words = shlex.split(part)
        while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):
            words = words[1:]
        if words:
            commands.append(words)
    return commands


@pytest.mark.parametrize("document", DOCUMENTS, ids=_relative)
def test_every_link_leads_to_a_file_and_heading_that_exist(document: Path) -> None:
    broken = []
    for target in LINK.findall(document.read_text(encoding="utf-8")):
        if target.startswith(("https://", "mailto:")):
            continue
        assert not target.startswith("http://"), f"{_relative(document)} links over plain http: {target}"
        path, _, anchor = target.partition("#")
        linked = (document.parent / path).resolve() if path else document
        if not linked.exists():
            broken.append(target)
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(target)
    assert not broken, f"{_relative(document)}: {broken}"


@pytest.mark.parametrize("document", DOCUMENTS, ids=_relative)
def test_every_command_names_a_program_and_arguments_that_exist(document: Path) -> None:
    parser = build_parser()
    parser.exit_on_error = False
    for line in _commands(document):
        for words in _simple_commands(line):
            program = words[0]
            if OURS.match(program):
                if words[1:] in (["--help"], ["-h"]):
                    continue  # run for real by the last test
                try:
                    parser.parse_args(words[1:])
                except (argparse.ArgumentError, SystemExit) as exc:
                    pytest.fail(f"{_relative(document)}: `{line}` is not a valid outboundcalls-mcp command ({exc})")
            elif program.endswith("/python") or program == "python":
                _check_python(document, line, words)
            elif program == "bash":
                assert (ROOT / words[1]).is_file(), f"{_relative(document)}: `{line}`"
            else:
                assert program.rsplit("/", 1)[-1] in OTHER_PROGRAMS, (
                    f"{_relative(document)}: `{line}` runs {program!r}, which no test checks"
                )


def _check_python(document: Path, line: str, words: list[str]) -> None:
    """`python -m module ...`: the module exists, and a test path or a benchmark option it is given does too."""
    assert words[1] == "-m", f"{_relative(document)}: `{line}`"
    module, rest = words[2], words[3:]
    assert importlib.util.find_spec(module) is not None, f"{_relative(document)}: `{line}`: no module {module}"
    if module == "pytest":
        for word in rest:
            if word.startswith("tests/"):
                assert (ROOT / word.split("::")[0]).exists(), f"{_relative(document)}: `{line}`"
    elif module.startswith("bench"):
        source = (ROOT / Path(*module.split("."))).with_suffix(".py")
        source = source if source.exists() else ROOT / "bench" / "__main__.py"
        for option in (word.split("=")[0] for word in rest if word.startswith("--")):
            assert f'"{option}"' in source.read_text(encoding="utf-8"), f"{_relative(document)}: `{line}`: no {option}"


@pytest.mark.parametrize("arguments", [["--help"], ["--version"]])
def test_the_console_script_answers_the_commands_the_readme_starts_with(arguments: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "outboundcalls_mcp.server", *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "outboundcalls-mcp" in done.stdout


def test_the_readme_is_short_enough_to_skim() -> None:
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 250
