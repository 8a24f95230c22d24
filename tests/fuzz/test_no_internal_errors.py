"""Whatever a caller sends, the API answers without an INTERNAL_SERVER_ERROR or a 5xx, and every
error carries one of the contract's codes: generated operations and variable values, every role."""

from __future__ import annotations

import datetime as dt
from typing import Any

import graphql
from hypothesis import given
from hypothesis import strategies as st
from hypothesis_graphql import from_schema, nodes

from app.data.pagination import KeysetOrder
from app.data.repositories import audit_events, patients, providers, records
from app.domain.opaque_ids import NodeType, OpaqueIds
from tests.api_client import error_codes
from tests.fuzz.conftest import ROLES, Caller, Seeded, fuzz_settings

ORDERS: tuple[KeysetOrder, ...] = (
    records.RECORD_ORDER,
    audit_events.AUDIT_ORDER,
    patients.PATIENT_ORDER,
    providers.PROVIDER_ORDER,
)
# Instants at and past the ends of what PostgreSQL and the driver take, with offsets.
EXTREME_TIMES = (
    "0001-01-01T00:00:00+01:00",
    "0001-01-01T00:00:00+00:00",
    "0001-01-01T00:00:00-14:00",
    "9999-12-31T23:59:59-14:00",
    "9999-12-31T23:59:59+00:00",
    "9999-12-31T23:59:59.999999+14:00",
    "1900-01-01T00:00:00+00:00",
    "2026-11-23T10:15:00",
    "2026-02-30T10:15:00+00:00",
)
EXTREME_DATES = ("0001-01-01", "9999-12-31", "1899-12-31", "1984-02-29", "2026-13-01")


def _text() -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=30),
        st.text(alphabet=st.characters(codec="utf-8"), min_size=200, max_size=30_000),
        st.sampled_from(["", " ", "\x00", "a\x00b", "\ud800", "a\udfffb", "\u202e", "é" * 101]),
    )


def _times() -> st.SearchStrategy[str]:
    aware = st.datetimes(
        timezones=st.builds(
            dt.timezone,
            st.timedeltas(min_value=dt.timedelta(hours=-23), max_value=dt.timedelta(hours=23)),
        )
    )
    return st.one_of(st.sampled_from(EXTREME_TIMES), aware.map(dt.datetime.isoformat), _text())


def _dates() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(EXTREME_DATES), st.dates().map(dt.date.isoformat), _text())


def _cursor_values() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(EXTREME_TIMES),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.uuids().map(str),
        st.floats(allow_nan=False),
        _text(),
        st.none(),
    )


def _forged_cursors(ids: OpaqueIds) -> st.SearchStrategy[str]:
    """Cursors signed with the server's (default) key, carrying what a forger likes."""
    kinds = st.sampled_from([order.kind for order in ORDERS] + ["other"])
    return st.builds(
        lambda kind, values: ids.encode_cursor(kind, tuple(values)),
        kinds,
        st.lists(_cursor_values(), max_size=4),
    )


def _ids(ids: OpaqueIds, seeded: Seeded) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(seeded.all_ids()),
        st.builds(ids.encode_id, st.sampled_from(list(NodeType)), st.uuids()),
        _text(),
    )


def _ints() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.integers(min_value=-(2**31), max_value=2**31 - 1),
        st.sampled_from([0, -1, 2**31, -(2**31) - 1, 2**63, -(2**64), 10**30]),
        st.floats(allow_nan=False, allow_infinity=False),
        st.just(1.5),
    )


def _any_json(ids: OpaqueIds, seeded: Seeded) -> st.SearchStrategy[Any]:
    leaves = st.one_of(
        st.none(), st.booleans(), _ints(), _text(), _times(), _dates(), _ids(ids, seeded)
    )
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=20), inner, max_size=4)
        ),
        max_leaves=8,
    )


# Operations with a variable for every input a caller can give, and the values each may take.
OPERATIONS = {
    "records": """query($first: Int, $after: String, $filter: RecordFilter) {
      records(first: $first, after: $after, filter: $filter) {
        totalCount edges { cursor node { id visitDate status } } } }""",
    "patientRecords": """query($id: ID!, $first: Int, $after: String, $filter: RecordFilter) {
      patient(id: $id) { records(first: $first, after: $after, filter: $filter) {
        totalCount edges { node { id diagnoses { id } } } } } }""",
    "patients": """query($first: Int, $after: String, $filter: PatientFilter) {
      patients(first: $first, after: $after, filter: $filter) {
        totalCount edges { cursor node { id givenName } } } }""",
    "providers": """query($first: Int, $after: String) {
      providers(first: $first, after: $after) { edges { cursor node { id } } } }""",
    "auditEvents": """query($first: Int, $after: String, $filter: AuditEventFilter) {
      auditEvents(first: $first, after: $after, filter: $filter) {
        edges { cursor node { id occurredAt } } } }""",
    "node": """query($id: ID!) { node(id: $id) { id } }""",
    "createPatient": """mutation($input: CreatePatientInput!) {
      createPatient(input: $input) { patient { id } } }""",
    "updatePatient": """mutation($input: UpdatePatientInput!) {
      updatePatient(input: $input) { patient { id } } }""",
    "createRecord": """mutation($input: CreateRecordInput!) {
      createRecord(input: $input) { record { id } } }""",
    "updateRecord": """mutation($input: UpdateRecordInput!) {
      updateRecord(input: $input) { record { id } } }""",
    "changeRecordStatus": """mutation($input: ChangeRecordStatusInput!) {
      changeRecordStatus(input: $input) { record { id status } } }""",
    "addDiagnosis": """mutation($input: AddDiagnosisInput!) {
      addDiagnosis(input: $input) { diagnosis { id } } }""",
    "requestAttachmentUpload": """mutation($input: RequestAttachmentUploadInput!) {
      requestAttachmentUpload(input: $input) { attachment { id } } }""",
    "createProvider": """mutation($input: CreateProviderInput!) {
      createProvider(input: $input) { provider { id } } }""",
}


def _variables(ids: OpaqueIds, seeded: Seeded) -> st.SearchStrategy[tuple[str, Any]]:
    """Variables of any of the OPERATIONS: mostly well-typed, with extreme values, sometimes
    anything at all in any place."""
    any_json = _any_json(ids, seeded)
    an_id = _ids(ids, seeded)
    text = _text()

    def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.one_of(strategy, st.none(), any_json)

    def inputs(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
        return st.fixed_dictionaries({}, optional={k: maybe(v) for k, v in fields.items()})

    enums = st.sampled_from(
        ["DRAFT", "FINALIZED", "AMENDED", "ENTERED_IN_ERROR", "CONSULTATION", "LAB", "x"]
    )
    after = st.one_of(_forged_cursors(ids), text)
    record_filter = inputs(
        status=st.lists(enums, max_size=3),
        recordType=st.lists(enums, max_size=3),
        visitedAfter=_times(),
        visitedBefore=_times(),
    )
    common = {"first": maybe(_ints()), "after": maybe(after)}
    by_operation: dict[str, st.SearchStrategy[Any]] = {
        "records": st.fixed_dictionaries({}, optional={**common, "filter": maybe(record_filter)}),
        "patientRecords": st.fixed_dictionaries(
            {"id": an_id}, optional={**common, "filter": maybe(record_filter)}
        ),
        "patients": st.fixed_dictionaries(
            {},
            optional={**common, "filter": maybe(inputs(search=text, primaryProviderId=an_id))},
        ),
        "providers": st.fixed_dictionaries({}, optional=common),
        "auditEvents": st.fixed_dictionaries(
            {},
            optional={
                **common,
                "filter": maybe(
                    inputs(patientId=an_id, occurredAfter=_times(), occurredBefore=_times())
                ),
            },
        ),
        "node": st.fixed_dictionaries({"id": an_id}),
    }
    mutation_input = inputs(
        id=an_id,
        patientId=an_id,
        providerId=an_id,
        recordId=an_id,
        primaryProviderId=an_id,
        expectedVersion=_ints(),
        mrn=text,
        npi=st.one_of(text, st.just("1234567893")),
        givenName=text,
        familyName=text,
        email=text,
        phone=text,
        cognitoSub=text,
        specialty=text,
        dateOfBirth=_dates(),
        sex=st.sampled_from(["FEMALE", "MALE", "OTHER", "UNKNOWN"]),
        recordType=enums,
        status=enums,
        visitDate=_times(),
        followUpDate=_dates(),
        chiefComplaint=text,
        notes=text,
        reason=text,
        vitalSigns=st.dictionaries(st.sampled_from(["heartRate", "weightKg", "x"]), _ints()),
        prescriptions=st.lists(any_json, max_size=3),
        labResults=st.lists(any_json, max_size=3),
        icd10Code=text,
        description=text,
        type=st.sampled_from(["PRIMARY", "SECONDARY", "x"]),
        fileName=text,
        contentType=text,
        sizeBytes=_ints(),
        checksumSha256=text,
    )
    for name in OPERATIONS:
        if name not in by_operation:
            by_operation[name] = st.fixed_dictionaries({"input": maybe(mutation_input)})
    return st.one_of(*(st.tuples(st.just(name), by_operation[name]) for name in OPERATIONS))


def _no_internal_errors(body: dict[str, Any]) -> None:
    assert "INTERNAL_SERVER_ERROR" not in error_codes(body), body


@given(data=st.data())
@fuzz_settings(default_examples=300)
async def test_generated_variable_values_never_fail_internally(
    caller: Caller, seeded: Seeded, ids: OpaqueIds, data: st.DataObject
) -> None:
    name, variables = data.draw(_variables(ids, seeded), label="variables")
    assert isinstance(variables, dict)
    role = data.draw(st.sampled_from(ROLES), label="role")
    body = await caller.post(OPERATIONS[name], variables, role=role)
    _no_internal_errors(body)


def _scalars(ids: OpaqueIds, seeded: Seeded) -> dict[str, st.SearchStrategy[graphql.ValueNode]]:
    return {
        "DateTime": _times().map(nodes.String),
        "Date": _dates().map(nodes.String),
        "ID": _ids(ids, seeded).map(nodes.String),
        "JSON": st.just(graphql.NullValueNode()),
    }


@given(data=st.data())
@fuzz_settings(default_examples=300)
async def test_generated_operations_never_fail_internally(
    caller: Caller,
    seeded: Seeded,
    ids: OpaqueIds,
    graphql_schema: graphql.GraphQLSchema,
    data: st.DataObject,
) -> None:
    document = data.draw(
        from_schema(graphql_schema, custom_scalars=_scalars(ids, seeded)), label="document"
    )
    role = data.draw(st.sampled_from(ROLES), label="role")
    body = await caller.post(document, role=role)
    _no_internal_errors(body)
