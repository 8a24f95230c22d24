"""GraphiQL in a real headless Chromium: only the API's own files, under a strict CSP, and a token
pasted into the header editor runs queries and subscriptions."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

import httpx

from app.domain.opaque_ids import NodeType, OpaqueIds
from models.enums import RecordStatus

if TYPE_CHECKING:
    from app.ops.dev_issuer import LocalTokenIssuer
    from app.settings import Settings
    from tests.browser.cdp import Page
    from tests.factories import Factory

# The editors are CodeMirror 5 instances; their wrapper element holds the editor object.
QUERY_EDITOR = "document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror"
HEADER_EDITOR = (
    "document.querySelector('.graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror')"
    ".CodeMirror"
)
RESPONSE = "(document.querySelector('.graphiql-response .CodeMirror')?.CodeMirror.getValue() ?? '')"


async def _open_graphiql(page: Page, origin: str) -> None:
    await page.send("Page.navigate", url=f"{origin}/graphql")
    await page.wait_for_event("Page.loadEventFired")
    await page.wait_until(f"!!{HEADER_EDITOR}", what="GraphiQL's header editor")


async def _paste_token_and_run(page: Page, token: str, query: str) -> None:
    """What a developer does: replace the placeholder headers with a token, write, run."""
    await page.evaluate(f"{HEADER_EDITOR}.focus(); {HEADER_EDITOR}.execCommand('selectAll')")
    headers = json.dumps({"Authorization": f"Bearer {token}"})
    await page.send("Input.insertText", text=headers)
    assert json.loads(await page.evaluate(f"{HEADER_EDITOR}.getValue()")) == json.loads(headers)
    await page.evaluate(f"{QUERY_EDITOR}.setValue({json.dumps(query)})")
    # GraphiQL parses the edited query after a short debounce; it sends subscriptions over the
    # WebSocket only once it has seen that the document is one, as it would for a human.
    await page.wait_until(
        f"{QUERY_EDITOR}.documentAST?.loc?.source?.body === {json.dumps(query)}",
        what="GraphiQL to parse the query",
    )
    await page.evaluate("document.querySelector('.graphiql-execute-button').click()")


def _assert_only_own_origin(page: Page, origin: str) -> None:
    requested = [event["request"]["url"] for event in page.named("Network.requestWillBeSent")]
    # data: URLs (GraphiQL's embedded fonts, the empty favicon) are not network requests.
    external = [url for url in requested if not url.startswith((f"{origin}/", "data:"))]
    assert requested, "the browser recorded no requests"
    assert external == [], f"requests outside {origin}: {external}"
    failed = page.named("Network.loadingFailed")
    assert failed == [], f"failed requests: {failed}"
    bad = [
        (event["response"]["url"], event["response"]["status"])
        for event in page.named("Network.responseReceived")
        if event["response"]["status"] >= 400
    ]
    assert bad == [], f"error responses: {bad}"
    sockets = [event["url"] for event in page.named("Network.webSocketCreated")]
    ws_origin = "ws" + origin.removeprefix("http")
    assert all(url.startswith(f"{ws_origin}/") for url in sockets), sockets


async def _assert_no_violations_or_errors(page: Page) -> None:
    assert await page.evaluate("window.__cspViolations") == []
    errors = [
        event["entry"]["text"]
        for event in page.named("Log.entryAdded")
        if event["entry"]["level"] == "error"
    ]
    errors += [
        json.dumps(event["args"])
        for event in page.named("Runtime.consoleAPICalled")
        if event["type"] == "error"
    ]
    assert errors == [], errors


async def test_graphiql_loads_only_its_own_files_and_runs_a_query(
    page: Page, origin: str, issuer: LocalTokenIssuer, tenant_id: str
) -> None:
    await _open_graphiql(page, origin)

    document = next(
        event["response"]
        for event in page.named("Network.responseReceived")
        if event["type"] == "Document"
    )
    headers = {name.lower(): value for name, value in document["headers"].items()}
    policy = headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self';" in policy
    assert "connect-src 'self';" in policy
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert "Bearer <paste a token>" in await page.evaluate(f"{HEADER_EDITOR}.getValue()")

    subject = f"graphiql-{uuid.uuid4().hex[:8]}"
    token = issuer.issue(subject, groups=("admin",), tenant_id=tenant_id)
    await _paste_token_and_run(page, token, "{ me { subject } }")
    shown = await page.wait_until(
        f"{RESPONSE}.includes({json.dumps(subject)}) && {RESPONSE}", what="the answer"
    )
    assert json.loads(shown)["data"] == {"me": {"subject": subject}}

    # GraphiQL's dialogs add a <style> element: the page's nonce must let it through.
    await page.evaluate(
        "document.querySelector('button[aria-label=\"Open settings dialog\"]').click()"
    )
    await page.wait_until("!!document.querySelector('.graphiql-dialog')", what="the dialog")
    assert await page.evaluate("document.querySelectorAll('style[nonce]').length") > 0

    scripts = [
        event["response"]["url"]
        for event in page.named("Network.responseReceived")
        if event["type"] == "Script"
    ]
    assert any("/graphiql/static/graphiql.min.js" in url for url in scripts), scripts
    _assert_only_own_origin(page, origin)
    await _assert_no_violations_or_errors(page)


SUBSCRIPTION = "subscription { recordStatusChanged { status record { status } } }"
CHANGE = """mutation($input: ChangeRecordStatusInput!) {
  changeRecordStatus(input: $input) { record { status } } }"""


async def test_graphiql_runs_a_subscription_over_a_same_origin_websocket(
    page: Page,
    origin: str,
    issuer: LocalTokenIssuer,
    tenant_id: str,
    factory: Factory,
    settings: Settings,
) -> None:
    record = await factory.record(
        await factory.patient(), await factory.provider(), status=RecordStatus.DRAFT
    )
    await factory.diagnosis(record)
    token = issuer.issue("graphiql-admin", groups=("admin",), tenant_id=tenant_id)

    await _open_graphiql(page, origin)
    await _paste_token_and_run(page, token, SUBSCRIPTION)

    def subscribed(event: dict[str, Any]) -> bool:
        return '"subscribe"' in event["response"]["payloadData"]

    await page.wait_for_event("Network.webSocketFrameSent", subscribed)
    change = {
        "id": OpaqueIds(settings.opaque_id_key).encode_id(NodeType.MEDICAL_RECORD, record["id"]),
        "status": "FINALIZED",
        "expectedVersion": 1,
    }
    async with httpx.AsyncClient(base_url=origin, timeout=10) as client:
        changed = await client.post(
            "/graphql",
            json={"query": CHANGE, "variables": {"input": change}},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert "errors" not in changed.json(), changed.json()

    shown = await page.wait_until(
        f"{RESPONSE}.includes('FINALIZED') && {RESPONSE}", what="the subscription event"
    )
    assert json.loads(shown)["data"]["recordStatusChanged"]["status"] == "FINALIZED"
    # The token went in `connection_init`, over a WebSocket to this very origin.
    init = await page.wait_for_event(
        "Network.webSocketFrameSent",
        lambda event: '"connection_init"' in event["response"]["payloadData"],
    )
    assert token in init["response"]["payloadData"]
    assert page.named("Network.webSocketCreated"), "no WebSocket was opened"
    _assert_only_own_origin(page, origin)
    await _assert_no_violations_or_errors(page)
