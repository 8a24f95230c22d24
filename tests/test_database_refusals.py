"""Which database errors are the input's fault (BAD_USER_INPUT) and which are an outage."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine

from app.domain.errors import is_database_outage, refused_input


@pytest.mark.parametrize(
    ("statement", "parameters"),
    [
        ("SELECT 1 / CAST(:v AS int)", {"v": 0}),  # 22012
        ("SELECT CAST(:v AS text)", {"v": "a\x00b"}),  # 22021
        ("SELECT CAST(:v AS int)", {"v": 2**40}),  # asyncpg refuses to encode it
        ("SELECT CAST(:v AS int)", {"v": "twelve"}),  # 22P02 after asyncpg's text to int
    ],
    ids=["division-by-zero", "nul", "int4-overflow", "not-a-number"],
)
async def test_a_statement_refused_for_its_values_through_sqlalchemy_is_bad_input(
    engine: AsyncEngine, statement: str, parameters: dict[str, object]
) -> None:
    async with engine.connect() as connection:
        with pytest.raises(DBAPIError) as refused:
            await connection.execute(text(statement), parameters)
        assert refused_input(refused.value) is not None
        assert not is_database_outage(refused.value)
        assert not refused.value.connection_invalidated


async def test_a_statement_refused_for_other_reasons_is_not_bad_input(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        with pytest.raises(DBAPIError) as failed:
            await connection.execute(text("SELECT 1 FROM no_such_table"))
    assert refused_input(failed.value) is None


@pytest.mark.parametrize(
    "error",
    [PoolTimeout("pool"), OSError("network"), TimeoutError()],
    ids=["pool-timeout", "network", "timeout"],
)
def test_connection_level_failures_are_outages(error: Exception) -> None:
    assert is_database_outage(error)
    assert refused_input(error) is None
