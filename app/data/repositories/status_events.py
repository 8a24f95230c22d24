"""The status event stream, read by subscribers after the last position they delivered."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import func, select

from app.data.database import fetched_rows
from app.domain.access import readable_status_events_for, viewer_parameters
from app.domain.viewer import effective_role
from models import MedicalRecord, RecordStatusEvent

if TYPE_CHECKING:
    import uuid

    from app.data.database import FetchedRow, Reader
    from app.domain.viewer import Viewer


async def latest_sequence(session: Reader, tenant_id: str) -> int:
    latest = await session.scalar(
        select(func.max(RecordStatusEvent.sequence)).where(RecordStatusEvent.tenant_id == tenant_id)
    )
    return int(latest or 0)


async def events_after(
    session: Reader,
    viewer: Viewer,
    after: int,
    *,
    record_id: uuid.UUID | None,
    patient_id: uuid.UUID | None,
    limit: int,
) -> list[FetchedRow]:
    # Built per call (the optional filters vary), but the access predicate is the role's own,
    # with the viewer's values as parameters like every other read.
    statement = select(*RecordStatusEvent.__table__.c).where(
        readable_status_events_for(effective_role(viewer)), RecordStatusEvent.sequence > after
    )
    if record_id is not None:
        statement = statement.where(RecordStatusEvent.record_id == record_id)
    if patient_id is not None:
        statement = statement.where(
            RecordStatusEvent.record_id.in_(
                select(MedicalRecord.id).where(
                    MedicalRecord.tenant_id == viewer.tenant_id,
                    MedicalRecord.patient_id == patient_id,
                )
            )
        )
    statement = statement.order_by(RecordStatusEvent.sequence).limit(limit)
    return fetched_rows(await session.execute(statement, viewer_parameters(viewer)))
