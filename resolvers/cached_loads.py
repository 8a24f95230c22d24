"""DataLoader values that an earlier batch already loaded, handed over without a task.

graphql-core completes a plain value in place but gives every awaitable a task of its own; a
page of records with three relations each would otherwise cost thousands of tasks per request.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from strawberry.dataloader import DataLoader

K = TypeVar("K")
V = TypeVar("V")


def now_or_later(loader: DataLoader[K, V], key: K) -> V | Awaitable[V]:
    """The loaded value itself when an earlier batch has it, else the pending load."""
    future = loader.cache_map.get(key)
    if (
        future is not None
        and future.done()
        and not future.cancelled()
        and future.exception() is None
    ):
        return future.result()
    return loader.load(key)


def required_now_or_later(loader: DataLoader[K, V | None], key: K) -> V | Awaitable[V]:
    value = now_or_later(loader, key)
    if isinstance(value, Awaitable):
        return _required_later(value)
    return required(value)


async def _required_later(pending: Awaitable[V | None]) -> V:
    return required(await pending)


def required(value: V | None) -> V:
    # A non-null relation whose row the viewer may not read: the access rules and the data
    # disagree. Fail the field rather than hand out a partial object.
    if value is None:
        raise LookupError("related row not readable")
    return value
