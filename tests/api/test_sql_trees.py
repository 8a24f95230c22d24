"""Root fields answered by one statement that writes their JSON (schema/sql_trees.py).

Every answer is compared byte for byte with graphql-core's, which reads through the DataLoaders,
for each role; the audit row must name the same patients and records.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select

from app.domain.opaque_ids import NodeType
from models import AuditEvent
from models.enums import AttachmentStatus, AuditOutcome, RecordStatus, Sex
from tests.api.test_batching import MOBILE_QUERY
from tests.api.test_planned_execution import graphql_core_executor
from tests.api_client import count_statements

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
    from starlette.applications import Starlette

    from tests.api_client import Api, StatementLog
    from tests.factories import Factory

# Strings PostgreSQL and orjson must escape alike, and instants with and without microseconds.
AWKWARD = 'Zoë "Q" \\ O\'Brien\n\t\x01\x1f </script> 💉'
PRECISE = datetime(2026, 3, 4, 5, 6, 7, 890, tzinfo=UTC)
ROUND = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


async def _clinic(factory: Factory) -> dict[str, Any]:
    """Two providers, three patients (one linked to a patient token, one with no provider),
    records in every status, with diagnoses and attachments in several states."""
    doctor = await factory.provider(given_name=AWKWARD, created_at=PRECISE)
    other = await factory.provider(specialty=None, email=None)
    alice = await factory.patient(
        primary_provider_id=doctor["id"],
        cognito_sub="alice-sub",
        family_name=AWKWARD,
        preferred_language="es-MX",
    )
    bob = await factory.patient(primary_provider_id=None, email=None, phone=None, sex=Sex.OTHER)
    carol = await factory.patient(primary_provider_id=other["id"], created_at=PRECISE)
    statuses = (
        RecordStatus.FINALIZED,
        RecordStatus.DRAFT,
        RecordStatus.AMENDED,
        RecordStatus.ENTERED_IN_ERROR,
    )
    for patient in (alice, bob, carol):
        for n, status in enumerate(statuses):
            record = await factory.record(
                patient,
                doctor if n % 2 else other,
                status=status,
                notes=AWKWARD if n == 0 else None,
                staff_note=AWKWARD if n == 1 else None,
                chief_complaint=None if n == 3 else f"complaint {n}",
                finalized_at=PRECISE if n == 0 else None,
                visit_date=ROUND.replace(day=n + 1, microsecond=n * 10),
            )
            if n != 3:
                await factory.diagnosis(record)
                await factory.diagnosis(record, icd10_code="I10", description=AWKWARD)
            await factory.attachment(
                record, status=AttachmentStatus.PENDING_UPLOAD, uploaded_at=None
            )
            await factory.attachment(record, uploaded_at=PRECISE)
            await factory.attachment(record, status=AttachmentStatus.DELETED)
    return {"doctor": doctor, "alice": alice, "bob": bob}


FULL_QUERY = """query Full($n: Int!) {
  patients(first: $n) { edges { node { __typename
    id mrn givenName familyName dateOfBirth sex email phone preferredLanguage createdAt updatedAt
    version
    primaryProvider { id npi givenName familyName specialty email active createdAt }
    records(first: 3) { edges { node {
      id recordType visitDate chiefComplaint notes staffNote status finalizedAt followUpDate
      createdAt updatedAt version
      patient { id mrn familyName }
      provider { __typename id familyName }
      diagnoses { id icd10Code description type createdAt }
      attachments { id fileName contentType checksumSha256 status uploadedAt createdAt }
    } } }
  } } }
}"""

SHAPED_QUERY = """query Shaped($n: Int!, $with: Boolean!) {
  people: patients(first: $n, filter: {search: "ient"}) { all: edges { one: node {
    ...Person
    docs: records(first: 2) @include(if: $with) { edges { node { id status } } }
  } } }
  records(first: 4, filter: {status: [FINALIZED, DRAFT, AMENDED]}) { edges { node {
    id status visitDate patient { ...Person } provider { npi }
  } } }
}
fragment Person on Patient { id familyName doctor: primaryProvider { familyName } }"""

PAGED_QUERY = """query Paged($n: Int!) {
  __typename
  patients(first: $n, filter: {search: "ient"}) { __typename totalCount
    pageInfo { __typename hasNextPage hasPreviousPage startCursor endCursor }
    edges { __typename cursor node { id familyName } } }
  records(first: 2, filter: {status: [FINALIZED, DRAFT]}) {
    totalCount pageInfo { hasNextPage endCursor } edges { cursor } }
  none: records(first: 0) {
    pageInfo { hasNextPage startCursor endCursor } edges { cursor } totalCount }
}"""

ONE_QUERY = """query One($id: ID!) {
  patient(id: $id) { id mrn givenName familyName dateOfBirth sex
    primaryProvider { id npi familyName }
    records { edges { node { id status diagnoses { type } } } } }
}"""


def _tree_statements(log: StatementLog) -> list[str]:
    return [s for s in log.statements if "WITH level_1 AS" in s]


async def _answers(
    api: Api, app: Starlette, query: str, variables: dict[str, Any], token: str
) -> tuple[bytes, bytes, StatementLog]:
    """The one-statement answer, graphql-core's answer, and the statements of the first."""
    async with count_statements(app.state.services.engine) as log:
        ours = await api.post(query, variables, token=token)
    with graphql_core_executor(app):
        reference = await api.post(query, variables, token=token)
    assert ours.status_code == reference.status_code == 200
    return ours.content, reference.content, log


def _tokens(api: Api) -> dict[str, str]:
    return {
        "admin": api.token(),
        "provider": api.token(subject="doctor-sub", groups=("provider",)),
        "patient": api.token(subject="alice-sub", groups=("patient",)),
    }


@pytest.mark.parametrize(
    ("query", "variables", "trees"),
    [
        (MOBILE_QUERY, {"n": 5}, 1),
        (FULL_QUERY, {"n": 5}, 1),
        (SHAPED_QUERY, {"n": 5, "with": True}, 2),
        (SHAPED_QUERY, {"n": 1, "with": False}, 2),
        (PAGED_QUERY, {"n": 2}, 3),
        (PAGED_QUERY, {"n": 100}, 3),
        ("{ patients(first: 2) { totalCount pageInfo { hasNextPage } } }", {}, 1),
        (
            """query NoIds($n: Int!) { patients(first: $n) { edges { node {
                 mrn sex dateOfBirth records(first: 0) { edges { node { status } } } } } } }""",
            {"n": 3},
            1,
        ),
    ],
    ids=["mobile", "full", "shaped", "shaped-skipped", "paged", "paged-all", "counts", "no-ids"],
)
@pytest.mark.parametrize("role", ["admin", "provider", "patient"])
async def test_answers_equal_graphql_core_answers(
    api: Api,
    factory: Factory,
    app: Starlette,
    query: str,
    variables: dict[str, Any],
    trees: int,
    role: str,
) -> None:
    await _clinic(factory)
    await factory.provider(cognito_sub="doctor-sub")  # the provider token's own row
    ours, reference, log = await _answers(api, app, query, variables, _tokens(api)[role])
    assert ours == reference
    assert b'"errors"' not in ours
    assert len(_tree_statements(log)) == trees


NESTED_VARIABLES_QUERY = """query Nested($n: Int!, $m: Int!, $with: Boolean!) {
  patients(first: $n) { edges { node { id ...Docs @include(if: $with) } } }
}
fragment Docs on Patient { records(first: $m) { edges { node { id status } } } }"""


async def test_a_document_sent_again_with_other_variables_is_compiled_for_them(
    api: Api, factory: Factory, app: Starlette
) -> None:
    """Compiled selections are reused per document and values of the variables used below the
    root field: a page size or an @include that changes gets its own statement."""
    await _clinic(factory)
    token = api.token()
    sizes = []
    for variables in (
        {"n": 3, "m": 2, "with": True},
        {"n": 3, "m": 1, "with": True},
        {"n": 2, "m": 1, "with": False},
        {"n": 3, "m": 2, "with": True},
    ):
        ours, reference, log = await _answers(api, app, NESTED_VARIABLES_QUERY, variables, token)
        assert ours == reference
        assert len(_tree_statements(log)) == 1
        edges = json.loads(ours)["data"]["patients"]["edges"]
        assert len(edges) == variables["n"]
        sizes.append(
            [len(e["node"]["records"]["edges"]) if "records" in e["node"] else None for e in edges]
        )
    assert sizes[0] == sizes[3]
    for page, size in ((sizes[0], 2), (sizes[1], 1)):
        assert size in page
        assert all(n is not None and n <= size for n in page)
    assert sizes[2] == [None, None]


async def test_one_patient_by_id_and_an_unreadable_one(
    api: Api, factory: Factory, app: Starlette
) -> None:
    clinic = await _clinic(factory)
    data = await api.data("{ patients(first: 3) { edges { node { id familyName } } } }")
    ids = {e["node"]["familyName"]: e["node"]["id"] for e in data["patients"]["edges"]}
    patient_token = _tokens(api)["patient"]
    for token, name in ((api.token(), AWKWARD), (patient_token, AWKWARD), (patient_token, None)):
        # The patient token reads alice (her own row) and nobody else: null, as for no row.
        wanted = ids[name] if name else next(i for n, i in ids.items() if n != AWKWARD)
        ours, reference, log = await _answers(api, app, ONE_QUERY, {"id": wanted}, token)
        assert ours == reference
        assert len(_tree_statements(log)) == 1
        if name is None:
            assert json.loads(ours)["data"] == {"patient": None}
    assert clinic["alice"]["family_name"] == AWKWARD


BY_ID = {
    "record": """query One($id: ID!) { record(id: $id) { id status visitDate notes
      patient { id familyName } provider { npi }
      diagnoses { icd10Code } attachments { status } } }""",
    "provider": """query One($id: ID!) { provider(id: $id) {
      __typename id npi givenName familyName specialty email active createdAt } }""",
}


@pytest.mark.parametrize("root", ["record", "provider"])
async def test_a_record_or_provider_by_id_for_every_role(
    api: Api, factory: Factory, app: Starlette, root: str
) -> None:
    await _clinic(factory)
    await factory.provider(cognito_sub="doctor-sub")
    listed = await api.data("{ records(first: 12) { edges { node { id provider { id } } } } }")
    wanted = {
        e["node"]["id"] if root == "record" else e["node"]["provider"]["id"]
        for e in listed["records"]["edges"]
    }
    for token in _tokens(api).values():
        for row_id in sorted(wanted):
            ours, reference, log = await _answers(api, app, BY_ID[root], {"id": row_id}, token)
            assert ours == reference
            assert len(_tree_statements(log)) == 1


@pytest.mark.parametrize("root", ["patients", "records"])
async def test_pages_after_a_cursor(api: Api, factory: Factory, app: Starlette, root: str) -> None:
    await _clinic(factory)
    first = await api.data(f"{{ {root}(first: 2) {{ edges {{ cursor }} }} }}")
    after = first[root]["edges"][1]["cursor"]
    query = f"""query Next($after: String) {{ {root}(first: 3, after: $after) {{
      edges {{ node {{ id createdAt }} }} }} }}"""
    ours, reference, log = await _answers(api, app, query, {"after": after}, api.token())
    assert ours == reference
    # Three patients and twelve records: the rest of the list, or the next three.
    assert len(json.loads(ours)["data"][root]["edges"]) == (1 if root == "patients" else 3)
    assert len(_tree_statements(log)) == 1


async def test_the_mobile_query_is_one_read_and_its_audit_row_whatever_the_page_size(
    api: Api, factory: Factory, app: Starlette
) -> None:
    clinic = await _clinic(factory)
    for _ in range(6):
        patient = await factory.patient(primary_provider_id=clinic["doctor"]["id"])
        await factory.diagnosis(await factory.record(patient, clinic["doctor"]))
    engine = app.state.services.engine
    texts = []
    for n in (2, 9):
        async with count_statements(engine) as log:
            data = await api.data(MOBILE_QUERY, {"n": n})
        assert len(data["patients"]["edges"]) == n
        texts.append(log.statements)
    # An admin's token names its tenant: the tree and its audit row are the whole request.
    assert [len(t) for t in texts] == [2, 2]
    # The same statement but for the page's size, which it writes into its text.
    assert texts[0] != texts[1]
    assert [re.sub(r"\b\d+\b", "N", t) for t in texts[0]] == [
        re.sub(r"\b\d+\b", "N", t) for t in texts[1]
    ]
    assert len(_tree_statements(log)) == 1
    assert log.statements[1].startswith("INSERT INTO audit_events")


async def _audit_rows(
    sessionmaker: async_sessionmaker[AsyncSession], tenant_id: str
) -> list[dict[str, Any]]:
    """The tenant's audit rows, oldest first, without what differs between two requests."""
    async with sessionmaker() as session:
        rows = (
            await session.execute(
                select(AuditEvent.__table__)
                .where(AuditEvent.tenant_id == tenant_id)
                .order_by(AuditEvent.id)
            )
        ).mappings()
        return [
            {k: v for k, v in row.items() if k not in ("id", "occurred_at", "request_id")}
            for row in rows
        ]


@pytest.mark.parametrize("role", ["admin", "patient"])
async def test_the_audit_row_is_the_one_the_dataloaders_path_appends(
    api: Api,
    factory: Factory,
    app: Starlette,
    sessionmaker: async_sessionmaker[AsyncSession],
    tenant_id: str,
    role: str,
) -> None:
    """The trees name what the DataLoaders' reads name: one row, the same row, appended by one
    INSERT after the trees."""
    clinic = await _clinic(factory)
    token = _tokens(api)[role]
    alice, bob = (
        app.state.services.ids.encode_id(NodeType.PATIENT, clinic[name]["id"])
        for name in ("alice", "bob")
    )
    for query, variables, trees in (
        (FULL_QUERY, {"n": 5}, 1),
        (ONE_QUERY, {"id": alice}, 1),
        # Someone the patient token may not read: null, and a row that names nobody.
        (ONE_QUERY, {"id": bob}, 1),
        (SHAPED_QUERY, {"n": 5, "with": True}, 2),
        (PAGED_QUERY, {"n": 2}, 3),
    ):
        before = len(await _audit_rows(sessionmaker, tenant_id))
        async with count_statements(app.state.services.engine) as log:
            await api.post(query, variables, token=token)
        assert len(_tree_statements(log)) == trees
        inserts = [s for s in log.statements if s.startswith("INSERT INTO audit_events")]
        assert len(inserts) == 1
        assert log.statements[-1] == inserts[0]
        ours = await _audit_rows(sessionmaker, tenant_id)
        with graphql_core_executor(app):
            await api.post(query, variables, token=token)
        reference = await _audit_rows(sessionmaker, tenant_id)
        assert len(ours) == before + 1
        assert len(reference) == before + 2
        assert ours[-1] == reference[-1]
        assert ours[-1]["outcome"] is AuditOutcome.OK
        named = set(ours[-1]["patient_ids"])
        if variables.get("id") == bob:
            assert named == (set() if role == "patient" else {clinic["bob"]["id"]})
        elif role == "patient":
            assert named == {clinic["alice"]["id"]}
        else:
            assert named


ACCESS_LOG_QUERY = """query Log($id: ID!) { patient(id: $id) { id
  accessLog(first: 6) { edges { node { __typename occurredAt action actor actorRole recordIds
  } } } } }"""


@pytest.mark.parametrize("role", ["admin", "patient", "provider"])
async def test_an_access_log_page_equals_graphql_cores(
    api: Api, factory: Factory, app: Starlette, role: str
) -> None:
    """Each entry as the DataLoaders' read writes it: the actor as a person reads it (a
    provider's awkward name, each role's description), the records' ids; null for a provider."""
    clinic = await _clinic(factory)
    await factory.provider(cognito_sub="doctor-sub", given_name=AWKWARD, family_name="Lee")
    tokens = _tokens(api)
    for token in tokens.values():  # a read of alice's records by each caller
        await api.post(MOBILE_QUERY, {"n": 5}, token=token)
    alice = app.state.services.ids.encode_id(NodeType.PATIENT, clinic["alice"]["id"])
    ours, reference, log = await _answers(api, app, ACCESS_LOG_QUERY, {"id": alice}, tokens[role])
    assert len(_tree_statements(log)) == 1
    assert b'"errors"' not in ours
    mine, theirs = (json.loads(answer)["data"]["patient"] for answer in (ours, reference))
    if role == "provider":
        assert mine == theirs == {"id": alice, "accessLog": None}
        return
    # The reference was read after ours, whose own read it lists first.
    entries = [edge["node"] for edge in mine["accessLog"]["edges"]]
    listed = [edge["node"] for edge in theirs["accessLog"]["edges"]]
    assert len(entries) == 3
    assert listed[1:] == entries[: len(listed) - 1]
    assert {(e["actor"], e["actorRole"]) for e in entries} == {
        (f"{AWKWARD} Lee", "PROVIDER"),
        ("clinic administrator", "ADMIN"),
        ("the patient", "PATIENT"),
    }
    assert any(e["recordIds"] for e in entries)


@pytest.mark.parametrize(
    "query",
    [
        "{ patients { edges { node { records { pageInfo { hasNextPage } } } } } }",
        "{ patients { edges { node { records { edges { cursor } } } } } }",
        "{ patients { a: edges { node { id } } b: edges { node { mrn } } } }",
        "{ records { edges { node { id vitalSigns { heartRate } } } } }",
        "{ records { edges { node { attachments { record { id } } } } } }",
        "{ records { edges { node { statusHistory { status } } } } }",
        "{ patients { edges { node {"
        " records(filter: {status: [DRAFT]}) { edges { node { id } } } } } } }",
        "{ patients { edges { node { records(first: 1) { totalCount } } } } }",
        "{ records { edges { node { provider { patients { edges { node { id } } } } } } } }",
    ],
)
async def test_selections_the_statement_cannot_write_go_through_the_dataloaders(
    api: Api, factory: Factory, app: Starlette, query: str
) -> None:
    await _clinic(factory)
    ours, reference, log = await _answers(api, app, query, {}, api.token())
    assert ours == reference
    assert b'"errors"' not in ours
    assert _tree_statements(log) == []
