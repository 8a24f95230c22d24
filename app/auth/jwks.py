"""A cache of the user pool's signing keys (JWKS): refetched when it is older than its max age,
and when an unknown ``kid`` appears."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import httpx

logger = logging.getLogger("medrec.jwks")


class JWKSFetchError(Exception):
    """A JWKS fetch that produced no usable keys; the cached keys stay in use."""


class JWKSCache:
    """RSA keys by ``kid``.

    The keys are refetched once they are ``max_age`` seconds old, or sooner when the response's
    ``Cache-Control`` says so (never sooner than ``refetch_cooldown``): a key the pool retires
    stops verifying within ``max_age``. The refetch is lazy: the first lookup after it is due
    makes it, concurrent lookups wait for that one fetch, and a lookup of fresh keys makes none.
    Unknown kids refetch too, at most once per ``refetch_cooldown`` seconds, so tokens with
    made-up kids cannot turn into a flood of requests to the identity provider. A failed fetch
    keeps the cached keys, and no refetch follows it within ``refetch_cooldown``.
    The request timeout is the ``client``'s.
    """

    def __init__(
        self,
        url: str,
        *,
        client: httpx.AsyncClient,
        refetch_cooldown: float,
        max_age: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._client = client
        self._cooldown = refetch_cooldown
        self._max_age = max_age
        self._clock = clock
        self._keys: dict[str, dict[str, Any]] = {}
        self._last_attempt: float | None = None
        # When the cached keys are due for a refetch (clock time); due from the start.
        self._refresh_at = -math.inf
        self._lock = asyncio.Lock()
        self.fetch_count = 0

    async def get_key(self, kid: str) -> dict[str, Any] | None:
        if self._clock() < self._refresh_at:
            key = self._keys.get(kid)
            if key is not None:
                return key
        async with self._lock:
            # Whoever held the lock before us may just have fetched.
            now = self._clock()
            due = now >= self._refresh_at
            key = self._keys.get(kid)
            if due or (key is None and self._may_fetch(now)):
                await self._fetch()
                key = self._keys.get(kid)
            return key

    async def refresh(self) -> bool:
        """Fetch now, ignoring the cooldown (e.g. to warm the cache at startup)."""
        async with self._lock:
            return await self._fetch()

    def _may_fetch(self, now: float) -> bool:
        return self._last_attempt is None or now - self._last_attempt >= self._cooldown

    async def _fetch(self) -> bool:
        started = self._last_attempt = self._clock()
        self.fetch_count += 1
        try:
            keys, fresh_for = await self._download()
        except JWKSFetchError as exc:
            logger.warning(
                "JWKS fetch from %s failed (%s); keeping %d cached key(s)",
                self._url,
                exc,
                len(self._keys),
            )
            # Whatever asked for it, the next attempt waits for the cool-down.
            self._refresh_at = max(self._refresh_at, started + self._cooldown)
            return False
        # Replace rather than merge: keys the pool has retired must stop verifying tokens. An
        # unchanged key stays the same object, so what the verifier remembers of it stays valid.
        self._keys = {
            kid: current if (current := self._keys.get(kid)) == entry else entry
            for kid, entry in keys.items()
        }
        self._refresh_at = started + self._lifetime(fresh_for)
        logger.info("JWKS fetched from %s: %d RSA key(s)", self._url, len(keys))
        return True

    def _lifetime(self, fresh_for: float | None) -> float:
        """How long fetched keys are used: the response's freshness, floored at the cooldown
        (a ``max-age=0`` JWKS must not cost a fetch per request), and never over ``max_age``."""
        if fresh_for is None:
            return self._max_age
        return min(self._max_age, max(fresh_for, self._cooldown))

    async def _download(self) -> tuple[dict[str, dict[str, Any]], float | None]:
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
        return keys, _freshness(response.headers)


def _freshness(headers: httpx.Headers) -> float | None:
    """Seconds a response stays fresh by its ``Cache-Control`` (max-age less ``Age``, RFC 9111);
    None when it does not say."""
    max_age: int | None = None
    for directive in headers.get("cache-control", "").split(","):
        name, _, value = directive.strip().partition("=")
        name = name.lower()
        if name in ("no-cache", "no-store"):
            return 0.0
        if name == "max-age":
            seconds = _seconds(value.strip('"'))
            if seconds is None:
                # RFC 9111: an invalid max-age makes the response stale.
                return 0.0
            max_age = seconds if max_age is None else min(max_age, seconds)
    if max_age is None:
        return None
    return float(max(max_age - (_seconds(headers.get("age", "")) or 0), 0))


def _seconds(value: str) -> int | None:
    """A delta-seconds value: digits only; past 2**31 it means 2**31 (RFC 9111, 1.2.2)."""
    if not (value.isascii() and value.isdigit()):
        return None
    return 2**31 if len(value) > 10 else min(int(value), 2**31)
