"""The cost estimate bounds what a query returns (schema/limits.py), whatever the query.

Generated queries (hypothesis-graphql) get page sizes as literals, nulls and variables (ints,
integral floats such as ``30.0``, nulls, absent ones, defaults), some inside a fragment, some
under ``@include``; every response's object count must not exceed its ``extensions.cost``, and
sending the page sizes as floats must cost exactly what sending them as ints costs, on the
pipeline and on the prepared path (each document is sent twice).

Lists of rows without ``first`` (a record's diagnoses, attachments, status history) are costed
at the most rows a record holds, and the seeded records have some of each. A record's JSON lists
(prescriptions, lab results) are parts of its row, bounded by input validation, and count once:
they are left out of the queries. ``MEDREC_FUZZ_EXAMPLES`` sets the examples per role.
"""

from __future__ import annotations

from typing import Any

import pytest
from graphql import (
    ArgumentNode,
    DirectiveNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    IntValueNode,
    NamedTypeNode,
    NameNode,
    NonNullTypeNode,
    NullValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValueNode,
    VariableDefinitionNode,
    VariableNode,
    get_named_type,
    is_leaf_type,
    is_required_argument,
    print_ast,
)
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis_graphql import from_schema

from models.enums import RecordStatus
from schema.schema import build_schema
from schema.strawberry_adapter import graphql_schema
from tests.api_client import Api
from tests.factories import Factory
from tests.fuzz.conftest import fuzz_settings

SCHEMA: GraphQLSchema = graphql_schema(build_schema())
# Root fields that list or reach the seeded rows (by-id lookups would find nothing).
ROOT_FIELDS = ("me", "patients", "providers", "records", "auditEvents")
# Enough rows that pages over the default 20 fill: the float bug costed 30.0 as 20.
SEEDED_PATIENTS = 30
OWN_RECORDS = 30
ROWS_UNDER_A_RECORD = 4

# Parts of a record's own row, not rows: the cost model counts them once.
JSON_LISTS = frozenset({("MedicalRecord", "prescriptions"), ("MedicalRecord", "labResults")})

# A page of one record whose lists without `first` hold more rows than the page costs besides.
SMALL_PAGE_OF_FULL_RECORDS = """query Fuzzed { records(first: 1) { edges { node {
  diagnoses { id } attachments { id } statusHistory { status } } } } }"""
# An empty page still returns its pageInfo.
EMPTY_PAGE = """query Fuzzed($first: Int) { me { patient { records(first: $first) {
  pageInfo { endCursor } } } } providers(first: 0) { pageInfo { hasNextPage } } }"""

# Role: the token's subject (the seeded provider's and patient's cognito_sub).
SUBJECTS = {"admin": "fuzz-admin", "provider": "fuzz-doctor", "patient": "fuzz-patient"}


class _Operation:
    """A generated document rewritten: its page sizes and directives, and the variables sent
    with it twice (integral numbers as ints, then as the floats drawn)."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw
        self.definitions: list[VariableDefinitionNode] = []
        self.as_ints: dict[str, Any] = {}
        self.as_drawn: dict[str, Any] = {}

    def selection_set(self, node: SelectionSetNode, parent: GraphQLObjectType) -> SelectionSetNode:
        selections: list[Any] = []
        for selection in node.selections:
            if not isinstance(selection, FieldNode):
                continue  # no abstract types are reachable from ROOT_FIELDS
            field = parent.fields.get(selection.name.value)
            if field is None or (parent.name, selection.name.value) in JSON_LISTS:
                continue
            selections.append(self.field(selection, field))
        # hypothesis-graphql's early examples seldom reach a connection's nodes.
        named = {selection.name.value for selection in selections}
        if "pageInfo" in parent.fields and "edges" not in named and not self.draw(st.booleans()):
            edges = parent.fields["edges"]
            drawn = self.drawn_selection(get_named_type(edges.type), depth=2)
            selections.append(
                self.field(FieldNode(name=NameNode(value="edges"), selection_set=drawn), edges)
            )
        if not selections:
            selections.append(FieldNode(name=NameNode(value="__typename")))
        return SelectionSetNode(selections=tuple(selections))

    def drawn_selection(self, type_: GraphQLNamedType, depth: int) -> SelectionSetNode:
        """Some of ``type_``'s fields (a connection's edges and an edge's node always), objects
        among them ``depth`` levels of nodes deep."""
        assert isinstance(type_, GraphQLObjectType)
        always = [name for name in ("edges", "node") if name in type_.fields]
        optional = sorted(
            name
            for name, field in type_.fields.items()
            if name not in always
            and not any(is_required_argument(argument) for argument in field.args.values())
            and (depth > 0 or is_leaf_type(get_named_type(field.type)))
        )
        names = always + self.draw(
            st.lists(st.sampled_from(optional), min_size=1, max_size=3, unique=True)
        )
        selections = []
        for name in names:
            child = get_named_type(type_.fields[name].type)
            selection_set = None
            if isinstance(child, GraphQLObjectType):
                selection_set = self.drawn_selection(child, depth if name in always else depth - 1)
            selections.append(FieldNode(name=NameNode(value=name), selection_set=selection_set))
        return SelectionSetNode(selections=tuple(selections))

    def field(self, node: FieldNode, field: GraphQLField) -> FieldNode:
        child = get_named_type(field.type)
        selection_set = None
        if node.selection_set is not None and isinstance(child, GraphQLObjectType):
            selection_set = self.selection_set(node.selection_set, child)
        arguments: tuple[ArgumentNode, ...] = ()
        directives: tuple[DirectiveNode, ...] = ()
        if "first" in field.args:
            first = self.first()
            if first is not None:
                arguments = (ArgumentNode(name=NameNode(value="first"), value=first),)
            if self.draw(st.booleans()):
                directives = (self.include(),)
        return FieldNode(
            alias=node.alias,
            name=node.name,
            arguments=arguments,
            directives=directives,
            selection_set=selection_set,
        )

    def first(self) -> ValueNode | None:
        """``first`` as a literal, a null, a variable, or absent (None)."""
        # Small pages, and pages over the default 20 (where a float once counted as 20).
        # Pages over the default 20 (where a float once counted as 20), and small ones. Hypothesis
        # tries the first choices first: the interesting ones lead.
        size = self.draw(
            st.integers(min_value=21, max_value=32) | st.integers(min_value=0, max_value=4)
        )
        given = self.draw(st.sampled_from(["variable", "literal", "absent", "null"]))
        if given == "absent":
            return None
        if given == "literal":
            return IntValueNode(value=str(size))
        if given == "null":
            return NullValueNode()
        name = f"first{len(self.definitions)}"
        default = self.draw(st.none() | st.integers(min_value=0, max_value=32))
        self.definitions.append(
            VariableDefinitionNode(
                variable=VariableNode(name=NameNode(value=name)),
                type=NamedTypeNode(name=NameNode(value="Int")),
                default_value=None if default is None else IntValueNode(value=str(default)),
                directives=(),
            )
        )
        sent = self.draw(st.sampled_from(["float", "int", "absent", "null"]))
        if sent != "absent":
            self.as_ints[name] = None if sent == "null" else size
            self.as_drawn[name] = float(size) if sent == "float" else self.as_ints[name]
        return VariableNode(name=NameNode(value=name))

    def include(self) -> DirectiveNode:
        name = f"include{len(self.definitions)}"
        self.definitions.append(
            VariableDefinitionNode(
                variable=VariableNode(name=NameNode(value=name)),
                type=NonNullTypeNode(type=NamedTypeNode(name=NameNode(value="Boolean"))),
                directives=(),
            )
        )
        self.as_ints[name] = self.as_drawn[name] = self.draw(st.booleans())
        return DirectiveNode(
            name=NameNode(value="include"),
            arguments=(
                ArgumentNode(
                    name=NameNode(value="if"), value=VariableNode(name=NameNode(value=name))
                ),
            ),
        )


@st.composite
def costed_queries(draw: st.DrawFn) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A query, its variables with integral numbers as ints, and as drawn (floats among them)."""
    generated: DocumentNode = draw(
        from_schema(SCHEMA, fields=ROOT_FIELDS, allow_null=False, print_ast=lambda d: d)
    )
    operation = generated.definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    assert SCHEMA.query_type is not None
    rewrite = _Operation(draw)
    selection_set = rewrite.selection_set(operation.selection_set, SCHEMA.query_type)
    definitions: list[Any] = []
    if draw(st.booleans()):  # the page sizes' variables used inside a fragment
        definitions.append(
            FragmentDefinitionNode(
                name=NameNode(value="Root"),
                type_condition=NamedTypeNode(name=NameNode(value="Query")),
                directives=(),
                selection_set=selection_set,
            )
        )
        spread = FragmentSpreadNode(name=NameNode(value="Root"), directives=())
        selection_set = SelectionSetNode(selections=(spread,))
    definitions.insert(
        0,
        OperationDefinitionNode(
            operation=operation.operation,
            name=NameNode(value="Fuzzed"),
            variable_definitions=tuple(rewrite.definitions),
            directives=(),
            selection_set=selection_set,
        ),
    )
    query = print_ast(DocumentNode(definitions=tuple(definitions)))
    return query, rewrite.as_ints, rewrite.as_drawn


def objects_in(value: Any) -> int:
    """The GraphQL object values in response data: every JSON object below the root."""
    if isinstance(value, dict):
        return 1 + sum(objects_in(member) for member in value.values())
    if isinstance(value, list):
        return sum(objects_in(member) for member in value)
    return 0


@pytest.fixture
async def seeded(api: Api, factory: Factory) -> None:
    """Enough rows that pages over the default 20 fill, for each role's token."""
    doctor = await factory.provider(cognito_sub=SUBJECTS["provider"])
    other = await factory.provider()
    for n in range(SEEDED_PATIENTS):
        own = n == 0
        patient = await factory.patient(
            primary_provider_id=doctor["id"],
            cognito_sub=SUBJECTS["patient"] if own else None,
        )
        for m in range(OWN_RECORDS if own else 1):
            record = await factory.record(patient, doctor if m % 3 else other)
            # Rows under every record, for the lists read without `first`: more of them than
            # the objects a small page of records costs besides.
            for _ in range(ROWS_UNDER_A_RECORD):
                await factory.diagnosis(record)
                await factory.attachment(record)
                await factory.status_event(record, status=RecordStatus.FINALIZED)
    for _ in range(SEEDED_PATIENTS):  # audit events, for auditEvents' pages
        await api.query("{ me { subject } }")


@pytest.mark.parametrize("role", list(SUBJECTS))
@fuzz_settings(40)
@given(generated=costed_queries())
@example(generated=(SMALL_PAGE_OF_FULL_RECORDS, {}, {}))
@example(generated=(EMPTY_PAGE, {"first": 0}, {"first": 0.0}))
async def test_no_query_returns_more_objects_than_its_estimated_cost(
    api: Api, seeded: None, role: str, generated: tuple[str, dict[str, Any], dict[str, Any]]
) -> None:
    query, as_ints, as_drawn = generated
    token = api.token(subject=SUBJECTS[role], groups=(role,))
    costs = []
    # Sent twice: the second request of a one-statement document takes the prepared path.
    for variables in (as_ints, as_drawn):
        body = await api.query(query, variables, token=token)
        cost = body["extensions"]["cost"]
        data = body.get("data")
        returned = objects_in(data) - (1 if isinstance(data, dict) else 0)  # less the root
        assert returned <= cost, (query, variables, returned, cost, body.get("errors"))
        costs.append(cost)
    assert costs[0] == costs[1], (query, as_ints, as_drawn)
