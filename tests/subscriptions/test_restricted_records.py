"""A RESTRICTED record's status changes reach only those who may read the record: its author
(and the patient's primary provider, and the patient), never an admin or another provider."""

from __future__ import annotations

from typing import TYPE_CHECKING

from models.enums import Confidentiality, RecordStatus
from tests.subscriptions.conftest import connect
from tests.subscriptions.helpers import changed, latest_sequence, next_event, record_gid

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from tests.api_client import Api
    from tests.factories import Factory
    from tests.subscriptions.conftest import Server

EVENTS = """subscription($after: String) {
  recordStatusChanged(afterSequence: $after) { status record { id confidentiality } } }"""


async def test_a_restricted_records_events_reach_its_readers_only(
    api: Api,
    factory: Factory,
    servers: list[Server],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    author = await factory.provider(cognito_sub="dr-restricted-author")
    await factory.provider(cognito_sub="dr-restricted-other")
    patient = await factory.patient(primary_provider_id=author["id"])
    secret = await factory.record(
        patient, author, status=RecordStatus.FINALIZED, confidentiality=Confidentiality.RESTRICTED
    )
    plain = await factory.record(patient, author, status=RecordStatus.FINALIZED)
    after = await latest_sequence(sessionmaker, api.tenant_id)
    tokens = {
        "admin": api.token(),
        "author": api.token(subject="dr-restricted-author", groups=("provider",)),
        "other": api.token(subject="dr-restricted-other", groups=("provider",)),
    }

    first: dict[str, dict[str, object]] = {}
    async with (
        connect(servers[0], tokens["admin"]) as admin,
        connect(servers[0], tokens["author"]) as by_author,
        connect(servers[0], tokens["other"]) as other,
    ):
        subscribers = {"admin": admin, "author": by_author, "other": other}
        operations = {}
        for who, subscriber in subscribers.items():
            assert (await subscriber.next_message())["type"] == "connection_ack"
            operations[who] = await subscriber.subscribe(EVENTS, {"after": after})
        # The restricted record changes first; the plain one after it marks where the
        # others' streams must resume.
        await changed(servers[1], tokens["author"], record_gid(secret), "AMENDED", 1, "addendum")
        await changed(servers[1], tokens["author"], record_gid(plain), "AMENDED", 1, "addendum")
        for who, subscriber in subscribers.items():
            first[who] = await next_event(subscriber, operations[who])

    assert first["author"]["record"] == {"id": record_gid(secret), "confidentiality": "RESTRICTED"}
    for who in ("admin", "other"):
        assert first[who]["record"] == {"id": record_gid(plain), "confidentiality": "NORMAL"}, who
