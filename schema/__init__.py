"""The Strawberry schema: types, inputs, enums, scalars and connections of the contract."""

from schema.schema import build_schema

__all__ = ["build_schema"]
