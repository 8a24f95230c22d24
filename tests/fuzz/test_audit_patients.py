"""The audit row of a read names exactly the patients whose data its response holds.

Queries are generated from the served schema (hypothesis-graphql: nested selections, fragments,
``node`` on every type) and run as an admin, a provider and a patient. Every selection on a type
with an ``id`` also selects it (status events their record's, audit events the patients and
records they name), so each row of patient data in a response names itself, as a cursor names
the row it points at; the patients those ids belong to are worked out in SQL, apart from the
server's own bookkeeping, and compared with the row the operation appended.
"""

from __future__ import annotations

import contextlib
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import graphql
import pytest
from graphql import (
    FieldNode,
    GraphQLSchema,
    NameNode,
    SelectionSetNode,
    TypeInfo,
    TypeInfoVisitor,
    build_schema,
    print_ast,
    visit,
)
from hypothesis import given
from hypothesis import strategies as st
from hypothesis_graphql import queries
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.data.pagination import parse_int, parse_uuid
from app.domain.errors import BadUserInput
from app.domain.opaque_ids import NodeType, OpaqueIds
from models import AuditEvent
from models.enums import AttachmentStatus, RecordStatus
from tests.api_client import Api
from tests.factories import Factory
from tests.fuzz.conftest import examples, fuzz_settings

pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")

IDS = OpaqueIds("medrec-opaque-id-v1")
SCHEMA: GraphQLSchema = build_schema(
    (Path(__file__).resolve().parents[2] / "schema" / "schema.graphql").read_text()
)
EXAMPLES = 100
# Queries only (mutation and subscription payloads have tests of their own), those that reach
# patients listed twice.
ROOT_FIELDS = (
    *("node", "patient", "patients", "record", "records"),
    *("node", "patient", "patients", "record", "records"),
    *("me", "provider", "providers", "auditEvents"),
)
ROLES = ("admin", "provider", "patient")


@dataclass(frozen=True)
class Clinic:
    """One tenant's rows, the queries generated against them, and a token per role."""

    documents: st.SearchStrategy[str]
    tokens: dict[str, str]


# How the generated responses went: "compared", or why not.
OUTCOMES: Counter[str] = Counter()


def _field(alias: str, name: str, *selections: FieldNode) -> FieldNode:
    return FieldNode(
        alias=NameNode(value=alias),
        name=NameNode(value=name),
        selection_set=SelectionSetNode(selections=selections) if selections else None,
    )


_ID = _field("auditId", "id")


def _with_ids(document: graphql.DocumentNode) -> graphql.DocumentNode:
    """Every selection on a type with an id selects it; a status event, its record's; an audit
    event, the patients and records it names."""
    type_info = TypeInfo(SCHEMA)

    class AddIds(graphql.Visitor):
        def leave_selection_set(self, node: SelectionSetNode, *_: Any) -> SelectionSetNode:
            parent = type_info.get_parent_type()
            fields = getattr(parent, "fields", {})
            extra: list[FieldNode] = []
            if "id" in fields:
                extra.append(_ID)
            if parent is not None and parent.name == "RecordStatusEvent":
                extra.append(_field("auditRecord", "record", _ID))
            if parent is not None and parent.name == "AuditEvent":
                extra += [
                    _field("auditPatients", "patientIds"),
                    _field("auditRecords", "recordIds"),
                ]
            return SelectionSetNode(selections=(*node.selections, *extra))

    result: graphql.DocumentNode = visit(document, TypeInfoVisitor(type_info, AddIds()))
    return result


def _string(value: str) -> graphql.StringValueNode:
    return graphql.StringValueNode(value=value)


def _documents(clinic_ids: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Queries of one to three root fields, those that reach patients more often."""
    roots = st.lists(st.sampled_from(ROOT_FIELDS), min_size=1, max_size=3, unique=True)
    return roots.flatmap(lambda fields: _queries(tuple(fields), clinic_ids))


def _queries(fields: tuple[str, ...], clinic_ids: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return queries(
        SCHEMA,
        fields=fields,
        custom_scalars={
            "ID": clinic_ids.map(_string),
            # Small pages: the rows, not the page sizes, are what this test is about.
            "Int": st.integers(min_value=1, max_value=4).map(
                lambda n: graphql.IntValueNode(value=str(n))
            ),
            # The String arguments are cursors and searches: made-up ones only fail the query.
            "String": st.just(graphql.NullValueNode()),
            "DateTime": st.sampled_from(
                ["2020-01-01T00:00:00+00:00", "2026-06-01T12:00:00+02:00"]
            ).map(_string),
            "Date": st.sampled_from(["2020-01-01", "2027-01-01"]).map(_string),
        },
        allow_x00=False,
        print_ast=lambda document: print_ast(_with_ids(document)),
    )


# The rows a response shows, by the parameter of _OWNERS that looks them up.
_PARAMETERS = {
    NodeType.PATIENT: "patients",
    NodeType.MEDICAL_RECORD: "records",
    NodeType.DIAGNOSIS: "diagnoses",
    NodeType.ATTACHMENT: "attachments",
}
# A cursor's last value is its row's id.
_CURSORS = {"patients": parse_uuid, "records": parse_uuid, "audit_events": parse_int}


def _rows_in(value: Any) -> set[tuple[str, Any]]:
    """Every row a response's data shows: by its global id, or a cursor pointing at it."""
    found: set[tuple[str, Any]] = set()
    if isinstance(value, dict):
        for item in value.values():
            found |= _rows_in(item)
    elif isinstance(value, list):
        for item in value:
            found |= _rows_in(item)
    elif isinstance(value, str):
        with contextlib.suppress(BadUserInput):  # not an id: a name, a date, a sequence...
            node_type, row_id = IDS.decode_id(value)
            if node_type in _PARAMETERS:
                found.add((_PARAMETERS[node_type], row_id))
        for kind, parse in _CURSORS.items():
            with contextlib.suppress(BadUserInput):
                found.add((kind, parse(IDS.decode_cursor(kind, value)[-1])))
    return found


_OWNERS = text(
    """
    SELECT id AS patient_id, NULL::uuid AS record_id FROM patients WHERE id = ANY(:patients)
    UNION SELECT patient_id, id FROM medical_records WHERE id = ANY(:records)
    UNION SELECT r.patient_id, r.id FROM diagnoses AS d
      JOIN medical_records AS r ON r.tenant_id = d.tenant_id AND r.id = d.record_id
      WHERE d.id = ANY(:diagnoses)
    UNION SELECT r.patient_id, r.id FROM attachments AS a
      JOIN medical_records AS r ON r.tenant_id = a.tenant_id AND r.id = a.record_id
      WHERE a.id = ANY(:attachments)
    UNION SELECT unnest(patient_ids), NULL FROM audit_events WHERE id = ANY(:audit_events)
    UNION SELECT NULL, unnest(record_ids) FROM audit_events WHERE id = ANY(:audit_events)
    """
)


async def _owners(
    sessionmaker: async_sessionmaker[AsyncSession], rows: set[tuple[str, Any]]
) -> tuple[set[uuid.UUID], set[uuid.UUID]]:
    """The patients and records the rows belong to (records through their patients, audit
    events as they name them)."""
    parameters: dict[str, list[Any]] = {
        name: [] for name in (*_PARAMETERS.values(), "audit_events")
    }
    for kind, row_id in rows:
        parameters[kind].append(row_id)
    async with sessionmaker() as session:
        owners = (await session.execute(_OWNERS, parameters)).all()
    return (
        {row.patient_id for row in owners if row.patient_id},
        {row.record_id for row in owners if row.record_id},
    )


async def _row_of(
    sessionmaker: async_sessionmaker[AsyncSession], request_id: str
) -> AuditEvent | None:
    async with sessionmaker() as session:
        rows = (
            await session.scalars(select(AuditEvent).where(AuditEvent.request_id == request_id))
        ).all()
    assert len(rows) <= 1, "one row per operation"
    return rows[0] if rows else None


@pytest.fixture(scope="module")
async def clinic(sessionmaker: async_sessionmaker[AsyncSession], issuer: Any) -> Clinic:
    tenant_id = f"t-{uuid.uuid4().hex[:10]}"
    factory = Factory(sessionmaker, tenant_id)
    api = Api(None, issuer, tenant_id)  # type: ignore[arg-type]  # tokens only
    author = await factory.provider(cognito_sub=f"audit-provider-{tenant_id}")
    colleague = await factory.provider()
    me = await factory.patient(
        cognito_sub=f"audit-patient-{tenant_id}", primary_provider_id=author["id"]
    )
    others = [await factory.patient(primary_provider_id=colleague["id"]) for _ in range(3)]
    ids = [IDS.encode_id(NodeType.PROVIDER, p["id"]) for p in (author, colleague)]
    statuses = (RecordStatus.DRAFT, RecordStatus.FINALIZED, RecordStatus.AMENDED)
    for index, patient in enumerate([me, *others]):
        ids.append(IDS.encode_id(NodeType.PATIENT, patient["id"]))
        for status_index, status in enumerate(statuses):
            provider = author if (index + status_index) % 2 == 0 else colleague
            record = await factory.record(patient, provider, status=status)
            await factory.status_event(record, status=status)
            diagnosis = await factory.diagnosis(record)
            attachment = await factory.attachment(
                record,
                status=AttachmentStatus.AVAILABLE if status_index else AttachmentStatus.REJECTED,
            )
            ids += [
                IDS.encode_id(NodeType.MEDICAL_RECORD, record["id"]),
                IDS.encode_id(NodeType.DIAGNOSIS, diagnosis["id"]),
                IDS.encode_id(NodeType.ATTACHMENT, attachment["id"]),
            ]
    # Another tenant's patient: reads as if it did not exist.
    stranger = await Factory(sessionmaker, f"t-{uuid.uuid4().hex[:10]}").patient()
    ids.append(IDS.encode_id(NodeType.PATIENT, stranger["id"]))
    tokens = {
        "admin": api.token(subject=f"audit-admin-{tenant_id}"),
        "provider": api.token(
            subject=f"audit-provider-{tenant_id}", groups=("provider",), tenant_id=None
        ),
        "patient": api.token(
            subject=f"audit-patient-{tenant_id}", groups=("patient",), tenant_id=None
        ),
    }
    return Clinic(documents=_documents(st.sampled_from(ids)), tokens=tokens)


@fuzz_settings(EXAMPLES)
@given(data=st.data(), role=st.sampled_from(ROLES))
async def test_audit_row_names_exactly_the_patients_in_the_response(
    clinic: Clinic,
    api: Api,
    sessionmaker: async_sessionmaker[AsyncSession],
    data: st.DataObject,
    role: str,
) -> None:
    document = data.draw(clinic.documents, label="document")
    request_id = f"fuzz-{uuid.uuid4().hex}"
    response = await api.post(
        document, token=clinic.tokens[role], headers={"X-Request-ID": request_id}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    codes = {error.get("extensions", {}).get("code") for error in body.get("errors", [])}
    if "QUERY_TOO_COMPLEX" in codes:
        OUTCOMES["too complex"] += 1
        return
    patients, records = await _owners(sessionmaker, _rows_in(body.get("data")))
    row = await _row_of(sessionmaker, request_id)
    audited_patients = set(row.patient_ids) if row is not None else set()
    audited_records = set(row.record_ids) if row is not None else set()
    assert patients <= audited_patients, (role, document, body)
    assert records <= audited_records, (role, document, body)
    if not codes:
        # Nothing fetched and then left out by an error: the row names no more either.
        assert audited_patients == patients, (role, document, body)
        assert audited_records == records, (role, document, body)
    OUTCOMES["compared" if patients else "compared, no patient"] += 1


def test_most_generated_queries_were_compared() -> None:
    if not OUTCOMES:
        pytest.skip("runs after the property test, in the same session")
    # Generated queries often ask for counts, or name an id of another type: those are compared
    # too, but a run where few responses held a patient would prove little.
    assert OUTCOMES["compared"] >= sum(OUTCOMES.values()) // 12, OUTCOMES
    assert sum(OUTCOMES.values()) >= examples(EXAMPLES) // 2, OUTCOMES
