"""The sandbox package's public surface, import cost and module sizes."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import outboundcalls.sandbox as sandbox_package
from outboundcalls.sandbox import SANDBOX_API_KEY, SeedIds

EXPECTED_EXPORTS = {
    "API_PREFIX", "DEFAULT_CREDITS", "SANDBOX_API_KEY", "SANDBOX_BASE_URL", "CallScript", "Clock", "Fault",
    "FaultKind", "Faults", "ManualClock", "RealClock", "RecordedRequest", "Sandbox", "SandboxTransport", "SeedIds",
    "WebhookDelivery",
}


def test_the_public_surface_is_pinned_and_every_name_resolves() -> None:
    assert set(sandbox_package.__all__) == EXPECTED_EXPORTS
    for name in sandbox_package.__all__:
        assert getattr(sandbox_package, name) is not None


def test_importing_the_package_builds_nothing_and_pulls_in_no_web_stack() -> None:
    code = (
        "import sys, outboundcalls; before = set(sys.modules); import outboundcalls.sandbox; "
        "print(sorted(m.split('.')[0] if not m.startswith('outboundcalls') else m for m in set(sys.modules) - before))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "['outboundcalls.sandbox']"


def test_the_sandbox_key_can_never_pass_for_a_live_one() -> None:
    assert SANDBOX_API_KEY.startswith("oc_test_") and "live" not in SANDBOX_API_KEY.split("_")[1]


def test_every_seeded_id_is_documented_in_the_package_docstring() -> None:
    docstring = sandbox_package.__doc__ or ""
    for field in dataclasses.fields(SeedIds):
        assert field.name in docstring, field.name


def test_every_module_stays_under_400_lines() -> None:
    for module in Path(sandbox_package.__file__).parent.glob("*.py"):
        assert len(module.read_text("utf-8").splitlines()) < 400, module.name
