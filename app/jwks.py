"""A cache of the user pool's signing keys (JWKS), refetched when an unknown ``kid`` appears."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx

logger = logging.getLogger("medrec.jwks")


class JWKSFetchError(Exception):
    """A JWKS fetch that produced no usable keys; the cached keys stay in use."""


class JWKSCache:
    """RSA keys by ``kid``.

    Refetches happen only for unknown kids and at most once per ``refetch_cooldown`` seconds,
    so tokens with made-up kids cannot turn into a flood of requests to the identity provider.
    The request timeout is the ``client``'s.
    """

    def __init__(
        self,
        url: str,
        *,
        client: httpx.AsyncClient,
        refetch_cooldown: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._client = client
        self._cooldown = refetch_cooldown
        self._clock = clock
        self._keys: dict[str, dict[str, Any]] = {}
        self._last_attempt: float | None = None
        self._lock = asyncio.Lock()
        self.fetch_count = 0

    async def get_key(self, kid: str) -> dict[str, Any] | None:
        key = self._keys.get(kid)
        if key is not None:
            return key
        async with self._lock:
            # Whoever held the lock before us may just have fetched this kid.
            key = self._keys.get(kid)
            if key is not None or not self._may_fetch():
                return key
            await self._fetch()
            return self._keys.get(kid)

    async def refresh(self) -> bool:
        """Fetch now, ignoring the cooldown (e.g. to warm the cache at startup)."""
        async with self._lock:
            return await self._fetch()

    def _may_fetch(self) -> bool:
        return self._last_attempt is None or self._clock() - self._last_attempt >= self._cooldown

    async def _fetch(self) -> bool:
        self._last_attempt = self._clock()
        self.fetch_count += 1
        try:
            keys = await self._download()
        except JWKSFetchError as exc:
            logger.warning(
                "JWKS fetch from %s failed (%s); keeping %d cached key(s)",
                self._url,
                exc,
                len(self._keys),
            )
            return False
        # Replace rather than merge: keys the pool has retired must stop verifying tokens.
        self._keys = keys
        logger.info("JWKS fetched from %s: %d RSA key(s)", self._url, len(keys))
        return True

    async def _download(self) -> dict[str, dict[str, Any]]:
        try:
            response = await self._client.get(self._url)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise JWKSFetchError(f"{type(exc).__name__}: {exc}") from None
        if response.status_code != httpx.codes.OK:
            raise JWKSFetchError(f"HTTP {response.status_code}")
        try:
            document = response.json()
        except ValueError:
            raise JWKSFetchError("response is not JSON") from None
        entries = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            raise JWKSFetchError('response has no "keys" list')
        keys = {
            entry["kid"]: entry
            for entry in entries
            if isinstance(entry, dict)
            and entry.get("kty") == "RSA"
            and isinstance(entry.get("kid"), str)
            and entry["kid"]
        }
        if not keys:
            # A pool always has keys; an empty set means a broken response, not a revocation.
            raise JWKSFetchError("response has no RSA keys")
        return keys
