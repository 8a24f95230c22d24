"""Keyset pagination of every connection: order, page boundaries, pageInfo, limits, cursors and
totalCount, for the root lists and the nested ones alike."""

from __future__ import annotations

import base64
import json
import math
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest

from app.domain.opaque_ids import NodeType, OpaqueIds
from app.settings import Settings
from models.enums import RecordStatus
from tests.api_client import Api, error_codes
from tests.factories import BASE_TIME, Factory

Values = dict[str, Any]

PAGE = """totalCount
  pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  edges { cursor node { id } }"""

QUERIES: dict[str, str] = {
    "patients": f"""query($first: Int, $after: String, $filter: PatientFilter) {{
      patients(first: $first, after: $after, filter: $filter) {{ {PAGE} }} }}""",
    "providers": f"""query($first: Int, $after: String) {{
      providers(first: $first, after: $after) {{ {PAGE} }} }}""",
    "records": f"""query($first: Int, $after: String, $filter: RecordFilter) {{
      records(first: $first, after: $after, filter: $filter) {{ {PAGE} }} }}""",
    "patient.records": f"""query($id: ID!, $first: Int, $after: String, $filter: RecordFilter) {{
      patient(id: $id) {{
        records(first: $first, after: $after, filter: $filter) {{ {PAGE} }} }} }}""",
    "provider.patients": f"""query($id: ID!, $first: Int, $after: String, $filter: PatientFilter) {{
      provider(id: $id) {{
        patients(first: $first, after: $after, filter: $filter) {{ {PAGE} }} }} }}""",
    "provider.records": f"""query($id: ID!, $first: Int, $after: String, $filter: RecordFilter) {{
      provider(id: $id) {{
        records(first: $first, after: $after, filter: $filter) {{ {PAGE} }} }} }}""",
}
KINDS = list(QUERIES)

# The node type of each list's rows.
NODE_TYPES = {
    "patients": NodeType.PATIENT,
    "providers": NodeType.PROVIDER,
    "records": NodeType.MEDICAL_RECORD,
    "patient.records": NodeType.MEDICAL_RECORD,
    "provider.patients": NodeType.PATIENT,
    "provider.records": NodeType.MEDICAL_RECORD,
}


@pytest.fixture
def ids(settings: Settings) -> OpaqueIds:
    return OpaqueIds(settings.opaque_id_key)


# --- the documented orders, computed in Python ---------------------------------------------------


def patient_order(rows: list[Values]) -> list[uuid.UUID]:
    """Most recently created first, ties by id descending."""
    ordered = sorted(rows, key=lambda r: (r["created_at"], r["id"]), reverse=True)
    return [r["id"] for r in ordered]


def provider_order(rows: list[Values]) -> list[uuid.UUID]:
    """Alphabetical: family name, given name, then id."""
    ordered = sorted(rows, key=lambda r: (r["family_name"], r["given_name"], r["id"]))
    return [r["id"] for r in ordered]


def record_order(rows: list[Values]) -> list[uuid.UUID]:
    """Most recent visit first, ties by id descending."""
    ordered = sorted(rows, key=lambda r: (r["visit_date"], r["id"]), reverse=True)
    return [r["id"] for r in ordered]


# Family/given names with ties on both columns, so the id decides between equal names.
PROVIDER_NAMES = [
    ("Baker", "Carl"),
    ("Adams", "Zoe"),
    ("Adams", "Amy"),
    ("Young", "Ann"),
    ("Baker", "Carl"),
    ("Adams", "Amy"),
    ("Baker", "Carl"),
]


def patient_time(index: int) -> datetime:
    """Pairs of patients share a creation time."""
    return BASE_TIME + timedelta(minutes=index // 2)


def visit_time(index: int) -> datetime:
    """Pairs of records share a visit time."""
    return BASE_TIME + timedelta(hours=index // 2)


@dataclass
class Listing:
    """A list, its variables (the parent of a nested list) and its rows in documented order."""

    kind: str
    variables: Values = field(default_factory=dict)
    expected: list[uuid.UUID] = field(default_factory=list)


async def seed(kind: str, factory: Factory, ids: OpaqueIds, count: int) -> Listing:
    """``count`` rows of list ``kind`` (ties included) plus rows that must not show up in it."""
    if kind == "patients":
        rows = [await factory.patient(created_at=patient_time(i)) for i in range(count)]
        return Listing(kind, {}, patient_order(rows))
    if kind == "providers":
        rows = [
            await factory.provider(family_name=family, given_name=given)
            for family, given in (PROVIDER_NAMES * (count // len(PROVIDER_NAMES) + 1))[:count]
        ]
        return Listing(kind, {}, provider_order(rows))
    if kind == "records":
        provider = await factory.provider()
        patients = [await factory.patient(), await factory.patient()]
        rows = [
            await factory.record(patients[i % 2], provider, visit_date=visit_time(i))
            for i in range(count)
        ]
        return Listing(kind, {}, record_order(rows))
    if kind == "patient.records":
        provider = await factory.provider()
        patient, other = await factory.patient(), await factory.patient()
        rows = [
            await factory.record(patient, provider, visit_date=visit_time(i)) for i in range(count)
        ]
        for i in range(2):
            await factory.record(other, provider, visit_date=visit_time(i))
        variables = {"id": ids.encode_id(NodeType.PATIENT, patient["id"])}
        return Listing(kind, variables, record_order(rows))
    if kind == "provider.patients":
        provider, other = await factory.provider(), await factory.provider()
        rows = [
            await factory.patient(primary_provider_id=provider["id"], created_at=patient_time(i))
            for i in range(count)
        ]
        await factory.patient(primary_provider_id=other["id"], created_at=patient_time(0))
        await factory.patient(created_at=patient_time(1))
        variables = {"id": ids.encode_id(NodeType.PROVIDER, provider["id"])}
        return Listing(kind, variables, patient_order(rows))
    if kind == "provider.records":
        provider, other = await factory.provider(), await factory.provider()
        patients = [await factory.patient(), await factory.patient()]
        rows = [
            await factory.record(patients[i % 2], provider, visit_date=visit_time(i))
            for i in range(count)
        ]
        for i in range(2):
            await factory.record(patients[0], other, visit_date=visit_time(i))
        variables = {"id": ids.encode_id(NodeType.PROVIDER, provider["id"])}
        return Listing(kind, variables, record_order(rows))
    raise AssertionError(kind)


def connection_of(kind: str, data: Values) -> Values:
    if "." not in kind:
        result: Values = data[kind]
        return result
    parent, child = kind.split(".")
    assert data[parent] is not None, data
    nested: Values = data[parent][child]
    return nested


async def fetch(
    api: Api, listing: Listing, first: int | None = None, after: str | None = None, **extra: Any
) -> Values:
    variables = {**listing.variables, **extra, "after": after}
    if first is not None:
        variables["first"] = first
    return connection_of(listing.kind, await api.data(QUERIES[listing.kind], variables))


async def query_body(
    api: Api, listing: Listing, first: int | None = None, after: str | None = None
) -> Values:
    variables = {**listing.variables, "after": after}
    if first is not None:
        variables["first"] = first
    return await api.query(QUERIES[listing.kind], variables)


async def walk(api: Api, listing: Listing, first: int | None, **extra: Any) -> list[Values]:
    """Every page of a list, following endCursor until hasNextPage is false."""
    pages: list[Values] = []
    after: str | None = None
    while True:
        page = await fetch(api, listing, first, after, **extra)
        pages.append(page)
        if not page["pageInfo"]["hasNextPage"]:
            return pages
        after = page["pageInfo"]["endCursor"]
        assert len(pages) <= 50, "pagination does not terminate"


def node_ids(ids: OpaqueIds, kind: str, page: Values) -> list[uuid.UUID]:
    return [
        ids.decode_typed_id(edge["node"]["id"], NODE_TYPES[kind], "id") for edge in page["edges"]
    ]


def assert_walk(
    ids: OpaqueIds, kind: str, pages: list[Values], expected: list[uuid.UUID], first: int
) -> None:
    """Every row once, in order; full pages but the last; pageInfo consistent on every page."""
    seen = [row_id for page in pages for row_id in node_ids(ids, kind, page)]
    assert seen == expected
    assert len(pages) == max(1, math.ceil(len(expected) / first))
    for number, page in enumerate(pages):
        edges, info = page["edges"], page["pageInfo"]
        last = number == len(pages) - 1
        assert len(edges) == (len(expected) - first * number if last else first)
        assert info["hasNextPage"] is not last
        assert info["hasPreviousPage"] is (number > 0)
        assert info["startCursor"] == edges[0]["cursor"]
        assert info["endCursor"] == edges[-1]["cursor"]
        assert page["totalCount"] == len(expected)


# --- walking every page --------------------------------------------------------------------------


@pytest.mark.parametrize("first", [1, 2, 3, 7, 100])
@pytest.mark.parametrize("kind", KINDS)
async def test_walking_every_page_yields_every_row_once_in_documented_order(
    api: Api, factory: Factory, ids: OpaqueIds, kind: str, first: int
) -> None:
    listing = await seed(kind, factory, ids, 7)
    pages = await walk(api, listing, first)
    assert_walk(ids, kind, pages, listing.expected, first)


@pytest.mark.parametrize("kind", KINDS)
async def test_default_page_size_is_20(
    api: Api, factory: Factory, ids: OpaqueIds, kind: str
) -> None:
    listing = await seed(kind, factory, ids, 21)
    pages = await walk(api, listing, None)
    assert_walk(ids, kind, pages, listing.expected, 20)
    assert [len(page["edges"]) for page in pages] == [20, 1]


async def test_patients_tie_on_created_at_is_broken_by_id_across_page_boundaries(
    api: Api, factory: Factory, ids: OpaqueIds
) -> None:
    same_time = BASE_TIME + timedelta(days=3)
    rows = [await factory.patient(created_at=same_time) for _ in range(5)]
    rows.append(await factory.patient(created_at=same_time + timedelta(microseconds=1)))
    rows.append(await factory.patient(created_at=same_time - timedelta(microseconds=1)))
    listing = Listing("patients", {}, patient_order(rows))
    assert_walk(ids, "patients", await walk(api, listing, 2), listing.expected, 2)
    # The newest row comes first, the oldest last, and the five ties descend by id in between.
    assert listing.expected[0] == rows[5]["id"]
    assert listing.expected[-1] == rows[6]["id"]
    assert listing.expected[1:6] == sorted((r["id"] for r in rows[:5]), reverse=True)


async def test_providers_tie_on_both_names_is_broken_by_id_across_page_boundaries(
    api: Api, factory: Factory, ids: OpaqueIds
) -> None:
    rows = [await factory.provider(family_name="Ng", given_name="Li") for _ in range(4)]
    rows.append(await factory.provider(family_name="Ng", given_name="Al"))
    rows.append(await factory.provider(family_name="Ab", given_name="Zz"))
    listing = Listing("providers", {}, provider_order(rows))
    assert_walk(ids, "providers", await walk(api, listing, 3), listing.expected, 3)
    assert listing.expected[:2] == [rows[5]["id"], rows[4]["id"]]
    assert listing.expected[2:] == sorted(r["id"] for r in rows[:4])


async def test_records_tie_on_visit_date_is_broken_by_id_across_page_boundaries(
    api: Api, factory: Factory, ids: OpaqueIds
) -> None:
    provider, patient = await factory.provider(), await factory.patient()
    same_time = BASE_TIME + timedelta(days=9)
    rows = [await factory.record(patient, provider, visit_date=same_time) for _ in range(5)]
    rows.append(await factory.record(patient, provider, visit_date=same_time - timedelta(days=1)))
    expected = record_order(rows)
    assert expected[:5] == sorted((r["id"] for r in rows[:5]), reverse=True)
    for kind, variables in (
        ("records", {}),
        ("patient.records", {"id": ids.encode_id(NodeType.PATIENT, patient["id"])}),
        ("provider.records", {"id": ids.encode_id(NodeType.PROVIDER, provider["id"])}),
    ):
        listing = Listing(kind, variables, expected)
        assert_walk(ids, kind, await walk(api, listing, 2), expected, 2)


async def test_records_of_several_statuses_interleave_in_order_across_page_boundaries(
    api: Api, factory: Factory, ids: OpaqueIds
) -> None:
    """A status-filtered list reads one range per status and merges them: the pages still follow
    the one order, ties across statuses included."""
    provider, patient = await factory.provider(), await factory.patient()
    same_time = BASE_TIME + timedelta(days=9)
    statuses = [RecordStatus.FINALIZED, RecordStatus.AMENDED, RecordStatus.DRAFT]
    rows = [
        await factory.record(
            patient,
            provider,
            status=statuses[n % 3],
            visit_date=same_time if n % 2 else same_time - timedelta(hours=n),
        )
        for n in range(9)
    ]
    wanted = [r for r in rows if r["status"] is not RecordStatus.DRAFT]
    expected = record_order(wanted)
    listing = Listing("records", {}, expected)
    for first in (1, 2, 4):
        pages = await walk(api, listing, first, filter={"status": ["AMENDED", "FINALIZED"]})
        assert_walk(ids, "records", pages, expected, first)


async def test_nested_records_of_several_parents_page_independently_in_one_query(
    api: Api, factory: Factory, ids: OpaqueIds
) -> None:
    provider = await factory.provider()
    first_patient = await factory.patient(created_at=BASE_TIME + timedelta(days=2))
    second_patient = await factory.patient(created_at=BASE_TIME + timedelta(days=1))
    first_rows = [
        await factory.record(first_patient, provider, visit_date=visit_time(i)) for i in range(5)
    ]
    second_rows = [
        await factory.record(second_patient, provider, visit_date=visit_time(i)) for i in range(3)
    ]
    data = await api.data(
        """{ patients { edges { node { id records(first: 2) {
             totalCount pageInfo { hasNextPage endCursor } edges { node { id } } } } } } }"""
    )
    nested = [edge["node"]["records"] for edge in data["patients"]["edges"]]
    assert [node_ids(ids, "records", page) for page in nested] == [
        record_order(first_rows)[:2],
        record_order(second_rows)[:2],
    ]
    assert [page["totalCount"] for page in nested] == [5, 3]
    assert [page["pageInfo"]["hasNextPage"] for page in nested] == [True, True]

    # The nested cursor continues that patient's list.
    listing = Listing(
        "patient.records",
        {"id": ids.encode_id(NodeType.PATIENT, second_patient["id"])},
        record_order(second_rows),
    )
    rest = await fetch(api, listing, 2, nested[1]["pageInfo"]["endCursor"])
    assert node_ids(ids, "records", rest) == record_order(second_rows)[2:]
    assert rest["pageInfo"]["hasNextPage"] is False
    assert rest["pageInfo"]["hasPreviousPage"] is True


# --- pageInfo at the edges -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_empty_list_has_null_cursors_and_no_pages_either_side(
    api: Api, factory: Factory, ids: OpaqueIds, kind: str
) -> None:
    listing = await seed(kind, factory, ids, 0)
    page = await fetch(api, listing, 5)
    assert page == {
        "totalCount": 0,
        "pageInfo": {
            "hasNextPage": False,
            "hasPreviousPage": False,
            "startCursor": None,
            "endCursor": None,
        },
        "edges": [],
    }


@pytest.mark.parametrize("kind", KINDS)
async def test_page_after_the_last_row_is_empty_with_null_cursors(
    api: Api, factory: Factory, ids: OpaqueIds, kind: str
) -> None:
    listing = await seed(kind, factory, ids, 3)
    last = await fetch(api, listing, 3)
    assert last["pageInfo"]["hasNextPage"] is False
    beyond = await fetch(api, listing, 3, last["pageInfo"]["endCursor"])
    assert beyond == {
        "totalCount": 3,
        "pageInfo": {
            "hasNextPage": False,
            "hasPreviousPage": True,
            "startCursor": None,
            "endCursor": None,
        },
        "edges": [],
    }


@pytest.mark.parametrize("kind", KINDS)
async def test_has_previous_page_is_true_exactly_when_after_is_given(
    api: Api, factory: Factory, ids: OpaqueIds, kind: str
) -> None:
    listing = await seed(kind, factory, ids, 3)
    whole = await fetch(api, listing, 10)
    assert whole["pageInfo"]["hasPreviousPage"] is False
    for index, edge in enumerate(whole["edges"]):
        page = await fetch(api, listing, 10, edge["cursor"])
        assert page["pageInfo"]["hasPreviousPage"] is True
        assert node_ids(ids, kind, page) == listing.expected[index + 1 :]


# --- first ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_first_zero_returns_no_edges_but_reports_what_follows(
    api: Api, factory: Factory, ids: OpaqueIds, kind: str
) -> None:
    listing = await seed(kind, factory, ids, 2)
    page = await fetch(api, listing, 0)
    assert page == {
        "totalCount": 2,
        "pageInfo": {
            "hasNextPage": True,
            "hasPreviousPage": False,
            "startCursor": None,
            "endCursor": None,
        },
        "edges": [],
    }
    after_first = (await fetch(api, listing, 1))["pageInfo"]["endCursor"]
    page = await fetch(api, listing, 0, after_first)
    assert page["edges"] == []
    assert page["pageInfo"]["hasNextPage"] is True
    assert page["pageInfo"]["hasPreviousPage"] is True
    after_last = (await fetch(api, listing, 2))["pageInfo"]["endCursor"]
    assert (await fetch(api, listing, 0, after_last))["pageInfo"]["hasNextPage"] is False


@pytest.mark.parametrize("kind", KINDS)
async def test_first_zero_on_an_empty_list_has_no_next_page(
    api: Api, factory: Factory, ids: OpaqueIds, kind: str
) -> None:
    listing = await seed(kind, factory, ids, 0)
    page = await fetch(api, listing, 0)
    assert page["edges"] == []
    assert page["pageInfo"]["hasNextPage"] is False
    assert page["totalCount"] == 0


async def test_first_100_returns_100_rows_of_101(
    api: Api, factory: Factory, ids: OpaqueIds
) -> None:
    listing = await seed("patients", factory, ids, 101)
    pages = await walk(api, listing, 100)
    assert_walk(ids, "patients", pages, listing.expected, 100)
    assert [len(page["edges"]) for page in pages] == [100, 1]


@pytest.mark.parametrize("kind", KINDS)
async def test_first_101_is_bad_user_input(
    api: Api, factory: Factory, ids: OpaqueIds, kind: str
) -> None:
    listing = await seed(kind, factory, ids, 1)
    assert len((await fetch(api, listing, 100))["edges"]) == 1
    body = await query_body(api, listing, 101)
    assert error_codes(body) == ["BAD_USER_INPUT"]
    message = body["errors"][0]["message"]
    assert "first" in message
    assert "100" in message


@pytest.mark.parametrize("first", [-1, -100])
@pytest.mark.parametrize("kind", KINDS)
async def test_negative_first_is_bad_user_input(
    api: Api, factory: Factory, ids: OpaqueIds, kind: str, first: int
) -> None:
    listing = await seed(kind, factory, ids, 1)
    body = await query_body(api, listing, first)
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert "first" in body["errors"][0]["message"]


# --- after ---------------------------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _change_one_character(cursor: str) -> str:
    # A middle character always carries payload or MAC bits (only the last may carry padding bits).
    index = len(cursor) // 2
    replacement = "A" if cursor[index] != "A" else "B"
    return cursor[:index] + replacement + cursor[index + 1 :]


MALFORMED = [
    "garbage",
    "empty",
    "one_character_changed",
    "last_character_dropped",
    "truncated_to_half",
    "character_appended",
    "non_base64url_characters_inserted",
    "forged_without_key",
    "node_id",
    "non_ascii",
]


def malformed_cursor(variant: str, valid: str, node_id: str) -> str:
    if variant == "garbage":
        return "not-a-cursor"
    if variant == "empty":
        return ""
    if variant == "one_character_changed":
        return _change_one_character(valid)
    if variant == "last_character_dropped":
        return valid[:-1]
    if variant == "truncated_to_half":
        return valid[: len(valid) // 2]
    if variant == "character_appended":
        return valid + "A"
    if variant == "non_base64url_characters_inserted":
        # Not base64url any more; a lenient decoder silently skips the four foreign characters.
        return valid[:10] + "!.~*" + valid[10:]
    if variant == "forged_without_key":
        payload = json.dumps(["patients", BASE_TIME.isoformat(), str(uuid.uuid4())]).encode()
        return _b64(payload + bytes(8))
    if variant == "node_id":
        return node_id
    if variant == "non_ascii":
        return "ÿÿÿÿÿÿÿÿÿÿÿÿ"
    raise AssertionError(variant)


@pytest.mark.parametrize("variant", MALFORMED)
@pytest.mark.parametrize("kind", KINDS)
async def test_malformed_cursor_is_bad_user_input(
    api: Api, factory: Factory, ids: OpaqueIds, kind: str, variant: str
) -> None:
    listing = await seed(kind, factory, ids, 2)
    first_page = await fetch(api, listing, 1)
    valid = first_page["pageInfo"]["endCursor"]
    node_id = first_page["edges"][0]["node"]["id"]
    cursor = malformed_cursor(variant, valid, node_id)
    assert cursor != valid
    body = await query_body(api, listing, 1, cursor)
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    assert "after" in body["errors"][0]["message"]
    # The unedited cursor still works.
    assert node_ids(ids, kind, await fetch(api, listing, 1, valid)) == listing.expected[1:]


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("patients", "records"),
        ("records", "patients"),
        ("providers", "patients"),
        ("patients", "providers"),
        ("records", "providers"),
        ("patients", "patient.records"),
        ("providers", "provider.records"),
        ("records", "provider.patients"),
        ("patient.records", "provider.patients"),
        ("provider.patients", "patient.records"),
    ],
)
async def test_cursor_of_another_list_is_bad_user_input(
    api: Api, factory: Factory, ids: OpaqueIds, source: str, target: str
) -> None:
    source_listing = await seed(source, factory, ids, 2)
    cursor = (await fetch(api, source_listing, 1))["pageInfo"]["endCursor"]
    target_listing = await seed(target, factory, ids, 2)
    body = await query_body(api, target_listing, 1, cursor)
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    assert "after" in body["errors"][0]["message"]


# --- totalCount ----------------------------------------------------------------------------------


async def test_total_count_counts_filter_matches_on_every_page(
    api: Api, factory: Factory, ids: OpaqueIds
) -> None:
    provider = await factory.provider()
    smiths = [
        await factory.patient(family_name=f"Smith{i}", created_at=patient_time(i)) for i in range(5)
    ]
    for i in range(3):
        await factory.patient(family_name=f"Jones{i}", created_at=patient_time(i))
    patients = Listing("patients", {}, [])
    unfiltered = await walk(api, patients, 3)
    assert [page["totalCount"] for page in unfiltered] == [8, 8, 8]
    filtered = await walk(api, patients, 2, filter={"search": "smith"})
    assert_walk(ids, "patients", filtered, patient_order(smiths), 2)

    patient = smiths[0]
    drafts = [
        await factory.record(patient, provider, status=RecordStatus.DRAFT, visit_date=visit_time(i))
        for i in range(3)
    ]
    for i in range(4):
        await factory.record(patient, provider, visit_date=visit_time(i))
    records = Listing("records", {}, [])
    assert [page["totalCount"] for page in await walk(api, records, 4)] == [7, 7]
    drafts_only = await walk(api, records, 2, filter={"status": ["DRAFT"]})
    assert_walk(ids, "records", drafts_only, record_order(drafts), 2)


async def test_total_count_does_not_depend_on_first_or_after(
    api: Api, factory: Factory, ids: OpaqueIds
) -> None:
    listing = await seed("providers", factory, ids, 4)
    cursors = [edge["cursor"] for edge in (await fetch(api, listing, 4))["edges"]]
    for first in (0, 1, 4, 100):
        for after in (None, *cursors):
            assert (await fetch(api, listing, first, after))["totalCount"] == 4


async def test_nested_total_count_is_per_parent(api: Api, factory: Factory, ids: OpaqueIds) -> None:
    busy, quiet, idle = (
        await factory.provider(family_name="Adams"),
        await factory.provider(family_name="Baker"),
        await factory.provider(family_name="Clark"),
    )
    many = await factory.patient(primary_provider_id=busy["id"], created_at=patient_time(6))
    few = await factory.patient(primary_provider_id=busy["id"], created_at=patient_time(4))
    none = await factory.patient(primary_provider_id=quiet["id"], created_at=patient_time(2))
    for i in range(3):
        await factory.record(many, busy, visit_date=visit_time(i))
    await factory.record(many, quiet, visit_date=visit_time(3), status=RecordStatus.DRAFT)
    await factory.record(few, quiet, visit_date=visit_time(4))

    data = await api.data(
        """{ patients {
               edges { node { id
                 records(first: 1) { totalCount pageInfo { hasNextPage } edges { node { id } } }
                 finalized: records(first: 1, filter: {status: [FINALIZED]}) { totalCount } } } }
             providers {
               edges { node { id
                 patients(first: 1) { totalCount pageInfo { hasNextPage } edges { node { id } } }
                 records(first: 1) { totalCount pageInfo { hasNextPage } } } } } }"""
    )
    patients = [edge["node"] for edge in data["patients"]["edges"]]
    assert [ids.decode_typed_id(p["id"], NodeType.PATIENT, "id") for p in patients] == [
        many["id"],
        few["id"],
        none["id"],
    ]
    assert [p["records"]["totalCount"] for p in patients] == [4, 1, 0]
    assert [p["finalized"]["totalCount"] for p in patients] == [3, 1, 0]
    assert [p["records"]["pageInfo"]["hasNextPage"] for p in patients] == [True, False, False]
    assert [len(p["records"]["edges"]) for p in patients] == [1, 1, 0]

    providers = [edge["node"] for edge in data["providers"]["edges"]]
    assert [ids.decode_typed_id(p["id"], NodeType.PROVIDER, "id") for p in providers] == [
        busy["id"],
        quiet["id"],
        idle["id"],
    ]
    assert [p["patients"]["totalCount"] for p in providers] == [2, 1, 0]
    assert [p["patients"]["pageInfo"]["hasNextPage"] for p in providers] == [True, False, False]
    assert [p["records"]["totalCount"] for p in providers] == [3, 2, 0]
    assert [p["records"]["pageInfo"]["hasNextPage"] for p in providers] == [True, True, False]
