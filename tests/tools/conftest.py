"""Fixtures for the end-to-end tool tests: both protocol eras, and a fresh sandbox-backed rig."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import Rig, make_rig


@pytest.fixture(params=["legacy", "auto"])
def mode(request: pytest.FixtureRequest) -> str:
    """The protocol era: 'legacy' is the handshake era hosts use today, 'auto' negotiates 2026-07-28."""
    return str(request.param)


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    """A server on a fresh sandbox whose clock stands still until a test moves it."""
    return make_rig(tmp_path)
