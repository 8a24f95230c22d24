"""Subscription resolvers."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import strawberry

from app.data.repositories.subject_links import acts_through_linked_row
from app.data.status_fanout import PAGE, Scope
from app.domain.errors import ApiError, BadUserInput, Forbidden
from app.domain.opaque_ids import NodeType
from models.enums import Role
from resolvers.context import Info
from resolvers.event_loaders import EventLoaders
from resolvers.subscription_errors import masked
from schema import types

if TYPE_CHECKING:
    from app.server.services import Services

TOKEN_EXPIRED = 4401
# As a token refused at `connection_init`: the pool no longer publishes the key that signed it.
KEY_RETIRED = 4403

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
    services: Services = context.request.app.state.services
    fanout = services.fanout
    reader = fanout.reader(Scope.of(viewer, record_id=record, patient_id=patient))
    loaders = context.loaders = EventLoaders(context, viewer)
    # Each delivery's row goes with those of the other deliveries of the moment (schema/audit.py).
    context.audit_writer = fanout.audit

    # Subscribed before reading the position: a change committed in between still rings.
    doorbell = context.status_stream.subscribe(viewer.tenant_id)
    expired = retired = False
    try:
        if position is None:
            position = await fanout.latest_sequence(viewer.tenant_id)
        while True:
            page = await reader.events_after(position)
            # A key the pool stopped publishing stops vouching for tokens it signed, open
            # subscriptions included (the JWKS is refreshed at least every max age).
            token = context.token
            if page.rows and (token is None or not await services.verifier.still_signed(token)):
                retired = True
                return
            # Admins act by their token alone: no statement, nor a wait for a connection.
            # Subscribers of the scope acting as the same subject share the statement.
            if (
                page.rows
                and reader.scope.role is not Role.ADMIN
                and not await page.statements.run(acts_through_linked_row, (viewer.subject,))
            ):
                raise Forbidden(
                    "the provider or patient this subscription acts as is no longer linked to "
                    "the token's subject, or no longer active"
                )
            for row in page.rows:
                if datetime.now(UTC) >= viewer.expires_at:
                    expired = True
                    return
                position = row.sequence
                # Empty loaders per event: nested fields are batched, and read as they are now.
                loaders.next_event(page.statements)
                event = loaders.made(types.RecordStatusEvent, row)
                # Each delivery discloses the record (and so its patient). Loading the record
                # here also warms the loader for `record { ... }`. The delivery's audit row is
                # appended once its whole selection ran, before it is sent (schema/audit.py).
                await loaders.by_id(types.MedicalRecord).load(row.record_id)
                yield event
            if len(page.rows) == PAGE:
                continue
            remaining = (viewer.expires_at - datetime.now(UTC)).total_seconds()
            try:
                async with asyncio.timeout(max(remaining, 0)):
                    await doorbell.wait()
            except TimeoutError:
                expired = True
                return
    except ApiError:
        raise
    except Exception as error:
        # Strawberry would send the exception's text; unexpected errors leave masked, as in HTTP.
        raise masked(error, context.request_id) from None
    finally:
        context.status_stream.unsubscribe(doorbell)
        if expired:
            await context.close_connection(TOKEN_EXPIRED, "token expired")
        elif retired:
            await context.close_connection(KEY_RETIRED, "unknown signing key")
