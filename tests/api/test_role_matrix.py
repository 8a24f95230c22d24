"""The role matrix: every Query and Mutation field, for every kind of caller.

Each test builds the same small scenario in a tenant of its own:

- providers A, B and C, linked to the logins ``dr-a``, ``dr-b`` and ``dr-c`` (C is nobody's primary
  provider and wrote nothing);
- patient P (primary provider A, login ``pt-p``) and patient Q (primary provider B, login ``pt-q``);
- A's DRAFT, FINALIZED, AMENDED and ENTERED_IN_ERROR records for P, B's DRAFT and FINALIZED
  records for Q; RESTRICTED records for P: A's FINALIZED one, B's FINALIZED one (P's primary
  provider is A) and B's DRAFT; one PRIMARY diagnosis on every record; each record's status
  history as events; attachments in every status;
- break-glass grants for P: an active one held by the admin login ``admin-glass``, an active one
  held by ``dr-c``, and an expired and a revoked one held by ``dr-b`` (which give nothing: B reads
  exactly what it would without them).

The callers: an admin, an admin holding a grant, providers A, B and C, patients P and Q, a token
of the tenant with no role, an admin of a second (empty) tenant, and provider and patient tokens
of the tenant whose subject is linked to no row (an unlinked provider reads patients and
non-draft records; an unlinked patient sees nothing). Reads are checked against the
who-sees-what table ``SEES``: a grant's holder also reads P's non-draft RESTRICTED records and
everything under them, never a draft. Writes are checked against one table of outcomes per
mutation, comparing every row of both tenants before and after the call: a refused write changes
nothing, an allowed one exactly what it says. A grant opens no write: a record its holder reads
only under a grant is FORBIDDEN to it (it is visible, so not NOT_FOUND).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from graphql import build_schema
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.domain.opaque_ids import NodeType, OpaqueIds
from models import (
    Attachment,
    BreakGlassGrant,
    Diagnosis,
    MedicalRecord,
    Patient,
    Provider,
    RecordStatusEvent,
)
from models.enums import AttachmentStatus, Confidentiality, RecordStatus
from tests.api_client import Api, error_codes
from tests.factories import BASE_TIME, Factory

IDS = OpaqueIds("medrec-opaque-id-v1")
SDL = Path(__file__).resolve().parents[2] / "schema" / "schema.graphql"


# --- who calls --------------------------------------------------------------------------------


class Caller(enum.StrEnum):
    ADMIN = "admin"
    GLASS_ADMIN = "admin_with_grant"
    DR_A = "provider_a"
    DR_B = "provider_b"
    DR_C = "provider_c"
    PT_P = "patient_p"
    PT_Q = "patient_q"
    NO_ROLE = "no_role"
    OTHER_ADMIN = "other_tenant_admin"
    UNLINKED_DR = "unlinked_provider"
    UNLINKED_PT = "unlinked_patient"


ADMIN = Caller.ADMIN
GLASS_ADMIN = Caller.GLASS_ADMIN
DR_A = Caller.DR_A
DR_B = Caller.DR_B
DR_C = Caller.DR_C
PT_P = Caller.PT_P
PT_Q = Caller.PT_Q
NO_ROLE = Caller.NO_ROLE
OTHER_ADMIN = Caller.OTHER_ADMIN
UNLINKED_DR = Caller.UNLINKED_DR
UNLINKED_PT = Caller.UNLINKED_PT


@dataclass(frozen=True)
class Login:
    subject: str
    groups: tuple[str, ...]
    other_tenant: bool = False


LOGINS: dict[Caller, Login] = {
    ADMIN: Login("admin-1", ("admin",)),
    GLASS_ADMIN: Login("admin-glass", ("admin",)),
    DR_A: Login("dr-a", ("provider",)),
    DR_B: Login("dr-b", ("provider",)),
    DR_C: Login("dr-c", ("provider",)),
    PT_P: Login("pt-p", ("patient",)),
    PT_Q: Login("pt-q", ("patient",)),
    NO_ROLE: Login("nobody", ()),
    OTHER_ADMIN: Login("admin-2", ("admin",), other_tenant=True),
    # Roles of the tenant whose subject is linked to no provider or patient row.
    UNLINKED_DR: Login("dr-unlinked", ("provider",)),
    UNLINKED_PT: Login("pt-unlinked", ("patient",)),
}


# --- the scenario, by label -------------------------------------------------------------------

PROVIDERS = ("A", "B", "C")
PRIMARY_PROVIDER = {"P": "A", "Q": "B"}
PATIENTS = tuple(PRIMARY_PROVIDER)
LINKED_LOGIN = {"A": "dr-a", "B": "dr-b", "C": "dr-c", "P": "pt-p", "Q": "pt-q"}

DRAFT = RecordStatus.DRAFT
FINALIZED = RecordStatus.FINALIZED
AMENDED = RecordStatus.AMENDED
ENTERED_IN_ERROR = RecordStatus.ENTERED_IN_ERROR


@dataclass(frozen=True)
class RecordSpec:
    patient: str
    provider: str
    status: RecordStatus
    confidentiality: Confidentiality = Confidentiality.NORMAL


RESTRICTED = Confidentiality.RESTRICTED
RECORDS: dict[str, RecordSpec] = {
    "A.draft": RecordSpec("P", "A", DRAFT),
    "A.final": RecordSpec("P", "A", FINALIZED),
    "A.amended": RecordSpec("P", "A", AMENDED),
    "A.error": RecordSpec("P", "A", ENTERED_IN_ERROR),
    "B.draft": RecordSpec("Q", "B", DRAFT),
    "B.final": RecordSpec("Q", "B", FINALIZED),
    # P's primary provider is A: A reads B's restricted record of P, B does not read A's.
    "A.secret": RecordSpec("P", "A", FINALIZED, RESTRICTED),
    "B.secret": RecordSpec("P", "B", FINALIZED, RESTRICTED),
    "B.secret-draft": RecordSpec("P", "B", DRAFT, RESTRICTED),
}

# How each record got to its status; event "<record>#<n>" carries its label as its reason.
HISTORY: dict[RecordStatus, tuple[RecordStatus, ...]] = {
    DRAFT: (DRAFT,),
    FINALIZED: (DRAFT, FINALIZED),
    AMENDED: (DRAFT, FINALIZED, AMENDED),
    ENTERED_IN_ERROR: (DRAFT, FINALIZED, ENTERED_IN_ERROR),
}

# One PRIMARY diagnosis per record, "<record>/dx".
DIAGNOSES = {f"{record}/dx": record for record in RECORDS}

# "<record>/<status>"
ATTACHMENTS: dict[str, tuple[str, AttachmentStatus]] = {
    label: (label.split("/")[0], AttachmentStatus(label.split("/")[1]))
    for label in (
        "A.draft/AVAILABLE",
        "A.final/AVAILABLE",
        "A.final/PENDING_UPLOAD",
        "A.final/REJECTED",
        "A.final/DELETED",
        "A.error/AVAILABLE",
        "B.draft/AVAILABLE",
        "B.final/AVAILABLE",
        "B.final/PENDING_UPLOAD",
        "A.secret/AVAILABLE",
        "B.secret/AVAILABLE",
        "B.secret-draft/AVAILABLE",
    )
}


class GrantState(enum.Enum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True)
class GrantSpec:
    """A break-glass grant for patient P; ``provider`` is the holder's row (None for an admin)."""

    holder: str
    provider: str | None
    state: GrantState


# Revoked by the tenant's admin before the test starts.
REVOKER = "admin-1"
GRANTS: dict[str, GrantSpec] = {
    "G.admin": GrantSpec("admin-glass", None, GrantState.ACTIVE),
    "G.c": GrantSpec("dr-c", "C", GrantState.ACTIVE),
    "G.b-expired": GrantSpec("dr-b", "B", GrantState.EXPIRED),
    "G.b-revoked": GrantSpec("dr-b", "B", GrantState.REVOKED),
}
GRANTED_PATIENT = "P"

NODE_TYPES: dict[str, NodeType] = (
    dict.fromkeys(PROVIDERS, NodeType.PROVIDER)
    | dict.fromkeys(PATIENTS, NodeType.PATIENT)
    | dict.fromkeys(RECORDS, NodeType.MEDICAL_RECORD)
    | dict.fromkeys(DIAGNOSES, NodeType.DIAGNOSIS)
    | dict.fromkeys(ATTACHMENTS, NodeType.ATTACHMENT)
    | dict.fromkeys(GRANTS, NodeType.BREAK_GLASS_GRANT)
)
TYPENAMES = {
    NodeType.PROVIDER: "Provider",
    NodeType.PATIENT: "Patient",
    NodeType.MEDICAL_RECORD: "MedicalRecord",
    NodeType.DIAGNOSIS: "Diagnosis",
    NodeType.ATTACHMENT: "Attachment",
    NodeType.BREAK_GLASS_GRANT: "BreakGlassGrant",
}


def history(record: str) -> list[tuple[str, str | None, str]]:
    """(reason label, previousStatus, status) of each of the record's events, oldest first."""
    statuses = HISTORY[RECORDS[record].status]
    previous: list[RecordStatus | None] = [None, *statuses[:-1]]
    return [
        (f"{record}#{n}", None if prev is None else prev.value, status.value)
        for n, (prev, status) in enumerate(zip(previous, statuses, strict=True), start=1)
    ]


@dataclass(frozen=True)
class Scenario:
    tenant: str
    other_tenant: str
    ids: dict[str, uuid.UUID]
    labels: dict[uuid.UUID, str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", {row_id: label for label, row_id in self.ids.items()})

    def gid(self, label: str) -> str:
        return IDS.encode_id(NODE_TYPES[label], self.ids[label])

    def label_of(self, global_id: str) -> str:
        _, row_id = IDS.decode_id(global_id)
        return self.labels.get(row_id, f"<unknown {row_id}>")

    def tenant_label(self, tenant_id: str | None) -> str | None:
        return {self.tenant: "own", self.other_tenant: "other"}.get(tenant_id or "", tenant_id)


# A grant's times by its state, from the moment the scenario is built.
GRANT_TIMES: dict[GrantState, Callable[[datetime], dict[str, Any]]] = {
    GrantState.ACTIVE: lambda now: {
        "granted_at": now - timedelta(minutes=1),
        "expires_at": now + timedelta(hours=1),
    },
    GrantState.EXPIRED: lambda now: {
        "granted_at": now - timedelta(hours=2),
        "expires_at": now - timedelta(hours=1),
    },
    GrantState.REVOKED: lambda now: {
        "granted_at": now - timedelta(minutes=10),
        "expires_at": now + timedelta(minutes=50),
        "revoked_at": now - timedelta(minutes=5),
        "revoked_by": REVOKER,
    },
}


@pytest.fixture
async def scenario(factory: Factory) -> Scenario:
    ids: dict[str, uuid.UUID] = {}
    rows: dict[str, dict[str, Any]] = {}
    for label in PROVIDERS:
        rows[label] = await factory.provider(
            cognito_sub=LINKED_LOGIN[label], family_name=f"Doctor{label}"
        )
    for label, primary in PRIMARY_PROVIDER.items():
        rows[label] = await factory.patient(
            cognito_sub=LINKED_LOGIN[label],
            primary_provider_id=rows[primary]["id"],
            preferred_language=LANGUAGE[label],
        )
    for label, spec in RECORDS.items():
        record = rows[label] = await factory.record(
            rows[spec.patient],
            rows[spec.provider],
            status=spec.status,
            staff_note=staff_note(label),
            confidentiality=spec.confidentiality,
        )
        rows[f"{label}/dx"] = await factory.diagnosis(record)
        for reason, previous, status in history(label):
            await factory.status_event(
                record,
                previous_status=previous,
                status=status,
                changed_by="admin-1" if status == ENTERED_IN_ERROR else LINKED_LOGIN[spec.provider],
                reason=reason,
            )
    for label, (record_label, status) in ATTACHMENTS.items():
        rows[label] = await factory.attachment(
            rows[record_label],
            status=status,
            uploaded_at=None if status is AttachmentStatus.PENDING_UPLOAD else BASE_TIME,
        )
    for label, grant in GRANTS.items():
        rows[label] = await factory.grant(
            rows[GRANTED_PATIENT],
            grant.holder,
            provider_id=None if grant.provider is None else rows[grant.provider]["id"],
            **GRANT_TIMES[grant.state](datetime.now(UTC)),
        )
    ids = {label: row["id"] for label, row in rows.items()}
    return Scenario(factory.tenant_id, f"{factory.tenant_id}-other", ids)


def token(api: Api, scenario: Scenario, caller: Caller) -> str:
    login = LOGINS[caller]
    return api.token(
        subject=login.subject,
        groups=login.groups,
        tenant_id=scenario.other_tenant if login.other_tenant else True,
    )


@dataclass(frozen=True)
class Refused:
    code: str


FORBIDDEN = Refused("FORBIDDEN")
NOT_FOUND = Refused("NOT_FOUND")
BAD_USER_INPUT = Refused("BAD_USER_INPUT")
INVALID_TRANSITION = Refused("INVALID_TRANSITION")


# --- reads: who sees what -----------------------------------------------------------------------


@dataclass(frozen=True)
class Sees:
    """Everything the caller can read; diagnoses and status events follow their record."""

    providers: frozenset[str]
    patients: frozenset[str]
    records: frozenset[str]
    attachments: frozenset[str]
    # Whose records' DRAFT status events the caller sees: a draft stays private to its provider
    # (and admins) even after the record moves on, and patients never see one.
    draft_events_of: frozenset[str] = frozenset({"A", "B"})
    # Whether the caller reads records' staff notes (clinic staff) or null (patients).
    staff_notes: bool = True
    # The break-glass grants the caller reads: admins the tenant's, providers those they hold,
    # patients none (a grant shows its holder's token subject).
    grants: frozenset[str] = frozenset()

    @property
    def diagnoses(self) -> frozenset[str]:
        return frozenset(dx for dx, record in DIAGNOSES.items() if record in self.records)

    @property
    def nodes(self) -> frozenset[str]:
        return (
            self.providers
            | self.patients
            | self.records
            | self.diagnoses
            | self.attachments
            | self.grants
        )


def sees(
    *,
    providers: str,
    patients: str,
    records: str,
    attachments: str,
    draft_events_of: str = "A B",
    staff_notes: bool = True,
    grants: str = "",
) -> Sees:
    return Sees(
        frozenset(providers.split()),
        frozenset(patients.split()),
        frozenset(records.split()),
        frozenset(attachments.split()),
        frozenset(draft_events_of.split()),
        staff_notes,
        frozenset(grants.split()),
    )


ALL_GRANTS = " ".join(GRANTS)

# A DELETED attachment is kept for the audit trail only: nobody reads it. A RESTRICTED record
# exists only for its author, the patient's primary provider, (once finalized) the patient and
# the holder of an active grant for the patient (never while it is a draft): admins included,
# nobody else reads it or anything under it.
SEES: dict[Caller, Sees | Refused] = {
    ADMIN: sees(
        providers="A B C",
        patients="P Q",
        records="A.draft A.final A.amended A.error B.draft B.final",
        attachments="A.draft/AVAILABLE A.final/AVAILABLE A.final/PENDING_UPLOAD A.final/REJECTED "
        "A.error/AVAILABLE B.draft/AVAILABLE B.final/AVAILABLE B.final/PENDING_UPLOAD",
        grants=ALL_GRANTS,
    ),
    # What an admin reads, plus P's finalized RESTRICTED records; B's restricted draft stays B's.
    GLASS_ADMIN: sees(
        providers="A B C",
        patients="P Q",
        records="A.draft A.final A.amended A.error B.draft B.final A.secret B.secret",
        attachments="A.draft/AVAILABLE A.final/AVAILABLE A.final/PENDING_UPLOAD A.final/REJECTED "
        "A.error/AVAILABLE B.draft/AVAILABLE B.final/AVAILABLE B.final/PENDING_UPLOAD "
        "A.secret/AVAILABLE B.secret/AVAILABLE",
        grants=ALL_GRANTS,
    ),
    DR_A: sees(
        providers="A B C",
        patients="P Q",
        records="A.draft A.final A.amended A.error B.final A.secret B.secret",
        attachments="A.draft/AVAILABLE A.final/AVAILABLE A.final/PENDING_UPLOAD A.final/REJECTED "
        "A.error/AVAILABLE B.final/AVAILABLE B.final/PENDING_UPLOAD A.secret/AVAILABLE "
        "B.secret/AVAILABLE",
        draft_events_of="A",
    ),
    DR_B: sees(
        providers="A B C",
        patients="P Q",
        records="A.final A.amended A.error B.draft B.final B.secret B.secret-draft",
        attachments="A.final/AVAILABLE A.final/PENDING_UPLOAD A.final/REJECTED "
        "A.error/AVAILABLE B.draft/AVAILABLE B.final/AVAILABLE B.final/PENDING_UPLOAD "
        "B.secret/AVAILABLE B.secret-draft/AVAILABLE",
        draft_events_of="B",
        # Its expired and revoked grants: readable, and they give nothing.
        grants="G.b-expired G.b-revoked",
    ),
    # A provider of no record and no patient: what any provider reads, plus P's finalized
    # RESTRICTED records under its grant (no draft, not even the other providers' events' DRAFT).
    DR_C: sees(
        providers="A B C",
        patients="P Q",
        records="A.final A.amended A.error B.final A.secret B.secret",
        attachments="A.final/AVAILABLE A.final/PENDING_UPLOAD A.final/REJECTED "
        "A.error/AVAILABLE B.final/AVAILABLE B.final/PENDING_UPLOAD A.secret/AVAILABLE "
        "B.secret/AVAILABLE",
        draft_events_of="",
        grants="G.c",
    ),
    PT_P: sees(
        providers="A B C",
        patients="P",
        records="A.final A.amended A.secret B.secret",
        attachments="A.final/AVAILABLE A.secret/AVAILABLE B.secret/AVAILABLE",
        draft_events_of="",
        staff_notes=False,
    ),
    PT_Q: sees(
        providers="A B C",
        patients="Q",
        records="B.final",
        attachments="B.final/AVAILABLE",
        draft_events_of="",
        staff_notes=False,
    ),
    NO_ROLE: FORBIDDEN,
    OTHER_ADMIN: sees(providers="", patients="", records="", attachments=""),
    # Provider and patient tokens linked to no row act in no role (app/domain/access.py).
    UNLINKED_DR: FORBIDDEN,
    UNLINKED_PT: FORBIDDEN,
}

# Query.me works for every signed-in caller; tenantId is "own" or "other".
ME: dict[Caller, dict[str, Any]] = {
    ADMIN: {"subject": "admin-1", "tenantId": "own", "roles": ["ADMIN"]},
    GLASS_ADMIN: {"subject": "admin-glass", "tenantId": "own", "roles": ["ADMIN"]},
    DR_A: {"subject": "dr-a", "tenantId": "own", "roles": ["PROVIDER"], "provider": "A"},
    DR_B: {"subject": "dr-b", "tenantId": "own", "roles": ["PROVIDER"], "provider": "B"},
    DR_C: {"subject": "dr-c", "tenantId": "own", "roles": ["PROVIDER"], "provider": "C"},
    PT_P: {"subject": "pt-p", "tenantId": "own", "roles": ["PATIENT"], "patient": "P"},
    PT_Q: {"subject": "pt-q", "tenantId": "own", "roles": ["PATIENT"], "patient": "Q"},
    NO_ROLE: {"subject": "nobody", "tenantId": "own", "roles": []},
    OTHER_ADMIN: {"subject": "admin-2", "tenantId": "other", "roles": ["ADMIN"]},
    UNLINKED_DR: {"subject": "dr-unlinked", "tenantId": "own", "roles": ["PROVIDER"]},
    UNLINKED_PT: {"subject": "pt-unlinked", "tenantId": "own", "roles": ["PATIENT"]},
}

# Query.auditEvents after provider A has read patient P (operation "ReadP"), then provider C
# read P's records under its grant ("CReadsP"), newest first:
# (totalCount, [(subject, operationName, tenant, the grant the row names)]).
AuditEntry = tuple[str, str, str | None, str | None]
READS_OF_P: list[AuditEntry] = [
    ("dr-c", "CReadsP", "own", "G.c"),
    ("dr-a", "ReadP", "own", None),
]
AUDIT_TRAIL: dict[Caller, tuple[int, list[AuditEntry]] | Refused] = {
    ADMIN: (2, READS_OF_P),
    GLASS_ADMIN: (2, READS_OF_P),
    DR_A: FORBIDDEN,
    DR_B: FORBIDDEN,
    DR_C: FORBIDDEN,
    PT_P: FORBIDDEN,
    PT_Q: FORBIDDEN,
    NO_ROLE: FORBIDDEN,
    OTHER_ADMIN: (0, []),
    UNLINKED_DR: FORBIDDEN,
    UNLINKED_PT: FORBIDDEN,
}

Build = Callable[[Scenario], tuple[str, dict[str, Any]]]
Observe = Callable[[dict[str, Any], Scenario], object]
Connection = tuple[frozenset[str], int]


@dataclass(frozen=True)
class Read:
    name: str
    build: Build
    observe: Observe
    expect: Callable[[Caller], object]
    prepare: Callable[[Api, Scenario], Awaitable[None]] | None = None


def fixed(query: str) -> Build:
    return lambda _: (query, {})


def by_ids(field_name: str, labels: Sequence[str], selection: str) -> Build:
    """``field_name(id:)`` once per label, aliased v0, v1, ..."""

    def build(scenario: Scenario) -> tuple[str, dict[str, Any]]:
        params = ", ".join(f"$v{i}: ID!" for i in range(len(labels)))
        fields = " ".join(
            f"v{i}: {field_name}(id: $v{i}) {{ {selection} }}" for i in range(len(labels))
        )
        variables = {f"v{i}": scenario.gid(label) for i, label in enumerate(labels)}
        return f"query({params}) {{ {fields} }}", variables

    return build


def each(labels: Sequence[str], convert: Callable[[dict[str, Any], Scenario], object]) -> Observe:
    """The aliased results by label: None where the field was null, else ``convert`` of it."""

    def observe(data: dict[str, Any], scenario: Scenario) -> object:
        found = {label: data[f"v{i}"] for i, label in enumerate(labels)}
        return {
            label: None if value is None else convert(value, scenario)
            for label, value in found.items()
        }

    return observe


def present(labels: Sequence[str]) -> Observe:
    """The labels whose aliased field was not null (checking that it is the right object)."""

    def observe(data: dict[str, Any], scenario: Scenario) -> object:
        visible = set()
        for i, label in enumerate(labels):
            value = data[f"v{i}"]
            if value is not None:
                assert value["id"] == scenario.gid(label)
                visible.add(label)
        return frozenset(visible)

    return observe


def connection(value: dict[str, Any], scenario: Scenario) -> Connection:
    edges = frozenset(scenario.label_of(edge["node"]["id"]) for edge in value["edges"])
    return edges, value["totalCount"]


def listed(path: str) -> Observe:
    return lambda data, scenario: connection(data[path], scenario)


def counted(labels: frozenset[str]) -> Connection:
    return labels, len(labels)


def from_sees(expect: Callable[[Sees], object]) -> Callable[[Caller], object]:
    def by_caller(caller: Caller) -> object:
        visible = SEES[caller]
        return visible if isinstance(visible, Refused) else expect(visible)

    return by_caller


def me_observed(data: dict[str, Any], scenario: Scenario) -> object:
    me = data["me"]
    observed: dict[str, Any] = {
        "subject": me["subject"],
        "tenantId": scenario.tenant_label(me["tenantId"]),
        "roles": me["roles"],
    }
    for key in ("provider", "patient"):
        if me[key] is not None:
            observed[key] = scenario.label_of(me[key]["id"])
    return observed


async def providers_a_and_c_read_p(api: Api, scenario: Scenario) -> None:
    await api.data(
        "query ReadP($id: ID!) { patient(id: $id) { id } }",
        {"id": scenario.gid("P")},
        token=token(api, scenario, DR_A),
    )
    read = await api.data(
        "query CReadsP($id: ID!) { patient(id: $id) { records(first: 50) { totalCount } } }",
        {"id": scenario.gid("P")},
        token=token(api, scenario, DR_C),
    )
    # Under the grant: A.secret and B.secret among them.
    assert read["patient"]["records"]["totalCount"] == 5


def audit_observed(data: dict[str, Any], scenario: Scenario) -> object:
    trail = data["auditEvents"]
    return trail["totalCount"], [
        (
            e["node"]["subject"],
            e["node"]["operationName"],
            scenario.tenant_label(e["node"]["tenantId"]),
            None
            if e["node"]["breakGlassGrant"] is None
            else scenario.label_of(e["node"]["breakGlassGrant"]["id"]),
        )
        for e in trail["edges"]
    ]


def attachments_observed(value: dict[str, Any], scenario: Scenario) -> object:
    labels = set()
    for attachment in value["attachments"]:
        label = scenario.label_of(attachment["id"])
        assert attachment["status"] == ATTACHMENTS[label][1].value
        labels.add(label)
    return frozenset(labels)


CONNECTION = "totalCount edges { node { id } }"
ALL_NODES = tuple(NODE_TYPES)

READS: tuple[Read, ...] = (
    *(
        Read(
            f"node ({part})",
            by_ids("node", labels, "__typename id"),
            each(labels, lambda node, _: node["__typename"]),
            from_sees(
                lambda s, labels=labels: {  # type: ignore[misc]
                    label: TYPENAMES[NODE_TYPES[label]] if label in s.nodes else None
                    for label in labels
                }
            ),
        )
        # In two operations: one would pass the alias limit.
        for part, labels in (
            ("rows", ALL_NODES[: len(ALL_NODES) // 2]),
            ("more rows", ALL_NODES[len(ALL_NODES) // 2 :]),
        )
    ),
    Read(
        "me",
        fixed("{ me { subject tenantId roles provider { id } patient { id } } }"),
        me_observed,
        ME.__getitem__,
    ),
    Read(
        "patient",
        by_ids("patient", PATIENTS, "id"),
        present(PATIENTS),
        from_sees(lambda s: s.patients),
    ),
    Read(
        "patients",
        fixed(f"{{ patients(first: 50) {{ {CONNECTION} }} }}"),
        listed("patients"),
        from_sees(lambda s: counted(s.patients)),
    ),
    Read(
        "provider",
        by_ids("provider", PROVIDERS, "id"),
        present(PROVIDERS),
        from_sees(lambda s: s.providers),
    ),
    Read(
        "providers",
        fixed(f"{{ providers(first: 50) {{ {CONNECTION} }} }}"),
        listed("providers"),
        from_sees(lambda s: counted(s.providers)),
    ),
    Read(
        "record",
        by_ids("record", tuple(RECORDS), "id"),
        present(tuple(RECORDS)),
        from_sees(lambda s: s.records),
    ),
    Read(
        "records",
        fixed(f"{{ records(first: 50) {{ {CONNECTION} }} }}"),
        listed("records"),
        from_sees(lambda s: counted(s.records)),
    ),
    Read(
        "auditEvents",
        fixed(
            "{ auditEvents(first: 50) { totalCount "
            "edges { node { subject operationName tenantId breakGlassGrant { id } } } } }"
        ),
        audit_observed,
        AUDIT_TRAIL.__getitem__,
        prepare=providers_a_and_c_read_p,
    ),
    Read(
        "Patient.records",
        by_ids("patient", PATIENTS, f"records(first: 50) {{ {CONNECTION} }}"),
        each(PATIENTS, lambda patient, s: connection(patient["records"], s)),
        from_sees(
            lambda s: {
                patient: counted(frozenset(r for r in s.records if RECORDS[r].patient == patient))
                if patient in s.patients
                else None
                for patient in PATIENTS
            }
        ),
    ),
    Read(
        "Provider.patients",
        by_ids("provider", PROVIDERS, f"patients(first: 50) {{ {CONNECTION} }}"),
        each(PROVIDERS, lambda provider, s: connection(provider["patients"], s)),
        from_sees(
            lambda s: {
                provider: counted(
                    frozenset(p for p in s.patients if PRIMARY_PROVIDER[p] == provider)
                )
                if provider in s.providers
                else None
                for provider in PROVIDERS
            }
        ),
    ),
    Read(
        "Provider.records",
        by_ids("provider", PROVIDERS, f"records(first: 50) {{ {CONNECTION} }}"),
        each(PROVIDERS, lambda provider, s: connection(provider["records"], s)),
        from_sees(
            lambda s: {
                provider: counted(
                    frozenset(r for r in s.records if RECORDS[r].provider == provider)
                )
                if provider in s.providers
                else None
                for provider in PROVIDERS
            }
        ),
    ),
    Read(
        "MedicalRecord.diagnoses",
        by_ids("record", tuple(RECORDS), "diagnoses { id }"),
        each(
            tuple(RECORDS),
            lambda record, s: frozenset(s.label_of(d["id"]) for d in record["diagnoses"]),
        ),
        from_sees(
            lambda s: {
                record: frozenset({f"{record}/dx"}) if record in s.records else None
                for record in RECORDS
            }
        ),
    ),
    Read(
        "MedicalRecord.attachments",
        by_ids("record", tuple(RECORDS), "attachments { id status }"),
        each(tuple(RECORDS), attachments_observed),
        from_sees(
            lambda s: {
                record: frozenset(a for a in s.attachments if ATTACHMENTS[a][0] == record)
                if record in s.records
                else None
                for record in RECORDS
            }
        ),
    ),
    Read(
        "MedicalRecord.statusHistory",
        by_ids("record", tuple(RECORDS), "statusHistory { reason previousStatus status }"),
        each(
            tuple(RECORDS),
            lambda record, _: [
                (e["reason"], e["previousStatus"], e["status"]) for e in record["statusHistory"]
            ],
        ),
        from_sees(
            lambda s: {
                record: [
                    event
                    for event in history(record)
                    if event[2] != "DRAFT" or RECORDS[record].provider in s.draft_events_of
                ]
                if record in s.records
                else None
                for record in RECORDS
            }
        ),
    ),
)


def staff_note(record: str) -> str:
    return f"{record}: staff only"


def staff_notes_seen(records: Sequence[str]) -> Callable[[Sees], object]:
    """Each record's staff note as the caller reads it: the note, null for patients, and the
    record itself absent (None) where the caller cannot read it."""
    return lambda s: {
        record: (staff_note(record) if s.staff_notes else "null") if record in s.records else None
        for record in records
    }


def notes_by_record(path: Callable[[dict[str, Any]], list[dict[str, Any]]]) -> Observe:
    """The staff notes of the records listed at ``path``, by record ("null" for a null note)."""

    def observe(data: dict[str, Any], scenario: Scenario) -> object:
        listed = {scenario.label_of(edge["node"]["id"]): edge["node"] for edge in path(data)}
        return {
            record: None if record not in listed else listed[record]["staffNote"] or "null"
            for record in RECORDS
        }

    return observe


READS += (
    Read(
        "MedicalRecord.staffNote by id",
        by_ids("record", tuple(RECORDS), "staffNote"),
        each(tuple(RECORDS), lambda record, _: record["staffNote"] or "null"),
        from_sees(staff_notes_seen(tuple(RECORDS))),
    ),
    Read(
        "MedicalRecord.staffNote by node",
        by_ids("node", tuple(RECORDS), "... on MedicalRecord { staffNote }"),
        each(tuple(RECORDS), lambda record, _: record["staffNote"] or "null"),
        from_sees(staff_notes_seen(tuple(RECORDS))),
    ),
    Read(
        "MedicalRecord.staffNote in records",
        lambda _: ("{ records(first: 50) { edges { node { id staffNote } } } }", {}),
        notes_by_record(lambda data: data["records"]["edges"]),
        from_sees(staff_notes_seen(tuple(RECORDS))),
    ),
    Read(
        "MedicalRecord.staffNote under a patient",
        by_ids("patient", ("P", "Q"), "records(first: 50) { edges { node { id staffNote } } }"),
        notes_by_record(
            lambda data: [
                edge for key in ("v0", "v1") if data[key] for edge in data[key]["records"]["edges"]
            ]
        ),
        from_sees(staff_notes_seen(tuple(RECORDS))),
    ),
)


LANGUAGE = {"P": "es-MX", "Q": "fr-CA"}


def languages_seen(s: Sees) -> dict[str, str | None]:
    """Each patient's preferred language, wherever the caller can read the patient."""
    return {patient: LANGUAGE[patient] if patient in s.patients else None for patient in LANGUAGE}


READS += (
    Read(
        "Patient.preferredLanguage by id",
        by_ids("patient", tuple(LANGUAGE), "preferredLanguage"),
        each(tuple(LANGUAGE), lambda patient, _: patient["preferredLanguage"]),
        from_sees(languages_seen),
    ),
    Read(
        "Patient.preferredLanguage in patients",
        lambda _: ("{ patients(first: 50) { edges { node { id preferredLanguage } } } }", {}),
        lambda data, scenario: {
            patient: next(
                (
                    edge["node"]["preferredLanguage"]
                    for edge in data["patients"]["edges"]
                    if scenario.label_of(edge["node"]["id"]) == patient
                ),
                None,
            )
            for patient in LANGUAGE
        },
        from_sees(languages_seen),
    ),
    Read(
        "Patient.preferredLanguage through a record",
        by_ids("record", tuple(RECORDS), "patient { preferredLanguage }"),
        each(tuple(RECORDS), lambda record, _: record["patient"]["preferredLanguage"]),
        from_sees(
            lambda s: {
                record: LANGUAGE[RECORDS[record].patient] if record in s.records else None
                for record in RECORDS
            }
        ),
    ),
)


# Patient.accessLog: the field rule of the contract. Admins and the patient themself read it;
# for everyone else the patient is there and its access log null.
ACCESS_LOG_READERS = frozenset({ADMIN, GLASS_ADMIN, OTHER_ADMIN, PT_P, PT_Q})
ACCESS_LOG = "accessLog(first: 1) { pageInfo { hasNextPage } }"


def access_logs_seen(
    labels: Sequence[str], readable: Callable[[Sees], frozenset[str]]
) -> Callable[[Caller], object]:
    """For each label (a patient, or a record whose patient the query follows): None where the
    caller cannot read it, else whether the access log is there (not null)."""

    def by_caller(caller: Caller) -> object:
        visible = SEES[caller]
        if isinstance(visible, Refused):
            return visible
        return {
            label: caller in ACCESS_LOG_READERS if label in readable(visible) else None
            for label in labels
        }

    return by_caller


READS += (
    Read(
        "Patient.accessLog by id",
        by_ids("patient", PATIENTS, ACCESS_LOG),
        each(PATIENTS, lambda patient, _: patient["accessLog"] is not None),
        access_logs_seen(PATIENTS, lambda s: s.patients),
    ),
    Read(
        "Patient.accessLog in patients",
        lambda _: (f"{{ patients(first: 50) {{ edges {{ node {{ id {ACCESS_LOG} }} }} }} }}", {}),
        lambda data, scenario: {
            patient: next(
                (
                    edge["node"]["accessLog"] is not None
                    for edge in data["patients"]["edges"]
                    if scenario.label_of(edge["node"]["id"]) == patient
                ),
                None,
            )
            for patient in PATIENTS
        },
        access_logs_seen(PATIENTS, lambda s: s.patients),
    ),
    Read(
        "Patient.accessLog through a record",
        by_ids("record", tuple(RECORDS), f"patient {{ {ACCESS_LOG} }}"),
        each(tuple(RECORDS), lambda record, _: record["patient"]["accessLog"] is not None),
        access_logs_seen(tuple(RECORDS), lambda s: s.records),
    ),
)


READS += (
    Read(
        "MedicalRecord.confidentiality by id",
        by_ids("record", tuple(RECORDS), "confidentiality"),
        each(tuple(RECORDS), lambda record, _: record["confidentiality"]),
        from_sees(
            lambda s: {
                record: RECORDS[record].confidentiality.value if record in s.records else None
                for record in RECORDS
            }
        ),
    ),
)


ACTIVE_GRANTS = frozenset(
    label for label, grant in GRANTS.items() if grant.state is GrantState.ACTIVE
)


def grant_seen(label: str) -> tuple[bool, str, str | None, str, str | None]:
    """(active, subject, revokedBy, patient, provider) of a grant, as its readers read it."""
    grant = GRANTS[label]
    return (
        grant.state is GrantState.ACTIVE,
        grant.holder,
        REVOKER if grant.state is GrantState.REVOKED else None,
        GRANTED_PATIENT,
        grant.provider,
    )


def grant_observed(value: dict[str, Any], scenario: Scenario) -> object:
    return (
        value["active"],
        value["subject"],
        value["revokedBy"],
        scenario.label_of(value["patient"]["id"]),
        None if value["provider"] is None else scenario.label_of(value["provider"]["id"]),
    )


def grants_listed(filter_: Callable[[Scenario], dict[str, Any]]) -> Build:
    return lambda s: (
        f"query($filter: BreakGlassGrantFilter) {{ "
        f"breakGlassGrants(first: 50, filter: $filter) {{ {CONNECTION} }} }}",
        {"filter": filter_(s)},
    )


READS += (
    Read(
        "breakGlassGrants",
        fixed(f"{{ breakGlassGrants(first: 50) {{ {CONNECTION} }} }}"),
        listed("breakGlassGrants"),
        from_sees(lambda s: counted(s.grants)),
    ),
    Read(
        # The database's clock decides: the expired and the revoked grant are not active.
        "breakGlassGrants (active only)",
        grants_listed(lambda _: {"activeOnly": True}),
        listed("breakGlassGrants"),
        from_sees(lambda s: counted(s.grants & ACTIVE_GRANTS)),
    ),
    Read(
        "breakGlassGrants (patient Q)",
        grants_listed(lambda s: {"patientId": s.gid("Q")}),
        listed("breakGlassGrants"),
        from_sees(lambda _: counted(frozenset())),
    ),
    Read(
        "BreakGlassGrant.active, holder and patient by node",
        by_ids(
            "node",
            tuple(GRANTS),
            "... on BreakGlassGrant { active subject revokedBy patient { id } provider { id } }",
        ),
        each(tuple(GRANTS), grant_observed),
        from_sees(
            lambda s: {label: grant_seen(label) if label in s.grants else None for label in GRANTS}
        ),
    ),
)


def read_case(read: Read, caller: Caller) -> Any:
    return pytest.param(caller, read, id=f"{read.name}-{caller}")


@pytest.mark.parametrize(
    ("caller", "read"), [read_case(read, caller) for read in READS for caller in Caller]
)
async def test_read(api: Api, scenario: Scenario, caller: Caller, read: Read) -> None:
    if read.prepare is not None:
        await read.prepare(api, scenario)
    query, variables = read.build(scenario)
    body = await api.query(query, variables, token=token(api, scenario, caller))
    expected = read.expect(caller)
    if isinstance(expected, Refused):
        codes = error_codes(body)
        assert codes, body
        assert set(codes) == {expected.code}, body
        data = body.get("data")
        assert data is None or all(value is None for value in data.values()), data
    else:
        assert "errors" not in body, body["errors"]
        assert read.observe(body["data"], scenario) == expected


# --- writes: outcomes and effects ---------------------------------------------------------------

SNAPSHOT_TABLES: dict[str, Any] = {
    "providers": Provider,
    "patients": Patient,
    "medical_records": MedicalRecord,
    "diagnoses": Diagnosis,
    "attachments": Attachment,
    "record_status_events": RecordStatusEvent,
    "break_glass_grants": BreakGlassGrant,
}
Rows = dict[str, dict[object, dict[str, Any]]]


async def snapshot(sessionmaker: async_sessionmaker[AsyncSession], scenario: Scenario) -> Rows:
    """Every row of both tenants, every column (versions included), by primary key."""
    rows: Rows = {}
    async with sessionmaker() as session:
        for name, model in SNAPSHOT_TABLES.items():
            table = model.__table__
            key = "sequence" if name == "record_status_events" else "id"
            result = await session.execute(
                select(table).where(table.c.tenant_id.in_((scenario.tenant, scenario.other_tenant)))
            )
            rows[name] = {row[key]: dict(row) for row in result.mappings()}
    return rows


@dataclass
class TableDiff:
    added: list[dict[str, Any]] = field(default_factory=list)
    removed: set[object] = field(default_factory=set)
    updated: dict[object, dict[str, tuple[Any, Any]]] = field(default_factory=dict)


def diff(before: Rows, after: Rows) -> dict[str, TableDiff]:
    changes: dict[str, TableDiff] = {}
    for table in SNAPSHOT_TABLES:
        old, new = before[table], after[table]
        change = TableDiff(
            added=[row for key, row in new.items() if key not in old],
            removed={key for key in old if key not in new},
            updated={
                key: {
                    column: (old[key][column], value)
                    for column, value in row.items()
                    if old[key][column] != value
                }
                for key, row in new.items()
                if key in old and old[key] != row
            },
        )
        if change.added or change.removed or change.updated:
            changes[table] = change
    return changes


class Marker(enum.Enum):
    CHANGED = "any new value"


CHANGED = Marker.CHANGED


@dataclass(frozen=True)
class New:
    """The id of the row the same write added to ``table``."""

    table: str


@dataclass(frozen=True)
class Added:
    table: str
    values: Mapping[str, object]
    tenant: str = "own"


@dataclass(frozen=True)
class Updated:
    """Only these columns (and updated_at) change; CHANGED means any value but the old one."""

    table: str
    label: str
    values: Mapping[str, object]


@dataclass(frozen=True)
class Removed:
    table: str
    label: str


Change = Added | Updated | Removed


@dataclass(frozen=True)
class Allowed:
    changes: tuple[Change, ...]
    # When nothing changes: the label of the row the payload returns as it was.
    unchanged: str | None = None


Outcome = Allowed | Refused


def added(table: str, tenant: str = "own", **values: object) -> Added:
    return Added(table, values, tenant)


def updated(table: str, label: str, **values: object) -> Updated:
    return Updated(table, label, values)


def new_provider(tenant: str) -> Allowed:
    return Allowed((added("providers", tenant, npi="1234567893", cognito_sub=None, version=1),))


def new_patient(tenant: str = "own", primary: str | None = None) -> Allowed:
    return Allowed(
        (added("patients", tenant, mrn="NEW-0001", primary_provider_id=primary, version=1),)
    )


def new_record(author: str, by: Caller) -> Allowed:
    return Allowed(
        (
            added("medical_records", patient_id="P", provider_id=author, status="DRAFT", version=1),
            added(
                "record_status_events",
                record_id=New("medical_records"),
                previous_status=None,
                status="DRAFT",
                changed_by=LOGINS[by].subject,
            ),
        )
    )


def draft_edit(*extra: Change, **values: object) -> Allowed:
    return Allowed((updated("medical_records", "A.draft", version=2, **values), *extra))


def status_change(record: str, old: str, new: str, by: Caller, reason: str | None) -> Allowed:
    finalized = {"finalized_at": CHANGED} if new == "FINALIZED" else {}
    return Allowed(
        (
            updated("medical_records", record, status=new, version=2, **finalized),
            added(
                "record_status_events",
                record_id=record,
                previous_status=old,
                status=new,
                changed_by=LOGINS[by].subject,
                reason=reason,
            ),
        )
    )


def unchanged(label: str) -> Allowed:
    """Allowed, and nothing to do: the payload is ``label``'s row as it was."""
    return Allowed((), unchanged=label)


NEW_UPLOAD_CHECKSUM = "ab" * 32


def new_attachment() -> Allowed:
    return Allowed(
        (
            added(
                "attachments",
                record_id="A.draft",
                file_name="lab_report.pdf",
                content_type="application/pdf",
                size_bytes=2048,
                checksum_sha256=NEW_UPLOAD_CHECKSUM,
                status="PENDING_UPLOAD",
                uploaded_at=None,
                version=1,
            ),
        )
    )


def attachment_deleted(label: str) -> Allowed:
    return Allowed((updated("attachments", label, status="DELETED", version=2),))


PAYLOADS = {
    "createProvider": ("CreateProviderInput", "provider", "providers"),
    "createPatient": ("CreatePatientInput", "patient", "patients"),
    "updatePatient": ("UpdatePatientInput", "patient", "patients"),
    "createRecord": ("CreateRecordInput", "record", "medical_records"),
    "updateRecord": ("UpdateRecordInput", "record", "medical_records"),
    "addDiagnosis": ("AddDiagnosisInput", "diagnosis", "diagnoses"),
    "changeRecordStatus": ("ChangeRecordStatusInput", "record", "medical_records"),
    "removeDiagnosis": ("", "record", "medical_records"),
    "requestAttachmentUpload": ("RequestAttachmentUploadInput", "attachment", "attachments"),
    "confirmAttachmentUpload": ("", "attachment", "attachments"),
    "deleteAttachment": ("", "attachment", "attachments"),
    "breakGlass": ("BreakGlassInput", "grant", "break_glass_grants"),
    "revokeBreakGlass": ("", "grant", "break_glass_grants"),
}


@dataclass(frozen=True)
class Write:
    name: str
    mutation: str
    variables: Callable[[Scenario], dict[str, Any]]
    outcomes: Mapping[Caller, Outcome]

    @property
    def document(self) -> str:
        input_type, payload, _ = PAYLOADS[self.mutation]
        if not input_type:
            return f"mutation($id: ID!) {{ {self.mutation}(id: $id) {{ {payload} {{ id }} }} }}"
        return (
            f"mutation($input: {input_type}!) "
            f"{{ {self.mutation}(input: $input) {{ {payload} {{ id }} }} }}"
        )


NEW_PROVIDER = {"npi": "1234567893", "givenName": "Nadia", "familyName": "Newcomer"}
NEW_PATIENT = {
    "mrn": "NEW-0001",
    "givenName": "Noah",
    "familyName": "Newman",
    "dateOfBirth": "1990-05-01",
    "sex": "MALE",
}
NEW_RECORD = {"recordType": "CONSULTATION", "visitDate": "2026-06-01T09:00:00+00:00"}
NEW_PHONE = "+1 555 010 9999"
NEW_NOTES = "seen again"


def record_input(record: str, **values: object) -> Callable[[Scenario], dict[str, Any]]:
    return lambda s: {"input": {"id": s.gid(record), "expectedVersion": 1, **values}}


def upload_request(record: str) -> Callable[[Scenario], dict[str, Any]]:
    """A valid upload request; the scenario's objects are never in the store (rows only)."""
    return lambda s: {
        "input": {
            "recordId": s.gid(record),
            "fileName": "lab report.pdf",
            "contentType": "application/pdf",
            "sizeBytes": 2048,
            "checksumSha256": NEW_UPLOAD_CHECKSUM,
        }
    }


def by_id(label: str) -> Callable[[Scenario], dict[str, Any]]:
    return lambda s: {"id": s.gid(label)}


WRITES: tuple[Write, ...] = (
    Write(
        "createProvider",
        "createProvider",
        lambda s: {"input": NEW_PROVIDER},
        {
            ADMIN: new_provider("own"),
            GLASS_ADMIN: new_provider("own"),
            DR_A: FORBIDDEN,
            DR_B: FORBIDDEN,
            DR_C: FORBIDDEN,
            PT_P: FORBIDDEN,
            PT_Q: FORBIDDEN,
            NO_ROLE: FORBIDDEN,
            OTHER_ADMIN: new_provider("other"),
            UNLINKED_DR: FORBIDDEN,
            UNLINKED_PT: FORBIDDEN,
        },
    ),
    Write(
        "createPatient",
        "createPatient",
        lambda s: {"input": NEW_PATIENT},
        {
            ADMIN: new_patient(),
            GLASS_ADMIN: new_patient(),
            DR_A: new_patient(),
            DR_B: new_patient(),
            DR_C: new_patient(),
            PT_P: FORBIDDEN,
            PT_Q: FORBIDDEN,
            NO_ROLE: FORBIDDEN,
            OTHER_ADMIN: new_patient("other"),
            UNLINKED_DR: FORBIDDEN,
            UNLINKED_PT: FORBIDDEN,
        },
    ),
    Write(
        "createPatient(primary A)",
        "createPatient",
        lambda s: {"input": NEW_PATIENT | {"primaryProviderId": s.gid("A")}},
        {
            ADMIN: new_patient(primary="A"),
            GLASS_ADMIN: new_patient(primary="A"),
            DR_A: new_patient(primary="A"),
            DR_B: new_patient(primary="A"),
            DR_C: new_patient(primary="A"),
            PT_P: FORBIDDEN,
            PT_Q: FORBIDDEN,
            NO_ROLE: FORBIDDEN,
            OTHER_ADMIN: NOT_FOUND,
            UNLINKED_DR: FORBIDDEN,
            UNLINKED_PT: FORBIDDEN,
        },
    ),
    Write(
        "updatePatient(P)",
        "updatePatient",
        lambda s: {"input": {"id": s.gid("P"), "expectedVersion": 1, "phone": NEW_PHONE}},
        {
            ADMIN: Allowed((updated("patients", "P", phone=NEW_PHONE, version=2),)),
            GLASS_ADMIN: Allowed((updated("patients", "P", phone=NEW_PHONE, version=2),)),
            DR_A: Allowed((updated("patients", "P", phone=NEW_PHONE, version=2),)),
            DR_B: Allowed((updated("patients", "P", phone=NEW_PHONE, version=2),)),
            DR_C: Allowed((updated("patients", "P", phone=NEW_PHONE, version=2),)),
            PT_P: FORBIDDEN,
            PT_Q: FORBIDDEN,
            NO_ROLE: FORBIDDEN,
            OTHER_ADMIN: NOT_FOUND,
            UNLINKED_DR: FORBIDDEN,
            UNLINKED_PT: FORBIDDEN,
        },
    ),
    Write(
        "createRecord(P)",
        "createRecord",
        lambda s: {"input": NEW_RECORD | {"patientId": s.gid("P")}},
        {
            ADMIN: BAD_USER_INPUT,  # admins must name the provider
            GLASS_ADMIN: BAD_USER_INPUT,
            DR_A: new_record(author="A", by=DR_A),
            DR_B: new_record(author="B", by=DR_B),
            DR_C: new_record(author="C", by=DR_C),
            PT_P: FORBIDDEN,
            PT_Q: FORBIDDEN,
            NO_ROLE: FORBIDDEN,
            OTHER_ADMIN: BAD_USER_INPUT,
            UNLINKED_DR: FORBIDDEN,
            UNLINKED_PT: FORBIDDEN,
        },
    ),
    Write(
        "createRecord(P, provider A)",
        "createRecord",
        lambda s: {"input": NEW_RECORD | {"patientId": s.gid("P"), "providerId": s.gid("A")}},
        {
            ADMIN: new_record(author="A", by=ADMIN),
            GLASS_ADMIN: new_record(author="A", by=GLASS_ADMIN),
            DR_A: new_record(author="A", by=DR_A),
            DR_B: FORBIDDEN,  # providers write as themselves only
            DR_C: FORBIDDEN,
            PT_P: FORBIDDEN,
            PT_Q: FORBIDDEN,
            NO_ROLE: FORBIDDEN,
            OTHER_ADMIN: NOT_FOUND,
            UNLINKED_DR: FORBIDDEN,
            UNLINKED_PT: FORBIDDEN,
        },
    ),
    Write(
        "updateRecord(A.draft)",
        "updateRecord",
        record_input("A.draft", notes=NEW_NOTES),
        {
            ADMIN: draft_edit(notes=NEW_NOTES),
            GLASS_ADMIN: draft_edit(notes=NEW_NOTES),
            DR_A: draft_edit(notes=NEW_NOTES),
            DR_B: NOT_FOUND,  # another provider's draft is invisible
            DR_C: NOT_FOUND,
            PT_P: FORBIDDEN,
            PT_Q: FORBIDDEN,
            NO_ROLE: FORBIDDEN,
            OTHER_ADMIN: NOT_FOUND,
            UNLINKED_DR: FORBIDDEN,
            UNLINKED_PT: FORBIDDEN,
        },
    ),
    Write(
        "updateRecord(A.final)",
        "updateRecord",
        record_input("A.final", notes=NEW_NOTES),
        {
            ADMIN: INVALID_TRANSITION,
            GLASS_ADMIN: INVALID_TRANSITION,
            DR_A: INVALID_TRANSITION,
            DR_B: FORBIDDEN,  # visible, but not B's
            DR_C: FORBIDDEN,
            PT_P: FORBIDDEN,
            PT_Q: FORBIDDEN,
            NO_ROLE: FORBIDDEN,
            OTHER_ADMIN: NOT_FOUND,
            UNLINKED_DR: FORBIDDEN,
            UNLINKED_PT: FORBIDDEN,
        },
    ),
    Write(
        "updateRecord(A.final) to RESTRICTED",
        "updateRecord",
        record_input("A.final", confidentiality="RESTRICTED"),
        {
            # Past DRAFT, who may read a record still changes.
            ADMIN: Allowed(
                (updated("medical_records", "A.final", confidentiality="RESTRICTED", version=2),)
            ),
            GLASS_ADMIN: Allowed(
                (updated("medical_records", "A.final", confidentiality="RESTRICTED", version=2),)
            ),
            DR_A: Allowed(
                (updated("medical_records", "A.final", confidentiality="RESTRICTED", version=2),)
            ),
            DR_B: FORBIDDEN,  # visible, but not B's
            DR_C: FORBIDDEN,
            PT_P: FORBIDDEN,
            PT_Q: FORBIDDEN,
            NO_ROLE: FORBIDDEN,
            OTHER_ADMIN: NOT_FOUND,
            UNLINKED_DR: FORBIDDEN,
            UNLINKED_PT: FORBIDDEN,
        },
    ),
    Write(
        "updateRecord(A.final) to RESTRICTED with notes",
        "updateRecord",
        record_input("A.final", confidentiality="RESTRICTED", notes=NEW_NOTES),
        {
            ADMIN: INVALID_TRANSITION,  # the content of a finalized record is fixed
            GLASS_ADMIN: INVALID_TRANSITION,
            DR_A: INVALID_TRANSITION,
            DR_B: FORBIDDEN,
            DR_C: FORBIDDEN,
            PT_P: FORBIDDEN,
            PT_Q: FORBIDDEN,
            NO_ROLE: FORBIDDEN,
            OTHER_ADMIN: NOT_FOUND,
            UNLINKED_DR: FORBIDDEN,
            UNLINKED_PT: FORBIDDEN,
        },
    ),
    Write(
        "updateRecord(B.secret) to NORMAL",
        "updateRecord",
        record_input("B.secret", confidentiality="NORMAL"),
        {
            ADMIN: NOT_FOUND,  # a RESTRICTED record does not exist for admins
            GLASS_ADMIN: FORBIDDEN,  # read under its grant only: no write
            DR_A: FORBIDDEN,  # P's primary provider reads it, but it is B's
            DR_B: Allowed(
                (updated("medical_records", "B.secret", confidentiality="NORMAL", version=2),)
            ),
            DR_C: FORBIDDEN,  # read under its grant only
            PT_P: FORBIDDEN,
            PT_Q: FORBIDDEN,
            NO_ROLE: FORBIDDEN,
            OTHER_ADMIN: NOT_FOUND,
            UNLINKED_DR: FORBIDDEN,
            UNLINKED_PT: FORBIDDEN,
        },
    ),
    Write(
        "changeRecordStatus(A.secret) ENTERED_IN_ERROR",
        "changeRecordStatus",
        lambda s: {
            "input": {
                "id": s.gid("A.secret"),
                "status": "ENTERED_IN_ERROR",
                "expectedVersion": 1,
                "reason": "wrong patient",
            }
        },
        {
            ADMIN: NOT_FOUND,
            GLASS_ADMIN: FORBIDDEN,  # read under its grant only: no write
            DR_A: FORBIDDEN,  # only admins enter a record in error
            DR_B: NOT_FOUND,
            DR_C: FORBIDDEN,
            PT_P: FORBIDDEN,
            PT_Q: FORBIDDEN,
            NO_ROLE: FORBIDDEN,
            OTHER_ADMIN: NOT_FOUND,
            UNLINKED_DR: FORBIDDEN,
            UNLINKED_PT: FORBIDDEN,
        },
    ),
    Write(
        "addDiagnosis(A.draft)",
        "addDiagnosis",
        lambda s: {
            "input": {
                "recordId": s.gid("A.draft"),
                "icd10Code": "I10",
                "description": "Essential hypertension",
                "type": "SECONDARY",
            }
        },
        {
            ADMIN: draft_edit(added("diagnoses", record_id="A.draft", icd10_code="I10")),
            GLASS_ADMIN: draft_edit(added("diagnoses", record_id="A.draft", icd10_code="I10")),
            DR_A: draft_edit(added("diagnoses", record_id="A.draft", icd10_code="I10")),
            DR_B: NOT_FOUND,
            DR_C: NOT_FOUND,
            PT_P: FORBIDDEN,
            PT_Q: FORBIDDEN,
            NO_ROLE: FORBIDDEN,
            OTHER_ADMIN: NOT_FOUND,
            UNLINKED_DR: FORBIDDEN,
            UNLINKED_PT: FORBIDDEN,
        },
    ),
    Write(
        "addDiagnosis(A.final)",
        "addDiagnosis",
        lambda s: {
            "input": {
                "recordId": s.gid("A.final"),
                "icd10Code": "I10",
                "description": "Essential hypertension",
                "type": "SECONDARY",
            }
        },
        {
            ADMIN: INVALID_TRANSITION,
            GLASS_ADMIN: INVALID_TRANSITION,
            DR_A: INVALID_TRANSITION,
            DR_B: FORBIDDEN,
            DR_C: FORBIDDEN,
            PT_P: FORBIDDEN,
            PT_Q: FORBIDDEN,
            NO_ROLE: FORBIDDEN,
            OTHER_ADMIN: NOT_FOUND,
            UNLINKED_DR: FORBIDDEN,
            UNLINKED_PT: FORBIDDEN,
        },
    ),
    Write(
        "removeDiagnosis(A.draft/dx)",
        "removeDiagnosis",
        lambda s: {"id": s.gid("A.draft/dx")},
        {
            ADMIN: draft_edit(Removed("diagnoses", "A.draft/dx")),
            GLASS_ADMIN: draft_edit(Removed("diagnoses", "A.draft/dx")),
            DR_A: draft_edit(Removed("diagnoses", "A.draft/dx")),
            DR_B: NOT_FOUND,
            DR_C: NOT_FOUND,
            PT_P: FORBIDDEN,
            PT_Q: FORBIDDEN,
            NO_ROLE: FORBIDDEN,
            OTHER_ADMIN: NOT_FOUND,
            UNLINKED_DR: FORBIDDEN,
            UNLINKED_PT: FORBIDDEN,
        },
    ),
    Write(
        "removeDiagnosis(A.final/dx)",
        "removeDiagnosis",
        lambda s: {"id": s.gid("A.final/dx")},
        {
            ADMIN: INVALID_TRANSITION,
            GLASS_ADMIN: INVALID_TRANSITION,
            DR_A: INVALID_TRANSITION,
            DR_B: FORBIDDEN,
            DR_C: FORBIDDEN,
            PT_P: FORBIDDEN,
            PT_Q: FORBIDDEN,
            NO_ROLE: FORBIDDEN,
            OTHER_ADMIN: NOT_FOUND,
            UNLINKED_DR: FORBIDDEN,
            UNLINKED_PT: FORBIDDEN,
        },
    ),
    Write(
        "changeRecordStatus(A.draft->FINALIZED)",
        "changeRecordStatus",
        record_input("A.draft", status="FINALIZED"),
        {
            ADMIN: status_change("A.draft", "DRAFT", "FINALIZED", by=ADMIN, reason=None),
            GLASS_ADMIN: status_change(
                "A.draft", "DRAFT", "FINALIZED", by=GLASS_ADMIN, reason=None
            ),
            DR_A: status_change("A.draft", "DRAFT", "FINALIZED", by=DR_A, reason=None),
            DR_B: NOT_FOUND,
            DR_C: NOT_FOUND,
            PT_P: FORBIDDEN,
            PT_Q: FORBIDDEN,
            NO_ROLE: FORBIDDEN,
            OTHER_ADMIN: NOT_FOUND,
            UNLINKED_DR: FORBIDDEN,
            UNLINKED_PT: FORBIDDEN,
        },
    ),
    Write(
        "changeRecordStatus(A.final->AMENDED)",
        "changeRecordStatus",
        record_input("A.final", status="AMENDED", reason="dose corrected"),
        {
            ADMIN: status_change("A.final", "FINALIZED", "AMENDED", ADMIN, "dose corrected"),
            GLASS_ADMIN: status_change(
                "A.final", "FINALIZED", "AMENDED", GLASS_ADMIN, "dose corrected"
            ),
            DR_A: status_change("A.final", "FINALIZED", "AMENDED", DR_A, "dose corrected"),
            DR_B: FORBIDDEN,
            DR_C: FORBIDDEN,
            PT_P: FORBIDDEN,
            PT_Q: FORBIDDEN,
            NO_ROLE: FORBIDDEN,
            OTHER_ADMIN: NOT_FOUND,
            UNLINKED_DR: FORBIDDEN,
            UNLINKED_PT: FORBIDDEN,
        },
    ),
    Write(
        "changeRecordStatus(A.final->ENTERED_IN_ERROR)",
        "changeRecordStatus",
        record_input("A.final", status="ENTERED_IN_ERROR", reason="wrong patient"),
        {
            ADMIN: status_change(
                "A.final", "FINALIZED", "ENTERED_IN_ERROR", ADMIN, "wrong patient"
            ),
            GLASS_ADMIN: status_change(
                "A.final", "FINALIZED", "ENTERED_IN_ERROR", GLASS_ADMIN, "wrong patient"
            ),
            DR_A: FORBIDDEN,  # only admins mark records in error
            DR_B: FORBIDDEN,
            DR_C: FORBIDDEN,
            PT_P: FORBIDDEN,
            PT_Q: FORBIDDEN,
            NO_ROLE: FORBIDDEN,
            OTHER_ADMIN: NOT_FOUND,
            UNLINKED_DR: FORBIDDEN,
            UNLINKED_PT: FORBIDDEN,
        },
    ),
    Write(
        "changeRecordStatus(B.draft->ENTERED_IN_ERROR)",
        "changeRecordStatus",
        record_input("B.draft", status="ENTERED_IN_ERROR", reason="duplicate"),
        {
            ADMIN: status_change("B.draft", "DRAFT", "ENTERED_IN_ERROR", ADMIN, "duplicate"),
            GLASS_ADMIN: status_change(
                "B.draft", "DRAFT", "ENTERED_IN_ERROR", GLASS_ADMIN, "duplicate"
            ),
            DR_A: NOT_FOUND,
            DR_B: FORBIDDEN,
            DR_C: NOT_FOUND,
            PT_P: FORBIDDEN,
            PT_Q: FORBIDDEN,
            NO_ROLE: FORBIDDEN,
            OTHER_ADMIN: NOT_FOUND,
            UNLINKED_DR: FORBIDDEN,
            UNLINKED_PT: FORBIDDEN,
        },
    ),
    Write(
        "requestAttachmentUpload(A.draft)",
        "requestAttachmentUpload",
        upload_request("A.draft"),
        {
            ADMIN: new_attachment(),
            GLASS_ADMIN: new_attachment(),
            DR_A: new_attachment(),
            DR_B: NOT_FOUND,
            DR_C: NOT_FOUND,
            PT_P: FORBIDDEN,
            PT_Q: FORBIDDEN,
            NO_ROLE: FORBIDDEN,
            OTHER_ADMIN: NOT_FOUND,
            UNLINKED_DR: FORBIDDEN,
            UNLINKED_PT: FORBIDDEN,
        },
    ),
    Write(
        "requestAttachmentUpload(A.final)",
        "requestAttachmentUpload",
        upload_request("A.final"),
        {
            ADMIN: INVALID_TRANSITION,
            GLASS_ADMIN: INVALID_TRANSITION,
            DR_A: INVALID_TRANSITION,
            DR_B: FORBIDDEN,
            DR_C: FORBIDDEN,
            PT_P: FORBIDDEN,
            PT_Q: FORBIDDEN,
            NO_ROLE: FORBIDDEN,
            OTHER_ADMIN: NOT_FOUND,
            UNLINKED_DR: FORBIDDEN,
            UNLINKED_PT: FORBIDDEN,
        },
    ),
    Write(
        # Never uploaded: those who may confirm learn there is nothing to check yet.
        "confirmAttachmentUpload(A.final/PENDING_UPLOAD)",
        "confirmAttachmentUpload",
        by_id("A.final/PENDING_UPLOAD"),
        {
            ADMIN: BAD_USER_INPUT,
            GLASS_ADMIN: BAD_USER_INPUT,
            DR_A: BAD_USER_INPUT,
            DR_B: FORBIDDEN,
            DR_C: FORBIDDEN,
            PT_P: FORBIDDEN,
            PT_Q: FORBIDDEN,
            NO_ROLE: FORBIDDEN,
            OTHER_ADMIN: NOT_FOUND,
            UNLINKED_DR: FORBIDDEN,
            UNLINKED_PT: FORBIDDEN,
        },
    ),
    Write(
        # Already decided: confirming again answers with the attachment as it is.
        "confirmAttachmentUpload(B.draft/AVAILABLE)",
        "confirmAttachmentUpload",
        by_id("B.draft/AVAILABLE"),
        {
            ADMIN: unchanged("B.draft/AVAILABLE"),
            GLASS_ADMIN: unchanged("B.draft/AVAILABLE"),
            DR_A: NOT_FOUND,
            DR_B: unchanged("B.draft/AVAILABLE"),
            DR_C: NOT_FOUND,
            PT_P: FORBIDDEN,
            PT_Q: FORBIDDEN,
            NO_ROLE: FORBIDDEN,
            OTHER_ADMIN: NOT_FOUND,
            UNLINKED_DR: FORBIDDEN,
            UNLINKED_PT: FORBIDDEN,
        },
    ),
    Write(
        "deleteAttachment(A.draft/AVAILABLE)",
        "deleteAttachment",
        by_id("A.draft/AVAILABLE"),
        {
            ADMIN: attachment_deleted("A.draft/AVAILABLE"),
            GLASS_ADMIN: attachment_deleted("A.draft/AVAILABLE"),
            DR_A: attachment_deleted("A.draft/AVAILABLE"),
            DR_B: NOT_FOUND,
            DR_C: NOT_FOUND,
            PT_P: FORBIDDEN,
            PT_Q: FORBIDDEN,
            NO_ROLE: FORBIDDEN,
            OTHER_ADMIN: NOT_FOUND,
            UNLINKED_DR: FORBIDDEN,
            UNLINKED_PT: FORBIDDEN,
        },
    ),
    Write(
        "deleteAttachment(A.final/AVAILABLE)",
        "deleteAttachment",
        by_id("A.final/AVAILABLE"),
        {
            ADMIN: attachment_deleted("A.final/AVAILABLE"),
            GLASS_ADMIN: attachment_deleted("A.final/AVAILABLE"),
            DR_A: FORBIDDEN,  # providers delete from their DRAFT records only
            DR_B: FORBIDDEN,
            DR_C: FORBIDDEN,
            PT_P: FORBIDDEN,
            PT_Q: FORBIDDEN,
            NO_ROLE: FORBIDDEN,
            OTHER_ADMIN: NOT_FOUND,
            UNLINKED_DR: FORBIDDEN,
            UNLINKED_PT: FORBIDDEN,
        },
    ),
    Write(
        # A deleted attachment is unreadable, so it cannot be deleted (or confirmed) again.
        "deleteAttachment(A.final/DELETED)",
        "deleteAttachment",
        by_id("A.final/DELETED"),
        {
            ADMIN: NOT_FOUND,
            GLASS_ADMIN: NOT_FOUND,
            DR_A: NOT_FOUND,
            DR_B: NOT_FOUND,
            DR_C: NOT_FOUND,
            PT_P: FORBIDDEN,
            PT_Q: FORBIDDEN,
            NO_ROLE: FORBIDDEN,
            OTHER_ADMIN: NOT_FOUND,
            UNLINKED_DR: FORBIDDEN,
            UNLINKED_PT: FORBIDDEN,
        },
    ),
)


def rest(**outcomes: Outcome) -> dict[Caller, Outcome]:
    """``outcomes`` for the callers named; the callers who never write anything under a grant
    (patients, the role-less and the unlinked: FORBIDDEN; the other tenant: NOT_FOUND) as always."""
    return {
        PT_P: FORBIDDEN,
        PT_Q: FORBIDDEN,
        NO_ROLE: FORBIDDEN,
        OTHER_ADMIN: NOT_FOUND,
        UNLINKED_DR: FORBIDDEN,
        UNLINKED_PT: FORBIDDEN,
    } | {Caller[name]: outcome for name, outcome in outcomes.items()}


# Writes to P's RESTRICTED records, which GLASS_ADMIN and DR_C read only under their grants: the
# grant lets them read, never write (FORBIDDEN, since they see the record), and B's RESTRICTED
# draft stays invisible to them (NOT_FOUND), as it is to P's primary provider.
WRITES += (
    Write(
        "changeRecordStatus(B.secret->AMENDED)",
        "changeRecordStatus",
        record_input("B.secret", status="AMENDED", reason="addendum"),
        rest(
            ADMIN=NOT_FOUND,
            GLASS_ADMIN=FORBIDDEN,
            DR_A=FORBIDDEN,
            DR_B=status_change("B.secret", "FINALIZED", "AMENDED", DR_B, "addendum"),
            DR_C=FORBIDDEN,
        ),
    ),
    Write(
        "addDiagnosis(B.secret)",
        "addDiagnosis",
        lambda s: {
            "input": {
                "recordId": s.gid("B.secret"),
                "icd10Code": "I10",
                "description": "Essential hypertension",
                "type": "SECONDARY",
            }
        },
        rest(
            ADMIN=NOT_FOUND,
            GLASS_ADMIN=FORBIDDEN,
            DR_A=FORBIDDEN,
            DR_B=INVALID_TRANSITION,
            DR_C=FORBIDDEN,
        ),
    ),
    Write(
        "addDiagnosis(B.secret-draft)",
        "addDiagnosis",
        lambda s: {
            "input": {
                "recordId": s.gid("B.secret-draft"),
                "icd10Code": "I10",
                "description": "Essential hypertension",
                "type": "SECONDARY",
            }
        },
        rest(
            ADMIN=NOT_FOUND,
            GLASS_ADMIN=NOT_FOUND,
            DR_A=NOT_FOUND,
            DR_B=Allowed(
                (
                    updated("medical_records", "B.secret-draft", version=2),
                    added("diagnoses", record_id="B.secret-draft", icd10_code="I10"),
                )
            ),
            DR_C=NOT_FOUND,
        ),
    ),
    Write(
        "removeDiagnosis(B.secret/dx)",
        "removeDiagnosis",
        by_id("B.secret/dx"),
        rest(
            ADMIN=NOT_FOUND,
            GLASS_ADMIN=FORBIDDEN,
            DR_A=FORBIDDEN,
            DR_B=INVALID_TRANSITION,
            DR_C=FORBIDDEN,
        ),
    ),
    Write(
        "requestAttachmentUpload(B.secret)",
        "requestAttachmentUpload",
        upload_request("B.secret"),
        rest(
            ADMIN=NOT_FOUND,
            GLASS_ADMIN=FORBIDDEN,
            DR_A=FORBIDDEN,
            DR_B=INVALID_TRANSITION,
            DR_C=FORBIDDEN,
        ),
    ),
    Write(
        "confirmAttachmentUpload(B.secret/AVAILABLE)",
        "confirmAttachmentUpload",
        by_id("B.secret/AVAILABLE"),
        rest(
            ADMIN=NOT_FOUND,
            GLASS_ADMIN=FORBIDDEN,
            DR_A=FORBIDDEN,
            DR_B=unchanged("B.secret/AVAILABLE"),
            DR_C=FORBIDDEN,
        ),
    ),
    Write(
        # An admin deletes attachments of finalized records (A.final's), not under a grant.
        "deleteAttachment(B.secret/AVAILABLE)",
        "deleteAttachment",
        by_id("B.secret/AVAILABLE"),
        rest(
            ADMIN=NOT_FOUND,
            GLASS_ADMIN=FORBIDDEN,
            DR_A=FORBIDDEN,
            DR_B=FORBIDDEN,  # providers delete from their DRAFT records only
            DR_C=FORBIDDEN,
        ),
    ),
)


GLASS_REASON = "patient unconscious, allergies unknown"


def new_grant(by: Caller, provider: str | None = None) -> Allowed:
    """A grant for P held by ``by`` (as its provider row, if any), neither revoked nor ended."""
    return Allowed(
        (
            added(
                "break_glass_grants",
                patient_id="P",
                subject=LOGINS[by].subject,
                provider_id=provider,
                reason=GLASS_REASON,
                revoked_at=None,
                revoked_by=None,
            ),
        )
    )


def revoked(label: str, by: Caller) -> Allowed:
    return Allowed(
        (updated("break_glass_grants", label, revoked_at=CHANGED, revoked_by=LOGINS[by].subject),)
    )


# Providers and admins break the glass (each for themselves); admins revoke any grant of the
# tenant, a provider the grants it holds (the only ones it reads); a grant that already ended is
# returned as it is.
WRITES += (
    Write(
        "breakGlass(P)",
        "breakGlass",
        lambda s: {
            "input": {"patientId": s.gid("P"), "reason": GLASS_REASON, "durationMinutes": 30}
        },
        rest(
            ADMIN=new_grant(ADMIN),
            GLASS_ADMIN=new_grant(GLASS_ADMIN),
            DR_A=new_grant(DR_A, "A"),
            DR_B=new_grant(DR_B, "B"),
            DR_C=new_grant(DR_C, "C"),
        ),
    ),
    Write(
        "revokeBreakGlass(G.c)",
        "revokeBreakGlass",
        by_id("G.c"),
        rest(
            ADMIN=revoked("G.c", ADMIN),
            GLASS_ADMIN=revoked("G.c", GLASS_ADMIN),
            DR_A=NOT_FOUND,
            DR_B=NOT_FOUND,
            DR_C=revoked("G.c", DR_C),
        ),
    ),
    Write(
        "revokeBreakGlass(G.admin)",
        "revokeBreakGlass",
        by_id("G.admin"),
        rest(
            ADMIN=revoked("G.admin", ADMIN),
            GLASS_ADMIN=revoked("G.admin", GLASS_ADMIN),
            DR_A=NOT_FOUND,
            DR_B=NOT_FOUND,
            DR_C=NOT_FOUND,
        ),
    ),
    Write(
        "revokeBreakGlass(G.b-expired)",
        "revokeBreakGlass",
        by_id("G.b-expired"),
        rest(
            ADMIN=unchanged("G.b-expired"),
            GLASS_ADMIN=unchanged("G.b-expired"),
            DR_A=NOT_FOUND,
            DR_B=unchanged("G.b-expired"),
            DR_C=NOT_FOUND,
        ),
    ),
    Write(
        # Its revoker and time stay the first revocation's.
        "revokeBreakGlass(G.b-revoked)",
        "revokeBreakGlass",
        by_id("G.b-revoked"),
        rest(
            ADMIN=unchanged("G.b-revoked"),
            GLASS_ADMIN=unchanged("G.b-revoked"),
            DR_A=NOT_FOUND,
            DR_B=unchanged("G.b-revoked"),
            DR_C=NOT_FOUND,
        ),
    ),
)


def resolve(
    column: str, value: object, scenario: Scenario, changes: dict[str, TableDiff]
) -> object:
    """Labels in *_id columns become the scenario's ids; New(table) the row just added there."""
    if isinstance(value, New):
        new_rows = changes[value.table].added
        assert len(new_rows) == 1, new_rows
        return new_rows[0]["id"]
    if column.endswith("_id") and isinstance(value, str):
        return scenario.ids[value]
    return value


def check_effect(
    outcome: Allowed, before: Rows, after: Rows, scenario: Scenario
) -> dict[str, TableDiff]:
    changes = diff(before, after)
    assert set(changes) == {change.table for change in outcome.changes}, changes
    tenants = {"own": scenario.tenant, "other": scenario.other_tenant}
    for table, change in changes.items():
        expected_added = [c for c in outcome.changes if isinstance(c, Added) and c.table == table]
        assert len(change.added) == len(expected_added), change.added
        for expected in expected_added:
            wanted = {
                column: resolve(column, value, scenario, changes)
                for column, value in expected.values.items()
            } | {"tenant_id": tenants[expected.tenant]}
            matching = [
                row
                for row in change.added
                if all(row[column] == value for column, value in wanted.items())
            ]
            assert len(matching) == 1, (wanted, change.added)

        assert change.removed == {
            scenario.ids[c.label]
            for c in outcome.changes
            if isinstance(c, Removed) and c.table == table
        }

        expected_updates: dict[object, Updated] = {
            scenario.ids[c.label]: c
            for c in outcome.changes
            if isinstance(c, Updated) and c.table == table
        }
        assert set(change.updated) == set(expected_updates), change.updated
        for key, columns in change.updated.items():
            expected_update = expected_updates[key]
            assert set(columns) <= {*expected_update.values, "updated_at"}, columns
            for column, value in expected_update.values.items():
                assert column in columns, f"{table}.{column} did not change"
                if value is not CHANGED:
                    assert columns[column][1] == resolve(column, value, scenario, changes)
    return changes


@pytest.mark.parametrize(
    ("caller", "write"),
    [
        pytest.param(caller, write, id=f"{write.name}-{caller}")
        for write in WRITES
        for caller in Caller
    ],
)
async def test_write(
    api: Api,
    scenario: Scenario,
    sessionmaker: async_sessionmaker[AsyncSession],
    caller: Caller,
    write: Write,
) -> None:
    before = await snapshot(sessionmaker, scenario)
    body = await api.query(
        write.document, write.variables(scenario), token=token(api, scenario, caller)
    )
    after = await snapshot(sessionmaker, scenario)
    outcome = write.outcomes[caller]
    if isinstance(outcome, Refused):
        assert error_codes(body) == [outcome.code], body
        assert body["data"] is None
        assert after == before, diff(before, after)
        return
    assert "errors" not in body, body["errors"]
    changes = check_effect(outcome, before, after, scenario)
    # The payload is the row the write added or changed (or, when nothing changed, that row).
    _, payload, table = PAYLOADS[write.mutation]
    _, returned = IDS.decode_id(body["data"][write.mutation][payload]["id"])
    if outcome.unchanged is not None:
        assert returned == scenario.ids[outcome.unchanged]
        return
    touched = {row["id"] for row in changes[table].added} | set(changes[table].updated)
    assert returned in touched


# --- the tables cover everything ----------------------------------------------------------------


def test_matrix_covers_every_field_and_caller() -> None:
    schema = build_schema(SDL.read_text())
    assert schema.query_type is not None
    assert schema.mutation_type is not None
    roots = {r.name.split(" (")[0] for r in READS if "." not in r.name}
    assert roots == set(schema.query_type.fields)
    assert {w.mutation for w in WRITES} == set(schema.mutation_type.fields)
    assert {
        "Patient.records",
        "Provider.patients",
        "Provider.records",
        "MedicalRecord.diagnoses",
        "MedicalRecord.attachments",
        "MedicalRecord.statusHistory",
        "BreakGlassGrant.active, holder and patient by node",
        "auditEvents",
        "Patient.accessLog by id",
        "Patient.accessLog in patients",
        "Patient.accessLog through a record",
    } <= {r.name for r in READS}
    for write in WRITES:
        assert set(write.outcomes) == set(Caller), write.name
        outcomes = write.outcomes.values()
        assert all(o.unchanged is None for o in outcomes if isinstance(o, Allowed) and o.changes)
    for table in (SEES, ME, AUDIT_TRAIL):
        assert set(table) == set(Caller)
