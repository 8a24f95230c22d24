"""Verification of Cognito user pool JWTs, as the contract's "Authentication" section requires.

Every rejection is a ``TokenError`` whose reason names the problem but never echoes the token
or any of its claims, so reasons are safe to return to clients and to log.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from jose import jwk, jws, jwt
from jose.exceptions import JOSEError

from models.enums import Role

if TYPE_CHECKING:
    from app.auth.jwks import JWKSCache
    from app.settings import Settings

ALGORITHM = "RS256"
# Cognito tokens are a few KB; anything far larger is not worth decoding.
MAX_TOKEN_LENGTH = 64 * 1024
_ROLES_BY_GROUP = {role.value: role for role in Role}


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    subject: str
    token_use: Literal["id", "access"]
    client_id: str
    roles: tuple[Role, ...]
    tenant_id: str | None
    expires_at: datetime
    # The key that verified it (TokenVerifier.still_signed): a connection that outlives the
    # request asks whether the pool still publishes it.
    key_id: str = field(default="", compare=False, repr=False)
    key: Any = field(default=None, compare=False, repr=False)


class TokenError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def bearer_token(header_value: str | None) -> str:
    """The token of an ``Authorization: Bearer <jwt>`` header value."""
    if header_value is None or not header_value.strip():
        raise TokenError("missing Authorization header")
    scheme, _, credentials = header_value.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise TokenError("Authorization header must use the Bearer scheme")
    token = credentials.strip()
    if not token:
        raise TokenError("missing bearer token")
    # Any whitespace inside (str.split splits on exactly what str.isspace calls whitespace).
    if len(token.split()) != 1:
        raise TokenError("malformed token")
    return token


# Fully checked tokens kept per verifier (as many as signatures are, see _verified_claims);
# started afresh once this many are kept.
_CHECKED_KEPT = 1024

# Every token a key signs has the same header segment (alg and kid), so a few cached segments
# serve all callers; a longer one is parsed, not cached.
_SHORT_HEADER = 512


@lru_cache(maxsize=64)
def _key_id(header: str) -> str:
    """The kid of a token's header segment, once its algorithm is known to be RS256."""
    try:
        # python-jose reads the header of a token; the header's is all it needs.
        fields = jwt.get_unverified_header(f"{header}..")
    except JOSEError:
        raise TokenError("malformed token") from None
    if not isinstance(fields, dict):
        raise TokenError("malformed token")
    # Checked before any key is touched: this stops "none" and HS256-keyed-with-the-public-key.
    if fields.get("alg") != ALGORITHM:
        raise TokenError("unsupported algorithm")
    kid = fields.get("kid")
    if not isinstance(kid, str) or not kid:
        raise TokenError("missing key id")
    return kid


class TokenVerifier:
    def __init__(self, settings: Settings, jwks: JWKSCache) -> None:
        self._issuer = settings.cognito_issuer
        self._client_ids = frozenset(settings.cognito_client_ids)
        self._leeway = settings.token_leeway_seconds
        self._jwks = jwks
        # Built jose keys by kid, reused while the cache hands out the same JWK object.
        self._built_keys: dict[str, tuple[dict[str, Any], Any]] = {}
        # Tokens that passed every check, with the key that verified them: a client sends its
        # token with every request for up to an hour. Like _verified_claims, it is consulted
        # only with the key the JWKS hands out now, and an entry counts only for that very key
        # object: a key a refetch removed or replaced stops vouching for what it verified.
        self._checked: dict[str, tuple[Any, dict[str, Any], VerifiedToken]] = {}

    async def verify(self, token: str) -> VerifiedToken:
        if not isinstance(token, str) or not token.isascii() or len(token) > MAX_TOKEN_LENGTH:
            raise TokenError("malformed token")
        header, dot, _ = token.partition(".")
        if not dot:
            raise TokenError("malformed token")
        kid = _key_id(header) if len(header) <= _SHORT_HEADER else _key_id.__wrapped__(header)
        # Always asked, cached tokens included: this is where a retired key stops verifying.
        key = await self._key(kid)
        checked = self._checked.get(token)
        if checked is not None and checked[0] is key:
            # Checked in full before; only the time checks can come out otherwise now.
            self._check_times(checked[1])
            return checked[2]
        claims = self._verified_claims(token, key)
        verified = replace(self._check_claims(claims), key_id=kid, key=key)
        if len(self._checked) >= _CHECKED_KEPT:
            self._checked.clear()
        self._checked[token] = (key, claims, verified)
        return verified

    async def still_signed(self, token: VerifiedToken) -> bool:
        """Whether the JWKS still hands out the key that verified ``token``: False once a
        refresh removed or replaced it (for connections that outlive their first check)."""
        try:
            return await self._key(token.key_id) is token.key
        except TokenError:
            return False

    async def _key(self, kid: str) -> Any:
        jwk_dict = await self._jwks.get_key(kid)
        if jwk_dict is None:
            raise TokenError("unknown signing key")
        built = self._built_keys.get(kid)
        if built is not None and built[0] is jwk_dict:
            return built[1]
        if jwk_dict.get("alg", ALGORITHM) != ALGORITHM or jwk_dict.get("use", "sig") != "sig":
            raise TokenError("signing key is not for RS256 signatures")
        try:
            key = jwk.construct(jwk_dict, ALGORITHM)
        except Exception:
            # A JWK with broken fields (bad base64, wrong types) surfaces as assorted errors.
            raise TokenError("unusable signing key") from None
        self._built_keys[kid] = (jwk_dict, key)
        return key

    @staticmethod
    @lru_cache(maxsize=1024)
    def _verified_claims(token: str, key: Any) -> dict[str, Any]:
        """The claims of a token whose signature ``key`` verifies. A client sends the same token
        for up to an hour: its signature is checked once (per key object, so a key replaced
        under the same kid checks it again); the claims are checked on every request."""
        try:
            payload = jws.verify(token, key, algorithms=[ALGORITHM])
        except JOSEError as exc:
            # The header parsed already: any other failure is a broken payload or signature.
            if "Signature verification failed" in str(exc):
                raise TokenError("invalid signature") from None
            raise TokenError("malformed token") from None
        try:
            claims = json.loads(payload)
        except ValueError:
            raise TokenError("malformed token") from None
        if not isinstance(claims, dict):
            raise TokenError("malformed token")
        return claims

    def _check_claims(self, claims: dict[str, Any]) -> VerifiedToken:
        if claims.get("iss") != self._issuer:
            raise TokenError("wrong issuer")
        use: Literal["id", "access"]
        client_id: str
        if claims.get("token_use") == "id":
            use = "id"
            client_id = self._audience(claims.get("aud"))
        elif claims.get("token_use") == "access":
            use = "access"
            candidate = claims.get("client_id")
            if not isinstance(candidate, str) or candidate not in self._client_ids:
                raise TokenError("unknown client_id")
            client_id = candidate
        elif "token_use" not in claims:
            raise TokenError("missing token_use")
        else:
            raise TokenError("unsupported token_use")

        exp = self._check_times(claims)
        try:
            expires_at = datetime.fromtimestamp(exp, UTC)
        except (OverflowError, OSError, ValueError):
            raise TokenError("invalid exp claim") from None

        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise TokenError("missing sub claim")
        tenant_id = claims.get("custom:tenant_id")
        return VerifiedToken(
            subject=subject,
            token_use=use,
            client_id=client_id,
            roles=_roles(claims.get("cognito:groups")),
            tenant_id=tenant_id if isinstance(tenant_id, str) and tenant_id else None,
            expires_at=expires_at,
        )

    def _check_times(self, claims: dict[str, Any]) -> float:
        """The expiry, once the token is valid now (expiry, not-before and issue time)."""
        now = time.time()
        exp = _numeric_date(claims, "exp")
        if exp is None:
            raise TokenError("missing exp claim")
        if now >= exp + self._leeway:
            raise TokenError("token expired")
        nbf = _numeric_date(claims, "nbf")
        if nbf is not None and nbf > now + self._leeway:
            raise TokenError("token not yet valid")
        iat = _numeric_date(claims, "iat")
        if iat is None:
            raise TokenError("missing iat claim")
        if iat > now + self._leeway:
            raise TokenError("issued in the future")
        return exp

    def _audience(self, aud: object) -> str:
        # Cognito sends a single string; RFC 7519 also allows a list.
        candidates = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        for candidate in candidates:
            if isinstance(candidate, str) and candidate in self._client_ids:
                return candidate
        raise TokenError("wrong audience")


def _numeric_date(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    # bool is an int, and json accepts NaN, Infinity and huge integers: none of them is a date.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenError(f"invalid {name} claim")
    try:
        number = float(value)
    except OverflowError:
        raise TokenError(f"invalid {name} claim") from None
    if not math.isfinite(number):
        raise TokenError(f"invalid {name} claim")
    return number


def _roles(groups: object) -> tuple[Role, ...]:
    if not isinstance(groups, list):
        return ()
    roles = (_ROLES_BY_GROUP.get(group) for group in groups if isinstance(group, str))
    # dict.fromkeys de-duplicates while keeping the token's order.
    return tuple(dict.fromkeys(role for role in roles if role is not None))
