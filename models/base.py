"""Declarative base with a constraint naming convention, so migrations name things predictably."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, MetaData, Table, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def table_of(entity: type[Base]) -> Table:
    """A mapped class's table, typed as a Table (``__table__`` is typed as any FromClause)."""
    table = entity.__table__
    assert isinstance(table, Table)
    return table


class TenantScoped:
    """Every row belongs to exactly one tenant; every query filters on it."""

    tenant_id: Mapped[str] = mapped_column(nullable=False)


class UUIDKey:
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), onupdate=func.now()
    )


class Versioned:
    """Optimistic concurrency: writers pass the version they read; a mismatch is a conflict."""

    version: Mapped[int] = mapped_column(nullable=False, server_default="1")
