"""Root fields answered by one statement that writes their JSON
(app/data/repositories/json_trees.py).

A root field whose whole selection is columns and the relations json_trees knows (``patient``,
``provider``, ``record``, ``patients`` and ``records``, down through providers, records,
diagnoses and attachments) needs
no Python object per row: the plan (schema/planned_execution.py) puts the statement's text into
the response as it is. A root list may select its cursors, ``pageInfo`` and ``totalCount``; a
nested list only ``edges { node }``. Anything else in the selection (a computed field, an
argument the statement does not take) leaves the field to the plan, as before.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import orjson
from graphql import (
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    Visitor,
    get_named_type,
    visit,
)
from sqlalchemy import ARRAY, Boolean, Date, DateTime, Integer, String, Uuid
from sqlalchemy import Enum as SQLEnum
from strawberry.schema.schema_converter import GraphQLCoreConverter

from app.data.pagination import page_parameters, page_request
from app.data.repositories import json_trees
from app.data.repositories.json_trees import (
    Child,
    ConnectionField,
    Encoding,
    Entity,
    Leaf,
    Node,
    Part,
    Relation,
    Root,
    RootKind,
)
from app.data.repositories.patients import PATIENT_ORDER
from app.data.repositories.records import RECORD_ORDER
from app.domain.errors import ApiError
from app.domain.viewer import effective_role
from schema.fields import declared_column, declared_relation
from schema.filters import patient_list_filter, record_list_filter

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from graphql import (
        FieldNode,
        FragmentSpreadNode,
        GraphQLField,
        GraphQLSchema,
        VariableNode,
    )
    from graphql.execution.collect_fields import (
        CollectedFields,
        FieldDetailsList,
        FragmentDetails,
    )
    from graphql.execution.values import VariableValues
    from sqlalchemy import ColumnElement
    from strawberry.types.field import StrawberryField

    from resolvers.context import RequestContext

    ArgumentsOf = Callable[[GraphQLField, FieldDetailsList], dict[str, Any]]


class TreeSource(Protocol):
    """What compiling a root field reads of its operation's execution: an execution context
    (schema/execution.py), or a one-statement plan's stand-in (``run_statement`` there)."""

    @property
    def schema(self) -> GraphQLSchema: ...

    @property
    def context_value(self) -> Any: ...

    @property
    def variable_values(self) -> VariableValues: ...

    @property
    def fragments(self) -> dict[str, FragmentDetails]: ...

    def collect_subfields(
        self, return_type: GraphQLObjectType, field_details_list: FieldDetailsList
    ) -> CollectedFields: ...


class NotCompiled(Exception):
    """The selection needs something the statement cannot write."""


class IncompleteTree(Exception):
    """A non-null relation found no readable row: the plan leaves the operation to graphql-core,
    whose reads report it as an error."""


_ENTITIES = {
    "Provider": Entity.PROVIDER,
    "Patient": Entity.PATIENT,
    "MedicalRecord": Entity.RECORD,
    "Diagnosis": Entity.DIAGNOSIS,
    "Attachment": Entity.ATTACHMENT,
    "AccessLogEntry": Entity.ACCESS_LOG_ENTRY,
}
# The fields of schema/connections.py's types, as the statement writes them.
_CONNECTION = {"edges": Part.EDGES, "pageInfo": Part.PAGE_INFO, "totalCount": Part.TOTAL_COUNT}
_EDGE = {"cursor": Part.CURSOR, "node": Part.NODE}
_PAGE_INFO = {
    "hasNextPage": Part.HAS_NEXT_PAGE,
    "hasPreviousPage": Part.HAS_PREVIOUS_PAGE,
    "startCursor": Part.START_CURSOR,
    "endCursor": Part.END_CURSOR,
}
_OBJECT_PARTS = {Part.EDGES: _EDGE, Part.PAGE_INFO: _PAGE_INFO}
_ROOTS = {
    "patient": RootKind.BY_ID,
    "provider": RootKind.BY_ID,
    "record": RootKind.BY_ID,
    "patients": RootKind.PATIENT_PAGE,
    "records": RootKind.RECORD_PAGE,
}


class _Shape(NamedTuple):
    connection: tuple[ConnectionField, ...]  # a page root's selection
    node: Node


_NOT_COMPILED = _Shape((), Node(Entity.PATIENT, ()))
# Values of a selection's variables kept at once; then they start afresh.
_VALUES_PER_SELECTION = 32


@dataclass(slots=True)
class _ShapeEntry:
    # Held, so the ids in the key stay theirs (graphql-core's documents are cached, not owned).
    schema: GraphQLSchema
    nodes: tuple[FieldNode, ...]
    # The variables used in the selection (not the root arguments); None: not cached.
    variables: tuple[str, ...] | None
    shapes: dict[tuple[Any, ...], _Shape]


class _ShapeCache:
    """The selections compiled lately, least recently used dropped first."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[int, ...], _ShapeEntry] = OrderedDict()

    def get(self, key: tuple[int, ...]) -> _ShapeEntry | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: tuple[int, ...], entry: _ShapeEntry) -> _ShapeEntry:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return entry


_SHAPES = _ShapeCache(512)


def _variables_below(
    nodes: tuple[FieldNode, ...], fragments: dict[str, FragmentDetails]
) -> tuple[str, ...] | None:
    """The variables a field's selection set uses, through its fragments too; None when a
    fragment there has variables of its own (their values are not the operation's)."""
    names: set[str] = set()
    spread: set[str] = set()
    own_variables = False

    class Variables(Visitor):
        def enter_variable(self, node: VariableNode, *_: Any) -> None:
            names.add(node.name.value)

        def enter_fragment_spread(self, node: FragmentSpreadNode, *_: Any) -> None:
            nonlocal own_variables
            name = node.name.value
            fragment = fragments.get(name)
            if name in spread or fragment is None:
                return
            spread.add(name)
            own_variables = own_variables or bool(fragment.variable_signatures)
            visit(fragment.definition, self)

    for node in nodes:
        if node.selection_set is not None:
            visit(node.selection_set, Variables())
    return None if own_variables else tuple(sorted(names))


class TreeCompiler:
    """Compiles one root field of one operation (its variables fix every argument)."""

    def __init__(
        self,
        execution: TreeSource,
        context: RequestContext,
        arguments_of: ArgumentsOf,
    ) -> None:
        self._execution = execution
        self._context = context
        self._arguments = arguments_of
        self.parameters: dict[str, Any] = {}

    def root(
        self,
        name: str,
        field_def: GraphQLField,
        details: FieldDetailsList,
        arguments: dict[str, Any],
    ) -> Root:
        kind = _ROOTS.get(name)
        if kind is None:
            raise NotCompiled(name)
        ids = self._context.ids
        connection, node = self._shape(kind, field_def, details)
        if kind is RootKind.BY_ID:
            self.parameters["root_id"] = ids.decode_typed_id(
                arguments["id"], node.entity.node_type, "id"
            )
            return Root(kind, node)
        shape: frozenset[Any]
        if kind is RootKind.PATIENT_PAGE:
            list_filter: Any = patient_list_filter(ids, arguments.get("filter"))
            order = PATIENT_ORDER
            shape = frozenset(list_filter.parameters())
        else:
            list_filter = record_list_filter(arguments.get("filter"))
            order = RECORD_ORDER
            shape = list_filter.shape()
        page = page_request(ids, order, arguments.get("first"), arguments.get("after"))
        # The size is written into the statement (json_trees.page_size); the cursor is bound.
        self.parameters.update(list_filter.parameters(), **page_parameters(page))
        return Root(
            kind,
            node,
            filters=shape,
            after=page.after is not None,
            connection=connection,
            size=page.first,
        )

    def _shape(
        self, kind: RootKind, field_def: GraphQLField, details: FieldDetailsList
    ) -> tuple[tuple[ConnectionField, ...], Node]:
        """What the root field selects (its nested pages' sizes in its nodes).

        Made once per selection and values of the variables used in it (``_SHAPES``), so a
        document sent again with other root arguments (another id, page or filter) is not
        walked again."""
        schema = self._execution.schema
        variables = self._execution.variable_values.coerced
        nodes = tuple(detail.node for detail in details)
        key = (id(schema), *map(id, nodes))
        entry = _SHAPES.get(key)
        if entry is None:  # an entry holds its schema and nodes, so their ids are still theirs
            names = _variables_below(nodes, self._execution.fragments)
            entry = _SHAPES.put(key, _ShapeEntry(schema, nodes, names, {}))
        values: tuple[Any, ...] | None = None
        shape: _Shape | None = None
        if entry.variables is not None:
            values = tuple(variables.get(name) for name in entry.variables)
            try:
                shape = entry.shapes.get(values)
            except TypeError:  # an unhashable value (an input object): not cached
                values = None
        if shape is None:
            named = _object_type(field_def.type)
            try:
                if kind is RootKind.BY_ID:
                    shape = _Shape((), self._node(named, details))
                else:
                    shape = _Shape(*self._connection(named, details))
            except NotCompiled:
                shape = _NOT_COMPILED
            if values is not None:
                if len(entry.shapes) >= _VALUES_PER_SELECTION:
                    entry.shapes.clear()
                entry.shapes[values] = shape
        if shape is _NOT_COMPILED:
            raise NotCompiled("the selection")
        return shape.connection, shape.node

    def _node(self, type_: GraphQLObjectType, details: FieldDetailsList) -> Node:
        entity = _ENTITIES.get(type_.name)
        if entity is None:
            raise NotCompiled(type_.name)
        subfields = self._execution.collect_subfields(type_, details)
        if subfields.new_defer_usages:
            raise NotCompiled("@defer")
        fields: list[Leaf | Child] = []
        for key, field_details in subfields.grouped_field_set.items():
            name = field_details[0].node.name.value
            if name == "__typename":
                fields.append(Leaf(key, Encoding.TYPENAME, type_.name, nullable=False))
                continue
            field_def = type_.fields.get(name)
            if field_def is None:
                raise NotCompiled(name)
            declared = _declared(field_def)
            follows = None if declared is None else declared_relation(declared)
            if follows is None:
                fields.append(_leaf(key, entity, field_def))
            elif follows.relation in json_trees.TREE_RELATIONS:
                fields.append(self._child(key, follows.relation, field_def, field_details))
            else:
                raise NotCompiled(key)  # a relation the DataLoaders follow
        return Node(entity, tuple(fields))

    def _child(
        self, key: str, relation: Relation, field_def: GraphQLField, details: FieldDetailsList
    ) -> Child:
        arguments = self._arguments(field_def, details)
        named = _object_type(field_def.type)
        nested_page = json_trees.NESTED_PAGES.get(relation)
        if nested_page is None:
            if arguments:
                raise NotCompiled(key)
            return Child(key, relation, self._node(named, details))
        # A nested page: its size only (a filter or a cursor stays with the DataLoaders).
        if arguments.get("after") is not None or arguments.get("filter") is not None:
            raise NotCompiled(key)
        page = page_request(self._context.ids, nested_page.order, arguments.get("first"), None)
        connection, node = self._connection(named, details)
        # A nested page writes ``{ edges { node } }`` and nothing else.
        match connection:
            case (ConnectionField(edges_key, Part.EDGES, (ConnectionField(node_key, Part.NODE),)),):
                return Child(key, relation, node, edges_key, node_key, page.first)
        raise NotCompiled(f"{key}: more than edges {{ node }}")

    def _connection(
        self, type_: GraphQLObjectType, details: FieldDetailsList
    ) -> tuple[tuple[ConnectionField, ...], Node]:
        """What a connection selects, and its node (one selection of it at most)."""
        nodes: list[tuple[GraphQLObjectType, FieldDetailsList]] = []

        def fields_of(
            parent: GraphQLObjectType, parent_details: FieldDetailsList, parts: dict[str, Part]
        ) -> tuple[ConnectionField, ...]:
            collected = self._execution.collect_subfields(parent, parent_details)
            if collected.new_defer_usages:
                raise NotCompiled("@defer")
            fields: list[ConnectionField] = []
            for key, field_details in collected.grouped_field_set.items():
                name = field_details[0].node.name.value
                if name == "__typename":
                    fields.append(ConnectionField(key, Part.TYPENAME, typename=parent.name))
                    continue
                part = parts.get(name)
                if part is None:
                    raise NotCompiled(name)
                if part in _OBJECT_PARTS:
                    inner = _object_type(parent.fields[name].type)
                    inner_fields = fields_of(inner, field_details, _OBJECT_PARTS[part])
                    fields.append(ConnectionField(key, part, inner_fields))
                    continue
                if part is Part.NODE:
                    nodes.append((_object_type(parent.fields[name].type), field_details))
                fields.append(ConnectionField(key, part))
            return tuple(fields)

        connection = fields_of(type_, details, _CONNECTION)
        if len(nodes) > 1:
            raise NotCompiled("nodes selected under several edges")
        if nodes:
            return connection, self._node(*nodes[0])
        node_type = _object_type(_object_type(type_.fields["edges"].type).fields["node"].type)
        entity = _ENTITIES.get(node_type.name)
        if entity is None:
            raise NotCompiled(node_type.name)
        return connection, Node(entity, ())


def _object_type(type_: Any) -> GraphQLObjectType:
    """The object type a field returns, lists and non-null aside."""
    named = get_named_type(type_)
    if not isinstance(named, GraphQLObjectType):
        raise NotCompiled(f"{named} is not an object type")
    return named


# Per field definition of the process's schemas, keyed by identity as in schema/leaves.py.
_COLUMNS: dict[int, tuple[GraphQLField, Leaf | None]] = {}


def _leaf(key: str, entity: Entity, field_def: GraphQLField) -> Leaf:
    # A field definition belongs to one type, and so to one entity.
    entry = _COLUMNS.get(id(field_def))
    if entry is None:
        entry = _COLUMNS[id(field_def)] = (field_def, declared_leaf(entity, field_def))
    leaf = entry[1]
    if leaf is None:
        raise NotCompiled(key)
    return dataclasses.replace(leaf, key=key)


def _declared(field_def: GraphQLField) -> StrawberryField | None:
    declared: StrawberryField | None = field_def.extensions.get(
        GraphQLCoreConverter.DEFINITION_BACKREF
    )
    return declared


def declared_leaf(entity: Entity, field_def: GraphQLField) -> Leaf | None:
    """A field declared to show a column (schema/fields.py), when the statement writes its value
    as graphql-core would; the leaf's key is set by the caller."""
    declared = _declared(field_def)
    column = None if declared is None else declared_column(declared)
    if declared is None or column is None or field_def.args or declared.extensions:
        return None
    table_column = entity.columns[column.name]
    if table_column.nullable and isinstance(field_def.type, GraphQLNonNull):
        return None  # a null would be an error, which the statement cannot write
    if column.ids_of is not None:
        # A list of non-null ids, never null, from a uuid array whose items are never null.
        listed = field_def.type
        if not (
            isinstance(listed, GraphQLNonNull)
            and isinstance(listed.of_type, GraphQLList)
            and isinstance(listed.of_type.of_type, GraphQLNonNull)
            and get_named_type(listed).name == "ID"
            and isinstance(table_column.type, ARRAY)
            and isinstance(table_column.type.item_type, Uuid)
            and not table_column.nullable
        ):
            return None
        return Leaf("", Encoding.ID_LIST, table_column.key, False, column.ids_of)
    encoding = _encoding(get_named_type(field_def.type), table_column)
    if encoding is None:
        return None
    return Leaf("", encoding, table_column.key, bool(table_column.nullable))


def _encoding(named: Any, column: ColumnElement[Any]) -> Encoding | None:
    sql_type = column.type
    if isinstance(sql_type, ARRAY):
        return None  # only as ids (ID_LIST)
    if named.name == "ID":
        # A row's id is sealed; no other column is served as an ID.
        return Encoding.ID if column.primary_key else None
    if isinstance(named, GraphQLEnumType):
        # The statement writes the label; graphql-core writes the member's GraphQL name.
        if not isinstance(sql_type, SQLEnum) or sql_type.enum_class is None:
            return None
        members = sql_type.enum_class
        if list(sql_type.enums) != [member.name for member in members]:
            return None
        return Encoding.ENUM if set(named.values) == {m.name for m in members} else None
    if not isinstance(named, GraphQLScalarType):
        return None
    if (
        named.name == "String"
        and isinstance(sql_type, String)
        and not isinstance(sql_type, SQLEnum)
    ):
        return Encoding.TEXT
    if named.name == "Int" and type(sql_type) is Integer:  # int4: never outside GraphQL's Int
        return Encoding.LITERAL
    if named.name == "Boolean" and isinstance(sql_type, Boolean):
        return Encoding.LITERAL
    if named.name == "DateTime" and isinstance(sql_type, DateTime) and sql_type.timezone:
        return Encoding.TIMESTAMP
    if named.name == "Date" and isinstance(sql_type, Date) and not isinstance(sql_type, DateTime):
        return Encoding.DATE
    return None


def compiled_root(
    execution: TreeSource,
    name: str,
    field_def: GraphQLField,
    details: FieldDetailsList,
    arguments: dict[str, Any],
    arguments_of: ArgumentsOf,
) -> Callable[[Any], Awaitable[Any]] | None:
    """The resolver of a root field answered by one statement, or None to plan it as before.

    ``arguments`` are the root field's, converted; ``arguments_of`` gives any field's arguments
    as graphql-core passes them to a resolver. The statement returns the ids the operation's
    audit row names (schema/audit.py appends it)."""
    context: RequestContext = execution.context_value
    compiler = TreeCompiler(execution, context, arguments_of)
    try:
        viewer = context.reader()
        root = compiler.root(name, field_def, details, arguments)
    except (NotCompiled, ApiError):
        # An ApiError (a malformed id, a refused caller) is the field's own resolver's to raise.
        return None
    parameters = compiler.parameters
    role = effective_role(viewer)

    async def read(_: Any) -> Any:
        async with context.drivers() as driver:
            tree = await json_trees.read_tree(driver, viewer, context.ids, root, role, parameters)
        if tree.incomplete:
            raise IncompleteTree(name)
        context.audit.touch_tree(tree.patient_ids, tree.record_ids)
        return None if tree.json is None else orjson.Fragment(tree.json)

    return read
