"""Resources and prompts are registered on the first request that could read them, not at spawn."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import connected, make_rig

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_tools_only_session_never_builds_resources_or_prompts(tmp_path: Path, mode: str) -> None:
    rig = make_rig(tmp_path)
    async with connected(rig, mode) as client:
        await client.list_tools()
        assert not (await client.call_tool("get_balance", {})).is_error
    assert await rig.server.list_prompts() == []
    assert await rig.server.list_resources() == []


@pytest.mark.parametrize(
    ("first", "mode"),
    [("list_prompts", "legacy"), ("list_resources", "auto"), ("list_resource_templates", "legacy")],
)
async def test_the_first_catalogue_request_sees_everything(tmp_path: Path, first: str, mode: str) -> None:
    rig = make_rig(tmp_path)
    async with connected(rig, mode) as client:
        await getattr(client, first)()  # whichever comes first registers all of them
        prompts = {p.name for p in (await client.list_prompts()).prompts}
        resources = {str(r.uri) for r in (await client.list_resources()).resources}
        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
    assert prompts == {"call_and_report", "campaign_report", "follow_up_missed_calls"}
    assert resources == {"outboundcalls://agents", "outboundcalls://account", "outboundcalls://audit"}
    assert len(templates) == 4


async def test_a_static_resource_read_first_is_answered_with_the_request_deps(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    async with connected(rig, "legacy") as client:
        read = await client.read_resource("outboundcalls://account")
    assert '"credits"' in read.contents[0].text  # type: ignore[union-attr]
