"""Every sandbox answer, success and error, validates against outboundcalls/openapi.yaml."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

import outboundcalls
from outboundcalls.sandbox import Fault, Sandbox, SeedIds

pytestmark = pytest.mark.anyio

SPEC: dict[str, Any] = yaml.safe_load((Path(outboundcalls.__file__).parent / "openapi.yaml").read_text("utf-8"))
BASE = "urn:outboundcalls:openapi"
REGISTRY: Registry[Any] = Registry().with_resource(
    BASE, Resource.from_contents(SPEC, default_specification=DRAFT202012)
)
US = "+14155551212"


def escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


def resolve(ref: str) -> Any:
    node: Any = SPEC
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def deref(node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        node = resolve(node["$ref"])
    return node


def response_schema_pointer(method: str, template: str, status: int) -> str:
    """The JSON pointer of the schema documented for this answer (its own code, else default)."""
    responses = SPEC["paths"][template][method.lower()]["responses"]
    key = str(status) if str(status) in responses else "default"
    pointer = f"#/paths/{escape(template)}/{method.lower()}/responses/{key}"
    if "$ref" in responses[key]:
        pointer = responses[key]["$ref"]
    return f"{pointer}/content/application~1json/schema"


def json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def branch_fits(branch: Any, value: Any) -> bool:
    branch = deref(branch)
    kinds = branch.get("type", "object" if "allOf" in branch or "properties" in branch else None)
    if kinds is None and "anyOf" in branch:
        return any(branch_fits(inner, value) for inner in branch["anyOf"])
    kinds = kinds if isinstance(kinds, list) else [kinds]
    return json_type(value) in kinds or (json_type(value) == "number" and "integer" in kinds)


def undeclared(value: Any, node: Any, where: str = "$") -> Iterator[str]:
    """Fields the sandbox sends that the document does not declare (the document must say everything)."""
    node = deref(node)
    for combinator in ("oneOf", "anyOf"):
        if combinator in node:
            fitting = [branch for branch in node[combinator] if branch_fits(branch, value)]
            if fitting:
                yield from undeclared(value, fitting[0], where)
            return
    properties: dict[str, Any] = dict(node.get("properties", {}))
    open_ended = node.get("additionalProperties") is True
    for part in node.get("allOf", []):
        part = deref(part)
        properties.update(part.get("properties", {}))
        open_ended = open_ended or part.get("additionalProperties") is True
    if isinstance(value, dict) and not open_ended:
        for key, item in value.items():
            if key not in properties:
                yield f"{where}.{key}"
            else:
                yield from undeclared(item, properties[key], f"{where}.{key}")
    elif isinstance(value, list) and "items" in node:
        for index, item in enumerate(value):
            yield from undeclared(item, node["items"], f"{where}[{index}]")


def assert_conforms(pointer: str, body: Any) -> None:
    validator = Draft202012Validator({"$ref": f"{BASE}{pointer}"}, registry=REGISTRY)
    errors = [f"{list(error.absolute_path)}: {error.message}" for error in validator.iter_errors(body)]
    assert errors == [], pointer
    assert list(undeclared(body, {"$ref": pointer})) == [], pointer


def assert_answer_conforms(method: str, template: str, response: httpx2.Response) -> None:
    assert response.headers["content-type"] == "application/json"
    assert_conforms(response_schema_pointer(method, template, response.status_code), response.json())


Path_ = Callable[[SeedIds], str]
Case = tuple[str, str, Path_, dict[str, Any], int]


def fixed(path: str) -> Path_:
    return lambda ids: path


def dial(**extra: str) -> Callable[[SeedIds], dict[str, Any]]:
    return lambda ids: {"json": {"agentId": ids.deployed_agent_id, "toNumber": US, **extra}}


WRONG_KEY = {"headers": {"Authorization": "Bearer oc_live_not_this_one"}}
CASES: list[Case] = [
    ("GET", "/me", fixed("/me"), {}, 200),
    ("GET", "/me", fixed("/me"), WRONG_KEY, 401),
    ("GET", "/agents", fixed("/agents"), {}, 200),
    ("GET", "/agents", fixed("/agents"), {"params": {"status": "draft", "limit": 200}}, 200),
    ("GET", "/agents", fixed("/agents"), {"params": {"limit": 201}}, 400),
    ("GET", "/agents", fixed("/agents"), WRONG_KEY, 401),
    ("GET", "/agents/{id}", lambda ids: f"/agents/{ids.deployed_agent_id}", {}, 200),
    ("GET", "/agents/{id}", lambda ids: f"/agents/{ids.draft_agent_id}", {}, 200),
    ("GET", "/agents/{id}", lambda ids: f"/agents/{ids.foreign_agent_id}", {}, 404),
    ("GET", "/agents/{id}", fixed("/agents/clxnope"), WRONG_KEY, 401),
    ("GET", "/contacts", fixed("/contacts"), {"params": {"limit": 500}}, 200),
    ("GET", "/contacts", fixed("/contacts"), {"params": {"contactListId": "clxnope"}}, 200),
    ("GET", "/contacts", fixed("/contacts"), {"params": {"limit": "x"}}, 400),
    ("GET", "/contacts", fixed("/contacts"), WRONG_KEY, 401),
    ("GET", "/calls", fixed("/calls"), {"params": {"limit": 200}}, 200),
    ("GET", "/calls", fixed("/calls"), {"params": {"status": "bogus"}}, 400),
    ("GET", "/calls", fixed("/calls"), WRONG_KEY, 401),
    ("GET", "/calls/{id}", lambda ids: f"/calls/{ids.long_transcript_call_id}", {}, 200),
    ("GET", "/calls/{id}", lambda ids: f"/calls/{ids.foreign_call_id}", {}, 404),
    ("GET", "/calls/{id}", fixed("/calls/clxnope"), WRONG_KEY, 401),
    ("GET", "/campaigns/{id}", lambda ids: f"/campaigns/{ids.campaign_id}", {}, 200),
    ("GET", "/campaigns/{id}", lambda ids: f"/campaigns/{ids.foreign_campaign_id}", {}, 404),
    ("GET", "/campaigns/{id}", fixed("/campaigns/clxnope"), WRONG_KEY, 401),
    ("POST", "/contacts", fixed("/contacts"), {"json": {"phone": US}}, 400),
    ("POST", "/contacts", fixed("/contacts"), {"json": {"contactListId": "clxnope", "phone": US}}, 404),
    ("POST", "/contacts", fixed("/contacts"), WRONG_KEY, 401),
    ("POST", "/calls", fixed("/calls"), {"json": {"toNumber": US}}, 400),
    ("POST", "/calls", fixed("/calls"), WRONG_KEY, 401),
    ("POST", "/calls", fixed("/calls"), {"json": {"agentId": "clxnope", "toNumber": US}}, 404),
]


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox()


@pytest.fixture
async def http(sandbox: Sandbox) -> AsyncIterator[httpx2.AsyncClient]:
    async with sandbox.http_client() as client:
        yield client


@pytest.mark.parametrize(
    ("method", "template", "path", "options", "status"), CASES, ids=[f"{c[0]} {c[1]} {c[4]}" for c in CASES]
)
async def test_an_answer_validates_against_the_document(
    http: httpx2.AsyncClient,
    sandbox: Sandbox,
    method: str,
    template: str,
    path: Path_,
    options: dict[str, Any],
    status: int,
) -> None:
    response = await http.request(method, path(sandbox.seed_ids), **options)
    assert response.status_code == status, response.text
    assert_answer_conforms(method, template, response)


async def test_created_resources_validate(http: httpx2.AsyncClient, sandbox: Sandbox) -> None:
    ids = sandbox.seed_ids
    contact = await http.post(
        "/contacts",
        json={
            "contactListId": ids.contact_list_id,
            "phone": US,
            "name": "Jane",
            "email": "jane@example.com",
            "company": "Acme",
            "tags": ["a"],
            "customFields": {"x": 1},
        },
    )
    bare = await http.post("/contacts", json={"contactListId": ids.contact_list_id, "phone": US})
    call = await http.post("/calls", **dial(contactId=ids.contact_id)(ids))
    for response, template in ((contact, "/contacts"), (bare, "/contacts"), (call, "/calls")):
        assert response.status_code == 201
        assert_answer_conforms("POST", template, response)


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"agentId": "draft_agent_id"}, 400),
        ({"toNumber": "+79123456789"}, 400),
        ({"phoneNumberId": "inactive_phone_number_id"}, 400),
        ({"contactId": "foreign_contact_id"}, 404),
    ],
)
async def test_dial_refusals_validate(
    http: httpx2.AsyncClient, sandbox: Sandbox, change: dict[str, str], status: int
) -> None:
    ids = sandbox.seed_ids
    body = {"agentId": ids.deployed_agent_id, "toNumber": US}
    body.update({k: getattr(ids, v, v) for k, v in change.items()})
    response = await http.post("/calls", json=body)
    assert response.status_code == status
    assert_answer_conforms("POST", "/calls", response)


async def test_a_402_validates() -> None:
    sandbox = Sandbox(credits=3)
    async with sandbox.http_client() as http:
        response = await http.post("/calls", **dial()(sandbox.seed_ids))
    assert response.status_code == 402
    assert_answer_conforms("POST", "/calls", response)


@pytest.mark.parametrize("status", [429, 500, 502, 503])
async def test_injected_error_statuses_validate(http: httpx2.AsyncClient, sandbox: Sandbox, status: int) -> None:
    sandbox.faults.add(Fault("status", status=status, retry_after=2))
    response = await http.post("/calls", **dial()(sandbox.seed_ids))
    assert response.status_code == status
    assert_answer_conforms("POST", "/calls", response)


async def test_a_live_call_validates_in_every_status(http: httpx2.AsyncClient, sandbox: Sandbox) -> None:
    seen = set()
    for outcome in ("completed", "voicemail", "no_answer", "busy", "failed"):
        sandbox.script_next_call(outcome=outcome, duration_seconds=20)
        call_id = (await http.post("/calls", **dial()(sandbox.seed_ids))).json()["id"]
        for _ in range(20):
            detail = await http.get(f"/calls/{call_id}")
            listing = await http.get("/calls", params={"limit": 5})
            assert_answer_conforms("GET", "/calls/{id}", detail)
            assert_answer_conforms("GET", "/calls", listing)
            seen.add(detail.json()["status"])
            await sandbox.advance(2)
    assert seen == {"queued", "ringing", "in_progress", "completed", "voicemail", "no_answer", "busy", "failed"}


@pytest.mark.parametrize("wrapped", [False, True])
async def test_webhook_payloads_validate(wrapped: bool) -> None:
    sandbox = Sandbox(
        webhook_url="http://hooks.test/",
        webhook_wrapped=wrapped,
        webhook_transport=httpx2.MockTransport(lambda request: httpx2.Response(204)),
    )
    async with sandbox.http_client() as http:
        for outcome in ("completed", "busy"):
            sandbox.script_next_call(outcome=outcome)
            await http.post("/calls", **dial()(sandbox.seed_ids))
    deliveries = await sandbox.advance(60)
    assert len(deliveries) == 2
    pointer = "#/webhooks/callEnded/post/requestBody/content/application~1json/schema"
    for delivery in deliveries:
        validator = Draft202012Validator({"$ref": f"{BASE}{pointer}"}, registry=REGISTRY)
        assert list(validator.iter_errors(delivery.payload)) == []
        call = delivery.payload["call"] if wrapped else delivery.payload
        assert list(undeclared(call, {"$ref": "#/components/schemas/CallDetail"})) == []


def test_every_documented_operation_and_status_is_exercised() -> None:
    exercised = {(m, t, str(s)) for m, t, _, _, s in CASES}
    exercised |= {
        ("POST", "/contacts", "201"),
        ("POST", "/calls", "201"),
        ("POST", "/calls", "402"),
        ("POST", "/calls", "502"),
    }
    documented = {
        (method.upper(), template, status)
        for template, operations in SPEC["paths"].items()
        for method, operation in operations.items()
        for status in operation["responses"]
        if status != "default"
    }
    assert documented - exercised == set()


def test_the_documents_schemas_are_valid_and_every_ref_resolves() -> None:
    for schema in SPEC["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)

    def refs(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if "$ref" in node:
                yield node["$ref"]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    for ref in refs(SPEC):
        assert resolve(ref) is not None, ref


def test_the_checks_catch_a_missing_or_an_undeclared_field() -> None:
    agent = {
        "id": "clx1",
        "name": "A",
        "status": "deployed",
        "elevenLabsAgentId": None,
        "language": "en",
        "createdAt": "2025-06-02T09:00:00.000Z",
    }
    with pytest.raises(AssertionError):
        assert_conforms("#/components/schemas/Agent", {k: v for k, v in agent.items() if k != "id"})
    with pytest.raises(AssertionError):
        assert_conforms("#/components/schemas/Agent", {**agent, "createdAt": "2025-06-02 09:00"})
    assert list(undeclared({**agent, "extra": 1}, {"$ref": "#/components/schemas/Agent"})) == ["$.extra"]
    turn = {"role": "agent", "message": "hi", "timeInCallSecs": 0, "speaker": "x"}
    assert list(undeclared({"transcript": [turn]}, {"$ref": "#/components/schemas/CallDetail"})) == [
        "$.transcript[0].speaker"
    ]
