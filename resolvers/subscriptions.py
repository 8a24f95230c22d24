"""Subscription resolvers."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator
from datetime import UTC, datetime

import strawberry

from app.audit import append
from app.context import Info
from app.errors import BadUserInput
from app.opaque_ids import NodeType
from app.repositories import status_events
from models.enums import AuditOutcome
from schema import types

# Events read per query; a subscriber that fell behind catches up in pages of this size.
PAGE = 100
TOKEN_EXPIRED = 4401


_SEQUENCE = re.compile(r"[0-9]{1,19}")
_MAX_SEQUENCE = 2**63 - 1  # bigint


def _position(after_sequence: str | None) -> int | None:
    if after_sequence is None:
        return None
    if not _SEQUENCE.fullmatch(after_sequence) or int(after_sequence) > _MAX_SEQUENCE:
        raise BadUserInput("afterSequence: must be a sequence taken from an event")
    return int(after_sequence)


async def record_status_changed(
    info: Info,
    record_id: strawberry.ID | None = None,
    patient_id: strawberry.ID | None = None,
    after_sequence: str | None = None,
) -> AsyncGenerator[types.RecordStatusEvent, None]:
    context = info.context
    viewer = context.reader()
    assert viewer.tenant_id is not None
    record = (
        None
        if record_id is None
        else context.ids.decode_typed_id(record_id, NodeType.MEDICAL_RECORD, "recordId")
    )
    patient = (
        None
        if patient_id is None
        else context.ids.decode_typed_id(patient_id, NodeType.PATIENT, "patientId")
    )
    position = _position(after_sequence)

    # Subscribed before reading the position: a change committed in between still rings.
    doorbell = context.status_stream.subscribe(viewer.tenant_id)
    expired = False
    try:
        if position is None:
            async with context.sessionmaker() as session:
                position = await status_events.latest_sequence(session, viewer.tenant_id)
        while True:
            async with context.sessionmaker() as session:
                rows = await status_events.events_after(
                    session, viewer, position, record_id=record, patient_id=patient, limit=PAGE
                )
            for row in rows:
                position = row.sequence
                # Fresh loaders per event: nested fields are batched, and read as they are now.
                context.loaders = context.loaders.fresh()
                event = context.loaders.status_event_node(row)
                # Each delivery discloses the record (and so its patient): audited before it
                # is sent. Loading the record here also warms the loader for `record { ... }`.
                await context.loaders.record.load(row.record_id)
                async with context.sessionmaker() as session, session.begin():
                    await append(session, context.audit.event(AuditOutcome.OK))
                context.audit.appended()
                yield event
            if len(rows) == PAGE:
                continue
            remaining = (viewer.expires_at - datetime.now(UTC)).total_seconds()
            try:
                async with asyncio.timeout(max(remaining, 0)):
                    await doorbell.wait()
            except TimeoutError:
                expired = True
                return
    finally:
        context.status_stream.unsubscribe(doorbell)
        if expired:
            await context.close_connection(TOKEN_EXPIRED, "token expired")
