"""Builds the ``strawberry.Schema``."""

from __future__ import annotations

import strawberry
from strawberry.schema.config import StrawberryConfig

from schema import types
from schema.errors import ErrorCodes
from schema.query import Query
from schema.scalars import SCALARS


def build_schema() -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        # Types reachable only through the Node interface must still be in the schema.
        types=[types.Diagnosis, types.Attachment],
        extensions=[ErrorCodes],
        config=StrawberryConfig(scalar_map=SCALARS),
    )


def export_sdl() -> str:
    return build_schema().as_str() + "\n"
