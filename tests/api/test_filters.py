"""PatientFilter and RecordFilter on the root lists and on the nested connections."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from app.domain.opaque_ids import NodeType, OpaqueIds
from app.settings import Settings
from models.enums import RecordStatus, RecordType
from tests.api_client import Api, error_codes
from tests.factories import BASE_TIME, Factory

Values = dict[str, Any]

PATIENTS = """query($filter: PatientFilter) {
  patients(first: 100, filter: $filter) { totalCount edges { node { givenName } } } }"""

RECORDS = """query($filter: RecordFilter) {
  records(first: 100, filter: $filter) { totalCount edges { node { chiefComplaint } } } }"""

PATIENT_RECORDS = """query($id: ID!, $filter: RecordFilter) { patient(id: $id) {
  records(first: 100, filter: $filter) { totalCount edges { node { chiefComplaint } } } } }"""

PROVIDER_RECORDS = """query($id: ID!, $filter: RecordFilter) { provider(id: $id) {
  records(first: 100, filter: $filter) { totalCount edges { node { chiefComplaint } } } } }"""

PROVIDER_PATIENTS = """query($id: ID!, $filter: PatientFilter) { provider(id: $id) {
  patients(first: 100, filter: $filter) { totalCount edges { node { givenName } } } } }"""


@pytest.fixture
def ids(settings: Settings) -> OpaqueIds:
    return OpaqueIds(settings.opaque_id_key)


def at(minutes: int) -> datetime:
    return BASE_TIME + timedelta(minutes=minutes)


def given_names(connection: Values) -> list[str]:
    """The given names on a page, after checking totalCount agrees with the (single) page."""
    names = [edge["node"]["givenName"] for edge in connection["edges"]]
    assert connection["totalCount"] == len(names)
    return names


def complaints(connection: Values) -> list[str]:
    labels = [edge["node"]["chiefComplaint"] for edge in connection["edges"]]
    assert connection["totalCount"] == len(labels)
    return labels


async def patient_search(api: Api, filter_: Values | None) -> list[str]:
    data = await api.data(PATIENTS, {"filter": filter_})
    return given_names(data["patients"])


# --- PatientFilter.search ------------------------------------------------------------------------


async def _people(factory: Factory) -> None:
    """Listed newest first: Alice, Bob, Carol, Malik."""
    await factory.patient(
        given_name="Alice", family_name="Walker", mrn="MRN-0001", created_at=at(4)
    )
    await factory.patient(given_name="Bob", family_name="Alvarez", mrn="MRN-0002", created_at=at(3))
    await factory.patient(given_name="Carol", family_name="Smith", mrn="XK-4471", created_at=at(2))
    await factory.patient(given_name="Malik", family_name="Ng", mrn="MRN-0004", created_at=at(1))


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("Alic", ["Alice"]),  # given name
        ("Walk", ["Alice"]),  # family name
        ("XK-44", ["Carol"]),  # MRN
        ("Al", ["Alice", "Bob"]),  # given name of one, family name of another
        ("Alice", ["Alice"]),  # the whole value is a prefix of itself
        ("MRN-000", ["Alice", "Bob", "Malik"]),
        ("Zed", []),
    ],
)
async def test_search_matches_a_prefix_of_given_name_family_name_or_mrn(
    api: Api, factory: Factory, search: str, expected: list[str]
) -> None:
    await _people(factory)
    assert await patient_search(api, {"search": search}) == expected


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("alice", ["Alice"]),
        ("ALICE", ["Alice"]),
        ("aLiC", ["Alice"]),
        ("wALKER", ["Alice"]),
        ("xk-4471", ["Carol"]),
        ("mrn-0002", ["Bob"]),
    ],
)
async def test_search_is_case_insensitive(
    api: Api, factory: Factory, search: str, expected: list[str]
) -> None:
    await _people(factory)
    assert await patient_search(api, {"search": search}) == expected


async def test_search_is_case_insensitive_beyond_ascii(api: Api, factory: Factory) -> None:
    await factory.patient(given_name="Åsa", family_name="Öberg")
    await factory.patient(given_name="Asa", family_name="Oberg")
    assert await patient_search(api, {"search": "åSA"}) == ["Åsa"]
    assert await patient_search(api, {"search": "ÖBERG"}) == ["Åsa"]


@pytest.mark.parametrize("search", ["lice", "alker", "K-4471", "0001", "lik", "ith"])
async def test_search_is_a_prefix_not_a_substring(api: Api, factory: Factory, search: str) -> None:
    await _people(factory)
    # "lik" is inside "Malik" and "alker" inside "Walker": neither is a prefix.
    assert await patient_search(api, {"search": search}) == []


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("o_", ["O_Neil"]),
        ("O_N", ["O_Neil"]),
        ("_", []),
        ("%", []),
        ("50%", ["Fifty"]),
        ("5%", []),
        ("back\\", ["Backslash"]),
        ("\\", []),
        ("%neil", []),
    ],
)
async def test_search_treats_like_wildcards_as_literal_characters(
    api: Api, factory: Factory, search: str, expected: list[str]
) -> None:
    await factory.patient(given_name="O_Neil", family_name="Quinn", mrn="Q-1", created_at=at(9))
    await factory.patient(given_name="ONeil", family_name="Quinn", mrn="Q-2", created_at=at(8))
    await factory.patient(given_name="Oxford", family_name="Quinn", mrn="Q-3", created_at=at(7))
    await factory.patient(given_name="Fifty", family_name="Quinn", mrn="50%-A", created_at=at(6))
    await factory.patient(given_name="Five", family_name="Quinn", mrn="500-B", created_at=at(5))
    await factory.patient(
        given_name="Backslash", family_name="Back\\s", mrn="Q-4", created_at=at(4)
    )
    await factory.patient(given_name="Backs", family_name="Backs", mrn="Q-5", created_at=at(3))
    assert await patient_search(api, {"search": search}) == expected


async def test_search_of_100_characters_is_allowed(api: Api, factory: Factory) -> None:
    long_name = "L" * 100
    await factory.patient(given_name="Long", family_name=long_name)
    await factory.patient(given_name="Short", family_name="L" * 99)
    assert await patient_search(api, {"search": long_name.lower()}) == ["Long"]
    assert await patient_search(api, {"search": "x" * 100}) == []


@pytest.mark.parametrize("length", [101, 1000])
async def test_search_over_100_characters_is_bad_user_input(api: Api, length: int) -> None:
    body = await api.query(PATIENTS, {"filter": {"search": "a" * length}})
    assert error_codes(body) == ["BAD_USER_INPUT"]
    message = body["errors"][0]["message"]
    assert "filter.search" in message
    assert "100" in message
    assert "a" * 20 not in message  # the input is not echoed back


@pytest.mark.parametrize("search", ["  Alic", "Alic  ", "\tAlic\n", "  alic  "])
async def test_search_ignores_surrounding_whitespace(
    api: Api, factory: Factory, search: str
) -> None:
    await _people(factory)
    assert await patient_search(api, {"search": search}) == ["Alice"]


@pytest.mark.parametrize("search", ["", "   "])
async def test_blank_search_filters_nothing(api: Api, factory: Factory, search: str) -> None:
    await _people(factory)
    assert await patient_search(api, {"search": search}) == ["Alice", "Bob", "Carol", "Malik"]


async def test_search_keeps_inner_whitespace(api: Api, factory: Factory) -> None:
    await factory.patient(given_name="Mary Ann", created_at=at(2))
    await factory.patient(given_name="Maryann", created_at=at(1))
    assert await patient_search(api, {"search": "mary a"}) == ["Mary Ann"]


# --- PatientFilter.primaryProviderId -------------------------------------------------------------


async def test_primary_provider_filter_returns_only_that_providers_patients(
    api: Api, factory: Factory, ids: OpaqueIds
) -> None:
    first, second, without = (
        await factory.provider(),
        await factory.provider(),
        await factory.provider(),
    )
    await factory.patient(given_name="Ann", primary_provider_id=first["id"], created_at=at(5))
    await factory.patient(given_name="Ben", primary_provider_id=second["id"], created_at=at(4))
    await factory.patient(given_name="Cat", primary_provider_id=first["id"], created_at=at(3))
    await factory.patient(given_name="Dan", created_at=at(2))

    def filter_for(provider: Values) -> Values:
        return {"primaryProviderId": ids.encode_id(NodeType.PROVIDER, provider["id"])}

    assert await patient_search(api, filter_for(first)) == ["Ann", "Cat"]
    assert await patient_search(api, filter_for(second)) == ["Ben"]
    assert await patient_search(api, filter_for(without)) == []
    assert await patient_search(api, {"primaryProviderId": None}) == ["Ann", "Ben", "Cat", "Dan"]


async def test_primary_provider_filter_with_the_id_the_api_returned(
    api: Api, factory: Factory
) -> None:
    provider = await factory.provider()
    await factory.patient(given_name="Ann", primary_provider_id=provider["id"])
    await factory.patient(given_name="Ben")
    data = await api.data("{ providers { edges { node { id } } } }")
    provider_id = data["providers"]["edges"][0]["node"]["id"]
    assert await patient_search(api, {"primaryProviderId": provider_id}) == ["Ann"]


async def test_primary_provider_of_another_tenant_matches_nothing(
    api: Api, factory: Factory, ids: OpaqueIds
) -> None:
    other_tenant = Factory(factory.sessionmaker, f"{factory.tenant_id}-other")
    foreign = await other_tenant.provider()
    await other_tenant.patient(primary_provider_id=foreign["id"])
    await factory.patient(given_name="Ann")
    filter_ = {"primaryProviderId": ids.encode_id(NodeType.PROVIDER, foreign["id"])}
    body = await api.query(PATIENTS, {"filter": filter_})
    assert "errors" not in body
    assert given_names(body["data"]["patients"]) == []


@pytest.mark.parametrize("bad_id", ["garbage", "", "UHJvdmlkZXI6MQ", "ÿÿÿÿ"])
async def test_malformed_primary_provider_id_is_bad_user_input(api: Api, bad_id: str) -> None:
    body = await api.query(PATIENTS, {"filter": {"primaryProviderId": bad_id}})
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert "filter.primaryProviderId" in body["errors"][0]["message"]


@pytest.mark.parametrize("node_type", [NodeType.PATIENT, NodeType.MEDICAL_RECORD])
async def test_primary_provider_id_of_another_type_is_bad_user_input(
    api: Api, factory: Factory, ids: OpaqueIds, node_type: NodeType
) -> None:
    provider = await factory.provider()
    patient = await factory.patient(primary_provider_id=provider["id"])
    record = await factory.record(patient, provider)
    row = patient if node_type is NodeType.PATIENT else record
    body = await api.query(
        PATIENTS, {"filter": {"primaryProviderId": ids.encode_id(node_type, row["id"])}}
    )
    assert error_codes(body) == ["BAD_USER_INPUT"]
    message = body["errors"][0]["message"]
    assert "filter.primaryProviderId" in message
    assert "Provider" in message


async def test_search_and_primary_provider_combine(
    api: Api, factory: Factory, ids: OpaqueIds
) -> None:
    first, second = await factory.provider(), await factory.provider()
    await factory.patient(given_name="Alice", primary_provider_id=first["id"], created_at=at(5))
    await factory.patient(given_name="Alan", primary_provider_id=second["id"], created_at=at(4))
    await factory.patient(given_name="Bob", primary_provider_id=first["id"], created_at=at(3))
    await factory.patient(
        given_name="Cy", family_name="Albers", primary_provider_id=first["id"], created_at=at(2)
    )
    first_id = ids.encode_id(NodeType.PROVIDER, first["id"])
    second_id = ids.encode_id(NodeType.PROVIDER, second["id"])
    assert await patient_search(api, {"search": "al", "primaryProviderId": first_id}) == [
        "Alice",
        "Cy",
    ]
    assert await patient_search(api, {"search": "al", "primaryProviderId": second_id}) == ["Alan"]
    assert await patient_search(api, {"search": "bo", "primaryProviderId": second_id}) == []
    assert await patient_search(api, {"search": "al"}) == ["Alice", "Alan", "Cy"]


# --- RecordFilter --------------------------------------------------------------------------------


def hour(n: int) -> datetime:
    return BASE_TIME + timedelta(hours=n)


def iso(n: int) -> str:
    return hour(n).isoformat()


class Clinic:
    """Two patients and two providers; records r1..r6 visited at hours 1..6 (r6 listed first)."""

    def __init__(self, ids: OpaqueIds) -> None:
        self.ids = ids
        self.patient_a: Values = {}
        self.patient_b: Values = {}
        self.provider_p: Values = {}
        self.provider_q: Values = {}

    async def build(self, factory: Factory) -> Clinic:
        a, b = await factory.patient(), await factory.patient()
        p, q = await factory.provider(), await factory.provider()
        self.patient_a, self.patient_b, self.provider_p, self.provider_q = a, b, p, q
        rows = [
            (a, p, RecordType.CONSULTATION, RecordStatus.FINALIZED),
            (a, p, RecordType.LAB_RESULT, RecordStatus.DRAFT),
            (a, q, RecordType.IMAGING, RecordStatus.AMENDED),
            (b, p, RecordType.CONSULTATION, RecordStatus.ENTERED_IN_ERROR),
            (b, q, RecordType.FOLLOW_UP, RecordStatus.FINALIZED),
            (b, p, RecordType.PROCEDURE, RecordStatus.FINALIZED),
        ]
        for n, (patient, provider, record_type, status) in enumerate(rows, start=1):
            await factory.record(
                patient,
                provider,
                record_type=record_type,
                status=status,
                visit_date=hour(n),
                chief_complaint=f"r{n}",
            )
        return self

    def patient_id(self) -> str:
        return self.ids.encode_id(NodeType.PATIENT, self.patient_a["id"])

    def provider_id(self) -> str:
        return self.ids.encode_id(NodeType.PROVIDER, self.provider_p["id"])


ALL = ["r6", "r5", "r4", "r3", "r2", "r1"]

RECORD_FILTERS: list[tuple[str, Values, list[str]]] = [
    ("no_filter", {}, ALL),
    ("status_one", {"status": ["FINALIZED"]}, ["r6", "r5", "r1"]),
    ("status_several", {"status": ["DRAFT", "AMENDED"]}, ["r3", "r2"]),
    # Each record once, however often its status is named.
    (
        "status_repeated",
        {"status": ["FINALIZED", "AMENDED", "FINALIZED"]},
        ["r6", "r5", "r3", "r1"],
    ),
    (
        "status_all",
        {"status": ["DRAFT", "FINALIZED", "AMENDED", "ENTERED_IN_ERROR"]},
        ALL,
    ),
    ("type_one", {"recordType": ["CONSULTATION"]}, ["r4", "r1"]),
    ("type_several", {"recordType": ["IMAGING", "FOLLOW_UP", "PROCEDURE"]}, ["r6", "r5", "r3"]),
    ("type_none_matching", {"recordType": ["DISCHARGE_SUMMARY"]}, []),
    (
        "status_and_type",
        {"status": ["FINALIZED"], "recordType": ["CONSULTATION", "FOLLOW_UP"]},
        ["r5", "r1"],
    ),
    ("after_inclusive_at_a_visit", {"visitedAfter": iso(3)}, ["r6", "r5", "r4", "r3"]),
    (
        "after_one_microsecond_past_a_visit",
        {"visitedAfter": (hour(3) + timedelta(microseconds=1)).isoformat()},
        ["r6", "r5", "r4"],
    ),
    (
        "after_in_another_offset",
        {"visitedAfter": "2026-01-01T05:00:00+02:00"},
        ["r6", "r5", "r4", "r3"],
    ),
    ("after_with_z_suffix", {"visitedAfter": "2026-01-01T03:00:00Z"}, ["r6", "r5", "r4", "r3"]),
    ("before_exclusive_at_a_visit", {"visitedBefore": iso(3)}, ["r2", "r1"]),
    (
        "before_one_microsecond_past_a_visit",
        {"visitedBefore": (hour(3) + timedelta(microseconds=1)).isoformat()},
        ["r3", "r2", "r1"],
    ),
    ("before_in_another_offset", {"visitedBefore": "2026-01-01T00:00:00-03:00"}, ["r2", "r1"]),
    ("range_half_open", {"visitedAfter": iso(2), "visitedBefore": iso(5)}, ["r4", "r3", "r2"]),
    ("range_one_instant", {"visitedAfter": iso(4), "visitedBefore": iso(4)}, []),
    (
        "everything_combined",
        {
            "status": ["FINALIZED", "ENTERED_IN_ERROR"],
            "recordType": ["CONSULTATION"],
            "visitedAfter": iso(1),
            "visitedBefore": iso(4),
        },
        ["r1"],
    ),
]


def _params(cases: list[tuple[str, Values, list[str]]], keep: set[str]) -> Any:
    return [
        pytest.param(filter_, [label for label in expected if label in keep], id=name)
        for name, filter_, expected in cases
    ]


@pytest.mark.parametrize(("filter_", "expected"), _params(RECORD_FILTERS, set(ALL)))
async def test_record_filter_on_records(
    api: Api, factory: Factory, ids: OpaqueIds, filter_: Values, expected: list[str]
) -> None:
    await Clinic(ids).build(factory)
    data = await api.data(RECORDS, {"filter": filter_})
    assert complaints(data["records"]) == expected


# Patient A has r1, r2, r3; provider P has r1, r2, r4, r6.
@pytest.mark.parametrize(("filter_", "expected"), _params(RECORD_FILTERS, {"r1", "r2", "r3"}))
async def test_record_filter_on_patient_records(
    api: Api, factory: Factory, ids: OpaqueIds, filter_: Values, expected: list[str]
) -> None:
    clinic = await Clinic(ids).build(factory)
    data = await api.data(PATIENT_RECORDS, {"id": clinic.patient_id(), "filter": filter_})
    assert complaints(data["patient"]["records"]) == expected


@pytest.mark.parametrize(("filter_", "expected"), _params(RECORD_FILTERS, {"r1", "r2", "r4", "r6"}))
async def test_record_filter_on_provider_records(
    api: Api, factory: Factory, ids: OpaqueIds, filter_: Values, expected: list[str]
) -> None:
    clinic = await Clinic(ids).build(factory)
    data = await api.data(PROVIDER_RECORDS, {"id": clinic.provider_id(), "filter": filter_})
    assert complaints(data["provider"]["records"]) == expected


async def test_record_filter_as_inline_literal_on_every_parent(
    api: Api, factory: Factory, ids: OpaqueIds
) -> None:
    await Clinic(ids).build(factory)
    filter_ = '{status: [FINALIZED, AMENDED], visitedAfter: "2026-01-01T03:00:00+00:00"}'
    data = await api.data(
        f"""{{ records(filter: {filter_}) {{ totalCount edges {{ node {{ chiefComplaint }} }} }}
              patients {{ edges {{ node {{
                records(filter: {filter_}) {{ totalCount edges {{ node {{ chiefComplaint }} }} }}
              }} }} }} }}"""
    )
    assert complaints(data["records"]) == ["r6", "r5", "r3"]
    per_patient = sorted(complaints(edge["node"]["records"]) for edge in data["patients"]["edges"])
    assert per_patient == [["r3"], ["r6", "r5"]]


@pytest.mark.parametrize("field", ["visitedAfter", "visitedBefore"])
@pytest.mark.parametrize("query", ["records", "patient.records", "provider.records"])
async def test_datetime_without_utc_offset_is_bad_user_input(
    api: Api, factory: Factory, ids: OpaqueIds, query: str, field: str
) -> None:
    clinic = await Clinic(ids).build(factory)
    text, variables = {
        "records": (RECORDS, {}),
        "patient.records": (PATIENT_RECORDS, {"id": clinic.patient_id()}),
        "provider.records": (PROVIDER_RECORDS, {"id": clinic.provider_id()}),
    }[query]
    body = await api.query(text, {**variables, "filter": {field: "2026-01-01T03:00:00"}})
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    message = body["errors"][0]["message"]
    assert field in message
    assert "offset" in message


@pytest.mark.parametrize("field", ["visitedAfter", "visitedBefore"])
async def test_datetime_literal_without_utc_offset_is_bad_user_input(api: Api, field: str) -> None:
    body = await api.query(
        f'{{ records(filter: {{{field}: "2026-01-01T03:00:00"}}) {{ totalCount }} }}'
    )
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    assert "offset" in body["errors"][0]["message"]


@pytest.mark.parametrize("value", ["yesterday", "2026-13-01T00:00:00+00:00", "", "2026-01-01"])
async def test_unparseable_datetime_is_bad_user_input(api: Api, value: str) -> None:
    body = await api.query(RECORDS, {"filter": {"visitedAfter": value}})
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    assert "visitedAfter" in body["errors"][0]["message"]
    literal = await api.query(
        f'{{ records(filter: {{visitedAfter: "{value}"}}) {{ totalCount }} }}'
    )
    assert error_codes(literal) == ["BAD_USER_INPUT"], literal


@pytest.mark.parametrize(
    "filter_", [{"status": ["SIGNED"]}, {"recordType": ["XRAY"]}, {"status": "DRAFT!"}]
)
async def test_unknown_enum_value_in_record_filter_is_bad_user_input(
    api: Api, filter_: Values
) -> None:
    body = await api.query(RECORDS, {"filter": filter_})
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    assert "filter" in body["errors"][0]["message"]


async def test_nested_record_filters_count_per_parent(
    api: Api, factory: Factory, ids: OpaqueIds
) -> None:
    clinic = await Clinic(ids).build(factory)
    data = await api.data(
        """query($filter: RecordFilter) {
             providers { edges { node { id
               records(first: 1, filter: $filter) { totalCount pageInfo { hasNextPage }
                 edges { node { chiefComplaint } } } } } } }""",
        {"filter": {"status": ["FINALIZED", "DRAFT"], "visitedBefore": iso(6)}},
    )
    by_provider = {
        ids.decode_typed_id(edge["node"]["id"], NodeType.PROVIDER, "id"): edge["node"]["records"]
        for edge in data["providers"]["edges"]
    }
    p, q = by_provider[clinic.provider_p["id"]], by_provider[clinic.provider_q["id"]]
    # P: r1 (FINALIZED), r2 (DRAFT); r4 is ENTERED_IN_ERROR and r6 is not before hour 6.
    assert (p["totalCount"], p["pageInfo"]["hasNextPage"]) == (2, True)
    assert p["edges"] == [{"node": {"chiefComplaint": "r2"}}]
    # Q: r5 (FINALIZED); r3 is AMENDED.
    assert (q["totalCount"], q["pageInfo"]["hasNextPage"]) == (1, False)
    assert q["edges"] == [{"node": {"chiefComplaint": "r5"}}]


# --- Provider.patients with a filter -------------------------------------------------------------


async def test_provider_patients_with_search(api: Api, factory: Factory, ids: OpaqueIds) -> None:
    first, second, third = (
        await factory.provider(family_name="Adams"),
        await factory.provider(family_name="Baker"),
        await factory.provider(family_name="Clark"),
    )
    for given, family, provider, minute in (
        ("Alice", "Walker", first, 6),
        ("Bob", "Alvarez", first, 5),
        ("Carol", "Smith", first, 4),
        ("Alina", "Ng", second, 3),
        ("Dora", "Moss", second, 2),
        ("Eve", "Malik", third, 1),
    ):
        await factory.patient(
            given_name=given,
            family_name=family,
            primary_provider_id=provider["id"],
            created_at=at(minute),
        )
    # A patient of nobody matches the search but belongs to no provider's list.
    await factory.patient(given_name="Alfred", created_at=at(7))

    data = await api.data(
        """query($filter: PatientFilter) { providers { edges { node {
             patients(filter: $filter) { totalCount edges { node { givenName } } } } } } }""",
        {"filter": {"search": "  AL"}},
    )
    per_provider = [given_names(edge["node"]["patients"]) for edge in data["providers"]["edges"]]
    assert per_provider == [["Alice", "Bob"], ["Alina"], []]

    single = await api.data(
        PROVIDER_PATIENTS,
        {"id": ids.encode_id(NodeType.PROVIDER, first["id"]), "filter": {"search": "smi"}},
    )
    assert given_names(single["provider"]["patients"]) == ["Carol"]


async def test_provider_patients_search_validation(
    api: Api, factory: Factory, ids: OpaqueIds
) -> None:
    provider = await factory.provider()
    provider_id = ids.encode_id(NodeType.PROVIDER, provider["id"])
    body = await api.query(PROVIDER_PATIENTS, {"id": provider_id, "filter": {"search": "x" * 101}})
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert "filter.search" in body["errors"][0]["message"]
    body = await api.query(
        PROVIDER_PATIENTS, {"id": provider_id, "filter": {"primaryProviderId": "garbage"}}
    )
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert "filter.primaryProviderId" in body["errors"][0]["message"]


async def test_provider_patients_search_treats_wildcards_literally(
    api: Api, factory: Factory, ids: OpaqueIds
) -> None:
    provider = await factory.provider()
    for given in ("O_Neil", "ONeil", "Oxford"):
        await factory.patient(given_name=given, primary_provider_id=provider["id"])
    provider_id = ids.encode_id(NodeType.PROVIDER, provider["id"])
    for search, expected in (("o_", ["O_Neil"]), ("%", []), ("O", ["Oxford", "ONeil", "O_Neil"])):
        data = await api.data(PROVIDER_PATIENTS, {"id": provider_id, "filter": {"search": search}})
        assert given_names(data["provider"]["patients"]) == expected
