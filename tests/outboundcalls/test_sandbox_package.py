"""The sandbox package's public surface and its documented seed."""

from __future__ import annotations

import dataclasses

import outboundcalls.sandbox as sandbox_package
from outboundcalls.sandbox import SANDBOX_API_KEY, SeedIds

EXPECTED_EXPORTS = {
    "API_PREFIX",
    "DEFAULT_CREDITS",
    "SANDBOX_API_KEY",
    "SANDBOX_BASE_URL",
    "CallScript",
    "Clock",
    "Fault",
    "FaultKind",
    "Faults",
    "ManualClock",
    "RealClock",
    "RecordedRequest",
    "Sandbox",
    "SandboxTransport",
    "SeedIds",
    "WebhookDelivery",
}


def test_the_public_surface_is_pinned_and_every_name_resolves() -> None:
    assert set(sandbox_package.__all__) == EXPECTED_EXPORTS
    for name in sandbox_package.__all__:
        assert getattr(sandbox_package, name) is not None


def test_the_sandbox_key_can_never_pass_for_a_live_one() -> None:
    assert SANDBOX_API_KEY.startswith("oc_test_") and "live" not in SANDBOX_API_KEY.split("_")[1]


def test_every_seeded_id_is_documented_in_the_package_docstring() -> None:
    docstring = sandbox_package.__doc__ or ""
    for field in dataclasses.fields(SeedIds):
        assert field.name in docstring, field.name
