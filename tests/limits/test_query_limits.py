"""Abuse limits: depth, aliases, tokens and cost, each refused before execution (QUERY_TOO_COMPLEX).

The limits are the defaults of ``app.settings``; the measures are defined in ``schema/limits.py``.
"Nothing executed" is shown by a mutation that creates no row, or by no SQL statement reading the
queried table (the viewer lookup and the audit row still happen).
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from graphql import OperationDefinitionNode, get_introspection_query, parse
from starlette.applications import Starlette

from schema.limits import (
    _cached_fixed_cost,
    _cached_validation,
    cached_parse,
    coerced_variables,
    fixed_query_cost,
    query_cost,
)
from schema.schema import build_schema
from schema.strawberry_adapter import graphql_schema
from tests.api_client import Api, count_statements, error_codes
from tests.factories import Factory

MAX_DEPTH = 12
MAX_ALIASES = 30
MAX_TOKENS = 2000
PATIENT_COST_LIMIT = 5000

CREATE_PATIENT_INPUT = {
    "mrn": "LIMITS0001",
    "givenName": "Ada",
    "familyName": "Limit",
    "dateOfBirth": "1990-01-01",
    "sex": "FEMALE",
}
PATIENT_COUNT = "{ patients { totalCount } }"


def refused(body: dict[str, Any], *fragments: str) -> str:
    """The single QUERY_TOO_COMPLEX error's message, checked to contain every fragment."""
    assert error_codes(body) == ["QUERY_TOO_COMPLEX"], body
    assert body.get("data") is None
    message: str = body["errors"][0]["message"]
    for fragment in fragments:
        assert fragment in message, message
    return message


async def patients_in_tenant(api: Api) -> int:
    count: int = (await api.data(PATIENT_COUNT))["patients"]["totalCount"]
    return count


def token_count(document: str) -> int:
    """graphql-core's own count (comments included), independent of the code under test."""
    count: int = getattr(parse(document), "token_count")  # noqa: B009 - set by the parser
    return count


# --- Depth ---------------------------------------------------------------------------------------

# From a Patient back to a Patient: five fields deep.
CYCLE = ["primaryProvider", "records(first: 1)", "edges", "node", "patient"]


def create_patient_selecting(depth: int) -> str:
    """createPatient (1) > patient (2) > a chain of fields > id: ``depth`` fields on the path."""
    chain = [CYCLE[i % len(CYCLE)] for i in range(depth - 3)]
    inner = "id"
    for field in reversed(chain):
        has_id = field in ("primaryProvider", "node", "patient")
        inner = f"{field} {{ {'id ' if has_id else ''}{inner} }}"
    return f"""mutation Deep($input: CreatePatientInput!) {{
      createPatient(input: $input) {{ patient {{ {inner} }} }} }}"""


async def test_depth_at_the_limit_runs(api: Api) -> None:
    body = await api.query(create_patient_selecting(MAX_DEPTH), {"input": CREATE_PATIENT_INPUT})
    assert "errors" not in body, body["errors"]
    assert body["data"]["createPatient"]["patient"]["primaryProvider"] is None
    assert await patients_in_tenant(api) == 1


async def test_depth_over_the_limit_is_refused_before_anything_runs(api: Api) -> None:
    body = await api.query(create_patient_selecting(MAX_DEPTH + 1), {"input": CREATE_PATIENT_INPUT})
    refused(body, f"is {MAX_DEPTH + 1} fields deep", f"the limit is {MAX_DEPTH}")
    assert await patients_in_tenant(api) == 0


async def test_depth_counts_through_fragments(api: Api, app: Starlette) -> None:
    query = """query { records(first: 1) { edges { node { provider { ...P } } } } }
      fragment P on Provider { records(first: 1) { edges { node { ...R } } } }
      fragment R on MedicalRecord { patient { records(first: 1) { edges { node { id } } } } }"""
    # records > edges > node > provider > records > edges > node > patient > records > edges
    # > node > id: 12 fields.
    assert "errors" not in await api.query(query)
    deeper = query.replace("node { id }", "node { patient { id } }")
    async with count_statements(app.state.services.engine) as log:
        body = await api.query(deeper)
    refused(body, "is 13 fields deep", "the limit is 12")
    assert not [s for s in log.statements if "medical_records" in s]


async def test_graphiql_introspection_query_passes(api: Api) -> None:
    # What GraphiQL sends (graphql-js getIntrospectionQuery), with every option it may turn on.
    query = get_introspection_query(
        descriptions=True,
        specified_by_url=True,
        directive_is_repeatable=True,
        schema_description=True,
        input_value_deprecation=True,
        one_of=True,
    )
    response = await api.post(query)  # no token: introspection is open
    body = response.json()
    assert "errors" not in body, body["errors"]
    assert body["data"]["__schema"]["queryType"]["name"] == "Query"
    assert body["extensions"]["cost"] > 0


async def test_deep_introspection_is_still_limited(api: Api) -> None:
    # `ofType` adds no depth, but walking from types to fields to types again does.
    inner = "name"
    for _ in range(6):
        inner = f"fields {{ type {{ {inner} }} }}"
    body = await api.query(f"{{ __schema {{ types {{ {inner} }} }} }}")
    # graphql-core's own introspection depth rule refuses it too (BAD_USER_INPUT).
    assert "QUERY_TOO_COMPLEX" in error_codes(body)
    messages = [error["message"] for error in body["errors"]]
    assert "the operation is 15 fields deep; the limit is 12" in messages


# --- Aliases -------------------------------------------------------------------------------------

TEN_ALIASES = " ".join(f"a{i}: id" for i in range(10))


def aliased_mutation(extra: int) -> str:
    """Ten aliases in fragment Ten, spread three times: directly, and twice through a nested
    fragment; plus ``extra`` aliases of the operation itself."""
    own = " ".join(f"x{i}: id" for i in range(extra))
    return f"""mutation Aliases($input: CreatePatientInput!) {{
      createPatient(input: $input) {{ patient {{ {own} ...Ten ...Twice }} }} }}
      fragment Ten on Patient {{ {TEN_ALIASES} }}
      fragment Twice on Patient {{ ...Once ...Ten }}
      fragment Once on Patient {{ ...Ten }}"""


async def test_aliases_at_the_limit_run(api: Api) -> None:
    body = await api.query(aliased_mutation(0), {"input": CREATE_PATIENT_INPUT})
    assert "errors" not in body, body["errors"]
    assert await patients_in_tenant(api) == 1


async def test_aliases_reached_through_nested_fragments_are_counted(api: Api) -> None:
    # Each of fragment Ten's aliases is written once, but used three times: 30 + 1 = 31.
    body = await api.query(aliased_mutation(1), {"input": CREATE_PATIENT_INPUT})
    refused(body, "uses 31 aliases", f"the limit is {MAX_ALIASES}")
    assert await patients_in_tenant(api) == 0


async def test_fragments_doubling_up_are_counted_quickly(api: Api) -> None:
    # Each fragment spreads the next twice: 2**40 aliases, measured in linear time.
    levels = 40
    fragments = "\n".join(
        f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)
    )
    query = f"{{ ...F0 }}\n{fragments}\nfragment F{levels} on Query {{ a: __typename }}"
    started = time.perf_counter()
    body = await api.query(query)
    assert time.perf_counter() - started < 5
    refused(body, f"uses {2**levels} aliases")


# --- Tokens --------------------------------------------------------------------------------------


def padded_mutation(tokens: int, *, with_comments: bool = False) -> str:
    """A createPatient document of exactly ``tokens`` tokens, padded with values of a list
    argument (or with comments, which count as tokens too)."""
    base = """mutation Tokens($input: CreatePatientInput!) { createPatient(input: $input) {
      patient { id records(first: 1, filter: {status: [DRAFT]}) { totalCount } } } }"""
    padding = tokens - token_count(base)
    filler = "\n# padding\n" if with_comments else " DRAFT"
    document = base.replace("[DRAFT", "[DRAFT" + filler * padding)
    assert token_count(document) == tokens
    return document


async def test_tokens_at_the_limit_run(api: Api) -> None:
    body = await api.query(padded_mutation(MAX_TOKENS), {"input": CREATE_PATIENT_INPUT})
    assert "errors" not in body, body["errors"]
    assert await patients_in_tenant(api) == 1


@pytest.mark.parametrize("with_comments", [False, True], ids=["fields", "comments"])
async def test_tokens_over_the_limit_are_refused_before_anything_runs(
    api: Api, with_comments: bool
) -> None:
    document = padded_mutation(MAX_TOKENS + 1, with_comments=with_comments)
    body = await api.query(document, {"input": CREATE_PATIENT_INPUT})
    refused(body, f"has {MAX_TOKENS + 1} tokens", f"the limit is {MAX_TOKENS}")
    assert body["extensions"]["cost"] == 0  # never parsed: nothing could run
    assert await patients_in_tenant(api) == 0


async def test_a_huge_document_is_refused_without_being_counted_to_the_end(api: Api) -> None:
    document = "{ " + " __typename" * 50_000 + " }"
    body = await api.query(document)
    refused(body, f"has more than {4 * MAX_TOKENS} tokens", f"the limit is {MAX_TOKENS}")


async def test_a_syntax_error_is_still_bad_user_input(api: Api) -> None:
    body = await api.query("{ patients { edges { node { id } }")
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert body["extensions"]["cost"] == 0


# --- Cost ----------------------------------------------------------------------------------------

# cost = 1 (me) + 1 (its patient) + 1 (patients)
#        + p x (1 (edges) + 1 (node) + 1 (records) + r x 2 (edges, node))
NESTED = """query Nested($p: Int, $r: Int) { me { subject patient { id } }
  patients(first: $p) { edges { node { records(first: $r) { edges { node { id } } } } } } }"""


def nested_cost(p: int, r: int) -> int:
    return 3 + p * (3 + 2 * r)


async def test_cost_is_reported_as_the_model_says(api: Api, factory: Factory) -> None:
    provider = await factory.provider()
    patient = await factory.patient()
    await factory.record(patient, provider)
    # 1 (records) + 10 x (1 (edges) + 1 (node) + 1 (provider)); scalars are free.
    body = await api.query(
        "{ records(first: 10) { totalCount edges { node { id status provider { id } } } } }"
    )
    assert "errors" not in body
    assert body["extensions"] == {"cost": 31}
    # A connection without `first` has its default, 20; a list of rows without it, the most rows
    # a record holds (25 diagnoses, 20 attachments, 32 status changes), each with its selection;
    # the record's own JSON lists count once.
    body = await api.query(
        """{ records { edges { node { diagnoses { id record { id } } attachments { id }
             statusHistory { status } prescriptions { dosage } } } } me { subject } }"""
    )
    assert body["extensions"]["cost"] == 1 + 20 * (1 + 1 + 25 * 2 + 20 + 32 + 1) + 1
    assert (await api.query("{ __typename }"))["extensions"]["cost"] == 0


async def test_variables_for_first_are_honoured(api: Api) -> None:
    cases: list[tuple[dict[str, Any], int]] = [
        ({"p": 3, "r": 4}, nested_cost(3, 4)),
        ({"p": 3, "r": None}, nested_cost(3, 20)),  # null means the default
        ({"p": 3}, nested_cost(3, 20)),  # so does an absent variable
    ]
    for variables, expected in cases:
        body = await api.query(NESTED, variables)
        assert "errors" not in body, body["errors"]
        assert body["extensions"]["cost"] == expected, variables
    # A variable's default counts when the variable is not sent.
    with_default = NESTED.replace("$r: Int", "$r: Int = 7")
    body = await api.query(with_default, {"p": 2})
    assert body["extensions"]["cost"] == nested_cost(2, 7)


def test_a_cost_no_variable_changes_is_fixed() -> None:
    """A one-statement plan (schema/execution.py) keeps such a cost per operation."""
    schema = graphql_schema(build_schema())
    literal = NESTED.replace("first: $p", "first: 3").replace("first: $r", "first: 4")
    for document, fixed in ((literal, nested_cost(3, 4)), (NESTED, None)):
        parsed = parse(document)
        operation = parsed.definitions[0]
        assert isinstance(operation, OperationDefinitionNode)
        assert fixed_query_cost(schema, parsed, operation) == fixed
        if fixed is not None:
            variables = coerced_variables(schema, operation, {"p": 9, "r": 9})
            assert query_cost(schema, parsed, operation, variables) == fixed


async def _patient_token(api: Api, factory: Factory) -> str:
    await factory.patient(cognito_sub="limits-patient")
    return api.token(subject="limits-patient", groups=("patient",))


async def _provider_token(api: Api, factory: Factory) -> str:
    await factory.provider(cognito_sub="limits-provider")
    return api.token(subject="limits-provider", groups=("provider",))


async def test_patient_cost_at_and_over_the_limit(api: Api, factory: Factory) -> None:
    token = await _patient_token(api, factory)
    # 3 + 34 x (3 + 2 x 72) = 5001: one too many. With `me` selecting no patient, 5000.
    assert nested_cost(34, 72) == PATIENT_COST_LIMIT + 1
    at_limit = NESTED.replace("patient { id }", "")
    body = await api.query(at_limit, {"p": 34, "r": 72}, token=token)
    assert "errors" not in body, body["errors"]
    assert body["extensions"]["cost"] == PATIENT_COST_LIMIT

    body = await api.query(NESTED, {"p": 34, "r": 72}, token=token)
    refused(
        body,
        f"estimated cost is {PATIENT_COST_LIMIT + 1}",
        f"the limit for the patient role is {PATIENT_COST_LIMIT}",
    )
    assert body["extensions"]["cost"] == PATIENT_COST_LIMIT + 1


async def test_a_patient_is_refused_where_a_provider_passes(
    api: Api, factory: Factory, app: Starlette
) -> None:
    patient_token = await _patient_token(api, factory)
    provider_token = await _provider_token(api, factory)
    variables = {"p": 50, "r": 100}
    expected = nested_cost(50, 100)
    engine = app.state.services.engine

    async with count_statements(engine) as log:
        body = await api.query(NESTED, variables, token=provider_token)
    assert "errors" not in body, body["errors"]
    assert body["extensions"]["cost"] == expected
    assert [s for s in log.statements if "medical_records" in s]

    async with count_statements(engine) as log:
        body = await api.query(NESTED, variables, token=patient_token)
    refused(body, f"estimated cost is {expected}", "the limit for the patient role is 5000")
    assert body["extensions"]["cost"] == expected
    assert not [s for s in log.statements if "medical_records" in s]


async def test_admin_and_provider_cost_under_and_over_the_limit(api: Api, factory: Factory) -> None:
    tokens = {"admin": api.token(), "provider": await _provider_token(api, factory)}
    # 1 + 100 x (1 + 1 + 1 + 17 x (1 + 1 + 1 + 25 diagnoses)) = 47901
    under = """{ patients(first: 100) { edges { node { records(first: 17) { edges { node {
      provider { id } diagnoses { id } } } } } } } }"""
    # attachments too: 1 + 100 x (3 + 17 x (3 + 25 + 20)) = 81901
    over = under.replace("diagnoses { id }", "diagnoses { id } attachments { id }")
    for role, token in tokens.items():
        body = await api.query(under, token=token)
        assert "errors" not in body, body["errors"]
        assert body["extensions"]["cost"] == 47901
        body = await api.query(over, token=token)
        refused(body, "estimated cost is 81901", f"the limit for the {role} role is 50000")


async def test_mobile_query_fits(api: Api, factory: Factory) -> None:
    """50 patients, each with its provider and 10 records with provider, diagnoses, attachments."""
    provider = await factory.provider()
    for _ in range(3):
        patient = await factory.patient(primary_provider_id=provider["id"])
        record = await factory.record(patient, provider)
        await factory.diagnosis(record)
        await factory.attachment(record)
    query = """{ patients(first: 50) { edges { node { id givenName familyName
      primaryProvider { id familyName }
      records(first: 10) { edges { node { id status visitDate provider { id familyName }
        diagnoses { icd10Code type } attachments { id fileName } } } } } } } }"""
    body = await api.query(query, token=await _provider_token(api, factory))
    assert "errors" not in body, body["errors"]
    assert len(body["data"]["patients"]["edges"]) == 3
    # 1 + 50 x (1 + 1 + 1 + (1 + 10 x (1 + 1 + 1 + 25 diagnoses + 20 attachments)))
    assert body["extensions"]["cost"] == 24201


async def test_callers_without_a_role_get_the_smallest_limit(api: Api) -> None:
    body = await api.query(NESTED, {"p": 34, "r": 72}, token=api.token(groups=()))
    refused(body, "the limit for callers without a role is 5000")


async def test_a_document_sent_again_is_parsed_and_validated_once(api: Api) -> None:
    """Parsing and validation are cached per process; the cost (which depends on the variables
    and the caller) is still measured, and the depth still refused, on every request."""
    fits = "query Cached($n: Int) { patients(first: $n) { edges { node { id } } } }"
    deep = create_patient_selecting(MAX_DEPTH + 1)
    variables = {"n": 1, "input": CREATE_PATIENT_INPUT}
    for query in (fits, deep):
        await api.post(query, variables)
    parsed, validated = cached_parse.cache_info(), _cached_validation.cache_info()
    first = await api.post(fits, {"n": 1})
    second = await api.post(fits, {"n": 3})
    assert first.json()["extensions"]["cost"] == 1 + 1 * (1 + 1)
    assert second.json()["extensions"]["cost"] == 1 + 3 * (1 + 1)
    refused((await api.post(deep, variables)).json(), f"is {MAX_DEPTH + 1} fields deep")
    assert cached_parse.cache_info().hits == parsed.hits + 3
    assert cached_parse.cache_info().misses == parsed.misses
    assert _cached_validation.cache_info().hits == validated.hits + 3
    assert _cached_validation.cache_info().misses == validated.misses
    assert await patients_in_tenant(api) == 0


# --- Cost from the values graphql-core coerces ---------------------------------------------------

# The shapes a page size given by a variable can take: each document costs nested_cost(p, r)
# for the coerced p and r, and pages by them.
FRAGMENTED = """query Nested($p: Int, $r: Int) { me { subject patient { id } }
  patients(first: $p) { edges { node { ...Pages } } } }
fragment Pages on Patient { ... on Patient { records(first: $r) { edges { node { id } } } } }"""
INCLUDED = NESTED.replace("$r: Int)", "$r: Int, $with: Boolean!)").replace(
    "records(first: $r)", "records(first: $r) @include(if: $with)"
)
DEFAULTED = NESTED.replace("$r: Int", "$r: Int = 2")
COERCED_SHAPES: list[tuple[str, dict[str, Any], int, int]] = [
    (NESTED, {"p": 2.0, "r": 1.0}, 2, 1),
    (NESTED, {"p": 1e2, "r": 3.0}, 100, 3),  # JSON's 1e2
    (NESTED, {"p": 2.0, "r": None}, 2, 20),  # null: the default page size
    (FRAGMENTED, {"p": 3.0, "r": 2.0}, 3, 2),
    (INCLUDED, {"p": 2.0, "r": 3.0, "with": True}, 2, 3),
    (DEFAULTED, {"p": 2.0}, 2, 2),  # absent: the variable's default
    (DEFAULTED, {"p": 2.0, "r": 1.0}, 2, 1),
]


# 1 + 100 x (1 + 1 + 1 + 100 x (1 + 1 + 1 + 1 + 1)) = 50301
BIG = """query Big($p: Int, $r: Int) { patients(first: $p) { edges { node { ...Pages } } } }
fragment Pages on Patient { records(first: $r) { edges { node {
  provider { id } diagnoses { id } attachments { id } } } } }"""


async def _patients_with_records(factory: Factory, patients: int, records: int) -> None:
    provider = await factory.provider()
    for _ in range(patients):
        patient = await factory.patient()
        for _ in range(records):
            await factory.record(patient, provider)


@pytest.mark.parametrize(("query", "variables", "p", "r"), COERCED_SHAPES)
async def test_page_sizes_are_costed_as_graphql_core_coerces_them_and_pages_match(
    api: Api, factory: Factory, query: str, variables: dict[str, Any], p: int, r: int
) -> None:
    await _patients_with_records(factory, patients=4, records=4)
    body = await api.query(query, variables)
    assert "errors" not in body, body["errors"]
    assert body["extensions"]["cost"] == nested_cost(p, r)
    edges = body["data"]["patients"]["edges"]
    assert len(edges) == min(p, 4)
    for edge in edges:
        assert len(edge["node"]["records"]["edges"]) == min(r, 4)


async def test_float_page_sizes_over_the_limit_are_refused_as_their_integers(
    api: Api, factory: Factory, app: Starlette
) -> None:
    token = await _patient_token(api, factory)
    # nested_cost(34, 72) is one over the patient role's limit, as floats too.
    for variables in ({"p": 34.0, "r": 72.0}, {"p": 34, "r": 72.0}, {"p": 3.4e1, "r": 72}):
        async with count_statements(app.state.services.engine) as log:
            body = await api.query(NESTED, variables, token=token)
        refused(body, f"estimated cost is {PATIENT_COST_LIMIT + 1}")
        assert body["extensions"]["cost"] == PATIENT_COST_LIMIT + 1
        assert not [s for s in log.statements if "medical_records" in s]
    # The shape: pages of 100 under pages of 100, through a fragment, by an admin.
    body = await api.query(BIG, {"p": 100.0, "r": 100.0})
    refused(body, "estimated cost is 480301", "the limit for the admin role is 50000")


@pytest.mark.parametrize(
    "variables",
    [{"p": "3", "r": 1}, {"p": 3.5, "r": 1}, {"p": True, "r": 1}, {"p": [3], "r": 1}],
    ids=["string", "fraction", "boolean", "list"],
)
async def test_page_sizes_int_does_not_accept_are_bad_user_input(
    api: Api, factory: Factory, variables: dict[str, Any]
) -> None:
    await _patients_with_records(factory, patients=1, records=1)
    body = await api.query(NESTED, variables)
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    assert body.get("data") is None


def test_a_float_variable_costs_what_its_integer_costs() -> None:
    schema = graphql_schema(build_schema())
    parsed = parse(NESTED)
    operation = parsed.definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    for raw in ({"p": 100.0, "r": 100.0}, {"p": 100, "r": 100}, {"p": 1e2, "r": 100}):
        coerced = coerced_variables(schema, operation, raw)
        assert query_cost(schema, parsed, operation, coerced) == nested_cost(100, 100)
    assert coerced_variables(schema, operation, {"p": "100"}) is None


def test_a_literal_page_size_is_fixed_whatever_the_other_arguments_variables() -> None:
    """A filter's variable, unknown when the fixed cost is measured, leaves ``first`` as given."""
    schema = graphql_schema(build_schema())
    parsed = parse("""query Filtered($status: RecordStatus!) {
      records(first: 5, filter: {status: [$status]}) { edges { node { id } } } }""")
    operation = parsed.definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    assert fixed_query_cost(schema, parsed, operation) == 1 + 5 * (1 + 1)


async def test_a_cost_no_variable_changes_is_measured_once_per_document(api: Api) -> None:
    """A variable that gives no page size (here ``after``) leaves the cost fixed."""
    query = f"# fixed cost {time.monotonic_ns()}\n" + (
        "query Fixed($after: String) {"
        " patients(first: 2, after: $after) { edges { node { id } } } }"
    )
    before = _cached_fixed_cost.cache_info()
    for _ in range(3):
        body = await api.query(query, {"after": None})
        assert "errors" not in body, body["errors"]
        assert body["extensions"]["cost"] == 1 + 2 * (1 + 1)
    assert _cached_fixed_cost.cache_info().misses == before.misses + 1
    assert _cached_fixed_cost.cache_info().hits == before.hits + 2


PREPARED = """query PreparedPages($p: Int, $r: Int) {
  patients(first: $p) { edges { node { id records(first: $r) { edges { node { id } } } } } }
}"""


def prepared_cost(p: int, r: int) -> int:
    return 1 + p * (3 + 2 * r)


async def _executions(api: Api, executor: str) -> float:
    metrics = (await api.client.get("/metrics")).text
    found = re.search(
        rf'^medrec_graphql_query_executions_total\{{executor="{executor}"\}} (\S+)$',
        metrics,
        re.MULTILINE,
    )
    return float(found.group(1)) if found else 0.0


async def test_the_prepared_path_costs_float_page_sizes_as_their_integers(
    api: Api, factory: Factory, app: Starlette
) -> None:
    """A document recorded as one statement (schema/execution.py) caches no cost when
    a variable gives a page size: floats are costed, refused and paged as their integers."""
    await _patients_with_records(factory, patients=3, records=3)
    token = api.token()
    query = f"# prepared floats {time.monotonic_ns()}\n{PREPARED}"
    for _ in range(2):  # recorded by the pipeline, then answered by the prepared path
        body = await api.query(query, {"p": 1, "r": 1}, token=token)
        assert "errors" not in body, body["errors"]
    prepared = await _executions(api, "prepared")
    body = await api.query(query, {"p": 2.0, "r": 2.0}, token=token)
    assert await _executions(api, "prepared") == prepared + 1
    assert "errors" not in body, body["errors"]
    assert body["extensions"]["cost"] == prepared_cost(2, 2)
    edges = body["data"]["patients"]["edges"]
    assert [len(edge["node"]["records"]["edges"]) for edge in edges] == [2, 2]

    # 1 + 25 x (3 + 2 x 100) is over the patient role's 5000.
    patient = await _patient_token(api, factory)
    assert prepared_cost(25, 100) > PATIENT_COST_LIMIT
    async with count_statements(app.state.services.engine) as log:
        body = await api.query(query, {"p": 25.0, "r": 100.0}, token=patient)
    refused(body, f"estimated cost is {prepared_cost(25, 100)}")
    assert body["extensions"]["cost"] == prepared_cost(25, 100)
    assert not [s for s in log.statements if "medical_records" in s]
    assert await _executions(api, "prepared") == prepared + 1
