"""A frontend on its own dev server calls `medrec dev` from another origin (issue 23): a page on
http://localhost:<port> in headless Chromium posts with a token and client headers, subscribes
over graphql-transport-ws, and sees its own status change arrive; the browser enforces CORS."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest

from tests.test_dev_mode import DevServer, running_dev

if TYPE_CHECKING:
    from tests.browser.cdp import Page

# What a frontend does, with no library: fetch over HTTP, and the graphql-transport-ws protocol
# over the browser's WebSocket with the token in `connection_init`.
FRONTEND = b"""<!doctype html>
<meta charset="utf-8">
<title>A frontend on another origin</title>
<script>
  window.post = async (api, body, headers) => {
    const response = await fetch(api, {
      method: "POST",
      headers: { "Content-Type": "application/json", ...headers },
      body: JSON.stringify(body),
    });
    return {
      status: response.status,
      body: await response.json(),
      requestId: response.headers.get("X-Request-ID"),
      challenge: response.headers.get("WWW-Authenticate"),
    };
  };
  window.events = [];
  window.subscribe = (api, authorization, query, variables) =>
    new Promise((resolve, reject) => {
      const socket = new WebSocket(api.replace(/^http/, "ws"), "graphql-transport-ws");
      const send = (message) => socket.send(JSON.stringify(message));
      socket.onopen = () =>
        send({ type: "connection_init", payload: { Authorization: authorization } });
      socket.onmessage = ({ data }) => {
        const message = JSON.parse(data);
        if (message.type === "connection_ack") {
          send({ id: "1", type: "subscribe", payload: { query, variables } });
          resolve(socket.protocol);
        } else if (message.type === "ping") {
          send({ type: "pong" });
        } else {
          window.events.push(message);
        }
      };
      socket.onclose = (event) => reject(new Error(`closed: ${event.code} ${event.reason}`));
    });
</script>
"""

DRAFTS = """{ records(first: 20, filter: {status: [DRAFT]}) {
  edges { node { id version diagnoses { id } } } } }"""
SUBSCRIPTION = """subscription($id: ID!) {
  recordStatusChanged(recordId: $id, afterSequence: "0") { sequence status } }"""
FINALIZE = """mutation($input: ChangeRecordStatusInput!) {
  changeRecordStatus(input: $input) { record { status } } }"""
STATUS = "query($id: ID!) { record(id: $id) { status } }"


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    """A `medrec dev` of its own data directory: this module finalizes one of its drafts."""
    with running_dev(tmp_path_factory.mktemp("xdg-data")) as server:
        yield server


class _FrontendPage(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(FRONTEND)))
        self.end_headers()
        self.wfile.write(FRONTEND)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the test's output is the browser's, not this server's


@pytest.fixture(scope="module")
def frontend() -> Iterator[str]:
    """The frontend's dev server, on another port: as Vite prints it, http://localhost:<port>."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FrontendPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


async def _call(page: Page, function: str, *arguments: Any) -> Any:
    return await page.evaluate(f"{function}({', '.join(json.dumps(a) for a in arguments)})")


async def test_a_page_on_another_origin_queries_mutates_and_subscribes(
    page: Page, dev_server: DevServer, frontend: str
) -> None:
    assert any(line.startswith("CORS: pages on http://localhost:") for line in dev_server.banner)
    api = f"{dev_server.url}/graphql"
    authorization = dev_server.headers("provider", "demo-north")["Authorization"]
    client = {"apollographql-client-name": "clinic-web", "apollographql-client-version": "1.0.0"}
    await page.send("Page.navigate", url=f"{frontend}/")
    await page.wait_for_event("Page.loadEventFired")
    assert await page.evaluate("location.origin") == frontend != dev_server.url

    drafts = await _call(
        page, "post", api, {"query": DRAFTS}, {"Authorization": authorization, **client}
    )
    assert drafts["status"] == 200, drafts
    assert drafts["requestId"], "X-Request-ID is exposed to the page"
    record = next(
        edge["node"]
        for edge in drafts["body"]["data"]["records"]["edges"]
        if edge["node"]["diagnoses"]  # finalizing needs a diagnosis
    )

    # From "0": the record's DRAFT event is replayed first, so the subscription is running before
    # the change is made.
    protocol = await _call(
        page, "subscribe", api, authorization, SUBSCRIPTION, {"id": record["id"]}
    )
    assert protocol == "graphql-transport-ws"
    statuses = "events.map((m) => m.payload?.data?.recordStatusChanged?.status ?? m.type)"
    assert await page.wait_until(f"{statuses}.includes('DRAFT') && {statuses}") == ["DRAFT"]

    change = {"id": record["id"], "status": "FINALIZED", "expectedVersion": record["version"]}
    changed = await _call(
        page,
        "post",
        api,
        {"query": FINALIZE, "variables": {"input": change}},
        {"Authorization": authorization, **client},
    )
    assert changed["body"]["data"]["changeRecordStatus"]["record"]["status"] == "FINALIZED", changed
    consistency = changed["body"]["extensions"]["consistency"]
    reread = await _call(
        page,
        "post",
        api,
        {"query": STATUS, "variables": {"id": record["id"]}},
        {"Authorization": authorization, "X-Medrec-Consistency": consistency, **client},
    )
    assert reread["body"]["data"]["record"]["status"] == "FINALIZED", reread
    shown = await page.wait_until(f"{statuses}.includes('FINALIZED') && {statuses}")
    assert shown == ["DRAFT", "FINALIZED"]

    # Without a token: a 401, whose challenge the page may read.
    refused = await _call(
        page,
        "post",
        api,
        {"query": "{ me { subject } }"},
        {"Accept": "application/graphql-response+json", **client},
    )
    assert (refused["status"], refused["challenge"]) == (401, "Bearer"), refused
    # The browser does enforce CORS here: a header the server does not allow stops the request.
    blocked = await page.evaluate(
        f"post({json.dumps(api)}, {{query: '{{ __typename }}'}}, {{'X-Not-Allowed': '1'}})"
        ".then(() => 'sent', (error) => error.name)"
    )
    assert blocked == "TypeError"
