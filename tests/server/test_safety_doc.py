"""The safety model (docs/safety.md) names only tests that exist: each claim points at its proof."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = re.compile(r"`(\w+)::(test_\w+)`")


def test_every_test_the_safety_model_cites_exists() -> None:
    cited = REFERENCE.findall((ROOT / "docs" / "safety.md").read_text(encoding="utf-8"))
    assert len(cited) >= 40
    for short, name in cited:
        path = ROOT / "tests" / "server" / f"test_safe_dispatch_{short}.py"
        if not path.exists():
            path = ROOT / "tests" / "server" / f"test_{short}.py"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}
        assert name in names, f"{short}::{name} is cited in docs/safety.md but not defined in {path.name}"
