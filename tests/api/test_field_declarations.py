"""Every field of a row type is declared once (schema/fields.py): a column, a relation, or
computed by its resolver. The one-statement trees write every declared column and follow every
declared relation; only the fields listed here leave a selection to the DataLoaders."""

from __future__ import annotations

import pytest
from graphql import GraphQLObjectType
from strawberry.schema.schema_converter import GraphQLCoreConverter

from app.data.repositories.json_trees import TREE_RELATIONS, Entity
from schema.fields import declared_column, declared_relation
from schema.schema import build_schema
from schema.sql_trees import declared_leaf
from schema.strawberry_adapter import graphql_schema

SCHEMA = graphql_schema(build_schema())
ENTITIES = {
    "Provider": Entity.PROVIDER,
    "Patient": Entity.PATIENT,
    "MedicalRecord": Entity.RECORD,
    "Diagnosis": Entity.DIAGNOSIS,
    "Attachment": Entity.ATTACHMENT,
    "AccessLogEntry": Entity.ACCESS_LOG_ENTRY,
}
# Computed by their resolvers: connections with arguments the trees do not take, JSON columns
# turned into objects, the record of a diagnosis or attachment, a presigned URL, the grant an
# access was made under.
COMPUTED = {
    "Provider": {"patients", "records"},
    "Patient": set(),
    "MedicalRecord": {"vitalSigns", "prescriptions", "labResults"},
    "Diagnosis": {"record"},
    "Attachment": {"record", "downloadUrl"},
    "AccessLogEntry": {"breakGlassGrant"},
}
# Relations the DataLoaders follow and the trees do not.
NOT_FOLLOWED = {("MedicalRecord", "statusHistory")}
# Columns the statement cannot write as graphql-core would: a bigint beyond GraphQL's Int is an
# error there.
NOT_WRITTEN = {("Attachment", "sizeBytes")}


@pytest.mark.parametrize("type_name", list(ENTITIES))
def test_every_field_is_a_compiled_column_a_relation_or_listed_as_computed(
    type_name: str,
) -> None:
    type_ = SCHEMA.type_map[type_name]
    assert isinstance(type_, GraphQLObjectType)
    computed = set()
    for name, field_def in type_.fields.items():
        declared = field_def.extensions[GraphQLCoreConverter.DEFINITION_BACKREF]
        column = declared_column(declared)
        if column is not None:
            leaf = declared_leaf(ENTITIES[type_name], field_def)
            if (type_name, name) in NOT_WRITTEN:
                assert leaf is None
                continue
            assert leaf is not None, f"{type_name}.{name} declares a column the trees cannot write"
            assert leaf.column == column.name
        elif (follows := declared_relation(declared)) is None:
            computed.add(name)
        else:
            followed = follows.relation in TREE_RELATIONS
            assert followed is ((type_name, name) not in NOT_FOLLOWED), f"{type_name}.{name}"
    assert computed == COMPUTED[type_name]
