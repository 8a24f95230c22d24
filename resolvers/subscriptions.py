"""Subscription resolvers."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import strawberry

from app.data.repositories import break_glass_grants
from app.data.repositories.subject_links import acts_through_linked_row
from app.data.status_fanout import PAGE, Scope, SharedStatements
from app.domain.access import require_admin
from app.domain.errors import ApiError, BadUserInput, Forbidden
from app.domain.opaque_ids import NodeType
from models.enums import Role
from resolvers.context import Info
from resolvers.event_loaders import EventLoaders
from resolvers.subscription_errors import masked
from schema import types

if TYPE_CHECKING:
    from types import TracebackType

    from app.domain.viewer import Viewer
    from app.server.services import Services
    from resolvers.context import RequestContext

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


class _Watch:
    """What every subscription's loop shares: the tenant's doorbell, the token's expiry and
    signing key, closing the connection with the reason when either ends it, and masking what
    fails unexpectedly."""

    def __init__(self, context: RequestContext, viewer: Viewer, services: Services) -> None:
        assert viewer.tenant_id is not None
        self._context = context
        self._viewer = viewer
        self._services = services
        # Subscribed before the caller reads its position: a change committed in between rings.
        self._doorbell = context.status_stream.subscribe(viewer.tenant_id)
        self._expired = self._retired = False

    async def still_signed(self) -> bool:
        """A key the pool stopped publishing stops vouching for tokens it signed, open
        subscriptions included (the JWKS is refreshed at least every max age)."""
        token = self._context.token
        if token is None or not await self._services.verifier.still_signed(token):
            self._retired = True
        return not self._retired

    def expired(self) -> bool:
        """Nothing is delivered after the token's `exp`."""
        self._expired = datetime.now(UTC) >= self._viewer.expires_at
        return self._expired

    async def ring(self) -> bool:
        """Waits for the next change of the tenant; False once the token expired instead."""
        remaining = (self._viewer.expires_at - datetime.now(UTC)).total_seconds()
        try:
            async with asyncio.timeout(max(remaining, 0)):
                await self._doorbell.wait()
        except TimeoutError:
            self._expired = True
            return False
        return True

    async def __aenter__(self) -> _Watch:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: TracebackType | None
    ) -> None:
        try:
            if isinstance(error, Exception) and not isinstance(error, ApiError):
                # Strawberry would send the exception's text; unexpected errors leave masked, as
                # in HTTP.
                raise masked(error, self._context.request_id) from None
        finally:
            await self._close()

    async def _close(self) -> None:
        self._context.status_stream.unsubscribe(self._doorbell)
        if self._expired:
            await self._context.close_connection(TOKEN_EXPIRED, "token expired")
        elif self._retired:
            await self._context.close_connection(KEY_RETIRED, "unknown signing key")


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

    async with _Watch(context, viewer, services) as watch:
        if position is None:
            position = await fanout.latest_sequence(viewer.tenant_id)
        while True:
            read_from = datetime.now(UTC)
            page = await reader.events_after(position)
            if page.rows and not await watch.still_signed():
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
                if watch.expired():
                    return
                position = row.sequence
                # The delivery's row names a grant active since its page was read, not since the
                # previous delivery: a grant that ended while the subscriber waited opened nothing.
                context.audit.since = read_from
                # Empty loaders per event: nested fields are batched, and read as they are now.
                loaders.next_event(page.statements)
                event = loaders.made(types.RecordStatusEvent, row)
                # Each delivery discloses the record (and so its patient). Loading the record
                # here also warms the loader for `record { ... }`. The delivery's audit row is
                # appended once its whole selection ran, before it is sent (schema/audit.py).
                await loaders.by_id(types.MedicalRecord).load(row.record_id)
                yield event
            if len(page.rows) == PAGE or await watch.ring():
                continue
            return


async def break_glass_activated(info: Info) -> AsyncGenerator[types.BreakGlassGrant, None]:
    context = info.context
    viewer = context.reader()
    require_admin(viewer)
    assert viewer.tenant_id is not None
    services: Services = context.request.app.state.services
    fanout = services.fanout
    loaders = context.loaders = EventLoaders(context, viewer)
    context.audit_writer = fanout.audit

    async with _Watch(context, viewer, services) as watch:
        position = await fanout.read(break_glass_grants.latest_grant, viewer)
        while True:
            read_from = datetime.now(UTC)
            rows = await fanout.read(break_glass_grants.grants_after, viewer, position, PAGE)
            if rows and not await watch.still_signed():
                return
            statements = SharedStatements(fanout, viewer)
            for row in rows:
                if watch.expired():
                    return
                position = row.sequence
                context.audit.since = read_from  # as in record_status_changed
                loaders.next_event(statements)
                yield loaders.made(types.BreakGlassGrant, row)
            if len(rows) == PAGE or await watch.ring():
                continue
            return
