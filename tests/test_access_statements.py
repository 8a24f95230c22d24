"""Read statements are built once per role: the viewer is only ever a bind parameter in them."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.ext.asyncio import create_async_engine

from app.access import (
    readable_attachments_for,
    readable_diagnoses_for,
    readable_patients_for,
    readable_providers_for,
    readable_records_for,
    readable_status_events_for,
)
from app.repositories import batched
from models import Patient
from models.enums import Role

DIALECT = create_async_engine("postgresql+asyncpg://").dialect

PREDICATES = [
    readable_providers_for,
    readable_patients_for,
    readable_records_for,
    readable_diagnoses_for,
    readable_attachments_for,
    readable_status_events_for,
]


@pytest.mark.parametrize("role", [Role.ADMIN, Role.PROVIDER, Role.PATIENT])
@pytest.mark.parametrize("readable", PREDICATES)
def test_a_role_predicate_needs_the_viewer_as_parameters(
    readable: batched.Readable, role: Role
) -> None:
    compiled = select(1).where(readable(role)).compile(dialect=DIALECT)
    viewer_binds = {name for name in compiled.binds if name.startswith("viewer_")}
    assert "viewer_tenant_id" in viewer_binds
    assert all(compiled.binds[name].required for name in viewer_binds)
    # Run without the viewer's values, a statement fails instead of reading with NULLs.
    with pytest.raises(InvalidRequestError, match="viewer_"):
        compiled.construct_params({})


def test_statements_are_built_once_per_table_and_role() -> None:
    admin = batched._by_ids(Patient, readable_patients_for, Role.ADMIN)
    assert batched._by_ids(Patient, readable_patients_for, Role.ADMIN) is admin
    assert batched._by_ids(Patient, readable_patients_for, Role.PATIENT) is not admin
