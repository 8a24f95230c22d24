"""``app.ops.seed`` and ``app.ops.demo_data`` against the real schema."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import re
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import UTC, date
from typing import Any

import pytest
from sqlalchemy import Row, Table, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.errors import Conflict
from app.ops.audit_history import MONTHS, add_audit_history
from app.ops.demo_data import DEMO_TENANTS, DemoLogin, load_demo_data
from app.ops.seed import (
    REFERENCE_INSTANT,
    SeedBatch,
    SeedError,
    SeedSummary,
    generate,
    is_valid_npi,
    provider_count,
    seed_tenant,
    synthetic_admin_subject,
)
from models import (
    Attachment,
    AuditEvent,
    AuditEventPatient,
    Diagnosis,
    MedicalRecord,
    Patient,
    Provider,
    RecordStatusEvent,
)
from models.enums import (
    AccessAction,
    AttachmentStatus,
    AuditOutcome,
    DiagnosisType,
    RecordStatus,
    Sex,
)

PATIENTS = 50
# Small batches, so the seeded tenant of these tests spans several of them (8).
BATCH = 7

VITAL_RANGES = {
    "systolicBp": (80, 200),
    "diastolicBp": (40, 120),
    "heartRate": (40, 140),
    "respiratoryRate": (8, 30),
    "temperatureC": (35.0, 41.0),
    "oxygenSaturation": (85, 100),
    "weightKg": (30.0, 250.0),
    "heightCm": (140.0, 210.0),
}
ALLOWED_TRANSITIONS = {
    (None, RecordStatus.DRAFT),
    (RecordStatus.DRAFT, RecordStatus.FINALIZED),
    (RecordStatus.FINALIZED, RecordStatus.AMENDED),
    (RecordStatus.AMENDED, RecordStatus.AMENDED),
    (RecordStatus.DRAFT, RecordStatus.ENTERED_IN_ERROR),
    (RecordStatus.FINALIZED, RecordStatus.ENTERED_IN_ERROR),
    (RecordStatus.AMENDED, RecordStatus.ENTERED_IN_ERROR),
}
CONTENT_TYPES = {"application/pdf", "image/png", "image/jpeg", "application/dicom", "text/plain"}


def new_tenant() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def table(entity: type[Any]) -> Table:
    result = entity.__table__
    assert isinstance(result, Table)
    return result


async def rows(session: AsyncSession, entity: type[Any], tenant_id: str) -> Sequence[Row[Any]]:
    t = table(entity)
    order = t.c.sequence if entity is RecordStatusEvent else t.c.id
    result = await session.execute(select(t).where(t.c.tenant_id == tenant_id).order_by(order))
    return result.all()


async def snapshot(session: AsyncSession, tenant_id: str) -> dict[str, tuple[list[Any], str]]:
    """Per table: the ids (record ids for events) and a digest of every value but ``sequence``."""
    result: dict[str, tuple[list[Any], str]] = {}
    for entity in (Provider, Patient, MedicalRecord, Diagnosis, Attachment, RecordStatusEvent):
        found = await rows(session, entity, tenant_id)
        values = [
            {key: value for key, value in row._asdict().items() if key != "sequence"}
            for row in found
        ]
        key = "record_id" if entity is RecordStatusEvent else "id"
        digest = hashlib.sha256(repr(values).encode()).hexdigest()
        result[entity.__tablename__] = ([value[key] for value in values], digest)
    return result


async def seeded_snapshot(
    session: AsyncSession, tenant_id: str, seed: int, batch_patients: int = BATCH
) -> dict[str, tuple[list[Any], str]]:
    """Seed in a savepoint, read everything back, and roll the savepoint back."""
    savepoint = await session.begin_nested()
    try:
        await seed_tenant(
            session,
            tenant_id=tenant_id,
            patients=PATIENTS,
            seed=seed,
            batch_patients=batch_patients,
        )
        return await snapshot(session, tenant_id)
    finally:
        await savepoint.rollback()


def luhn_npi(npi: str) -> bool:
    """Independent of app.ops.seed: the Luhn check over 80840 followed by all ten digits."""
    digits = [int(ch) for ch in "80840" + npi]
    total = 0
    for index, digit in enumerate(reversed(digits)):
        if index % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


@pytest.fixture
async def seeded(session: AsyncSession) -> tuple[str, SeedSummary]:
    tenant_id = new_tenant()
    summary = await seed_tenant(
        session, tenant_id=tenant_id, patients=PATIENTS, seed=7, batch_patients=BATCH
    )
    return tenant_id, summary


async def test_same_tenant_and_seed_write_identical_rows(session: AsyncSession) -> None:
    tenant_id = new_tenant()
    first = await seeded_snapshot(session, tenant_id, seed=3)
    assert not any(ids for ids, _ in (await snapshot(session, tenant_id)).values())
    second = await seeded_snapshot(session, tenant_id, seed=3)
    assert first == second
    assert all(ids for ids, _ in first.values())


async def test_another_seed_writes_other_rows(session: AsyncSession) -> None:
    tenant_id = new_tenant()
    first = await seeded_snapshot(session, tenant_id, seed=1)
    second = await seeded_snapshot(session, tenant_id, seed=2)
    for name in ("providers", "patients", "medical_records", "diagnoses", "attachments"):
        assert not set(first[name][0]) & set(second[name][0]), name


def test_the_generator_yields_bounded_batches_whatever_their_size() -> None:
    batches = list(generate("t-batches", patients=23, seed=4, batch_patients=5))
    assert [len(batch.patients) for batch in batches] == [5, 5, 5, 5, 3]
    assert len(batches[0].providers) == provider_count(23)
    assert not any(batch.providers for batch in batches[1:])
    for batch in batches:
        # Everything under a batch's patients is in that batch.
        patients = {patient.id for patient in batch.patients}
        records = {record.id for record in batch.records}
        assert {record.patient_id for record in batch.records} == patients
        assert {diagnosis.record_id for diagnosis in batch.diagnoses} == records
        assert {attachment.record_id for attachment in batch.attachments} <= records
        assert {event.record_id for event in batch.status_events} == records
        assert len(batch.records) <= 15 * len(batch.patients)

    def rows(cut: list[SeedBatch]) -> dict[str, list[tuple[Any, ...]]]:
        return {
            part.name: [row for batch in cut for row in getattr(batch, part.name)]
            for part in dataclasses.fields(SeedBatch)
        }

    whole = list(generate("t-batches", patients=23, seed=4, batch_patients=1_000))
    assert len(whole) == 1
    assert rows(batches) == rows(whole)


async def test_small_batches_write_the_rows_of_one_batch_numbering_events_by_time(
    session: AsyncSession,
) -> None:
    tenant_id = new_tenant()
    in_batches = await seeded_snapshot(session, tenant_id, seed=5, batch_patients=BATCH)
    at_once = await seeded_snapshot(session, tenant_id, seed=5, batch_patients=PATIENTS)
    assert in_batches == at_once

    # Written batch by batch, the events are still numbered by time across the tenant, so the
    # stream interleaves the batches: a later batch's events come before an earlier one's.
    await seed_tenant(session, tenant_id=tenant_id, patients=PATIENTS, seed=5, batch_patients=BATCH)
    batch_of_record = {
        record.id: index
        for index, batch in enumerate(
            generate(tenant_id, patients=PATIENTS, seed=5, batch_patients=BATCH)
        )
        for record in batch.records
    }
    events = await rows(session, RecordStatusEvent, tenant_id)
    assert len({batch_of_record[event.record_id] for event in events}) == PATIENTS // BATCH + 1
    instants = [event.changed_at for event in events]
    assert instants == sorted(instants)
    batches = [batch_of_record[event.record_id] for event in events]
    assert batches != sorted(batches)


async def test_counts_are_in_the_documented_ranges(
    session: AsyncSession, seeded: tuple[str, SeedSummary]
) -> None:
    tenant_id, summary = seeded
    providers = await rows(session, Provider, tenant_id)
    patients = await rows(session, Patient, tenant_id)
    records = await rows(session, MedicalRecord, tenant_id)
    diagnoses = await rows(session, Diagnosis, tenant_id)
    attachments = await rows(session, Attachment, tenant_id)
    events = await rows(session, RecordStatusEvent, tenant_id)
    assert summary == SeedSummary(
        tenant_id=tenant_id,
        providers=len(providers),
        patients=len(patients),
        records=len(records),
        diagnoses=len(diagnoses),
        attachments=len(attachments),
        status_events=len(events),
    )
    assert summary.providers == PATIENTS // 20
    assert summary.patients == PATIENTS

    records_per_patient = Counter(record.patient_id for record in records)
    assert set(records_per_patient) == {patient.id for patient in patients}
    assert all(5 <= count <= 15 for count in records_per_patient.values())
    diagnoses_per_record = Counter(diagnosis.record_id for diagnosis in diagnoses)
    assert set(diagnoses_per_record) == {record.id for record in records}
    assert all(1 <= count <= 3 for count in diagnoses_per_record.values())
    attachments_per_record = Counter(attachment.record_id for attachment in attachments)
    assert all(count <= 2 for count in attachments_per_record.values())
    assert len(attachments_per_record) < len(records)

    statuses = Counter(record.status for record in records)
    assert set(statuses) == set(RecordStatus)
    assert statuses[RecordStatus.FINALIZED] > len(records) / 2


async def test_patients_must_be_positive(session: AsyncSession) -> None:
    with pytest.raises(SeedError, match="patients"):
        await seed_tenant(session, tenant_id=new_tenant(), patients=0)


async def test_batches_must_hold_a_patient(session: AsyncSession) -> None:
    with pytest.raises(SeedError, match="batch_patients"):
        await seed_tenant(session, tenant_id=new_tenant(), patients=5, batch_patients=0)


async def test_small_tenants_still_get_a_provider(session: AsyncSession) -> None:
    summary = await seed_tenant(session, tenant_id=new_tenant(), patients=3)
    assert summary.providers == 1
    assert summary.patients == 3


async def test_providers_and_patients_look_real(
    session: AsyncSession, seeded: tuple[str, SeedSummary]
) -> None:
    tenant_id, _ = seeded
    providers = await rows(session, Provider, tenant_id)
    patients = await rows(session, Patient, tenant_id)
    assert is_valid_npi("1234567893")  # The example NPI CMS publishes.
    assert not is_valid_npi("1234567890")
    for provider in providers:
        assert re.fullmatch(r"[12]\d{9}", provider.npi)
        assert luhn_npi(provider.npi), provider.npi
        assert is_valid_npi(provider.npi)
        assert provider.specialty
        assert "@" in (provider.email or "")
        assert provider.cognito_sub
    assert len({p.npi for p in providers}) == len(providers)
    assert len({p.mrn for p in patients}) == len(patients)
    provider_ids = {provider.id for provider in providers}
    for patient in patients:
        assert patient.primary_provider_id in provider_ids
        assert patient.given_name
        assert patient.family_name
        assert patient.date_of_birth < REFERENCE_INSTANT.date()


async def test_records_are_plausible(
    session: AsyncSession, seeded: tuple[str, SeedSummary]
) -> None:
    tenant_id, _ = seeded
    patients = {patient.id: patient for patient in await rows(session, Patient, tenant_id)}
    records = await rows(session, MedicalRecord, tenant_id)
    by_primary = 0
    for record in records:
        patient = patients[record.patient_id]
        assert patient.created_at < record.visit_date < record.created_at
        assert record.created_at <= record.updated_at < REFERENCE_INSTANT
        assert (record.finalized_at is None) == (record.status is RecordStatus.DRAFT)
        by_primary += record.provider_id == patient.primary_provider_id
        if record.vital_signs is not None:
            assert set(record.vital_signs) == set(VITAL_RANGES)
            for key, (low, high) in VITAL_RANGES.items():
                assert low <= record.vital_signs[key] <= high, (key, record.vital_signs)
            assert record.vital_signs["diastolicBp"] < record.vital_signs["systolicBp"]
        for prescription in record.prescriptions:
            assert set(prescription) == {
                "medication",
                "dosage",
                "frequency",
                "durationDays",
                "notes",
            }
            assert prescription["medication"]
            assert prescription["dosage"]
        for lab in record.lab_results:
            assert set(lab) == {"test", "value", "unit", "referenceRange", "abnormal"}
            assert isinstance(lab["value"], str)
            assert isinstance(lab["abnormal"], bool)
    assert by_primary > len(records) / 2
    assert any(record.vital_signs for record in records)
    assert any(record.prescriptions for record in records)
    assert any(record.lab_results for record in records)


async def test_each_record_has_exactly_one_primary_diagnosis(
    session: AsyncSession, seeded: tuple[str, SeedSummary]
) -> None:
    tenant_id, _ = seeded
    types: defaultdict[uuid.UUID, list[DiagnosisType]] = defaultdict(list)
    codes: defaultdict[uuid.UUID, list[str]] = defaultdict(list)
    for diagnosis in await rows(session, Diagnosis, tenant_id):
        types[diagnosis.record_id].append(diagnosis.type)
        codes[diagnosis.record_id].append(diagnosis.icd10_code)
        assert re.fullmatch(r"[A-Z]\d{2}(\.[0-9A-Z]{1,4})?", diagnosis.icd10_code)
        assert diagnosis.description
    for record_id, found in types.items():
        assert found.count(DiagnosisType.PRIMARY) == 1, record_id
        assert len(set(codes[record_id])) == len(codes[record_id])


async def test_status_events_tell_each_records_story(
    session: AsyncSession, seeded: tuple[str, SeedSummary]
) -> None:
    tenant_id, _ = seeded
    providers = {provider.id: provider for provider in await rows(session, Provider, tenant_id)}
    records = {record.id: record for record in await rows(session, MedicalRecord, tenant_id)}
    events = await rows(session, RecordStatusEvent, tenant_id)

    # In sequence order the stream is chronological.
    instants = [event.changed_at for event in events]
    assert instants == sorted(instants)
    assert instants[-1] < REFERENCE_INSTANT

    history: defaultdict[uuid.UUID, list[Row[Any]]] = defaultdict(list)
    for event in events:
        history[event.record_id].append(event)
    assert set(history) == set(records)
    for record_id, story in history.items():
        record = records[record_id]
        provider_subject = providers[record.provider_id].cognito_sub
        assert (story[0].previous_status, story[0].status) == (None, RecordStatus.DRAFT)
        assert story[0].changed_at == record.created_at
        assert story[-1].status == record.status
        assert story[-1].changed_at == record.updated_at
        assert record.version == len(story)
        for before, after in itertools.pairwise(story):
            assert after.previous_status == before.status
            assert after.changed_at > before.changed_at
        for event in story:
            assert (event.previous_status, event.status) in ALLOWED_TRANSITIONS
            if event.status in (RecordStatus.AMENDED, RecordStatus.ENTERED_IN_ERROR):
                assert event.reason
            else:
                assert event.reason is None
            if event.status is RecordStatus.ENTERED_IN_ERROR:
                assert event.changed_by == synthetic_admin_subject(tenant_id)
            else:
                assert event.changed_by == provider_subject
            if event.status is RecordStatus.FINALIZED:
                assert event.changed_at == record.finalized_at


async def test_attachments_follow_the_storage_key_layout(
    session: AsyncSession, seeded: tuple[str, SeedSummary]
) -> None:
    tenant_id, _ = seeded
    records = {record.id: record for record in await rows(session, MedicalRecord, tenant_id)}
    attachments = await rows(session, Attachment, tenant_id)
    assert attachments
    statuses = Counter(attachment.status for attachment in attachments)
    assert statuses.most_common(1)[0][0] is AttachmentStatus.AVAILABLE
    for attachment in attachments:
        visit = records[attachment.record_id].visit_date.astimezone(UTC)
        assert attachment.storage_key == (
            f"{tenant_id}/medical-records/{visit:%Y}/{visit:%m}/"
            f"{attachment.record_id}/{attachment.id}/{attachment.file_name}"
        )
        assert re.fullmatch(r"[a-z0-9-]+\.[a-z]{3}", attachment.file_name)
        assert attachment.content_type in CONTENT_TYPES
        assert re.fullmatch(r"[0-9a-f]{64}", attachment.checksum_sha256)
        assert attachment.size_bytes > 0
        if attachment.status is AttachmentStatus.AVAILABLE:
            assert attachment.uploaded_at is not None
            assert attachment.created_at < attachment.uploaded_at < REFERENCE_INSTANT
        else:
            assert attachment.uploaded_at is None


async def test_existing_patients_need_replace(
    session: AsyncSession, seeded: tuple[str, SeedSummary]
) -> None:
    tenant_id, _ = seeded
    before = await snapshot(session, tenant_id)
    with pytest.raises(SeedError, match="already has patients"):
        await seed_tenant(session, tenant_id=tenant_id, patients=PATIENTS, seed=7)
    assert await snapshot(session, tenant_id) == before


async def test_replace_swaps_the_tenants_rows_and_keeps_the_audit_log(
    session: AsyncSession, seeded: tuple[str, SeedSummary]
) -> None:
    tenant_id, _ = seeded
    other_tenant = new_tenant()
    await seed_tenant(session, tenant_id=other_tenant, patients=20)
    other_before = await snapshot(session, other_tenant)
    session.add(
        AuditEvent(
            tenant_id=tenant_id,
            subject="someone",
            operation_type="query",
            query_sha256="0" * 64,
            outcome=AuditOutcome.OK,
            action=AccessAction.VIEWED,
            request_id="seed-test",
        )
    )
    await session.flush()
    before = await snapshot(session, tenant_id)

    summary = await seed_tenant(session, tenant_id=tenant_id, patients=30, seed=8, replace=True)
    assert summary.patients == 30
    after = await snapshot(session, tenant_id)
    assert len(after["patients"][0]) == 30
    assert not set(before["patients"][0]) & set(after["patients"][0])
    assert not set(before["medical_records"][0]) & set(after["medical_records"][0])

    again = await seed_tenant(session, tenant_id=tenant_id, patients=30, seed=8, replace=True)
    assert again == summary
    assert await snapshot(session, tenant_id) == after

    assert await snapshot(session, other_tenant) == other_before
    audited = await session.scalar(
        select(func.count()).select_from(AuditEvent).where(AuditEvent.tenant_id == tenant_id)
    )
    assert audited == 1


@pytest.mark.parametrize("tenant_id", ["", "a/b", "x" * 65, "-leading-dash"])
async def test_invalid_tenant_ids_are_refused(session: AsyncSession, tenant_id: str) -> None:
    with pytest.raises(SeedError, match="tenant id"):
        await seed_tenant(session, tenant_id=tenant_id, patients=5)


async def _demo_counts(session: AsyncSession) -> dict[str, int]:
    counts: dict[str, int] = {}
    for entity in (Provider, Patient, MedicalRecord, Diagnosis, Attachment, RecordStatusEvent):
        counts[entity.__tablename__] = (
            await session.scalar(
                select(func.count()).select_from(entity).where(entity.tenant_id.in_(DEMO_TENANTS))
            )
        ) or 0
    return counts


async def test_demo_data_is_idempotent_and_links_the_logins(session: AsyncSession) -> None:
    logins = await load_demo_data(session)
    counts = await _demo_counts(session)
    assert counts["patients"] >= 2 * 40

    assert [(login.role, login.tenant_id) for login in logins] == [
        (role, tenant) for tenant in DEMO_TENANTS for role in ("admin", "provider", "patient")
    ]
    assert len({login.subject for login in logins}) == len(logins)
    assert all(isinstance(login, DemoLogin) and login.description for login in logins)
    assert next(login for login in logins if login.role == "provider").subject == (
        "demo-provider-north"
    )

    for tenant_id in DEMO_TENANTS:
        subjects = {login.role: login.subject for login in logins if login.tenant_id == tenant_id}
        assert subjects["admin"] == f"demo-admin-{tenant_id.removeprefix('demo-')}"
        provider = (
            await session.execute(
                select(Provider).where(Provider.cognito_sub == subjects["provider"])
            )
        ).scalar_one()
        patient = (
            await session.execute(select(Patient).where(Patient.cognito_sub == subjects["patient"]))
        ).scalar_one()
        assert provider.tenant_id == patient.tenant_id == tenant_id
        assert patient.primary_provider_id == provider.id
        visible = await session.scalar(
            select(func.count())
            .select_from(MedicalRecord)
            .where(
                MedicalRecord.tenant_id == tenant_id,
                MedicalRecord.patient_id == patient.id,
                MedicalRecord.status.in_((RecordStatus.FINALIZED, RecordStatus.AMENDED)),
            )
        )
        assert visible
        # The linked provider's history names its new subject, not the seeded one.
        authored = await session.scalar(
            select(func.count())
            .select_from(RecordStatusEvent)
            .where(
                RecordStatusEvent.tenant_id == tenant_id,
                RecordStatusEvent.changed_by == subjects["provider"],
            )
        )
        assert authored
        leftover = await session.scalar(
            select(func.count())
            .select_from(RecordStatusEvent)
            .where(RecordStatusEvent.changed_by == f"seed-provider-{provider.id}")
        )
        assert leftover == 0

    assert await load_demo_data(session) == logins
    assert await _demo_counts(session) == counts


async def test_demo_data_refuses_a_login_subject_already_linked_elsewhere(
    session: AsyncSession,
) -> None:
    """The demo's provider login is linked once in the installation, like any subject."""
    await session.execute(
        insert(Patient).values(
            tenant_id=new_tenant(),
            mrn="MRN-TAKEN",
            given_name="Already",
            family_name="Linked",
            date_of_birth=date(1980, 1, 1),
            sex=Sex.FEMALE,
            cognito_sub="demo-provider-north",
        )
    )
    with pytest.raises(Conflict, match=r"^input\.cognitoSub: this subject is already linked$"):
        await load_demo_data(session)


async def test_the_tables_have_statistics_for_the_loaded_rows(session: AsyncSession) -> None:
    await seed_tenant(session, tenant_id=new_tenant(), patients=PATIENTS)
    # The planner's row estimate, which ANALYZE refreshes: without it a freshly loaded table
    # looks empty (or as small as it was) and the first queries get plans for a few rows.
    estimate = await session.scalar(
        text("SELECT reltuples FROM pg_class WHERE oid = 'medical_records'::regclass")
    )
    rows = await session.scalar(select(func.count()).select_from(MedicalRecord))
    assert estimate is not None
    assert rows is not None
    assert estimate >= rows


async def test_audit_history_names_the_tenants_patients_month_by_month(
    seeded: tuple[str, SeedSummary], session: AsyncSession
) -> None:
    tenant_id, _ = seeded
    connection = await session.connection()
    assert await add_audit_history(connection, tenant_id, 1_000) == 1_000
    rows = (
        await connection.execute(
            select(AuditEvent.patient_ids, AuditEvent.occurred_at, AuditEvent.action).where(
                AuditEvent.tenant_id == tenant_id
            )
        )
    ).all()
    patients = set(
        await connection.scalars(select(Patient.id).where(Patient.tenant_id == tenant_id))
    )
    assert len(rows) == 1_000
    assert all(len(row.patient_ids) == 1 for row in rows)
    assert {row.patient_ids[0] for row in rows} == patients
    assert {row.action for row in rows} == {
        AccessAction.VIEWED,
        AccessAction.CHANGED,
        AccessAction.DOWNLOADED_FILE,
    }
    assert len({(row.occurred_at.year, row.occurred_at.month) for row in rows}) >= MONTHS
    # Each in the partition of its month, and found by its patient.
    assert (
        await connection.scalar(
            text("SELECT count(*) FROM audit_events_default WHERE tenant_id = :tenant"),
            {"tenant": tenant_id},
        )
        == 0
    )
    indexed = await connection.scalar(
        select(func.count())
        .select_from(AuditEventPatient)
        .where(AuditEventPatient.tenant_id == tenant_id)
    )
    assert indexed == 1_000


async def test_audit_history_of_a_tenant_without_patients_is_empty(session: AsyncSession) -> None:
    connection = await session.connection()
    assert await add_audit_history(connection, new_tenant(), 100) == 0
