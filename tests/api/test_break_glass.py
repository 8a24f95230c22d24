"""Break-glass grants beyond the role matrix (tests/api/test_role_matrix.py): asking for one (its
validation, duration and audit row), what a grant opens and for how long (the database's clock,
revocation, one patient only, never a draft, never a write, on the one-statement trees too), the
audit rows of reads under it, and the grants list's filters and pages.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select, text, update

from app.domain.opaque_ids import NodeType, OpaqueIds
from models import BreakGlassGrant
from models.enums import AccessAction, AuditOutcome, Confidentiality, RecordStatus
from tests.api.test_mutation_validation import snapshot
from tests.api.test_planned_execution import graphql_core_executor
from tests.api.test_prepared_operations import _executions
from tests.api_client import audit_rows, count_statements, error_codes
from tests.factories import Factory

if TYPE_CHECKING:
    import httpx
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
    from starlette.applications import Starlette

    from tests.api_client import Api

IDS = OpaqueIds("medrec-opaque-id-v1")

BREAK_GLASS = """mutation BreakGlass($input: BreakGlassInput!) {
  breakGlass(input: $input) { grant { id subject reason grantedAt expiresAt revokedAt revokedBy
    active patient { id } provider { id } } } }"""

REVOKE = """mutation Revoke($id: ID!) {
  revokeBreakGlass(id: $id) { grant { id revokedAt revokedBy active } } }"""

REASON = "unconscious in the emergency room, history unknown"

AUTHOR = "dr-author"
HOLDER = "dr-holder"
BYSTANDER = "dr-bystander"
ADMIN_HOLDER = "admin-holder"


def gid(node_type: NodeType, row_id: uuid.UUID) -> str:
    return IDS.encode_id(node_type, row_id)


def row_id(global_id: str) -> uuid.UUID:
    return IDS.decode_id(global_id)[1]


@dataclass(frozen=True)
class Record:
    id: uuid.UUID
    diagnosis: uuid.UUID
    attachment: uuid.UUID

    @property
    def gid(self) -> str:
        return gid(NodeType.MEDICAL_RECORD, self.id)


@dataclass(frozen=True)
class Ward:
    """Patient P (primary provider: the author, linked to ``pt-p``) with a NORMAL record, a
    RESTRICTED one and a RESTRICTED draft by the author, and a bystander's NORMAL draft; patient
    R with the author's RESTRICTED record. Each record has a PRIMARY diagnosis and an AVAILABLE
    attachment."""

    p: uuid.UUID
    r: uuid.UUID
    holder: uuid.UUID
    normal: Record
    secret: Record
    secret_draft: Record
    draft: Record
    r_secret: Record

    @property
    def p_gid(self) -> str:
        return gid(NodeType.PATIENT, self.p)

    @property
    def r_gid(self) -> str:
        return gid(NodeType.PATIENT, self.r)


@pytest.fixture
async def ward(factory: Factory) -> Ward:
    author = await factory.provider(cognito_sub=AUTHOR)
    holder = await factory.provider(cognito_sub=HOLDER)
    bystander = await factory.provider(cognito_sub=BYSTANDER)
    p = await factory.patient(primary_provider_id=author["id"], cognito_sub="pt-p")
    r = await factory.patient(primary_provider_id=author["id"])

    async def record(patient: dict[str, Any], by: dict[str, Any], **values: Any) -> Record:
        row = await factory.record(patient, by, **values)
        diagnosis = await factory.diagnosis(row)
        attachment = await factory.attachment(row)
        # Its creation, and its finalization if it has one, as status events.
        await factory.status_event(row, changed_by=AUTHOR)
        if row["status"] is not RecordStatus.DRAFT:
            await factory.status_event(
                row, previous_status=RecordStatus.DRAFT, status=row["status"], changed_by=AUTHOR
            )
        return Record(row["id"], diagnosis["id"], attachment["id"])

    restricted = Confidentiality.RESTRICTED
    final = RecordStatus.FINALIZED
    return Ward(
        p=p["id"],
        r=r["id"],
        holder=holder["id"],
        normal=await record(p, author, status=final),
        secret=await record(p, author, status=final, confidentiality=restricted),
        secret_draft=await record(p, author, status=RecordStatus.DRAFT, confidentiality=restricted),
        draft=await record(p, bystander, status=RecordStatus.DRAFT),
        r_secret=await record(r, author, status=final, confidentiality=restricted),
    )


def holders(api: Api) -> dict[str, str]:
    """A grant's two kinds of holder: a provider (neither author nor primary provider of
    anything) and an admin."""
    return {
        "provider": api.token(subject=HOLDER, groups=("provider",)),
        "admin": api.token(subject=ADMIN_HOLDER),
    }


async def break_glass(api: Api, token: str, patient: str, **extra: Any) -> dict[str, Any]:
    """A ``breakGlass`` for the patient ``patient`` (a global id) that must succeed: the grant."""
    data = await api.data(
        BREAK_GLASS, {"input": {"patientId": patient, "reason": REASON, **extra}}, token=token
    )
    grant: dict[str, Any] = data["breakGlass"]["grant"]
    return grant


async def send(
    api: Api, query: str, variables: dict[str, Any], token: str, request_id: str
) -> dict[str, Any]:
    """The body of a request sent with ``request_id``, to find its audit rows."""
    response = await api.post(query, variables, token=token, headers={"X-Request-ID": request_id})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def both_tenants(
    sessionmaker: async_sessionmaker[AsyncSession], api: Api
) -> list[dict[str, list[dict[str, Any]]]]:
    """Every row of the test's tenant and of the other one its callers use (audit rows aside)."""
    return [
        await snapshot(sessionmaker, tenant) for tenant in (api.tenant_id, f"{api.tenant_id}-other")
    ]


async def grant_rows(
    sessionmaker: async_sessionmaker[AsyncSession], tenant_id: str
) -> list[dict[str, Any]]:
    async with sessionmaker() as session:
        rows = await session.execute(
            select(BreakGlassGrant.__table__).where(BreakGlassGrant.tenant_id == tenant_id)
        )
        return [dict(row) for row in rows.mappings()]


# --- what a grant opens, path by path -------------------------------------------------------------

PATHS = """query Paths($patient: ID!, $record: ID!, $dx: ID!, $file: ID!) {
  records(first: 100) { totalCount edges { node { id } } }
  patient(id: $patient) { records(first: 100) { totalCount edges { node { id } } } }
  record(id: $record) { id diagnoses { id } attachments { id } statusHistory { status } }
  asNode: node(id: $record) { id }
  dx: node(id: $dx) { id }
  file: node(id: $file) { id }
}"""

EVERY_PATH = frozenset(
    {
        "records",
        "patient.records",
        "record",
        "record.diagnoses",
        "record.attachments",
        "record.statusHistory",
        "node",
        "node(diagnosis)",
        "node(attachment)",
    }
)


async def paths(api: Api, token: str, patient: uuid.UUID, record: Record) -> frozenset[str]:
    """The paths on which ``record``, or what is under it, is readable with ``token``."""
    data = await api.data(
        PATHS,
        {
            "patient": gid(NodeType.PATIENT, patient),
            "record": record.gid,
            "dx": gid(NodeType.DIAGNOSIS, record.diagnosis),
            "file": gid(NodeType.ATTACHMENT, record.attachment),
        },
        token=token,
    )
    seen = set()
    lists = {"records": data["records"]}
    if data["patient"] is not None:
        lists["patient.records"] = data["patient"]["records"]
    for name, connection in lists.items():
        ids = [edge["node"]["id"] for edge in connection["edges"]]
        # Counts follow the same rule as the lists.
        assert connection["totalCount"] == len(ids), (name, connection)
        if record.gid in ids:
            seen.add(name)
    found = data["record"]
    if found is not None:
        seen.add("record")
        seen |= {
            f"record.{field}"
            for field in ("diagnoses", "attachments", "statusHistory")
            if found[field]
        }
    for alias, name in (
        ("asNode", "node"),
        ("dx", "node(diagnosis)"),
        ("file", "node(attachment)"),
    ):
        if data[alias] is not None:
            seen.add(name)
    return frozenset(seen)


@pytest.mark.parametrize("holder", ["provider", "admin"])
async def test_a_grant_opens_the_patients_restricted_records_on_every_path(
    api: Api, ward: Ward, holder: str
) -> None:
    token = holders(api)[holder]
    assert await paths(api, token, ward.p, ward.secret) == frozenset()
    # The patient's NORMAL record was readable before the grant and stays so.
    assert await paths(api, token, ward.p, ward.normal) == EVERY_PATH

    await break_glass(api, token, ward.p_gid)

    assert await paths(api, token, ward.p, ward.secret) == EVERY_PATH
    assert await paths(api, token, ward.p, ward.normal) == EVERY_PATH


@pytest.mark.parametrize("holder", ["provider", "admin"])
async def test_a_grant_for_one_patient_opens_nothing_of_another(
    api: Api, ward: Ward, holder: str
) -> None:
    token = holders(api)[holder]
    await break_glass(api, token, ward.p_gid)
    assert await paths(api, token, ward.r, ward.r_secret) == frozenset()
    # While the grant for P is live.
    assert await paths(api, token, ward.p, ward.secret) == EVERY_PATH


# --- asking for a grant ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Bad:
    case: str
    changes: dict[str, Any]
    code: str
    field: str


def _reason(length: int, pad: int = 0) -> str:
    return " " * pad + "x" * length + " " * pad


BAD_REQUESTS = [
    Bad("reason-9-chars", {"reason": _reason(9)}, "BAD_USER_INPUT", "input.reason"),
    # Ten characters only with the spaces around them: counted after trimming.
    Bad(
        "reason-short-once-trimmed", {"reason": _reason(6, pad=4)}, "BAD_USER_INPUT", "input.reason"
    ),
    Bad("reason-blank", {"reason": " " * 40}, "BAD_USER_INPUT", "input.reason"),
    Bad("reason-1001-chars", {"reason": _reason(1001)}, "BAD_USER_INPUT", "input.reason"),
    Bad(
        "reason-control-character",
        {"reason": "patient found \x07 unconscious"},
        "BAD_USER_INPUT",
        "input.reason",
    ),
    Bad("duration-0", {"durationMinutes": 0}, "BAD_USER_INPUT", "input.durationMinutes"),
    Bad("duration-241", {"durationMinutes": 241}, "BAD_USER_INPUT", "input.durationMinutes"),
    Bad("duration-negative", {"durationMinutes": -30}, "BAD_USER_INPUT", "input.durationMinutes"),
    Bad("patient-malformed", {"patientId": "garbage"}, "BAD_USER_INPUT", "input.patientId"),
    Bad("patient-a-record-id", {"patientId": "record"}, "BAD_USER_INPUT", "input.patientId"),
    Bad("patient-unknown", {"patientId": "unknown"}, "NOT_FOUND", "input.patientId"),
    Bad("patient-other-tenant", {"patientId": "other"}, "NOT_FOUND", "input.patientId"),
]


@pytest.mark.parametrize("bad", BAD_REQUESTS, ids=[bad.case for bad in BAD_REQUESTS])
@pytest.mark.parametrize("holder", ["provider", "admin"])
async def test_a_bad_request_is_refused_changes_nothing_and_claims_no_grant(
    api: Api,
    factory: Factory,
    sessionmaker: async_sessionmaker[AsyncSession],
    ward: Ward,
    holder: str,
    bad: Bad,
) -> None:
    token = holders(api)[holder]
    # The caller already holds a grant for P: a row naming P would name it.
    await break_glass(api, token, ward.p_gid)
    other = Factory(factory.sessionmaker, f"{api.tenant_id}-other")
    ids = {
        "record": ward.secret.gid,
        "unknown": gid(NodeType.PATIENT, uuid.uuid4()),
        "other": gid(NodeType.PATIENT, (await other.patient())["id"]),
    }
    request = {"patientId": ward.p_gid, "reason": REASON, "durationMinutes": 30} | {
        key: ids.get(value, value) if key == "patientId" else value
        for key, value in bad.changes.items()
    }
    request_id = f"bad-glass-{uuid.uuid4().hex}"

    before = await both_tenants(sessionmaker, api)
    body = await send(api, BREAK_GLASS, {"input": request}, token, request_id)
    after = await both_tenants(sessionmaker, api)

    assert error_codes(body) == [bad.code], body
    assert body["data"] is None
    assert bad.field in body["errors"][0]["message"]
    assert after == before
    rows = await audit_rows(sessionmaker, request_id)
    assert rows, "a refusal is audited too"
    assert [row["break_glass_grant_id"] for row in rows] == [None] * len(rows)
    assert all(row["outcome"] is not AuditOutcome.OK for row in rows), rows


@pytest.mark.parametrize(
    ("duration", "minutes"),
    [("absent", 60), (None, 60), (1, 1), (17, 17), (240, 240)],
    ids=["absent", "null", "1", "17", "240"],
)
async def test_a_grant_lasts_the_minutes_asked_for_and_an_hour_by_default(
    api: Api,
    sessionmaker: async_sessionmaker[AsyncSession],
    ward: Ward,
    duration: int | str | None,
    minutes: int,
) -> None:
    extra = {} if duration == "absent" else {"durationMinutes": duration}
    # The reason is kept without the whitespace around it.
    grant = await break_glass(
        api, holders(api)["provider"], ward.p_gid, **extra, reason=f"  {REASON}\n"
    )

    granted = datetime.fromisoformat(grant["grantedAt"])
    expires = datetime.fromisoformat(grant["expiresAt"])
    assert expires - granted == timedelta(minutes=minutes)
    assert grant["active"] is True
    assert grant["reason"] == REASON
    assert grant["subject"] == HOLDER
    assert grant["revokedAt"] is None
    assert grant["revokedBy"] is None
    assert grant["patient"] == {"id": ward.p_gid}
    assert grant["provider"] == {"id": gid(NodeType.PROVIDER, ward.holder)}
    [stored] = await grant_rows(sessionmaker, api.tenant_id)
    assert stored["id"] == row_id(grant["id"])
    assert stored["expires_at"] - stored["granted_at"] == timedelta(minutes=minutes)
    assert stored["reason"] == REASON
    assert stored["provider_id"] == ward.holder


@pytest.mark.parametrize(
    ("reason", "stored"),
    [
        ("x" * 10, "x" * 10),
        (f"  {'x' * 10}  ", "x" * 10),
        ("x" * 1000, "x" * 1000),
        ("found unconscious\r\nno ID on him", "found unconscious\nno ID on him"),
    ],
    ids=["10-chars", "10-chars-once-trimmed", "1000-chars", "two-lines"],
)
async def test_the_reasons_at_the_limits_are_accepted(
    api: Api, ward: Ward, reason: str, stored: str
) -> None:
    grant = await break_glass(api, holders(api)["provider"], ward.p_gid, reason=reason)
    assert grant["reason"] == stored


async def test_an_admins_grant_is_held_by_its_subject_with_no_provider(
    api: Api, sessionmaker: async_sessionmaker[AsyncSession], ward: Ward
) -> None:
    grant = await break_glass(api, holders(api)["admin"], ward.p_gid)
    assert grant["subject"] == ADMIN_HOLDER
    assert grant["provider"] is None
    [stored] = await grant_rows(sessionmaker, api.tenant_id)
    assert stored["provider_id"] is None


async def test_the_grant_is_audited_as_break_glass_naming_it(
    api: Api, sessionmaker: async_sessionmaker[AsyncSession], ward: Ward
) -> None:
    request_id = f"glass-{uuid.uuid4().hex}"
    body = await send(
        api,
        BREAK_GLASS,
        {"input": {"patientId": ward.p_gid, "reason": REASON}},
        holders(api)["provider"],
        request_id,
    )
    assert "errors" not in body, body
    grant = body["data"]["breakGlass"]["grant"]

    rows = await audit_rows(sessionmaker, request_id)
    # The change's own row (in the grant's transaction), then a read of what the response
    # selected after it (the patient and the provider).
    assert [row["action"] for row in rows] == [AccessAction.BREAK_GLASS, AccessAction.VIEWED]
    made = rows[0]
    assert made["operation_type"] == "mutation"
    assert made["outcome"] is AuditOutcome.OK
    assert made["subject"] == HOLDER
    assert made["patient_ids"] == [ward.p]
    assert made["break_glass_grant_id"] == row_id(grant["id"])

    trail = await api.data(
        """query($p: ID!) { auditEvents(first: 20, filter: {patientId: $p}) { edges { node {
             requestId operationName breakGlassGrant { id subject reason } } } } }""",
        {"p": ward.p_gid},
    )
    named = [
        edge["node"]["breakGlassGrant"]
        for edge in trail["auditEvents"]["edges"]
        if edge["node"]["requestId"] == request_id
    ]
    assert {"id": grant["id"], "subject": HOLDER, "reason": REASON} in named


async def test_a_grant_whose_audit_row_cannot_be_written_is_not_made(
    api: Api,
    sessionmaker: async_sessionmaker[AsyncSession],
    ward: Ward,
    failing_request_id: str,
) -> None:
    token = holders(api)["provider"]
    before = await both_tenants(sessionmaker, api)
    body = await send(
        api,
        BREAK_GLASS,
        {"input": {"patientId": ward.p_gid, "reason": REASON}},
        token,
        failing_request_id,
    )
    assert body.get("data") is None, body
    assert error_codes(body) == ["INTERNAL_SERVER_ERROR"], body
    assert await both_tenants(sessionmaker, api) == before
    assert await paths(api, token, ward.p, ward.secret) == frozenset()


# --- the audit rows of reads ----------------------------------------------------------------------

READ_P = """query ReadP($id: ID!) { patient(id: $id) { records(first: 50) { edges { node { id
  diagnoses { id } } } } } }"""


async def test_reads_by_the_holder_name_the_grant_and_no_other_read_does(
    api: Api, sessionmaker: async_sessionmaker[AsyncSession], ward: Ward
) -> None:
    token = holders(api)["provider"]
    grant = await break_glass(api, token, ward.p_gid)
    reads = {
        "holder reads P": (token, READ_P, {"id": ward.p_gid}),
        "holder reads P's restricted record": (
            token,
            "query($id: ID!) { record(id: $id) { id } }",
            {"id": ward.secret.gid},
        ),
        "holder reads R": (token, READ_P, {"id": ward.r_gid}),
        "holder reads no patient": (token, "{ providers { totalCount } }", {}),
        "another provider reads P": (
            api.token(subject=BYSTANDER, groups=("provider",)),
            READ_P,
            {"id": ward.p_gid},
        ),
        "an admin reads P": (api.token(), READ_P, {"id": ward.p_gid}),
    }
    named: dict[str, list[uuid.UUID | None]] = {}
    for case, (caller, query, variables) in reads.items():
        request_id = f"read-{uuid.uuid4().hex}"
        body = await send(api, query, variables, caller, request_id)
        assert "errors" not in body, body
        rows = await audit_rows(sessionmaker, request_id)
        assert [row["action"] for row in rows] == [AccessAction.VIEWED], case
        named[case] = [row["break_glass_grant_id"] for row in rows]

    grant_id = row_id(grant["id"])
    assert named == {
        "holder reads P": [grant_id],
        "holder reads P's restricted record": [grant_id],
        "holder reads R": [None],
        "holder reads no patient": [None],
        "another provider reads P": [None],
        "an admin reads P": [None],
    }

    # A change the holder may make anyway (providers update patients) is audited with the
    # grant it held for the patient, as a change.
    request_id = f"change-{uuid.uuid4().hex}"
    body = await send(
        api,
        """mutation($input: UpdatePatientInput!) { updatePatient(input: $input) {
             patient { id } } }""",
        {"input": {"id": ward.p_gid, "expectedVersion": 1, "phone": "+1 555 010 7777"}},
        token,
        request_id,
    )
    assert "errors" not in body, body
    rows = await audit_rows(sessionmaker, request_id)
    assert [(row["action"], row["break_glass_grant_id"]) for row in rows] == [
        (AccessAction.CHANGED, grant_id)
    ]


async def test_a_read_after_the_grant_ended_names_no_grant(
    api: Api, sessionmaker: async_sessionmaker[AsyncSession], ward: Ward
) -> None:
    token = holders(api)["provider"]
    grant = await break_glass(api, token, ward.p_gid)
    await api.data(REVOKE, {"id": grant["id"]})
    request_id = f"after-{uuid.uuid4().hex}"
    body = await send(api, READ_P, {"id": ward.p_gid}, token, request_id)
    assert "errors" not in body, body
    [row] = await audit_rows(sessionmaker, request_id)
    assert row["patient_ids"] == [ward.p]
    assert row["break_glass_grant_id"] is None


# --- how long a grant opens anything --------------------------------------------------------------


@pytest.mark.parametrize("holder", ["provider", "admin"])
async def test_expiry_is_decided_by_the_database_clock(
    api: Api, sessionmaker: async_sessionmaker[AsyncSession], ward: Ward, holder: str
) -> None:
    token = holders(api)[holder]
    grant = await break_glass(api, token, ward.p_gid, durationMinutes=240)
    assert await paths(api, token, ward.p, ward.secret) == EVERY_PATH

    # Test setup: the grant's hours pass, by the database's clock (granted_at moves too, to
    # keep the table's own check, expires_at > granted_at).
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(BreakGlassGrant)
            .where(BreakGlassGrant.id == row_id(grant["id"]))
            .values(
                granted_at=text("now() - interval '4 hours 1 second'"),
                expires_at=text("now() - interval '1 second'"),
            )
        )

    assert await paths(api, token, ward.p, ward.secret) == frozenset()
    listed = await api.data(
        """query($p: ID!) { all: breakGlassGrants(filter: {patientId: $p}) {
             edges { node { id active revokedAt } } }
           live: breakGlassGrants(filter: {patientId: $p, activeOnly: true}) { totalCount } }""",
        {"p": ward.p_gid},
        token=token,
    )
    assert [edge["node"] for edge in listed["all"]["edges"]] == [
        {"id": grant["id"], "active": False, "revokedAt": None}
    ]
    assert listed["live"]["totalCount"] == 0


@pytest.mark.parametrize(
    ("holder", "revoker"), [("provider", "holder"), ("provider", "admin"), ("admin", "holder")]
)
async def test_revocation_stops_reads_at_once(
    api: Api, ward: Ward, holder: str, revoker: str
) -> None:
    token = holders(api)[holder]
    grant = await break_glass(api, token, ward.p_gid)
    assert await paths(api, token, ward.p, ward.secret) == EVERY_PATH

    revoking = token if revoker == "holder" else api.token()
    revoked = (await api.data(REVOKE, {"id": grant["id"]}, token=revoking))["revokeBreakGlass"]
    assert revoked["grant"]["active"] is False
    assert revoked["grant"]["revokedAt"] is not None
    assert revoked["grant"]["revokedBy"] == (
        {"provider": HOLDER, "admin": ADMIN_HOLDER}[holder]
        if revoker == "holder"
        else "admin-subject"
    )

    assert await paths(api, token, ward.p, ward.secret) == frozenset()
    # Revoking again is safe: the grant comes back as it was.
    again = (await api.data(REVOKE, {"id": grant["id"]}, token=revoking))["revokeBreakGlass"]
    assert again == revoked


# --- what a grant never opens ---------------------------------------------------------------------


@pytest.mark.parametrize("holder", ["provider", "admin"])
async def test_drafts_stay_private_under_a_grant(api: Api, ward: Ward, holder: str) -> None:
    token = holders(api)[holder]
    await break_glass(api, token, ward.p_gid)
    assert await paths(api, token, ward.p, ward.secret_draft) == frozenset()
    # The bystander's NORMAL draft: admins read drafts, providers only their own; the grant
    # changes neither.
    normal_draft = EVERY_PATH if holder == "admin" else frozenset()
    assert await paths(api, token, ward.p, ward.draft) == normal_draft

    # Once its author finalizes it, the grant opens it.
    author = api.token(subject=AUTHOR, groups=("provider",))
    await api.data(
        """mutation($input: ChangeRecordStatusInput!) {
             changeRecordStatus(input: $input) { record { status } } }""",
        {"input": {"id": ward.secret_draft.gid, "status": "FINALIZED", "expectedVersion": 1}},
        token=author,
    )
    assert await paths(api, token, ward.p, ward.secret_draft) == EVERY_PATH


WRITES_UNDER_A_GRANT: dict[str, tuple[str, Callable[[Record], dict[str, Any]]]] = {
    "updateRecord": (
        """mutation($input: UpdateRecordInput!) {
             updateRecord(input: $input) { record { id } } }""",
        lambda r: {"input": {"id": r.gid, "expectedVersion": 1, "confidentiality": "NORMAL"}},
    ),
    "changeRecordStatus-AMENDED": (
        """mutation($input: ChangeRecordStatusInput!) {
             changeRecordStatus(input: $input) { record { id } } }""",
        lambda r: {
            "input": {"id": r.gid, "status": "AMENDED", "expectedVersion": 1, "reason": "addendum"}
        },
    ),
    "changeRecordStatus-ENTERED_IN_ERROR": (
        """mutation($input: ChangeRecordStatusInput!) {
             changeRecordStatus(input: $input) { record { id } } }""",
        lambda r: {
            "input": {
                "id": r.gid,
                "status": "ENTERED_IN_ERROR",
                "expectedVersion": 1,
                "reason": "wrong patient",
            }
        },
    ),
    "addDiagnosis": (
        """mutation($input: AddDiagnosisInput!) {
             addDiagnosis(input: $input) { diagnosis { id } } }""",
        lambda r: {
            "input": {
                "recordId": r.gid,
                "icd10Code": "I10",
                "description": "Essential hypertension",
                "type": "SECONDARY",
            }
        },
    ),
    "removeDiagnosis": (
        """mutation($id: ID!) { removeDiagnosis(id: $id) { record { id } } }""",
        lambda r: {"id": gid(NodeType.DIAGNOSIS, r.diagnosis)},
    ),
    "requestAttachmentUpload": (
        """mutation($input: RequestAttachmentUploadInput!) {
             requestAttachmentUpload(input: $input) { attachment { id } } }""",
        lambda r: {
            "input": {
                "recordId": r.gid,
                "fileName": "ecg.pdf",
                "contentType": "application/pdf",
                "sizeBytes": 2048,
                "checksumSha256": "ab" * 32,
            }
        },
    ),
    "confirmAttachmentUpload": (
        """mutation($id: ID!) { confirmAttachmentUpload(id: $id) { attachment { id } } }""",
        lambda r: {"id": gid(NodeType.ATTACHMENT, r.attachment)},
    ),
    "deleteAttachment": (
        """mutation($id: ID!) { deleteAttachment(id: $id) { attachment { id } } }""",
        lambda r: {"id": gid(NodeType.ATTACHMENT, r.attachment)},
    ),
}


@pytest.mark.parametrize("write", list(WRITES_UNDER_A_GRANT))
@pytest.mark.parametrize("holder", ["provider", "admin"])
async def test_a_grant_gives_no_write(
    api: Api, sessionmaker: async_sessionmaker[AsyncSession], ward: Ward, holder: str, write: str
) -> None:
    """The record is visible to the holder (FORBIDDEN, not NOT_FOUND), and stays as it was."""
    token = holders(api)[holder]
    document, variables = WRITES_UNDER_A_GRANT[write]
    await break_glass(api, token, ward.p_gid)

    before = await both_tenants(sessionmaker, api)
    body = await api.query(document, variables(ward.secret), token=token)
    assert error_codes(body) == ["FORBIDDEN"], body
    assert body["data"] is None
    assert await both_tenants(sessionmaker, api) == before


# --- the one-statement tree -----------------------------------------------------------------------

TREE = """query Tree($id: ID!) { patient(id: $id) { records { edges { node { id
  diagnoses { id } attachments { id } } } } } }"""


@dataclass(frozen=True)
class TreeAnswer:
    # P's records, with their diagnoses and attachments.
    records: dict[uuid.UUID, tuple[list[uuid.UUID], list[uuid.UUID]]]
    # Whether the recorded plan answered it (StatementPlans), not the executor.
    prepared: bool


async def tree(
    api: Api, app: Starlette, client: httpx.AsyncClient, document: str, token: str, ward: Ward
) -> TreeAnswer:
    """The tree's answer, checked to come from one tree statement and to be graphql-core's,
    byte for byte."""
    prepared = await _executions(client, "prepared")
    async with count_statements(app.state.services.engine) as log:
        ours = await api.post(document, {"id": ward.p_gid}, token=token)
    prepared = await _executions(client, "prepared") - prepared
    with graphql_core_executor(app):
        reference = await api.post(document, {"id": ward.p_gid}, token=token)
    assert ours.status_code == reference.status_code == 200
    assert ours.content == reference.content
    assert len([s for s in log.statements if "WITH level_1 AS" in s]) == 1, log.statements
    body = ours.json()
    assert "errors" not in body, body
    nodes = (edge["node"] for edge in body["data"]["patient"]["records"]["edges"])
    return TreeAnswer(
        {
            row_id(node["id"]): (
                [row_id(d["id"]) for d in node["diagnoses"]],
                [row_id(a["id"]) for a in node["attachments"]],
            )
            for node in nodes
        },
        prepared=prepared == 1,
    )


@pytest.mark.parametrize("holder", ["provider", "admin"])
async def test_the_one_statement_tree_follows_the_grant(
    api: Api, app: Starlette, client: httpx.AsyncClient, ward: Ward, holder: str
) -> None:
    token = holders(api)[holder]
    # A text no other test sent: the app, and its recorded plans, are shared.
    document = f"# break-glass tree {uuid.uuid4()}\n{TREE}"
    secret = {ward.secret.id: ([ward.secret.diagnosis], [ward.secret.attachment])}
    first = await tree(api, app, client, document, token, ward)
    assert not first.prepared
    assert ward.secret.id not in first.records

    grant = await break_glass(api, token, ward.p_gid)
    # The plan recorded before the grant answers under it, with the grant.
    under = await tree(api, app, client, document, token, ward)
    assert under.prepared
    assert under.records.items() >= secret.items()
    assert ward.secret_draft.id not in under.records

    await api.data(REVOKE, {"id": grant["id"]})
    after = await tree(api, app, client, document, token, ward)
    assert after.prepared
    assert ward.secret.id not in after.records


# --- other tenants --------------------------------------------------------------------------------


async def test_another_tenants_admin_neither_sees_nor_revokes_a_grant(
    api: Api, sessionmaker: async_sessionmaker[AsyncSession], ward: Ward
) -> None:
    grant = await break_glass(api, holders(api)["provider"], ward.p_gid)
    outsider = api.token(subject="admin-elsewhere", tenant_id=f"{api.tenant_id}-other")

    seen = await api.data(
        """query($id: ID!) { node(id: $id) { id }
             breakGlassGrants(first: 50) { totalCount edges { node { id } } } }""",
        {"id": grant["id"]},
        token=outsider,
    )
    assert seen == {"node": None, "breakGlassGrants": {"totalCount": 0, "edges": []}}

    before = await both_tenants(sessionmaker, api)
    body = await api.query(REVOKE, {"id": grant["id"]}, token=outsider)
    assert error_codes(body) == ["NOT_FOUND"], body
    assert body["data"] is None
    assert await both_tenants(sessionmaker, api) == before
    # Nor does it break the glass for the patient.
    body = await api.query(
        BREAK_GLASS, {"input": {"patientId": ward.p_gid, "reason": REASON}}, token=outsider
    )
    assert error_codes(body) == ["NOT_FOUND"], body
    assert await both_tenants(sessionmaker, api) == before
    # The grant still opens P's restricted records to its holder.
    assert await paths(api, holders(api)["provider"], ward.p, ward.secret) == EVERY_PATH


# --- the grants list ------------------------------------------------------------------------------

GRANTS_PAGE = """query($first: Int, $after: String, $filter: BreakGlassGrantFilter) {
  breakGlassGrants(first: $first, after: $after, filter: $filter) {
    totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id active } } } }"""


async def all_pages(
    api: Api, token: str, size: int, filter_: dict[str, Any] | None = None
) -> tuple[list[uuid.UUID], set[int]]:
    """Every grant listed, page by page in order, and the totalCounts the pages gave."""
    listed: list[uuid.UUID] = []
    totals = set()
    after = None
    for _ in range(50):
        page = (
            await api.data(
                GRANTS_PAGE, {"first": size, "after": after, "filter": filter_}, token=token
            )
        )["breakGlassGrants"]
        totals.add(page["totalCount"])
        assert len(page["edges"]) <= size
        listed += [row_id(edge["node"]["id"]) for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return listed, totals
        after = page["pageInfo"]["endCursor"]
        assert after == page["edges"][-1]["cursor"]
    raise AssertionError("the pages never ended")


async def test_grants_are_listed_newest_first_filtered_and_paged(
    api: Api, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession], ward: Ward
) -> None:
    p: dict[str, Any] = {"id": ward.p}
    r: dict[str, Any] = {"id": ward.r}
    moment = datetime.now(UTC) - timedelta(minutes=30)
    ended: dict[str, Any] = {
        "granted_at": moment - timedelta(hours=3),
        "expires_at": moment - timedelta(hours=2),
    }
    revoked: dict[str, Any] = {
        "revoked_at": moment + timedelta(minutes=1),
        "revoked_by": "admin-subject",
    }
    holder: dict[str, Any] = {"subject": HOLDER, "provider_id": ward.holder}
    # (patient, holder, times); two share their grant time, so ids break the tie.
    made: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = [
        (p, holder, {"granted_at": moment}),
        (p, holder, {"granted_at": moment}),
        (r, holder, {"granted_at": moment + timedelta(minutes=2)}),
        (p, holder, ended),
        (p, {"subject": ADMIN_HOLDER}, {"granted_at": moment - timedelta(minutes=5)}),
        (r, {"subject": ADMIN_HOLDER}, {"granted_at": moment - timedelta(minutes=7), **revoked}),
        (p, {"subject": BYSTANDER}, {"granted_at": moment - timedelta(minutes=9)}),
    ]
    for patient, who, times in made:
        await factory.grant(patient, **who, **times)
    rows = await grant_rows(sessionmaker, api.tenant_id)
    newest_first = [
        row["id"]
        for row in sorted(rows, key=lambda row: (row["granted_at"], row["id"]), reverse=True)
    ]

    def expected(keep: Callable[[dict[str, Any]], bool]) -> list[uuid.UUID]:
        by_id = {row["id"]: row for row in rows}
        return [grant_id for grant_id in newest_first if keep(by_id[grant_id])]

    def active(row: dict[str, Any]) -> bool:
        return row["revoked_at"] is None and row["expires_at"] > datetime.now(UTC)

    admin = api.token()
    provider = holders(api)["provider"]
    cases: list[tuple[str, dict[str, Any] | None, Callable[[dict[str, Any]], bool]]] = [
        (admin, None, lambda row: True),
        (admin, {"activeOnly": True}, active),
        (admin, {"activeOnly": False}, lambda row: True),
        (admin, {"patientId": ward.p_gid}, lambda row: row["patient_id"] == ward.p),
        (
            admin,
            {"patientId": ward.r_gid, "activeOnly": True},
            lambda row: row["patient_id"] == ward.r and active(row),
        ),
        # A provider lists the grants it holds.
        (provider, None, lambda row: row["subject"] == HOLDER),
        (
            provider,
            {"patientId": ward.p_gid, "activeOnly": True},
            lambda row: row["subject"] == HOLDER and row["patient_id"] == ward.p and active(row),
        ),
    ]
    for token, filter_, keep in cases:
        wanted = expected(keep)
        assert wanted, filter_  # every case lists something
        for size in (1, 2, 3, 50):
            listed, totals = await all_pages(api, token, size, filter_)
            assert listed == wanted, (filter_, size)
            assert totals == {len(wanted)}, (filter_, size)


# --- downloads ------------------------------------------------------------------------------------

DOWNLOAD = """query File($id: ID!) { node(id: $id) { ... on Attachment { downloadUrl } } }"""


async def test_a_download_under_a_grant_is_issued_and_audited_with_it(
    api: Api, sessionmaker: async_sessionmaker[AsyncSession], ward: Ward
) -> None:
    token = holders(api)["provider"]
    file = {"id": gid(NodeType.ATTACHMENT, ward.secret.attachment)}
    assert (await api.data(DOWNLOAD, file, token=token))["node"] is None

    grant = await break_glass(api, token, ward.p_gid)
    request_id = f"download-{uuid.uuid4().hex}"
    body = await send(api, DOWNLOAD, file, token, request_id)
    assert "errors" not in body, body
    assert body["data"]["node"]["downloadUrl"]
    [row] = await audit_rows(sessionmaker, request_id)
    assert row["action"] is AccessAction.DOWNLOADED_FILE
    assert row["attachment_ids"] == [ward.secret.attachment]
    assert row["break_glass_grant_id"] == row_id(grant["id"])

    await api.data(REVOKE, {"id": grant["id"]})
    assert (await api.data(DOWNLOAD, file, token=token))["node"] is None
