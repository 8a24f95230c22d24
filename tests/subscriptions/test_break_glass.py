"""Break-glass over subscriptions: admins hear of every grant of their tenant as it is made,
through any server process; and a grant opens a RESTRICTED record's status events to its holder
only while it is active, open subscriptions included."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import text, update

from app.domain.opaque_ids import NodeType
from models import BreakGlassGrant
from models.enums import AccessAction, AuditOutcome, Confidentiality, RecordStatus
from tests.api_client import audit_rows
from tests.factories import Factory
from tests.subscriptions.conftest import connect
from tests.subscriptions.helpers import (
    IDS,
    changed,
    graphql,
    latest_sequence,
    next_event,
    patient_gid,
    record_gid,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from tests.api_client import Api
    from tests.subscriptions.conftest import Server, Subscriber

ACTIVATED = """subscription { breakGlassActivated {
  id subject reason active revokedAt patient { id } provider { id } } }"""

BREAK_GLASS = """mutation($input: BreakGlassInput!) {
  breakGlass(input: $input) { grant { id } } }"""

REVOKE = """mutation($id: ID!) { revokeBreakGlass(id: $id) { grant { id active } } }"""

REASON = "patient collapsed in the waiting room"


async def granted(server: Server, token: str, patient: dict[str, Any]) -> str:
    """A ``breakGlass`` through ``server`` that must succeed: the grant's id."""
    body = await graphql(
        server,
        token,
        BREAK_GLASS,
        {"input": {"patientId": patient_gid(patient), "reason": REASON, "durationMinutes": 30}},
    )
    assert "errors" not in body, body
    grant_id: str = body["data"]["breakGlass"]["grant"]["id"]
    return grant_id


async def next_grant(subscriber: Subscriber, operation: str, wait: float = 10.0) -> dict[str, Any]:
    return await next_event(subscriber, operation, wait, field="breakGlassActivated")


async def until_live(
    subscriber: Subscriber, operation: str, make: Callable[[], Awaitable[str]]
) -> None:
    """Makes grants until the subscription delivers one, then takes every later one made.

    ``breakGlassActivated`` starts at the newest grant when the server reads its position,
    which the client cannot observe: a grant made before that is rightly never delivered."""
    made: list[str] = []
    for _ in range(20):
        made.append(await make())
        try:
            first = await next_grant(subscriber, operation, wait=1.0)
        except TimeoutError:
            continue
        assert first["id"] in made, (first, made)
        for later in made[made.index(first["id"]) + 1 :]:
            assert (await next_grant(subscriber, operation))["id"] == later
        return
    raise AssertionError("breakGlassActivated delivered none of 20 grants")


async def test_an_admin_hears_of_a_grant_made_through_another_process(
    api: Api,
    factory: Factory,
    servers: list[Server],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    holder = await factory.provider(cognito_sub="dr-glass-sub")
    patient = await factory.patient()
    provider_token = api.token(subject="dr-glass-sub", groups=("provider",))
    # Another tenant, whose admin is subscribed too and must hear of its own grants only.
    other = Factory(factory.sessionmaker, f"{api.tenant_id}-other")
    other_patient = await other.patient()
    other_admin = api.token(subject="admin-elsewhere", tenant_id=other.tenant_id)
    request_id = f"glass-activated-{uuid.uuid4().hex}"

    async with (
        connect(servers[0], api.token(), additional_headers={"X-Request-ID": request_id}) as ours,
        connect(servers[0], other_admin) as theirs,
    ):
        assert (await ours.next_message())["type"] == "connection_ack"
        assert (await theirs.next_message())["type"] == "connection_ack"
        operation = await ours.subscribe(ACTIVATED)
        their_operation = await theirs.subscribe(ACTIVATED)
        # Made by another admin: the subscriber itself holds no grant.
        maker = api.token(subject="admin-glass-maker")
        await until_live(ours, operation, lambda: granted(servers[1], maker, patient))
        await until_live(
            theirs, their_operation, lambda: granted(servers[1], other_admin, other_patient)
        )
        rows_before = len(await audit_rows(sessionmaker, request_id))

        grant_id = await granted(servers[1], provider_token, patient)
        delivered = await next_grant(ours, operation)
        # The other tenant's admin: its next delivery is its own tenant's next grant, not ours.
        their_next = await granted(servers[1], other_admin, other_patient)
        assert (await next_grant(theirs, their_operation))["id"] == their_next
        rows = await audit_rows(sessionmaker, request_id)

    assert delivered == {
        "id": grant_id,
        "subject": "dr-glass-sub",
        "reason": REASON,
        "active": True,
        "revokedAt": None,
        "patient": {"id": patient_gid(patient)},
        "provider": {"id": IDS.encode_id(NodeType.PROVIDER, holder["id"])},
    }
    # Each delivery has its own audit row, committed before it was sent: the last one names the
    # patient the grant is for.
    assert len(rows) == rows_before + 1
    row = rows[-1]
    assert row["operation_type"] == "subscription"
    assert row["outcome"] is AuditOutcome.OK
    assert row["action"] is AccessAction.VIEWED
    assert row["patient_ids"] == [patient["id"]]
    assert row["break_glass_grant_id"] is None  # the admin holds no grant


@pytest.mark.parametrize("role", ["provider", "patient"])
async def test_only_admins_may_subscribe_to_new_grants(
    api: Api, factory: Factory, servers: list[Server], role: str
) -> None:
    if role == "provider":
        await factory.provider(cognito_sub="dr-glass-watcher")
        token = api.token(subject="dr-glass-watcher", groups=("provider",))
    else:
        await factory.patient(cognito_sub="pt-glass-watcher")
        token = api.token(subject="pt-glass-watcher", groups=("patient",))
    async with connect(servers[1], token) as subscriber:
        assert (await subscriber.next_message())["type"] == "connection_ack"
        operation = await subscriber.subscribe(ACTIVATED)
        message = await subscriber.next_message()
        assert message["id"] == operation, message
        assert message["type"] == "next", message
        assert message["payload"]["data"] is None, message
        codes = [error["extensions"]["code"] for error in message["payload"]["errors"]]
        assert codes == ["FORBIDDEN"], message
        assert await subscriber.next_message() == {"id": operation, "type": "complete"}


EVENTS = """subscription($after: String) {
  recordStatusChanged(afterSequence: $after) { status reason record { id confidentiality } } }"""


async def end_grant(
    how: str,
    server: Server,
    admin: str,
    grant_id: str,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    if how == "revoked":
        body = await graphql(server, admin, REVOKE, {"id": grant_id})
        assert body["data"]["revokeBreakGlass"]["grant"] == {"id": grant_id, "active": False}
        return
    # Test setup: its time runs out by the database's clock (granted_at moves back with it, to
    # keep the table's check expires_at > granted_at).
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(BreakGlassGrant)
            .where(BreakGlassGrant.id == IDS.decode_id(grant_id)[1])
            .values(
                granted_at=text("now() - interval '1 hour'"),
                expires_at=text("now() - interval '1 second'"),
            )
        )


@pytest.mark.parametrize("how", ["revoked", "expired"])
async def test_a_grant_that_ends_stops_open_subscriptions_at_the_next_delivery(
    api: Api,
    factory: Factory,
    servers: list[Server],
    sessionmaker: async_sessionmaker[AsyncSession],
    how: str,
) -> None:
    author = await factory.provider(cognito_sub="dr-glass-author")
    await factory.provider(cognito_sub="dr-glass-holder")
    patient = await factory.patient(primary_provider_id=author["id"])
    secret = await factory.record(
        patient, author, status=RecordStatus.FINALIZED, confidentiality=Confidentiality.RESTRICTED
    )
    plain = await factory.record(patient, author, status=RecordStatus.FINALIZED)
    by_author = api.token(subject="dr-glass-author", groups=("provider",))
    admin = api.token()
    # Holders of each kind, and an admin holding nothing, subscribed on the same process: the
    # fan-out shares reads between subscribers, never grants.
    subscribers = {
        "provider": api.token(subject="dr-glass-holder", groups=("provider",)),
        "admin": api.token(subject="admin-glass-holder"),
        "no grant": admin,
    }
    grants = {
        who: await granted(servers[1], token, patient)
        for who, token in subscribers.items()
        if who != "no grant"
    }
    request_ids = {who: f"glass-events-{uuid.uuid4().hex}" for who in subscribers}
    after = await latest_sequence(sessionmaker, api.tenant_id)
    first: dict[str, dict[str, Any]] = {}
    second: dict[str, dict[str, Any]] = {}

    async with (
        connect(
            servers[0],
            subscribers["provider"],
            additional_headers={"X-Request-ID": request_ids["provider"]},
        ) as provider,
        connect(
            servers[0],
            subscribers["admin"],
            additional_headers={"X-Request-ID": request_ids["admin"]},
        ) as holding_admin,
        connect(
            servers[0],
            subscribers["no grant"],
            additional_headers={"X-Request-ID": request_ids["no grant"]},
        ) as plain_admin,
    ):
        sockets = {"provider": provider, "admin": holding_admin, "no grant": plain_admin}
        operations = {}
        for who, subscriber in sockets.items():
            assert (await subscriber.next_message())["type"] == "connection_ack"
            operations[who] = await subscriber.subscribe(EVENTS, {"after": after})

        await changed(servers[1], by_author, record_gid(secret), "AMENDED", 1, "first addendum")
        for who in ("provider", "admin"):
            first[who] = await next_event(sockets[who], operations[who])

        for grant_id in grants.values():
            await end_grant(how, servers[1], admin, grant_id, sessionmaker)
        # The restricted record changes again, then the plain one: only the latter arrives.
        await changed(servers[1], by_author, record_gid(secret), "AMENDED", 2, "second addendum")
        await changed(servers[1], by_author, record_gid(plain), "AMENDED", 1, "plain addendum")
        for who, subscriber in sockets.items():
            second[who] = await next_event(subscriber, operations[who])
        rows = {who: await audit_rows(sessionmaker, request_ids[who]) for who in subscribers}

    under_grant = {
        "status": "AMENDED",
        "reason": "first addendum",
        "record": {"id": record_gid(secret), "confidentiality": "RESTRICTED"},
    }
    plain_event = {
        "status": "AMENDED",
        "reason": "plain addendum",
        "record": {"id": record_gid(plain), "confidentiality": "NORMAL"},
    }
    assert first == {"provider": under_grant, "admin": under_grant}
    # The admin holding nothing never heard of the restricted record.
    assert second == {"provider": plain_event, "admin": plain_event, "no grant": plain_event}
    # A delivery read under a grant names it; one after the grant ended read under none.
    for who, grant_id in grants.items():
        grant = IDS.decode_id(grant_id)[1]
        assert [(row["record_ids"], row["break_glass_grant_id"]) for row in rows[who]] == [
            ([secret["id"]], grant),
            ([plain["id"]], None),
        ], who
    assert [(row["record_ids"], row["break_glass_grant_id"]) for row in rows["no grant"]] == [
        ([plain["id"]], None)
    ]
