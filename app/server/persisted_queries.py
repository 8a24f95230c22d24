"""Persisted queries: Apollo's automatic persisted queries (APQ), and an optional allow-list.

APQ: a client sends only ``extensions.persistedQuery.sha256Hash``; an unknown hash answers
``PersistedQueryNotFound`` and the client sends the document once with its hash, which is checked
and remembered. Short requests, and GET URLs that caches can key on.

Allow-list mode (``MEDREC_PERSISTED_QUERIES_ONLY``): only documents registered with
``medrec register-queries`` run, by hash or in full; everything else is refused.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from models import PersistedDocument

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

_SHA256 = re.compile(r"[0-9a-f]{64}")


class PersistedQueryError(Exception):
    """Answered as a GraphQL error with the message and code Apollo clients understand."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def document_hash(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


class PersistedQueries:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        allow_list_only: bool,
        cache_size: int = 1000,
    ) -> None:
        self._sessionmaker = sessionmaker
        self.allow_list_only = allow_list_only
        self._cache_size = cache_size
        # Hash -> document, most recently used last; registered documents never change.
        self._known: OrderedDict[str, str] = OrderedDict()

    def _remember(self, sha256: str, document: str) -> None:
        self._known[sha256] = document
        self._known.move_to_end(sha256)
        while len(self._known) > self._cache_size:
            self._known.popitem(last=False)

    async def _registered(self, sha256: str) -> str | None:
        async with self._sessionmaker() as session:
            document: str | None = await session.scalar(
                select(PersistedDocument.document).where(PersistedDocument.sha256 == sha256)
            )
        return document

    async def resolve(self, query: str | None, extensions: dict[str, Any] | None) -> str | None:
        """The document to run for a request, or PersistedQueryError."""
        persisted = (extensions or {}).get("persistedQuery")
        if persisted is None:
            if query is not None and self.allow_list_only:
                digest = document_hash(query)
                if digest not in self._known and await self._registered(digest) is None:
                    raise PersistedQueryError(
                        "only registered operations may run on this server", "FORBIDDEN"
                    )
                self._remember(digest, query)
            return query
        if not isinstance(persisted, dict) or persisted.get("version", 1) != 1:
            raise PersistedQueryError("unsupported persistedQuery extension", "BAD_USER_INPUT")
        sha256 = persisted.get("sha256Hash")
        if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
            raise PersistedQueryError(
                "persistedQuery.sha256Hash must be 64 hex digits", "BAD_USER_INPUT"
            )
        if query is not None:
            if document_hash(query) != sha256:
                raise PersistedQueryError("provided sha does not match query", "BAD_USER_INPUT")
            if self.allow_list_only and await self._registered(sha256) is None:
                raise PersistedQueryError(
                    "only registered operations may run on this server", "FORBIDDEN"
                )
            self._remember(sha256, query)
            return query
        document = self._known.get(sha256)
        if document is None:
            document = await self._registered(sha256)
            if document is None:
                # Apollo clients react to exactly this message by sending the full document.
                raise PersistedQueryError("PersistedQueryNotFound", "BAD_USER_INPUT")
        self._remember(sha256, document)
        return document


async def register(session: AsyncSession, documents: Iterable[str]) -> list[str]:
    """Adds documents to the allow-list; returns their hashes (already registered ones too)."""
    hashes = []
    for document in documents:
        sha256 = document_hash(document)
        await session.execute(
            pg_insert(PersistedDocument)
            .values(sha256=sha256, document=document)
            .on_conflict_do_nothing(index_elements=["sha256"])
        )
        hashes.append(sha256)
    return hashes
