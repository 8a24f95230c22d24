"""``Patient.accessLog``: the audit trail as its patient may read it (the contract's "Access log").

Who reads it (admins and the patient themself; null for everyone else) is also in the role
matrix; these tests check what it says: the action, the actor as a person reads it, the records
of this patient only, the break-glass grant, the order, the pages, and that reading it is itself
audited.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.domain.opaque_ids import NodeType, OpaqueIds
from models.enums import AttachmentStatus, Confidentiality, RecordStatus
from tests.api_client import count_statements, error_codes

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from tests.api_client import Api
    from tests.factories import Factory

IDS = OpaqueIds("medrec-opaque-id-v1")

LOG = """query Log($id: ID!, $first: Int, $after: String) {
  patient(id: $id) { accessLog(first: $first, after: $after) {
    edges { cursor node { occurredAt action actor actorRole recordIds
      breakGlassGrant { id reason } } }
    pageInfo { hasNextPage hasPreviousPage endCursor } } } }"""


def gid(node_type: NodeType, row: dict[str, Any]) -> str:
    return IDS.encode_id(node_type, row["id"])


async def _log(api: Api, patient: dict[str, Any], token: str, **page: Any) -> dict[str, Any]:
    data = await api.data(LOG, {"id": gid(NodeType.PATIENT, patient), **page}, token=token)
    log: dict[str, Any] = data["patient"]["accessLog"]
    return log


def _entries(log: dict[str, Any]) -> list[dict[str, Any]]:
    return [edge["node"] for edge in log["edges"]]


async def test_each_access_by_action_and_actor_newest_first_with_this_patients_records(
    api: Api, factory: Factory
) -> None:
    doctor = await factory.provider(cognito_sub="dr-log", given_name="Ada", family_name="Byron")
    patient = await factory.patient(primary_provider_id=doctor["id"], cognito_sub="pt-log")
    other = await factory.patient(primary_provider_id=doctor["id"])
    record = await factory.record(patient, doctor, status=RecordStatus.FINALIZED)
    others_record = await factory.record(other, doctor, status=RecordStatus.FINALIZED)
    file = await factory.attachment(record, status=AttachmentStatus.AVAILABLE)
    doctor_token = api.token(subject="dr-log", groups=("provider",))
    admin_token = api.token(subject="admin-log", groups=("admin",))
    patient_token = api.token(subject="pt-log", groups=("patient",))

    # A read of both patients' records: the log of `patient` lists its record only.
    await api.data("{ records(first: 10) { edges { node { id } } } }", token=doctor_token)
    await api.data(
        "mutation($input: UpdatePatientInput!) { updatePatient(input: $input) { patient { id } } }",
        {
            "input": {
                "id": gid(NodeType.PATIENT, patient),
                "expectedVersion": 1,
                "phone": "+1 555 0100",
            }
        },
        token=admin_token,
    )
    await api.data(
        "query($id: ID!) { node(id: $id) { ... on Attachment { downloadUrl } } }",
        {"id": gid(NodeType.ATTACHMENT, file)},
        token=patient_token,
    )

    log = await _log(api, patient, admin_token)
    entries = _entries(log)
    assert [(e["action"], e["actor"], e["actorRole"]) for e in entries] == [
        ("DOWNLOADED_FILE", "the patient", "PATIENT"),
        ("CHANGED", "clinic administrator", "ADMIN"),
        ("VIEWED", "Ada Byron", "PROVIDER"),
    ]
    assert entries[0]["recordIds"] == [gid(NodeType.MEDICAL_RECORD, record)]
    assert entries[1]["recordIds"] == []
    assert entries[2]["recordIds"] == [gid(NodeType.MEDICAL_RECORD, record)]
    assert gid(NodeType.MEDICAL_RECORD, others_record) not in str(entries)
    assert [e["occurredAt"] for e in entries] == sorted(
        (e["occurredAt"] for e in entries), reverse=True
    )
    assert all(e["breakGlassGrant"] is None for e in entries)
    # No token subject anywhere in it.
    for subject in ("dr-log", "admin-log", "pt-log"):
        assert subject not in str(log)

    # The other patient's log has the records read, not the change or the download.
    other_log = _entries(await _log(api, other, admin_token))
    assert [(e["action"], e["recordIds"]) for e in other_log] == [
        ("VIEWED", [gid(NodeType.MEDICAL_RECORD, others_record)])
    ]


async def test_reading_the_log_is_audited_and_the_patient_reads_its_own(
    api: Api, factory: Factory
) -> None:
    patient = await factory.patient(cognito_sub="pt-self")
    patient_token = api.token(subject="pt-self", groups=("patient",))
    first = _entries(await _log(api, patient, patient_token))
    assert first == []
    second = _entries(await _log(api, patient, patient_token))
    assert [(e["action"], e["actor"]) for e in second] == [("VIEWED", "the patient")]


async def test_only_admins_and_the_patient_read_it_others_get_null(
    api: Api, factory: Factory
) -> None:
    doctor = await factory.provider(cognito_sub="dr-null")
    patient = await factory.patient(primary_provider_id=doctor["id"], cognito_sub="pt-a")
    await factory.patient(cognito_sub="pt-b")
    query = "query($id: ID!) { patient(id: $id) { id accessLog { edges { node { action } } } } }"
    variables = {"id": gid(NodeType.PATIENT, patient)}
    as_doctor = await api.data(
        query, variables, token=api.token(subject="dr-null", groups=("provider",))
    )
    assert as_doctor["patient"]["id"] == variables["id"]
    assert as_doctor["patient"]["accessLog"] is None
    as_admin = await api.data(query, variables, token=api.token(subject="adm", groups=("admin",)))
    assert as_admin["patient"]["accessLog"] is not None
    # Another patient does not read the patient at all; another tenant's admin neither.
    as_other = await api.data(
        query, variables, token=api.token(subject="pt-b", groups=("patient",))
    )
    assert as_other["patient"] is None
    foreign = api.token(subject="adm2", groups=("admin",), tenant_id=f"{api.tenant_id}-x")
    assert (await api.data(query, variables, token=foreign))["patient"] is None


async def test_access_under_a_break_glass_grant_names_the_grant(api: Api, factory: Factory) -> None:
    author = await factory.provider(cognito_sub="dr-author")
    await factory.provider(cognito_sub="dr-er", given_name="Erin", family_name="Room")
    patient = await factory.patient(primary_provider_id=author["id"], cognito_sub="pt-glass")
    secret = await factory.record(
        patient, author, status=RecordStatus.FINALIZED, confidentiality=Confidentiality.RESTRICTED
    )
    er = api.token(subject="dr-er", groups=("provider",))
    grant = (
        await api.data(
            "mutation($input: BreakGlassInput!) { breakGlass(input: $input) { grant { id } } }",
            {"input": {"patientId": gid(NodeType.PATIENT, patient), "reason": "unconscious, ER"}},
            token=er,
        )
    )["breakGlass"]["grant"]
    await api.data(
        "query($id: ID!) { record(id: $id) { id } }",
        {"id": gid(NodeType.MEDICAL_RECORD, secret)},
        token=er,
    )

    as_patient = _entries(
        await _log(api, patient, api.token(subject="pt-glass", groups=("patient",)))
    )
    assert [(e["action"], e["actor"]) for e in as_patient] == [
        ("VIEWED", "Erin Room"),
        ("BREAK_GLASS", "Erin Room"),
    ]
    assert as_patient[0]["recordIds"] == [gid(NodeType.MEDICAL_RECORD, secret)]
    # A grant shows its holder's token subject: the patient's log names the holder instead.
    assert [e["breakGlassGrant"] for e in as_patient] == [None, None]
    # The admin's reading of the same log (newest first: the patient's read of it is on top).
    as_admin = _entries(await _log(api, patient, api.token(subject="adm", groups=("admin",))))
    assert [e["breakGlassGrant"] for e in as_admin[-2:]] == [
        {"id": grant["id"], "reason": "unconscious, ER"}
    ] * 2


async def test_pages_follow_the_cursor_and_another_lists_cursor_is_refused(
    api: Api, factory: Factory
) -> None:
    patient = await factory.patient()
    admin = api.token(subject="adm-pages", groups=("admin",))
    for _ in range(5):
        await api.data(
            "query($id: ID!) { patient(id: $id) { id } }", {"id": gid(NodeType.PATIENT, patient)}
        )
    first = await _log(api, patient, admin, first=2)
    assert len(first["edges"]) == 2
    assert first["pageInfo"]["hasNextPage"] is True
    assert first["pageInfo"]["hasPreviousPage"] is False
    seen = [edge["cursor"] for edge in first["edges"]]
    after = first["pageInfo"]["endCursor"]
    while after is not None:
        page = await _log(api, patient, admin, first=2, after=after)
        assert page["pageInfo"]["hasPreviousPage"] is True
        seen += [edge["cursor"] for edge in page["edges"]]
        after = page["pageInfo"]["endCursor"] if page["pageInfo"]["hasNextPage"] else None
    # Five reads before the first page; the log reads themselves come after it.
    assert len(seen) == len(set(seen)) == 5

    audit_cursor = (
        await api.data("{ auditEvents(first: 1) { pageInfo { endCursor } } }", token=admin)
    )["auditEvents"]["pageInfo"]["endCursor"]
    body = await api.query(
        LOG, {"id": gid(NodeType.PATIENT, patient), "after": audit_cursor}, token=admin
    )
    assert error_codes(body) == ["BAD_USER_INPUT"]


async def test_the_logs_of_a_page_of_patients_are_one_statement(
    api: Api, factory: Factory, app: Starlette
) -> None:
    for _ in range(6):
        patient = await factory.patient()
        await api.data(
            "query($id: ID!) { patient(id: $id) { id } }", {"id": gid(NodeType.PATIENT, patient)}
        )
    query = """query($n: Int!) { patients(first: $n) { edges { node { id
      accessLog(first: 3) { edges { node { action } } } } } } }"""
    counts = []
    for n in (2, 6):
        async with count_statements(app.state.services.engine) as log:
            data = await api.data(query, {"n": n})
        assert all(
            len(edge["node"]["accessLog"]["edges"]) >= 1 for edge in data["patients"]["edges"]
        )
        counts.append(log.count)
    assert counts[0] == counts[1]


async def test_one_patients_log_is_a_plain_range_and_reads_as_in_a_batch(
    api: Api, factory: Factory, app: Starlette
) -> None:
    patients = [await factory.patient() for _ in range(3)]
    for patient in patients:
        for _ in range(2):
            await api.data(
                "query($id: ID!) { patient(id: $id) { id } }",
                {"id": gid(NodeType.PATIENT, patient)},
            )
    batch_query = """{ patients(first: 3) { edges { node { id
      accessLog(first: 5) { edges { cursor node { occurredAt action actor } } } } } } }"""
    async with count_statements(app.state.services.engine) as batch_log:
        batch = await api.data(batch_query)
    [batched_read] = [s for s in batch_log.statements if "FROM audit_event_patients" in s]
    assert "unnest(" in batched_read

    # A batch of one: the same page, read without an array of parents (see RowsPerParent). Its
    # newest entry is the batch read above, which named every patient of the page.
    for edge in batch["patients"]["edges"]:
        async with count_statements(app.state.services.engine) as single_log:
            data = await api.data(LOG, {"id": edge["node"]["id"], "first": 5})
        [single_read] = [s for s in single_log.statements if "FROM audit_event_patients" in s]
        assert "unnest(" not in single_read
        batched_edges = edge["node"]["accessLog"]["edges"]
        single_edges = data["patient"]["accessLog"]["edges"]
        assert len(batched_edges) == 2
        assert [(e["cursor"], e["node"]["action"]) for e in single_edges[1:]] == [
            (e["cursor"], e["node"]["action"]) for e in batched_edges
        ]
