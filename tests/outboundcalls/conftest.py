"""Fixtures shared by the client tests."""

from __future__ import annotations

import pytest

from tests.outboundcalls.recorded_sleep import Sleeps


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()
