"""Abuse limits: every operation is measured, and refused before execution when it asks too much.

Four limits, each refused with ``QUERY_TOO_COMPLEX`` and a message naming the measured value and
the limit (all configurable, see ``app.settings``):

- **tokens** (``query_max_tokens``, default 2000): the parser stops after that many tokens
  (comments included), so an oversized document never becomes an AST;
- **depth** (``query_max_depth``, default 12): the fields on the longest path from the operation
  to a leaf, fragments expanded; ``{ me { subject } }`` is 2 deep. ``ofType`` adds no depth: it
  unwraps a type reference (non-null, list) and is what makes introspection queries deep;
- **aliases** (``query_max_aliases``, default 30): every aliased field of the operation, fragment
  spreads expanded and each spread counted where it is used;
- **cost** (``query_cost_limit_<role>``; admin and provider 50000, patient 5000, callers without a
  role the smallest of the three), the estimate of how many objects the operation can return:

  - a field that returns an object (or a list of objects) costs 1, plus what is selected in it;
  - a leaf (scalar or enum, ``__typename``) costs 0;
  - a connection (a field with a ``first`` argument) costs 1 + ``first`` x what is selected in it:
    all of its children (edges, nodes and what they select, ``pageInfo``) exist ``first`` times,
    and at least once (``first: 0`` still returns a ``pageInfo``).
    ``first`` is the value graphql-core coerces and the resolvers page by (a variable's ``100.0``
    is the Int 100; an absent variable its definition's default, else the argument's, 20), and
    20 when that is null (``app.data.pagination.requested_page_size``);
  - a list of rows without ``first`` (a record's diagnoses, attachments, status history) costs
    the most rows it can hold x (1 + what is selected in each), as its field declares it
    (schema/fields.py) and the writes keep it: 25 diagnoses, 20 attachments, 32 status changes.
    A record's prescriptions and lab results are in its own row and count once;
  - every selection counts, whatever its type condition or ``@skip``/``@include``: the estimate
    is an upper bound.

  So ``{ records(first: 10) { edges { node { id provider { id } } } } }`` costs
  1 + 10 x (1 + 1 + 1) = 31. Every response reports the estimate in ``extensions.cost``, refused
  ones included (0 when the document did not parse).

Depth and aliases are validation rules, built once per process for each limit value, so the
validation cache here (keyed by parsed document and rule classes) keeps hitting; parsed
documents are cached here too. The cost is checked per request (the limit depends on the
caller's role), after validation and before execution (schema/pipeline.py); it is measured once
per document unless a variable gives a page size, and then from the coerced variables.
Strawberry's ``QueryDepthLimiter`` and ``MaxAliasesLimiter`` are not used: they build a new rule
class per instance, name no measured depth, expand fragments without memoizing (a few fragments
spreading each other twice take exponential time) and carry no error code.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLSyntaxError,
    InlineFragmentNode,
    Node,
    OperationDefinitionNode,
    SelectionSetNode,
    Source,
    ValidationContext,
    ValidationRule,
    VariableNode,
    get_named_type,
    parse,
)
from graphql.execution.values import get_argument_values, get_variable_values
from graphql.language import Lexer, TokenKind
from graphql.validation import NoSchemaIntrospectionCustomRule, specified_rules
from strawberry.schema.schema import validate_document
from strawberry.schema.schema_converter import GraphQLCoreConverter

from app.data.pagination import requested_page_size
from app.domain.errors import ApiError, BadUserInput, ErrorCode
from app.domain.viewer import effective_role
from models.enums import Role
from schema.fields import declared_relation

if TYPE_CHECKING:
    from graphql import ASTValidationRule
    from graphql.execution.values import VariableValues

    from app.domain.viewer import Viewer
    from app.settings import Settings

# Fields whose type is (or may be) an object type: those whose fields can be looked up.
_FieldsOwner = GraphQLObjectType | GraphQLInterfaceType


class QueryTooComplex(ApiError):
    code = ErrorCode.QUERY_TOO_COMPLEX


def too_complex(
    message: str,
    *,
    nodes: Sequence[Node] | None = None,
    source: Source | None = None,
    positions: Collection[int] | None = None,
) -> GraphQLError:
    """The error entry; schema/errors.py keeps the code of its ``ApiError``."""
    return GraphQLError(
        message,
        nodes=nodes,
        source=source,
        positions=positions,
        original_error=QueryTooComplex(message),
        extensions={"code": ErrorCode.QUERY_TOO_COMPLEX.value},
    )


def no_operation(operation_name: str | None) -> GraphQLError:
    """A document of several operations whose operationName picks none: nothing may run (the
    first operation is not a stand-in)."""
    message = (
        "the document has several operations: name the one to run in operationName"
        if operation_name is None
        else "operationName names no operation of the document"
    )
    return GraphQLError(
        message, original_error=BadUserInput(message), extensions={"code": ErrorCode.BAD_USER_INPUT}
    )


# --- Measuring a document. Fragments are measured once each (memoized), so the work stays linear
# in the size of the document however often they are spread; a fragment spread inside itself
# (invalid anyway) counts as nothing.


def _fragments(document: DocumentNode) -> dict[str, FragmentDefinitionNode]:
    return {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }


class _Measure:
    """Walks selection sets, expanding each fragment once."""

    def __init__(self, fragments: Mapping[str, FragmentDefinitionNode]) -> None:
        self.fragments = fragments
        self._memo: dict[str, int] = {}
        self._entered: set[str] = set()

    def fragment(self, name: str) -> int:
        if name in self._memo:
            return self._memo[name]
        definition = self.fragments.get(name)
        if definition is None or name in self._entered:
            return 0
        self._entered.add(name)
        value = self.selection_set(definition.selection_set)
        self._entered.discard(name)
        self._memo[name] = value
        return value

    def selection_set(self, selection_set: SelectionSetNode) -> int:
        raise NotImplementedError


class _Depth(_Measure):
    def selection_set(self, selection_set: SelectionSetNode) -> int:
        deepest = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                below = (
                    0
                    if selection.selection_set is None
                    else self.selection_set(selection.selection_set)
                )
                depth = below if selection.name.value == "ofType" else 1 + below
            elif isinstance(selection, InlineFragmentNode):
                depth = self.selection_set(selection.selection_set)
            else:
                assert isinstance(selection, FragmentSpreadNode)
                depth = self.fragment(selection.name.value)
            deepest = max(deepest, depth)
        return deepest


class _Aliases(_Measure):
    def selection_set(self, selection_set: SelectionSetNode) -> int:
        count = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                count += selection.alias is not None
                if selection.selection_set is not None:
                    count += self.selection_set(selection.selection_set)
            elif isinstance(selection, InlineFragmentNode):
                count += self.selection_set(selection.selection_set)
            else:
                assert isinstance(selection, FragmentSpreadNode)
                count += self.fragment(selection.name.value)
        return count


def query_depth(operation: OperationDefinitionNode, document: DocumentNode) -> int:
    return _Depth(_fragments(document)).selection_set(operation.selection_set)


def alias_count(operation: OperationDefinitionNode, document: DocumentNode) -> int:
    return _Aliases(_fragments(document)).selection_set(operation.selection_set)


def list_bound(field_def: GraphQLField) -> int | None:
    """The most rows a list field read without ``first`` can hold, as its field declares it."""
    declared = field_def.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
    follows = None if declared is None else declared_relation(declared)
    return None if follows is None else follows.most


class _Cost:
    """The cost model of the module docstring. Unknown fields (a document that failed
    validation) count by their shape: with a selection, 1 plus what they select."""

    def __init__(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        variable_values: VariableValues | None,
    ) -> None:
        self.schema = schema
        self.fragments = _fragments(document)
        self.variable_values = variable_values
        self._memo: dict[str, int] = {}
        self._entered: set[str] = set()
        self._paging: dict[int, GraphQLField] = {}  # by the id of a connection field's definition
        self.read_variables = False  # a page size came from a variable

    def _owner(self, type_name: str | None) -> _FieldsOwner | None:
        found = None if type_name is None else self.schema.get_type(type_name)
        return found if isinstance(found, _FieldsOwner) else None

    def fragment(self, name: str) -> int:
        if name in self._memo:
            return self._memo[name]
        definition = self.fragments.get(name)
        if definition is None or name in self._entered:
            return 0
        self._entered.add(name)
        owner = self._owner(definition.type_condition.name.value)
        value = self.selection_set(definition.selection_set, owner)
        self._entered.discard(name)
        self._memo[name] = value
        return value

    def selection_set(self, selection_set: SelectionSetNode, owner: _FieldsOwner | None) -> int:
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self.field(selection, owner)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                inner = owner if condition is None else self._owner(condition.name.value)
                total += self.selection_set(selection.selection_set, inner)
            else:
                assert isinstance(selection, FragmentSpreadNode)
                total += self.fragment(selection.name.value)
        return total

    def field(self, node: FieldNode, owner: _FieldsOwner | None) -> int:
        if node.selection_set is None:
            return 0  # a leaf
        definition = None if owner is None else owner.fields.get(node.name.value)
        child = None if definition is None else get_named_type(definition.type)
        children = self.selection_set(
            node.selection_set, child if isinstance(child, _FieldsOwner) else None
        )
        if definition is None or "first" not in definition.args:
            bound = None if definition is None else list_bound(definition)
            return 1 + children if bound is None else bound * (1 + children)
        # An empty page still has its pageInfo: what is selected exists at least once.
        return 1 + max(self.first(node, definition), 1) * children

    def first(self, node: FieldNode, definition: GraphQLField) -> int:
        """The page size the resolvers use: ``first`` as graphql-core coerces it for them."""
        if any(
            argument.name.value == "first" and isinstance(argument.value, VariableNode)
            for argument in node.arguments or ()
        ):
            self.read_variables = True
        # ``first`` alone: another argument (a filter's variable, absent when the fixed cost is
        # measured) must not decide it.
        paging = self._paging.get(id(definition))
        if paging is None:
            paging = self._paging[id(definition)] = GraphQLField(
                definition.type, args={"first": definition.args["first"]}
            )
        try:
            arguments = get_argument_values(paging, node, self.variable_values)
        except GraphQLError:
            # A value graphql-core refuses: nothing executes; the default stands in.
            arguments = {}
        first = arguments.get(paging.args["first"].out_name or "first")
        return max(requested_page_size(first if isinstance(first, int) else None), 0)


def coerced_variables(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    variables: Mapping[str, Any] | None,
) -> VariableValues | None:
    """The variables as graphql-core coerces them for execution; None when they do not
    coerce (then nothing executes)."""
    coerced = get_variable_values(
        schema, operation.variable_definitions or (), dict(variables or {})
    )
    return None if isinstance(coerced, list) else coerced


# The largest integer every JSON reader (JavaScript's numbers) holds exactly.
MAX_REPORTED_COST = 2**53 - 1


def query_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    variable_values: VariableValues | None = None,
) -> int:
    """The estimate with ``variable_values`` from ``coerced_variables``: the values execution
    uses, not the raw JSON (``100.0`` is the Int 100). Without them, page sizes given by
    variables are the arguments' defaults."""
    total, _ = _measured_cost(schema, document, operation, variable_values)
    return total


def fixed_query_cost(
    schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode
) -> int | None:
    """The cost whatever the variables, when no page size comes from one; else None."""
    total, read_variables = _measured_cost(schema, document, operation, None)
    return None if read_variables else total


def _measured_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    variable_values: VariableValues | None,
) -> tuple[int, bool]:
    """The cost, and whether a variable gave a page size."""
    cost = _Cost(schema, document, variable_values)
    total = cost.selection_set(operation.selection_set, schema.get_root_type(operation.operation))
    # Page sizes multiply: nested huge ones (refused later) would give a cost no JSON number
    # holds. Far above any limit, the reported cost stops growing.
    return min(total, MAX_REPORTED_COST), cost.read_variables


def count_tokens(query: str, *, stop_after: int) -> int | None:
    """The tokens of ``query`` as the parser's ``max_tokens`` counts them (comments included);
    None when there are more than ``stop_after`` or the lexer fails first."""
    lexer = Lexer(Source(query))
    count = 0
    try:
        while True:
            token = lexer.advance()
            skipped = lexer.last_token.next
            while skipped is not None and skipped is not token:  # the comments skipped over
                count += 1
                skipped = skipped.next
            if token.kind is TokenKind.EOF:
                return count
            count += 1
            if count > stop_after:
                return None
    except GraphQLSyntaxError:
        return None


# --- Validation rules, one class per limit value for the life of the process.


def _operations(context: ValidationContext) -> Iterator[OperationDefinitionNode]:
    for definition in context.document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            yield definition


def _operation_label(operation: OperationDefinitionNode) -> str:
    return f"operation {operation.name.value}" if operation.name else "the operation"


def _operation_rule(
    measure: Callable[[OperationDefinitionNode, DocumentNode], int],
    describe: Callable[[str, int, int], str],
    limit: int,
) -> type[ValidationRule]:
    """A validation rule refusing every operation whose ``measure`` exceeds ``limit``."""

    class OperationLimitRule(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            for operation in _operations(context):
                value = measure(operation, context.document)
                if value > limit:
                    message = describe(_operation_label(operation), value, limit)
                    context.report_error(too_complex(message, nodes=[operation]))

    return OperationLimitRule


# Cached per limit value: one rule class per process keeps the validation cache hitting.


@functools.cache
def depth_rule(limit: int) -> type[ValidationRule]:
    return _operation_rule(
        query_depth,
        lambda label, depth, limit: f"{label} is {depth} fields deep; the limit is {limit}",
        limit,
    )


@functools.cache
def alias_rule(limit: int) -> type[ValidationRule]:
    return _operation_rule(
        alias_count,
        lambda label, aliases, limit: (
            f"{label} uses {aliases} aliases (fragments expanded); the limit is {limit}"
        ),
        limit,
    )


# --- Caches, and what the pipeline (schema/pipeline.py) asks of the limits.

# Documents by (query, token limit). Bounded: every distinct query text would stay otherwise.
cached_parse = functools.lru_cache(maxsize=256)(parse)


class _Parsed:
    """A document from ``cached_parse``, hashed and compared by identity: that cache hands out
    one object per query text, and hashing a whole syntax tree costs 10-20 us a request."""

    __slots__ = ("document",)

    def __init__(self, document: DocumentNode) -> None:
        self.document = document  # held: the id stays this document's while it is cached

    def __hash__(self) -> int:
        return id(self.document)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Parsed) and other.document is self.document


@functools.lru_cache(maxsize=256)
def _cached_validation(
    schema: GraphQLSchema, parsed: _Parsed, rules: tuple[type[ValidationRule], ...]
) -> list[GraphQLError]:
    return validate_document(schema, parsed.document, rules)


@functools.lru_cache(maxsize=256)
def _cached_fixed_cost(schema: GraphQLSchema, parsed: _Parsed, position: int) -> int | None:
    operation = parsed.document.definitions[position]
    assert isinstance(operation, OperationDefinitionNode)
    return fixed_query_cost(schema, parsed.document, operation)


def operation_fixed_cost(
    schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode
) -> int | None:
    """``fixed_query_cost``, measured once per document from ``cached_parse`` and operation
    (keyed by its position: a node's own hash walks its whole tree)."""
    position = next(i for i, node in enumerate(document.definitions) if node is operation)
    return _cached_fixed_cost(schema, _Parsed(document), position)


def cost_limit(settings: Settings, viewer: Viewer | None) -> tuple[str, int]:
    """The caller's role, named for messages, and the cost it may spend on one operation."""
    role = None if viewer is None else effective_role(viewer)
    if role is Role.ADMIN:
        return "the admin role", settings.query_cost_limit_admin
    if role is Role.PROVIDER:
        return "the provider role", settings.query_cost_limit_provider
    if role is Role.PATIENT:
        return "the patient role", settings.query_cost_limit_patient
    lowest = min(
        settings.query_cost_limit_admin,
        settings.query_cost_limit_provider,
        settings.query_cost_limit_patient,
    )
    return "callers without a role", lowest


def parsed_document(query: str, max_tokens: int) -> DocumentNode | GraphQLError:
    """The document of ``query`` from the parse cache, or why it does not parse (the token
    limit named as a limit, with the measured count)."""
    try:
        return cached_parse(query, max_tokens=max_tokens)
    except GraphQLError as error:
        return _explained(error, query, max_tokens)
    except RecursionError as error:  # nesting deeper than the parser can descend
        return GraphQLError("the document is nested too deeply to parse", original_error=error)


def _explained(error: GraphQLError, query: str, limit: int) -> GraphQLError:
    """graphql-core aborts with a syntax error; say it is the limit, and by how much."""
    aborted = f"Syntax Error: Document contains more than {limit} tokens. Parsing aborted."
    if not isinstance(error, GraphQLSyntaxError) or error.message != aborted:
        return error
    # Counting on stops at a multiple of the limit: a huge document costs little.
    counted = count_tokens(query, stop_after=4 * limit)
    if counted is None:
        measured = f"more than {4 * limit}"
    elif counted <= limit:  # pragma: no cover - the parser counts the same way
        measured = f"more than {limit}"
    else:
        measured = str(counted)
    return too_complex(
        f"the document has {measured} tokens; the limit is {limit}",
        source=error.source,
        positions=error.positions,
    )


def validation_rules(
    settings: Settings, *, introspection: bool
) -> tuple[type[ASTValidationRule], ...]:
    """The specification's rules, the depth and alias limits, and the refusal of
    ``__schema``/``__type`` where introspection is off; one tuple per settings, so the
    validation cache keeps hitting."""
    return _rules(settings.query_max_depth, settings.query_max_aliases, introspection)


@functools.cache
def _rules(depth: int, aliases: int, introspection: bool) -> tuple[type[ASTValidationRule], ...]:
    hidden = () if introspection else (NoSchemaIntrospectionCustomRule,)
    return (*specified_rules, depth_rule(depth), alias_rule(aliases), *hidden)


def validation_errors(
    schema: GraphQLSchema, document: DocumentNode, rules: tuple[type[ASTValidationRule], ...]
) -> list[GraphQLError]:
    """The errors of a document from ``cached_parse`` against ``rules``, once per both."""
    return _cached_validation(schema, _Parsed(document), rules)


def operation_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    variables: Mapping[str, Any] | None,
    *,
    valid: bool,
) -> int:
    """The estimate for these variables. They are coerced only for a ``valid`` document:
    graphql-core refuses to coerce (or even look at) the variables of an invalid one, and
    nothing executes then."""
    cost = operation_fixed_cost(schema, document, operation)
    if cost is None:
        variable_values = coerced_variables(schema, operation, variables) if valid else None
        cost = query_cost(schema, document, operation, variable_values)
    return cost


def cost_refusal(
    cost: int, settings: Settings, viewer: Viewer | None, operation: OperationDefinitionNode
) -> GraphQLError | None:
    """The error of an operation whose estimate exceeds the caller's limit, or None."""
    who, limit = cost_limit(settings, viewer)
    if cost <= limit:
        return None
    return too_complex(
        f"the query's estimated cost is {cost}; the limit for {who} is {limit}",
        nodes=[operation],
    )
