"""Read trees answered by one statement whose result is the finished JSON text.

A tree is a root (one patient by id, or a page of patients or records) and relations below it,
the same reads the DataLoaders make level by level. Here each level is a CTE of the statement,
filtered by the same access predicates (app/domain/access.py) as those reads, and PostgreSQL writes
each row's JSON: no Python object per row. Ids, cursors and timestamps are written in SQL from
the definitions Python writes them from (app/domain/wire_formats.py; the MAC is HMAC-SHA256 over
core ``sha256``), and the statement also returns what the audit row must name.

Trees are described by ``Node``/``Relation`` (built by schema/sql_trees.py from a query); the
statement is built once per role, tree shape and page sizes (``page_size``), and run with the
viewer's, the filters' and the cursor's values as bind parameters.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import (
    DateTime,
    Integer,
    LargeBinary,
    String,
    Text,
    Uuid,
    any_,
    bindparam,
    case,
    cast,
    exists,
    func,
    literal_column,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by

from app.data.database import DriverStatement
from app.data.pagination import RowsShown
from app.data.repositories import access_log, patients, records
from app.domain.access import (
    ACCESS_LOG_READERS,
    readable_attachments_for,
    readable_columns,
    readable_diagnoses_for,
    readable_patients_for,
    readable_providers_for,
    readable_records_for,
    viewer_parameters,
)
from app.domain.audit import OWNERSHIP
from app.domain.opaque_ids import NodeType
from app.domain.wire_formats import (
    BASE64_CHARS_62_63,
    BASE64_PADDING,
    BASE64URL_CHARS_62_63,
    CURSOR_DOMAIN,
    CURSOR_ENSURE_ASCII,
    CURSOR_ITEM_SEPARATOR,
    DATE_TIME_SEPARATOR,
    ID_DOMAIN,
    MAC_BYTES,
    TIMESTAMP_OFFSET,
    TIMESTAMP_ZONE_NAME,
    id_prefix,
)
from models import (
    Attachment,
    AuditEventPatient,
    Diagnosis,
    MedicalRecord,
    Patient,
    Provider,
    table_of,
)

if TYPE_CHECKING:
    import uuid
    from collections.abc import Callable, Mapping

    from sqlalchemy import CTE, Column, ColumnElement, FromClause, ScalarSelect, Select, Subquery
    from sqlalchemy.engine import Dialect
    from sqlalchemy.sql.base import ReadOnlyColumnCollection
    from sqlalchemy.types import TypeEngine

    from app.data.pagination import KeysetOrder
    from app.data.request_reads import Driver
    from app.domain.opaque_ids import OpaqueIds
    from app.domain.viewer import Viewer
    from models import Base
    from models.enums import Role


class Entity(enum.Enum):
    """The tables a tree reads, with their id type and read predicate (an access log entry has
    neither: its rows are read a page per patient, by the log's own statement)."""

    PROVIDER = (Provider, NodeType.PROVIDER, readable_providers_for)
    PATIENT = (Patient, NodeType.PATIENT, readable_patients_for)
    RECORD = (MedicalRecord, NodeType.MEDICAL_RECORD, readable_records_for)
    DIAGNOSIS = (Diagnosis, NodeType.DIAGNOSIS, readable_diagnoses_for)
    ATTACHMENT = (Attachment, NodeType.ATTACHMENT, readable_attachments_for)
    ACCESS_LOG_ENTRY = (AuditEventPatient, None, None)

    @property
    def model(self) -> type[Base]:
        model: type[Base] = self.value[0]
        return model

    @property
    def node_type(self) -> NodeType:
        node_type: NodeType | None = self.value[1]
        if node_type is None:
            raise ValueError(f"{self} has no ids")
        return node_type

    @property
    def columns(self) -> Mapping[str, Column[Any]] | ReadOnlyColumnCollection[str, Column[Any]]:
        """The columns its rows have, by name: a table's, or the access log's computed ones too."""
        if self is Entity.ACCESS_LOG_ENTRY:
            return access_log.ENTRY_COLUMNS
        return table_of(self.model).c

    def readable(self, role: Role | None) -> ColumnElement[bool]:
        predicate: ColumnElement[bool] = self.value[2](role)
        return predicate

    def readable_under_records(self, role: Role | None) -> ColumnElement[bool]:
        """The predicate for rows read under a level of readable records (their own rules, the
        record's already applied to that level)."""
        predicate: ColumnElement[bool] = self.value[2](role, record_checked=True)
        return predicate


class Encoding(enum.Enum):
    """How a column becomes JSON, exactly as graphql-core and orjson would write its value."""

    ID = "id"  # the row's sealed global id
    ID_LIST = "id_list"  # a uuid array, as the sealed ids of ``Leaf.ids_of``
    TEXT = "text"  # a JSON string
    LITERAL = "literal"  # int4 and boolean: their text form is their JSON form
    ENUM = "enum"  # a PostgreSQL enum whose labels are the GraphQL names
    TIMESTAMP = "timestamp"  # wire_formats.timestamp_text
    DATE = "date"  # wire_formats.date_text
    TYPENAME = "typename"  # the constant ``column`` (a GraphQL type name)


class Relation(enum.Enum):
    """The relations between the served tables that a field may follow (schema/fields.py)."""

    PRIMARY_PROVIDER = "primary_provider"  # patient -> provider, nullable
    RECORD_PROVIDER = "record_provider"  # record -> provider
    RECORD_PATIENT = "record_patient"  # record -> patient
    DIAGNOSES = "diagnoses"  # record -> its diagnoses, oldest first
    ATTACHMENTS = "attachments"  # record -> its attachments, oldest first
    PATIENT_RECORDS = "patient_records"  # patient -> first page of its records, newest first
    ACCESS_LOG = "access_log"  # patient -> first page of its access log, newest first
    # Not followed by a tree: a selection of it is left to the DataLoaders.
    STATUS_HISTORY = "status_history"  # record -> its status events, oldest first


@dataclass(frozen=True, slots=True)
class Leaf:
    key: str  # the response key
    encoding: Encoding
    column: str  # the column name (the type name for TYPENAME)
    nullable: bool
    ids_of: NodeType | None = None  # of ID_LIST


@dataclass(frozen=True, slots=True)
class Child:
    key: str
    relation: Relation
    node: Node
    # A nested page: the connection's edges and node keys, and its size (``page_size``).
    edges_key: str = "edges"
    node_key: str = "node"
    size: int = 0


@dataclass(frozen=True, slots=True)
class Node:
    entity: Entity
    fields: tuple[Leaf | Child, ...]  # in response order
    # A request's Root is hashed to find its compiled statement (_driver_statement): the hash
    # of the whole tree, every leaf and enum in it, is worked out once.
    _hash: int = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.entity, self.fields)))

    def __hash__(self) -> int:
        return self._hash


class Part(enum.Enum):
    """What a root connection's selection may ask for, as schema/connections.py answers it."""

    EDGES = "edges"  # fields: CURSOR, NODE, TYPENAME
    PAGE_INFO = "pageInfo"  # fields: the four below, TYPENAME
    TOTAL_COUNT = "totalCount"
    TYPENAME = "__typename"  # ``typename``, a constant
    CURSOR = "cursor"
    NODE = "node"
    HAS_NEXT_PAGE = "hasNextPage"
    HAS_PREVIOUS_PAGE = "hasPreviousPage"
    START_CURSOR = "startCursor"
    END_CURSOR = "endCursor"


@dataclass(frozen=True, slots=True)
class ConnectionField:
    key: str
    part: Part
    fields: tuple[ConnectionField, ...] = ()  # of EDGES and PAGE_INFO
    typename: str = ""  # of TYPENAME


class RootKind(enum.Enum):
    BY_ID = "by_id"  # the node's row with id ``root_id``; null when not readable
    PATIENT_PAGE = "patient_page"  # patients.patient_page's statement and parameters
    RECORD_PAGE = "record_page"  # records.record_page's


@dataclass(frozen=True, slots=True)
class Root:
    """A page root reads ``size`` + 1 rows: one row more tells whether a next page exists."""

    kind: RootKind
    node: Node
    # The list filter's statement key: PatientListFilter's parameter names, or
    # RecordListFilter.shape().
    filters: frozenset[Any] = frozenset()
    after: bool = False  # a page after a cursor
    connection: tuple[ConnectionField, ...] = ()  # what a page root selects, in order
    size: int = 0


class TreeRead(NamedTuple):
    json: str | None  # null only for a root by id that is not readable
    # What the audit row names (app/domain/audit.py), as the DataLoaders' reads would have named it.
    patient_ids: list[uuid.UUID]
    record_ids: list[uuid.UUID]
    # A non-null relation found no readable row: the caller must not answer from this read.
    incomplete: bool


_RELATIONS: dict[Relation, tuple[Entity, Entity, str, str]] = {
    # relation: (parent, child, the parent's column, the child's column); the child's column is
    # its id for a to-one relation.
    Relation.PRIMARY_PROVIDER: (Entity.PATIENT, Entity.PROVIDER, "primary_provider_id", "id"),
    Relation.RECORD_PROVIDER: (Entity.RECORD, Entity.PROVIDER, "provider_id", "id"),
    Relation.RECORD_PATIENT: (Entity.RECORD, Entity.PATIENT, "patient_id", "id"),
    Relation.DIAGNOSES: (Entity.RECORD, Entity.DIAGNOSIS, "id", "record_id"),
    Relation.ATTACHMENTS: (Entity.RECORD, Entity.ATTACHMENT, "id", "record_id"),
    Relation.PATIENT_RECORDS: (Entity.PATIENT, Entity.RECORD, "id", "patient_id"),
    Relation.ACCESS_LOG: (Entity.PATIENT, Entity.ACCESS_LOG_ENTRY, "id", "patient_id"),
}


@dataclass(frozen=True, slots=True)
class NestedPage:
    """A relation to a connection's first page (``{ edges { node } }``): its order, and the
    statement of the rows a role reads (each parent's are read with a LIMIT of their own)."""

    order: KeysetOrder
    readable: Callable[[Role | None], Select[Any]]


NESTED_PAGES: dict[Relation, NestedPage] = {
    Relation.PATIENT_RECORDS: NestedPage(
        records.RECORD_ORDER, lambda role: records.filtered_statement(role, frozenset(), False)
    ),
    Relation.ACCESS_LOG: NestedPage(access_log.ACCESS_LOG_ORDER, access_log.entries_statement),
}
# The relations a tree follows.
TREE_RELATIONS = frozenset(_RELATIONS)
# Rows under a record, read by the ids of a level of records the statement already filtered.
_UNDER_RECORDS = frozenset({Relation.DIAGNOSES, Relation.ATTACHMENTS})
_NULLABLE = frozenset({Relation.PRIMARY_PROVIDER})
_LISTS = frozenset({Relation.DIAGNOSES, Relation.ATTACHMENTS})
# The order of each list, as the DataLoaders' reads give it: (column names, descending).
_ORDER: dict[Entity, tuple[tuple[str, ...], bool]] = {
    Entity.PATIENT: (
        tuple(c.key for c in patients.PATIENT_ORDER.columns),
        patients.PATIENT_ORDER.descending,
    ),
    Entity.RECORD: (
        tuple(c.key for c in records.RECORD_ORDER.columns),
        records.RECORD_ORDER.descending,
    ),
    Entity.DIAGNOSIS: (tuple(c.key for c in records.DIAGNOSIS_ORDER), False),
    Entity.ATTACHMENT: (tuple(c.key for c in records.ATTACHMENT_ORDER), False),
    Entity.ACCESS_LOG_ENTRY: (
        tuple(c.key for c in access_log.ACCESS_LOG_ORDER.columns),
        access_log.ACCESS_LOG_ORDER.descending,
    ),
}
_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]*")


def _text(value: str) -> ColumnElement[str]:
    """A constant piece of JSON: GraphQL names only, so no quote can end the SQL literal."""
    if "'" in value or "\\" in value:
        raise ValueError(f"not a JSON constant: {value!r}")
    return literal_column(f"'{value}'", Text)


def page_size(size: int) -> ColumnElement[int]:
    """A page size, written into the statement: PostgreSQL's generic plan of a LIMIT parameter
    guesses a tenth of the rows, and with it a plan for reading whole tables (or for the
    partitioned access log, a patient's whole history), so it keeps planning each run anew. A
    statement per page size: few sizes are used."""
    return literal_column(str(int(size)), Integer)


def _name(name: str) -> str:
    if _NAME.fullmatch(name) is None:
        raise ValueError(f"not a GraphQL name: {name!r}")
    return name


def _key(name: str) -> str:
    return f'"{_name(name)}":'


def _concat(*parts: ColumnElement[Any], type_: Any = Text) -> ColumnElement[Any]:
    """``||`` of text (or, with ``type_=LargeBinary``, of bytes)."""
    joined = parts[0]
    for part in parts[1:]:
        joined = joined.op("||", return_type=type_)(part)
    return joined


def _bytes(value: bytes) -> ColumnElement[bytes]:
    return literal_column(f"'\\x{value.hex()}'::bytea", LargeBinary)


def _sealed(domain: bytes, payload: ColumnElement[bytes]) -> ColumnElement[str]:
    """OpaqueIds._seal in SQL, as a JSON string: base64url(payload || HMAC-SHA256(key, domain ||
    payload)[:MAC_BYTES]), with the key's HMAC blocks as parameters (``id_parameters``)."""
    inner = func.sha256(
        _concat(
            bindparam("id_inner_block", type_=LargeBinary()),
            _bytes(domain),
            payload,
            type_=LargeBinary,
        ),
        type_=LargeBinary,
    )
    digest = func.sha256(
        _concat(bindparam("id_outer_block", type_=LargeBinary()), inner, type_=LargeBinary),
        type_=LargeBinary,
    )
    mac = func.substring(
        digest, literal_column("1"), literal_column(str(MAC_BYTES)), type_=LargeBinary
    )
    encoded = func.encode(_concat(payload, mac, type_=LargeBinary), _text("base64"), type_=Text)
    # PostgreSQL breaks base64 lines at 76 characters.
    unbroken = func.replace(encoded, literal_column("chr(10)"), _text(""), type_=Text)
    base64url = func.translate(
        func.rtrim(unbroken, _text(BASE64_PADDING)),
        _text(BASE64_CHARS_62_63),
        _text(BASE64URL_CHARS_62_63),
        type_=Text,
    )
    return _concat(_text('"'), base64url, _text('"'))


def id_json(node_type: NodeType, row_id: ColumnElement[Any]) -> ColumnElement[str]:
    """OpaqueIds.encode_id of a uuid column, as a JSON string (``uuid_send``: its 16 bytes)."""
    payload = _concat(_bytes(id_prefix(node_type)), func.uuid_send(row_id), type_=LargeBinary)
    return _sealed(ID_DOMAIN, payload)


def _id_list_json(node_type: NodeType, row_ids: ColumnElement[Any]) -> ColumnElement[str]:
    """A uuid array as a JSON list of ``node_type``'s sealed ids, in the array's order."""
    items = func.unnest(row_ids).table_valued("id", with_ordinality="n").render_derived()
    listed = func.string_agg(
        id_json(node_type, items.c.id), aggregate_order_by(_text(","), items.c.n)
    )
    joined = func.coalesce(_concat(_text("["), listed, _text("]")), _text("[]"))
    return select(joined).select_from(items).scalar_subquery()


def cursor_json(order: KeysetOrder, rows: FromClause) -> ColumnElement[str]:
    """OpaqueIds.encode_cursor of a row of ``rows`` (which has ``order``'s columns), as a JSON
    string."""
    parts: list[ColumnElement[str]] = [_text(f'["{_name(order.kind)}"')]
    for column in order.columns:
        parts += [_text(CURSOR_ITEM_SEPARATOR), _cursor_value(rows.c[column.key], column.type)]
    parts.append(_text("]"))
    payload = func.convert_to(_concat(*parts), _text("UTF8"), type_=LargeBinary)
    return _sealed(CURSOR_DOMAIN, payload)


def _cursor_value(value: ColumnElement[Any], type_: TypeEngine[Any]) -> ColumnElement[str]:
    if isinstance(type_, DateTime):
        return timestamp_json(value)
    if isinstance(type_, Uuid):
        return _concat(_text('"'), cast(value, Text), _text('"'))
    if isinstance(type_, Integer):
        return cast(value, Text)
    if isinstance(type_, String) and not CURSOR_ENSURE_ASCII:
        # to_json escapes what Python's json does when told to leave non-ASCII characters be.
        return cast(func.to_json(value), Text)
    raise TypeError(f"no cursor text for a {type_!r} column")


# to_char's YYYY pads years before 1000 to four digits, as isoformat() does.
_DATE_PATTERN = "YYYY-MM-DD"


def timestamp_json(column: ColumnElement[Any]) -> ColumnElement[str]:
    """wire_formats.timestamp_text of a timestamptz, as a JSON string, whatever the session's
    TimeZone."""
    utc = column.op("AT TIME ZONE", return_type=column.type)(_text(TIMESTAMP_ZONE_NAME))
    fraction = case(
        (utc == func.date_trunc(_text("second"), utc), _text("")),
        else_=func.to_char(utc, _text(".US"), type_=Text),
    )
    date_time = f'{_DATE_PATTERN}"{DATE_TIME_SEPARATOR}"HH24:MI:SS'
    return _concat(
        _text('"'),
        func.to_char(utc, _text(date_time), type_=Text),
        fraction,
        _text(TIMESTAMP_OFFSET + '"'),
    )


def date_json(column: ColumnElement[Any]) -> ColumnElement[str]:
    """wire_formats.date_text of a date, as a JSON string."""
    return _concat(_text('"'), func.to_char(column, _text(_DATE_PATTERN), type_=Text), _text('"'))


def _leaf_json(leaf: Leaf, entity: Entity, rows: CTE) -> ColumnElement[str]:
    if leaf.encoding is Encoding.TYPENAME:
        return _text(f'"{_name(leaf.column)}"')
    column = rows.c[leaf.column]
    value: ColumnElement[str]
    if leaf.encoding is Encoding.ID:
        value = id_json(entity.node_type, column)
    elif leaf.encoding is Encoding.ID_LIST:
        assert leaf.ids_of is not None
        value = _id_list_json(leaf.ids_of, column)
    elif leaf.encoding is Encoding.TEXT:
        value = cast(func.to_json(column), Text)
    elif leaf.encoding is Encoding.LITERAL:
        value = cast(column, Text)
    elif leaf.encoding is Encoding.ENUM:
        value = cast(func.to_json(cast(column, Text)), Text)
    elif leaf.encoding is Encoding.TIMESTAMP:
        value = timestamp_json(column)
    else:
        value = date_json(column)
    return func.coalesce(value, _text("null")) if leaf.nullable else value


def _in_order(entity: Entity, rows: CTE, *, reverse: bool = False) -> list[ColumnElement[Any]]:
    names, descending = _ORDER[entity]
    if reverse:
        descending = not descending
    return [rows.c[name].desc() if descending else rows.c[name].asc() for name in names]


def _rows_shown(fields: tuple[ConnectionField, ...]) -> RowsShown:
    """Which rows of a page its selection shows (schema/connections.py's shows_rows)."""
    shown = RowsShown.NONE
    for field in fields:
        if field.part is Part.EDGES:
            shown |= RowsShown.ALL
        elif field.part is Part.START_CURSOR:
            shown |= RowsShown.FIRST
        elif field.part is Part.END_CURSOR:
            shown |= RowsShown.LAST
        elif field.part is Part.PAGE_INFO:
            shown |= _rows_shown(field.fields)
    return shown


class _Statement:
    """Builds one tree's statement: a CTE per level, and the JSON from the leaves upwards."""

    def __init__(self, role: Role | None) -> None:
        self._role = role
        self._levels = 0
        self.touches: dict[str, list[ColumnElement[Any]]] = {"patient_ids": [], "record_ids": []}
        self.checks: list[ColumnElement[bool]] = []

    def _level_name(self) -> str:
        self._levels += 1
        return f"level_{self._levels}"

    def level(self, entity: Entity, rows: Select[Any], *, shown: bool = True) -> CTE:
        """``shown``: the response shows these rows (a page may be read for its count alone)."""
        cte = rows.cte(self._level_name())
        if shown:
            self._touch(entity, cte)
        return cte

    def _touch(self, entity: Entity, rows: CTE) -> None:
        # The audit row names the rows' owners, as the DataLoaders' reads do (app/domain/audit.py).
        owner = OWNERSHIP[entity.model]
        if owner is not None:
            self.touches["patient_ids"].append(rows.c[owner.patient])
            if owner.record is not None:
                self.touches["record_ids"].append(rows.c[owner.record])

    def object_json(self, node: Node, rows: CTE) -> tuple[ColumnElement[str], Any]:
        """The JSON of each row of ``rows``, and the FROM clause it needs (children joined)."""
        parts: list[ColumnElement[str]] = []
        from_: Any = rows
        for index, field in enumerate(node.fields):
            parts.append(_text(("{" if index == 0 else ",") + _key(field.key)))
            if isinstance(field, Leaf):
                parts.append(_leaf_json(field, node.entity, rows))
                continue
            if field.relation is Relation.ACCESS_LOG and self._role not in ACCESS_LOG_READERS:
                parts.append(_text("null"))  # as Patient.accessLog answers everyone else
                continue
            child = self.child_json(field, rows)
            _, _, parent_column, _ = _RELATIONS[field.relation]
            from_ = from_.outerjoin(child, child.c.key == rows.c[parent_column])
            if field.relation in NESTED_PAGES:
                empty = "{" + _key(field.edges_key) + "[]}"
            else:
                empty = "[]" if field.relation in _LISTS else "null"
            parts.append(func.coalesce(child.c.json, _text(empty)))
        if not node.fields:
            parts.append(_text("{"))
        parts.append(_text("}"))
        return _concat(*parts), from_

    def page(self, root: Root) -> ScalarSelect[str]:
        """A root connection's JSON: its page of nodes, with what else it selects."""
        entity = root.node.entity
        order = _PAGE_ORDERS[root.kind]
        fetched_rows, counted = _page_statements(root, self._role)
        size = page_size(root.size)
        # One row more than the page, as the DataLoaders' page reads fetch it: is there a next?
        # (In place of the page statement's bound limit.)
        fetched = fetched_rows.limit(page_size(root.size + 1)).cte(self._level_name())
        shown = _rows_shown(root.connection)
        rows = self.level(
            entity,
            select(fetched).order_by(*_in_order(entity, fetched)).limit(size),
            shown=RowsShown.ALL in shown,
        )
        if shown and RowsShown.ALL not in shown:
            # Only the rows the page's cursors point at are shown.
            ends = [
                select(rows).order_by(*_in_order(entity, rows, reverse=end)).limit(1)
                for end, flag in ((False, RowsShown.FIRST), (True, RowsShown.LAST))
                if flag in shown
            ]
            self._touch(entity, union_all(*ends).cte(self._level_name()))
        node, from_ = self.object_json(root.node, rows)
        cursor = cursor_json(order, rows)

        def first_cursor(reverse: bool) -> ColumnElement[str]:
            ordered = _in_order(entity, rows, reverse=reverse)
            cursors = func.array_agg(aggregate_order_by(cursor, *ordered), type_=ARRAY(Text))
            return func.coalesce(cursors[1], _text("null"))

        def value(field: ConnectionField) -> ColumnElement[str]:
            part = field.part
            if part is Part.TYPENAME:
                return _text(f'"{_name(field.typename)}"')
            if part is Part.EDGES:
                edge = selection(field.fields)
                listed = func.string_agg(
                    edge, aggregate_order_by(_text(","), *_in_order(entity, rows))
                )
                return _concat(_text("["), func.coalesce(listed, _text("")), _text("]"))
            if part is Part.NODE:
                return node
            if part is Part.CURSOR:
                return cursor
            if part is Part.PAGE_INFO:
                return selection(field.fields)
            if part is Part.HAS_NEXT_PAGE:
                more = select(func.count()).select_from(fetched).scalar_subquery() > size
                return case((more, _text("true")), else_=_text("false"))
            if part is Part.HAS_PREVIOUS_PAGE:
                # Forward paging only: rows precede the cursor's position when one was given.
                return _text("true" if root.after else "false")
            if part is Part.START_CURSOR or part is Part.END_CURSOR:
                return first_cursor(reverse=part is Part.END_CURSOR)
            return cast(counted.scalar_subquery(), Text)  # TOTAL_COUNT

        def selection(fields: tuple[ConnectionField, ...]) -> ColumnElement[str]:
            parts: list[ColumnElement[str]] = []
            for index, field in enumerate(fields):
                parts += [_text(("{" if index == 0 else ",") + _key(field.key)), value(field)]
            parts.append(_text("}" if fields else "{}"))
            return _concat(*parts)

        # GROUP BY (): one row, also when the page is empty or nothing aggregates its rows.
        return (
            select(selection(root.connection))
            .select_from(from_)
            .group_by(literal_column("()"))
            .scalar_subquery()
        )

    def child_json(self, child: Child, parent: CTE) -> Subquery:
        """``(key, json)`` per value of the parent's column: one object, a list, or a page."""
        _, entity, parent_column, child_column = _RELATIONS[child.relation]
        if child.node.entity is not entity:
            raise ValueError(f"{child.relation} leads to {entity}, not {child.node.entity}")
        table = entity.model.__table__
        nested_page = NESTED_PAGES.get(child.relation)
        if nested_page is not None:
            # The rows_per_parent_statement of its DataLoader, with the parent CTE in place of
            # the id list.
            per_parent = (
                nested_page.readable(self._role)
                .where(table.c[child_column] == parent.c[parent_column])
                .order_by(*nested_page.order.order_by())
                .limit(page_size(child.size))
                .lateral()
            )
            rows = self.level(
                entity,
                select(per_parent).select_from(parent).join(per_parent, true()),
                # The log's rows are about accesses, not data the audit row names.
                shown=entity is not Entity.ACCESS_LOG_ENTRY,
            )
        else:
            # ``= ANY(ARRAY(...))``, not ``IN (SELECT ...)``: PostgreSQL's generic plan of a
            # semi join does not know the parent level is a page, and may scan the whole table.
            parents = func.array(select(parent.c[parent_column]).scalar_subquery())
            under_records = child.relation in _UNDER_RECORDS
            rows = self.level(
                entity,
                _readable_rows(entity, self._role, under_records=under_records).where(
                    table.c[child_column] == any_(parents)
                ),
            )
        json, from_ = self.object_json(child.node, rows)
        key = rows.c[child_column]
        if child.relation in _LISTS or nested_page is not None:
            if nested_page is not None:
                json = _concat(_text("{" + _key(child.node_key)), json, _text("}"))
                opening, closing = "{" + _key(child.edges_key) + "[", "]}"
            else:
                opening, closing = "[", "]"
            listed = func.string_agg(json, aggregate_order_by(_text(","), *_in_order(entity, rows)))
            return (
                select(
                    key.label("key"), _concat(_text(opening), listed, _text(closing)).label("json")
                )
                .select_from(from_)
                .group_by(key)
                .subquery()
            )
        if child.relation not in _NULLABLE:
            # A record whose provider or patient the caller may not read: the normal reads
            # answer that with an error, which this statement cannot write.
            missing = (
                select(1)
                .select_from(parent)
                .where(
                    ~exists(select(1).select_from(rows).where(rows.c.id == parent.c[parent_column]))
                )
            )
            self.checks.append(exists(missing))
        return select(key.label("key"), json.label("json")).select_from(from_).subquery()


_PAGE_ORDERS: dict[RootKind, KeysetOrder] = {
    RootKind.PATIENT_PAGE: patients.PATIENT_ORDER,
    RootKind.RECORD_PAGE: records.RECORD_ORDER,
}


def _readable_rows(
    entity: Entity, role: Role | None, *, under_records: bool = False
) -> Select[Any]:
    """The rows of ``entity`` the role may read; records without their JSON columns.
    ``under_records``: rows read under a level of records this statement already filtered."""
    if entity is Entity.RECORD:
        return records.filtered_statement(role, frozenset(), False)
    readable = entity.readable_under_records(role) if under_records else entity.readable(role)
    return select(*readable_columns(table_of(entity.model), role)).where(readable)


def _page_statements(root: Root, role: Role | None) -> tuple[Select[Any], Select[Any]]:
    """The page's rows and the list's size, as patient_page/record_page and their counts."""
    if root.kind is RootKind.PATIENT_PAGE:
        return (
            patients.page_statement(role, root.filters, root.after),
            patients.count_statement(role, root.filters),
        )
    return (
        records.page_statement(role, root.filters, root.after, False),
        records.count_statement(role, root.filters),
    )


# Bounded, unlike the other statement caches: callers choose the shapes of their queries.
@lru_cache(maxsize=512)
def tree_statement(root: Root, role: Role | None) -> Select[Any]:
    """Columns: json, then TreeRead's lists (arrays), then ``incomplete``."""
    builder = _Statement(role)
    if root.kind is RootKind.BY_ID:
        entity = root.node.entity
        rows = builder.level(
            entity,
            _readable_rows(entity, role).where(entity.model.__table__.c.id == bindparam("root_id")),
        )
        json, from_ = builder.object_json(root.node, rows)
        answer = select(json).select_from(from_).scalar_subquery()
    else:
        answer = builder.page(root)

    def gathered(columns: list[ColumnElement[Any]]) -> ColumnElement[Any]:
        arrays = [select(func.array_agg(column)).scalar_subquery() for column in columns]
        if not arrays:
            return literal_column("ARRAY[]::uuid[]")
        return _concat(*arrays) if len(arrays) > 1 else arrays[0]

    checks = builder.checks
    return select(
        answer.label("json"),
        *(gathered(columns).label(name) for name, columns in builder.touches.items()),
        (or_(*checks) if checks else literal_column("false")).label("incomplete"),
    )


def id_parameters(ids: OpaqueIds) -> dict[str, bytes]:
    inner, outer = ids.hmac_blocks()
    return {"id_inner_block": inner, "id_outer_block": outer}


# The statements as run: compiled once per tree shape, role and dialect (one per process).
@lru_cache(maxsize=1024)
def _driver_statement(root: Root, role: Role | None, dialect: Dialect) -> DriverStatement:
    return DriverStatement(tree_statement(root, role), dialect)


async def read_tree(
    driver: Driver,
    viewer: Viewer,
    ids: OpaqueIds,
    root: Root,
    role: Role | None,
    parameters: dict[str, Any],
) -> TreeRead:
    """``driver``: from app/data/request_reads.py, in autocommit. ``parameters``: the root's
    (``root_id``, or the cursor's and filters'); the viewer's and the id key's are added here."""
    values = {**viewer_parameters(viewer), **id_parameters(ids), **parameters}
    statement = _driver_statement(root, role, driver.dialect)
    row = await statement.fetchrow(driver.connection, values)
    assert row is not None, "the statement always returns one row"
    return TreeRead(
        json=row["json"],
        patient_ids=row["patient_ids"] or [],
        record_ids=row["record_ids"] or [],
        incomplete=bool(row["incomplete"]),
    )
