"""Statements are built once per role: the viewer is only ever a bind parameter in them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.ext.asyncio import create_async_engine

from app.data.commands import attachments, patients, records
from app.data.repositories import batched
from app.domain.access import (
    readable_attachments_for,
    readable_columns,
    readable_diagnoses_for,
    readable_patients_for,
    readable_providers_for,
    readable_records_for,
    readable_status_events_for,
)
from models import MedicalRecord, Patient, table_of
from models.enums import Role

if TYPE_CHECKING:
    from sqlalchemy import Select

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


# The statements the writes read through: each names the caller only as parameters.
WRITE_STATEMENTS = [
    records._lock_statement,
    records._found_statement,
    records._diagnosis_record_statement,
    patients._provider_statement,
    patients._lock_statement,
    attachments._lock_statement,
]


@pytest.mark.parametrize("role", [Role.ADMIN, Role.PROVIDER])
@pytest.mark.parametrize("statement_of", WRITE_STATEMENTS)
def test_a_write_reads_through_a_statement_built_once_per_role(
    statement_of: Callable[[Role], Select[*tuple[Any, ...]]], role: Role
) -> None:
    statement = statement_of(role)
    assert statement_of(role) is statement
    compiled = statement.compile(dialect=DIALECT)
    assert "viewer_tenant_id" in compiled.binds
    with pytest.raises(InvalidRequestError, match="viewer_"):
        compiled.construct_params({})


@pytest.mark.parametrize(
    ("role", "reads_note"),
    [(Role.ADMIN, True), (Role.PROVIDER, True), (Role.PATIENT, False), (None, False)],
)
def test_a_column_only_staff_read_is_a_null_in_everyone_elses_statement(
    role: Role | None, reads_note: bool
) -> None:
    table = table_of(MedicalRecord)
    columns = readable_columns(table, role)
    assert [column.key for column in columns] == [column.key for column in table.c]
    sql = str(select(*columns).compile(dialect=DIALECT))
    assert ("medical_records.staff_note" in sql) is reads_note
    assert ("NULL AS staff_note" in sql) is not reads_note
