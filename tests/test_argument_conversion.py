"""Root arguments converted on the prepared path (schema/planned_execution.py's
converted_arguments without an info) are the values Strawberry's own conversion gives."""

from __future__ import annotations

from typing import Any

import pytest
from strawberry.schema.schema_converter import get_arguments

from schema.planned_execution import PlanUnavailable, callable_field, converted_arguments
from schema.schema import build_schema
from schema.strawberry_adapter import graphql_schema

SCHEMA = build_schema()
# Values graphql-core hands over for each argument type the query root uses.
RAW: dict[str, Any] = {
    "id": "QWxpY2U",
    "first": 5,
    "after": None,
    "filter": {"statuses": ["FINALIZED"], "recordTypes": None},
}


def _root_fields() -> list[str]:
    names = []
    for name, field_def in graphql_schema(SCHEMA).query_type.fields.items():  # type: ignore[union-attr]
        try:
            callable_field(field_def)
        except PlanUnavailable:
            continue
        names.append(name)
    return names


@pytest.mark.parametrize("name", _root_fields())
def test_root_arguments_are_strawberrys(name: str) -> None:
    field_def = graphql_schema(SCHEMA).query_type.fields[name]  # type: ignore[union-attr]
    field = callable_field(field_def)
    converter = SCHEMA.schema_converter
    raw = {
        graphql_name: RAW[graphql_name] for graphql_name in field_def.args if graphql_name in RAW
    }
    _, strawberrys = get_arguments(
        field=field,
        source=None,
        info=None,  # type: ignore[arg-type]
        kwargs=raw,
        config=converter.config,
        scalar_registry=converter.scalar_registry,
    )
    info_parameter = field.base_resolver.info_parameter if field.base_resolver else None
    if info_parameter is not None:
        del strawberrys[info_parameter.name]
    assert converted_arguments(converter, field, raw, None) == strawberrys
