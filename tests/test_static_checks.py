"""The static checks' escape hatches: each `# type: ignore` and `# noqa` names its codes and says why."""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKED = ("outboundcalls", "server", "tools", "tests", "bench")
SUPPRESSION = re.compile(r"#\s*(?:type:\s*ignore|noqa)\b")
# The accepted forms: a type ignore with its codes, or a noqa with its codes, then a comment saying why.
EXPLAINED = re.compile(r"# (?:type: ignore\[[a-z-]+(?:, [a-z-]+)*\]|noqa: [A-Z]+\d+(?:, [A-Z]+\d+)*)  # \w")


def unexplained(source: str) -> list[int]:
    """The lines of source whose comment silences a check without naming the codes and saying why."""
    lines = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type != tokenize.COMMENT or not SUPPRESSION.search(token.string):
            continue
        if not EXPLAINED.search(token.string):
            lines.append(token.start[0])
    return lines


@pytest.mark.parametrize(
    "comment",
    [
        "# type: ignore",
        "# type: ignore[arg-type]",
        "# type: ignore  # the SDK is untyped",
        "# noqa",
        "# noqa: E501",
        "# noqa: E501 - too long",
        "# why  # noqa: B018",
    ],
)
def test_a_silenced_check_without_codes_or_reason_is_found(comment: str) -> None:
    assert unexplained(f"x = 1\ny = x  {comment}\n") == [2]


@pytest.mark.parametrize(
    "comment",
    [
        "# type: ignore[arg-type]  # the wrong type on purpose",
        "# type: ignore[untyped-decorator, no-untyped-call]  # the SDK leaves it unannotated",
        "# noqa: B018  # read for its side effect",
        "# noqa: E731, B023  # awaited in the same round",
    ],
)
def test_a_silenced_check_with_codes_and_reason_passes(comment: str) -> None:
    assert unexplained(f"y = 1  {comment}\n") == []


def test_words_about_ignores_in_strings_are_not_comments() -> None:
    assert unexplained('text = "# type: ignore"\n') == []


def test_every_silenced_check_in_the_tree_says_why() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for directory in CHECKED
        for path in sorted((ROOT / directory).rglob("*.py"))
        for line in unexplained(path.read_text(encoding="utf-8"))
    ]
    assert not found, f"write `# type: ignore[code]  # why` or `# noqa: CODE  # why` at: {', '.join(found)}"
