"""The served schema runs every operation through schema/pipeline.py and nothing beside it."""

from __future__ import annotations

import pytest
from strawberry.extensions import MaskErrors

from schema.mutation import Mutation
from schema.query import Query
from schema.schema import MedrecSchema, build_schema


def test_a_schema_extension_is_refused_rather_than_silently_skipped() -> None:
    with pytest.raises(TypeError, match="add a step to the pipeline"):
        MedrecSchema(introspection=True, query=Query, mutation=Mutation, extensions=[MaskErrors])


def test_there_is_no_synchronous_second_pipeline() -> None:
    with pytest.raises(NotImplementedError):
        build_schema().execute_sync("{ __typename }")
