"""One ``medrec.request`` JSON line per request, with the fields operators search by."""

from __future__ import annotations

import io
import json
import logging
import sys
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import WebSocketRoute
from starlette.types import Message, Scope
from starlette.websockets import WebSocket

from app.server.logging_config import (
    JsonFormatter,
    describe_exception,
    json_lines_handler,
    logging_config,
)
from app.server.observability import Observability, ObservabilityMiddleware
from tests.api_client import Api
from tests.observability.helpers import request_lines

FIELDS = {
    "time",
    "level",
    "logger",
    "message",
    "request_id",
    "method",
    "path",
    "status",
    "operation",
    "operation_type",
    "duration_ms",
    "cost",
    "outcome",
    "subject",
}


async def test_each_request_writes_one_line_with_its_fields(
    api: Api, client: httpx.AsyncClient, all_logs: pytest.LogCaptureFixture
) -> None:
    token = api.token(subject="obs-log-subject")
    sent: list[tuple[str, httpx.Response]] = []

    async def post(
        request_id: str, query: str, variables: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        headers = {"X-Request-ID": request_id}
        sent.append((request_id, await api.post(query, variables, headers=headers, **kwargs)))

    await post("obs-named", "query ObsMe { me { subject } }", token=token)
    await post("obs-anonymous", "{ me { subject } }", token=token)
    await post(
        "obs-bad-input",
        """mutation ObsCreate($input: CreatePatientInput!) {
             createPatient(input: $input) { patient { id } } }""",
        {
            "input": {
                "mrn": "bad mrn!",
                "givenName": "A",
                "familyName": "B",
                "dateOfBirth": "1990-01-01",
                "sex": "FEMALE",
            }
        },
        token=token,
    )
    await post("obs-no-token", "query ObsPatients { patients { edges { node { id } } } }")
    # An operation name the document does not define is free text: never logged.
    sent.append(
        (
            "obs-junk-name",
            await client.post(
                "/graphql",
                json={"query": "query ObsA { me { subject } }", "operationName": "Jane Doe"},
                headers={"X-Request-ID": "obs-junk-name", "Authorization": f"Bearer {token}"},
            ),
        )
    )
    # Refused before any GraphQL work: still one line, with the caller's request id.
    sent.append(
        (
            "obs-too-large",
            await client.post(
                "/graphql",
                content=b'{"query": "' + b" " * (2 * 1024 * 1024) + b'{ me { subject } }"}',
                headers={"X-Request-ID": "obs-too-large", "Content-Type": "application/json"},
            ),
        )
    )
    health = await client.get("/healthz", headers={"X-Request-ID": "obs-health"})

    lines = request_lines(all_logs)
    assert len(lines) == len(sent) + 1
    assert all(set(line) == FIELDS for line in lines)
    assert all(line["logger"] == "medrec.request" for line in lines)
    by_id = {line["request_id"]: line for line in lines}
    assert len(by_id) == len(lines)

    named_response = sent[0][1]
    named = by_id["obs-named"]
    assert named["level"] == "INFO"
    assert (named["method"], named["path"], named["status"]) == ("POST", "/graphql", 200)
    assert (named["operation"], named["operation_type"]) == ("ObsMe", "query")
    assert (named["outcome"], named["subject"]) == ("ok", "obs-log-subject")
    assert isinstance(named["duration_ms"], float)
    assert named["duration_ms"] > 0
    assert named["cost"] == named_response.json().get("extensions", {}).get("cost")

    anonymous = by_id["obs-anonymous"]
    assert (anonymous["operation"], anonymous["operation_type"]) == (None, "query")
    assert anonymous["outcome"] == "ok"

    bad_input = by_id["obs-bad-input"]
    assert (bad_input["operation"], bad_input["operation_type"]) == ("ObsCreate", "mutation")
    assert (bad_input["outcome"], bad_input["status"]) == ("error", 200)

    no_token = by_id["obs-no-token"]
    assert (no_token["operation"], no_token["outcome"], no_token["subject"]) == (
        "ObsPatients",
        "denied",
        None,
    )

    junk = by_id["obs-junk-name"]
    assert junk["operation"] is None
    assert junk["outcome"] == "error"
    assert "Jane" not in json.dumps(lines)

    too_large = by_id["obs-too-large"]
    assert sent[-1][1].status_code == 413
    assert (too_large["status"], too_large["outcome"], too_large["operation"]) == (
        413,
        "error",
        None,
    )

    # Outside the API: at DEBUG, with the route's template as the path.
    assert health.status_code == 200
    probe = by_id["obs-health"]
    assert (probe["level"], probe["path"], probe["status"]) == ("DEBUG", "/healthz", 200)

    # The response's X-Request-ID is the one logged.
    for request_id, response in sent[:4]:
        assert response.headers["x-request-id"] == request_id


def _record(exc_info: Any = None, **fields: Any) -> logging.LogRecord:
    record = logging.LogRecord("medrec.test", logging.ERROR, __file__, 1, "failed %s", ("x",), None)
    record.exc_info = exc_info
    if fields:
        record.fields = fields
    return record


def test_json_lines_leave_exception_messages_out() -> None:
    # Built here so that the frames' source lines (which are logged) don't quote them.
    name, mrn = "Quillonia" + " Vasterbrook", "MRN" + "-123"
    try:
        try:
            raise LookupError(f"row for {name}")
        except LookupError as error:
            raise RuntimeError(f"while reading {mrn}") from error
    except RuntimeError:
        exc_info = sys.exc_info()
    line = JsonFormatter().format(_record(exc_info, request_id="r-1", status=500))
    entry = json.loads(line)
    assert "\n" not in line
    assert entry["message"] == "failed x"
    assert (entry["level"], entry["logger"]) == ("ERROR", "medrec.test")
    assert (entry["request_id"], entry["status"]) == ("r-1", 500)
    assert entry["time"].endswith("Z")
    assert "LookupError" in entry["exception"]
    assert "RuntimeError" in entry["exception"]
    assert "test_json_lines_leave_exception_messages_out" in entry["exception"]  # the frames
    assert "Quillonia" not in line
    assert "MRN-123" not in line


def test_network_errors_keep_their_messages() -> None:
    try:
        raise ConnectionRefusedError(111, "Connect call failed")
    except ConnectionRefusedError:
        exc_info = sys.exc_info()
    assert describe_exception(exc_info).endswith(  # type: ignore[arg-type]
        "ConnectionRefusedError: [Errno 111] Connect call failed"
    )


def test_fields_cannot_replace_the_standard_keys() -> None:
    entry = json.loads(JsonFormatter().format(_record(level="fake", message="fake")))
    assert (entry["level"], entry["message"]) == ("ERROR", "failed x")


def test_logging_config_caps_libraries_that_print_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDREC_LOG_LEVEL", "debug")
    config = logging_config()
    assert config["root"]["level"] == "DEBUG"
    assert config["disable_existing_loggers"] is False
    loggers = config["loggers"]
    assert loggers["sqlalchemy"]["level"] == "WARNING"
    assert loggers["websockets"]["level"] == "WARNING"
    assert loggers["uvicorn.error"]["level"] == "INFO"
    # A stricter app level applies to the libraries too.
    assert logging_config("ERROR")["loggers"]["uvicorn.error"]["level"] == "ERROR"
    monkeypatch.setenv("MEDREC_LOG_LEVEL", "chatty")
    with pytest.raises(ValueError, match="MEDREC_LOG_LEVEL"):
        logging_config()


def test_the_json_lines_handler_stops_records_collecting_what_lines_omit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The caller's file and line, thread and process: no JSON line names them."""
    for name in ("_srcfile", "logThreads", "logProcesses", "logMultiprocessing"):
        monkeypatch.setattr(logging, name, getattr(logging, name))  # restored afterwards
    stream = io.StringIO()
    handler = json_lines_handler(stream)
    handler.setFormatter(JsonFormatter())
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("medrec.test-json-lines")
    logger.setLevel(logging.INFO)
    keep = Keep()
    for each in (handler, keep):
        logger.addHandler(each)
    try:
        logger.info("seen %s", 1)
    finally:
        for each in (handler, keep):
            logger.removeHandler(each)
    assert json.loads(stream.getvalue())["message"] == "seen 1"
    [record] = records
    assert (record.pathname, record.lineno) == ("(unknown file)", 0)
    assert (record.thread, record.process) == (None, None)


async def test_websocket_connections_write_one_line_when_they_close(
    all_logs: pytest.LogCaptureFixture,
) -> None:
    async def refuse(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.close(code=4403)

    app = Starlette(
        routes=[WebSocketRoute("/graphql", refuse)],
        middleware=[Middleware(ObservabilityMiddleware, observability=Observability())],
    )
    incoming: list[Message] = [{"type": "websocket.connect"}]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0) if incoming else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "root_path": "",
        "query_string": b"token=secret",
        "headers": [(b"host", b"medrec.test")],
        "client": ("203.0.113.7", 50000),
        "server": ("medrec.test", 80),
        "subprotocols": [],
    }
    await app(scope, receive, send)
    assert [message["type"] for message in sent] == ["websocket.accept", "websocket.close"]
    [line] = request_lines(all_logs)
    assert (line["method"], line["path"], line["status"]) == ("WEBSOCKET", "/graphql", 4403)
    assert line["level"] == "INFO"
    assert "secret" not in json.dumps(line)
