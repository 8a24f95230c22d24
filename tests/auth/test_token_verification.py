"""TokenVerifier against real RS256 tokens whose JWKS is served over real HTTP."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import random
import stat
import string
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from jose import jws
from pydantic import ValidationError

from app.auth.jwks import JWKSCache
from app.auth.tokens import TokenError, TokenVerifier, VerifiedToken, bearer_token
from app.ops.dev_issuer import JWKSServer, LocalTokenIssuer
from app.settings import Settings
from models.enums import Role

CLIENT_ID = "client-web"
OTHER_CLIENT_ID = "client-mobile"
COOLDOWN = 30.0
MAX_AGE = 900.0


class FakeClock:
    """A monotonic clock the tests move by hand, to step over the refetch cooldown."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class PublishedKeys:
    """What the JWKS endpoint currently serves; tests swap it to rotate keys."""

    def __init__(self, *keys: dict[str, Any]) -> None:
        self.keys = list(keys)

    def document(self) -> dict[str, Any]:
        return {"keys": list(self.keys)}


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings(
        cognito_region="eu-west-1",
        cognito_user_pool_id="eu-west-1_TestPool1",
        cognito_client_ids=(CLIENT_ID, OTHER_CLIENT_ID),
        jwks_refetch_cooldown_seconds=COOLDOWN,
        jwks_max_age_seconds=MAX_AGE,
        token_leeway_seconds=30,
    )


@pytest.fixture(scope="session")
def issuer(settings: Settings) -> LocalTokenIssuer:
    return LocalTokenIssuer(issuer=settings.cognito_issuer, client_id=CLIENT_ID)


@pytest.fixture(scope="session")
def next_issuer(settings: Settings) -> LocalTokenIssuer:
    """The same pool after a key rotation: same issuer, new key and kid."""
    return LocalTokenIssuer(issuer=settings.cognito_issuer, client_id=CLIENT_ID)


@pytest.fixture
def published(issuer: LocalTokenIssuer) -> PublishedKeys:
    return PublishedKeys(issuer.public_jwk())


@pytest.fixture
def jwks_server(published: PublishedKeys) -> Iterator[JWKSServer]:
    with JWKSServer(published.document) as server:
        yield server


@pytest.fixture
async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def jwks_cache(
    jwks_server: JWKSServer, http_client: httpx.AsyncClient, clock: FakeClock
) -> JWKSCache:
    return JWKSCache(
        jwks_server.url,
        client=http_client,
        refetch_cooldown=COOLDOWN,
        max_age=MAX_AGE,
        clock=clock,
    )


@pytest.fixture
def verifier(settings: Settings, jwks_cache: JWKSCache) -> TokenVerifier:
    return TokenVerifier(settings, jwks_cache)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(value: object) -> str:
    return b64url(json.dumps(value).encode("utf-8"))


def unverified_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


def base_claims(issuer: LocalTokenIssuer, **overrides: Any) -> dict[str, Any]:
    now = int(datetime.now(UTC).timestamp())
    claims: dict[str, Any] = {
        "sub": "user-1",
        "iss": issuer.issuer,
        "aud": CLIENT_ID,
        "token_use": "id",
        "iat": now,
        "exp": now + 3600,
    }
    claims.update(overrides)
    return claims


async def rejected(verifier: TokenVerifier, token: str) -> str:
    """The reason ``token`` is rejected, after checking the error does not leak the token."""
    with pytest.raises(TokenError) as caught:
        await verifier.verify(token)
    error = caught.value
    assert type(error) is TokenError
    for text in (str(error), repr(error), error.reason):
        assert token not in text or not token
        for segment in token.split("."):
            assert len(segment) < 8 or segment not in text
    return error.reason


# --- accepted tokens ---------------------------------------------------------------------------


async def test_valid_id_token(verifier: TokenVerifier, issuer: LocalTokenIssuer) -> None:
    token = issuer.issue(
        "sub-123",
        groups=["provider", "admin", "billing", "provider"],
        tenant_id="tenant-a",
        extra_claims={"email": "dr@example.org"},
    )

    verified = await verifier.verify(token)

    assert verified == VerifiedToken(
        subject="sub-123",
        token_use="id",
        client_id=CLIENT_ID,
        roles=(Role.PROVIDER, Role.ADMIN),
        tenant_id="tenant-a",
        expires_at=datetime.fromtimestamp(unverified_claims(token)["exp"], UTC),
    )
    assert verified.expires_at.tzinfo is UTC


async def test_valid_access_token(verifier: TokenVerifier, issuer: LocalTokenIssuer) -> None:
    token = issuer.issue("sub-456", groups=["patient"], token_use="access")
    assert "aud" not in unverified_claims(token)

    verified = await verifier.verify(token)

    assert verified.token_use == "access"
    assert verified.client_id == CLIENT_ID
    assert verified.subject == "sub-456"
    assert verified.roles == (Role.PATIENT,)
    # Cognito access tokens usually carry no tenant; the resolver looks it up by sub.
    assert verified.tenant_id is None


async def test_any_configured_client_is_accepted(
    verifier: TokenVerifier, issuer: LocalTokenIssuer
) -> None:
    id_token = issuer.issue("u", extra_claims={"aud": OTHER_CLIENT_ID})
    access_token = issuer.issue(
        "u", token_use="access", extra_claims={"client_id": OTHER_CLIENT_ID}
    )
    list_aud = issuer.issue("u", extra_claims={"aud": ["someone-else", OTHER_CLIENT_ID]})

    assert (await verifier.verify(id_token)).client_id == OTHER_CLIENT_ID
    assert (await verifier.verify(access_token)).client_id == OTHER_CLIENT_ID
    assert (await verifier.verify(list_aud)).client_id == OTHER_CLIENT_ID


@pytest.mark.parametrize(
    "groups",
    [["billing", "Admins", "ADMIN", "admin "], [], None, "admin", [1, None, {"admin": True}]],
)
async def test_groups_that_are_not_roles_are_ignored(
    verifier: TokenVerifier, issuer: LocalTokenIssuer, groups: object
) -> None:
    token = issuer.sign(base_claims(issuer, **{"cognito:groups": groups}))

    assert (await verifier.verify(token)).roles == ()


@pytest.mark.parametrize("tenant", ["", 42, None, ["t"]])
async def test_tenant_must_be_a_non_empty_string(
    verifier: TokenVerifier, issuer: LocalTokenIssuer, tenant: object
) -> None:
    token = issuer.sign(base_claims(issuer, **{"custom:tenant_id": tenant}))

    assert (await verifier.verify(token)).tenant_id is None


async def test_expired_within_leeway_is_accepted(
    verifier: TokenVerifier, issuer: LocalTokenIssuer
) -> None:
    now = datetime.now(UTC)
    token = issuer.issue("u", now=now - timedelta(minutes=10), lifetime=timedelta(seconds=590))

    assert (await verifier.verify(token)).subject == "u"


async def test_nbf_and_iat_within_leeway_are_accepted(
    verifier: TokenVerifier, issuer: LocalTokenIssuer
) -> None:
    ahead = int(datetime.now(UTC).timestamp()) + 10
    token = issuer.sign(base_claims(issuer, iat=ahead, nbf=ahead))

    assert (await verifier.verify(token)).subject == "user-1"


# --- claim checks ------------------------------------------------------------------------------


async def test_expired_beyond_leeway(verifier: TokenVerifier, issuer: LocalTokenIssuer) -> None:
    now = datetime.now(UTC)
    token = issuer.issue("u", now=now - timedelta(minutes=10), lifetime=timedelta(minutes=9))

    assert await rejected(verifier, token) == "token expired"


async def test_a_token_verified_before_is_still_refused_once_it_expires(
    verifier: TokenVerifier, issuer: LocalTokenIssuer
) -> None:
    """Signatures are checked once per token; its claims on every request."""
    now = int(time.time())
    # exp + the 30 s leeway = now + 2: valid for at least one more second.
    token = issuer.issue(
        "u", now=datetime.fromtimestamp(now - 60, UTC), lifetime=timedelta(seconds=32)
    )
    assert (await verifier.verify(token)).subject == "u"
    await asyncio.sleep(now + 2.05 - time.time())

    assert await rejected(verifier, token) == "token expired"


async def test_nbf_in_the_future(verifier: TokenVerifier, issuer: LocalTokenIssuer) -> None:
    nbf = int(datetime.now(UTC).timestamp()) + 120
    token = issuer.issue("u", extra_claims={"nbf": nbf})

    assert await rejected(verifier, token) == "token not yet valid"


async def test_iat_in_the_future(verifier: TokenVerifier, issuer: LocalTokenIssuer) -> None:
    token = issuer.issue("u", now=datetime.now(UTC) + timedelta(minutes=2))

    assert await rejected(verifier, token) == "issued in the future"


@pytest.mark.parametrize("claim", ["exp", "iat", "sub"])
async def test_required_claims(
    verifier: TokenVerifier, issuer: LocalTokenIssuer, claim: str
) -> None:
    claims = base_claims(issuer)
    del claims[claim]

    assert await rejected(verifier, issuer.sign(claims)) == f"missing {claim} claim"


@pytest.mark.parametrize("value", ["1999999999", True, 1e400, float("nan"), 10**400, [1]])
@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
async def test_time_claims_must_be_finite_numbers(
    verifier: TokenVerifier, issuer: LocalTokenIssuer, claim: str, value: object
) -> None:
    token = issuer.sign(base_claims(issuer, **{claim: value}))

    assert await rejected(verifier, token) == f"invalid {claim} claim"


async def test_absurd_expiry_is_rejected(verifier: TokenVerifier, issuer: LocalTokenIssuer) -> None:
    token = issuer.sign(base_claims(issuer, exp=1e300))

    assert await rejected(verifier, token) == "invalid exp claim"


@pytest.mark.parametrize("sub", ["", 7, None])
async def test_subject_must_be_a_non_empty_string(
    verifier: TokenVerifier, issuer: LocalTokenIssuer, sub: object
) -> None:
    token = issuer.sign(base_claims(issuer, sub=sub))

    assert await rejected(verifier, token) == "missing sub claim"


@pytest.mark.parametrize(
    "iss",
    [
        "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_OtherPool",
        "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_TestPool1/",
        "https://evil.example/eu-west-1_TestPool1",
        None,
        ["https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_TestPool1"],
    ],
)
async def test_wrong_issuer(verifier: TokenVerifier, issuer: LocalTokenIssuer, iss: object) -> None:
    token = issuer.sign(base_claims(issuer, iss=iss))

    assert await rejected(verifier, token) == "wrong issuer"


async def test_token_from_another_issuer_key_and_name(verifier: TokenVerifier) -> None:
    stranger = LocalTokenIssuer(issuer="https://evil.example", client_id=CLIENT_ID)

    assert await rejected(verifier, stranger.issue("u")) == "unknown signing key"


@pytest.mark.parametrize("aud", ["other-client", "", None, [], ["other-client"], 5])
async def test_wrong_audience(
    verifier: TokenVerifier, issuer: LocalTokenIssuer, aud: object
) -> None:
    token = issuer.sign(base_claims(issuer, aud=aud))

    assert await rejected(verifier, token) == "wrong audience"


@pytest.mark.parametrize("client_id", ["other-client", None, [CLIENT_ID]])
async def test_access_token_with_wrong_client_id(
    verifier: TokenVerifier, issuer: LocalTokenIssuer, client_id: object
) -> None:
    # An `aud` naming a valid client must not rescue an access token: access tokens use client_id.
    token = issuer.issue(
        "u", token_use="access", extra_claims={"client_id": client_id, "aud": CLIENT_ID}
    )

    assert await rejected(verifier, token) == "unknown client_id"


@pytest.mark.parametrize("token_use", ["refresh", "ID", "", None, ["id"]])
async def test_unsupported_token_use(
    verifier: TokenVerifier, issuer: LocalTokenIssuer, token_use: object
) -> None:
    token = issuer.sign(base_claims(issuer, token_use=token_use))

    assert await rejected(verifier, token) == "unsupported token_use"


async def test_missing_token_use(verifier: TokenVerifier, issuer: LocalTokenIssuer) -> None:
    claims = base_claims(issuer)
    del claims["token_use"]

    assert await rejected(verifier, issuer.sign(claims)) == "missing token_use"


# --- header, algorithm and signature -----------------------------------------------------------


@pytest.mark.parametrize("kid", [None, "", 17, ["kid"]])
async def test_missing_or_invalid_kid(
    verifier: TokenVerifier,
    issuer: LocalTokenIssuer,
    jwks_server: JWKSServer,
    kid: object,
) -> None:
    if kid is None:
        token = jws.sign(base_claims(issuer), issuer.private_key_pem.decode(), algorithm="RS256")
    else:
        token = issuer.sign(base_claims(issuer), headers={"kid": kid})

    assert await rejected(verifier, token) == "missing key id"
    assert jwks_server.hits == 0


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return f"{b64url_json(header)}.{b64url_json(claims)}.{b64url(signature)}"


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "", None])
async def test_alg_none(
    verifier: TokenVerifier, issuer: LocalTokenIssuer, jwks_server: JWKSServer, alg: object
) -> None:
    token = unsigned({"alg": alg, "kid": issuer.kid, "typ": "JWT"}, base_claims(issuer))

    assert await rejected(verifier, token) == "unsupported algorithm"
    assert jwks_server.hits == 0


async def test_hs256_signed_with_the_public_key(
    verifier: TokenVerifier, issuer: LocalTokenIssuer, jwks_server: JWKSServer
) -> None:
    # The classic key-confusion attack: HMAC keyed with the (public) RSA key.
    header = {"alg": "HS256", "kid": issuer.kid, "typ": "JWT"}
    signing_input = f"{b64url_json(header)}.{b64url_json(base_claims(issuer))}"
    for secret in (issuer.public_key_pem, json.dumps(issuer.public_jwk()).encode()):
        mac = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
        token = f"{signing_input}.{b64url(mac)}"

        assert await rejected(verifier, token) == "unsupported algorithm"
    assert jwks_server.hits == 0


@pytest.mark.parametrize("alg", ["RS384", "RS512", "PS256", "ES256", "rs256"])
async def test_other_algorithms_are_rejected(
    verifier: TokenVerifier, issuer: LocalTokenIssuer, alg: str
) -> None:
    if alg in ("RS384", "RS512"):
        token = jws.sign(
            base_claims(issuer),
            issuer.private_key_pem.decode(),
            algorithm=alg,
            headers={"kid": issuer.kid},
        )
    else:
        token = unsigned({"alg": alg, "kid": issuer.kid}, base_claims(issuer), b"\x01" * 256)

    assert await rejected(verifier, token) == "unsupported algorithm"


async def test_tampered_payload(verifier: TokenVerifier, issuer: LocalTokenIssuer) -> None:
    token = issuer.issue("patient-1", groups=["patient"], tenant_id="tenant-a")
    header, _, signature = token.split(".")
    claims = unverified_claims(token) | {"cognito:groups": ["admin"]}
    tampered = f"{header}.{b64url_json(claims)}.{signature}"

    assert await rejected(verifier, tampered) == "invalid signature"


async def test_signature_by_another_key_under_a_known_kid(
    verifier: TokenVerifier, issuer: LocalTokenIssuer, next_issuer: LocalTokenIssuer
) -> None:
    token = next_issuer.sign(base_claims(issuer), headers={"kid": issuer.kid})

    assert await rejected(verifier, token) == "invalid signature"


async def test_truncated_signature(verifier: TokenVerifier, issuer: LocalTokenIssuer) -> None:
    token = issuer.issue("u")

    assert await rejected(verifier, token[:-10]) == "invalid signature"
    assert await rejected(verifier, token.rsplit(".", 1)[0] + ".") == "invalid signature"


@pytest.mark.parametrize("payload", [b"not json", b"[1, 2]", b'"claims"', b"\xff\xfe"])
async def test_signed_payload_that_is_not_a_claims_object(
    verifier: TokenVerifier, issuer: LocalTokenIssuer, payload: bytes
) -> None:
    token = jws.sign(
        payload, issuer.private_key_pem.decode(), headers={"kid": issuer.kid}, algorithm="RS256"
    )

    assert await rejected(verifier, token) == "malformed token"


_RANDOM = random.Random(20240611)
MALFORMED = [
    "",
    "abc",
    "a.b.c",
    "...",
    "a.b",
    "a.b.c.d.e",
    "Bearer abc",
    b64url(_RANDOM.randbytes(300)),
    ".".join(b64url(_RANDOM.randbytes(n)) for n in (40, 200, 256)),
    b64url_json(["RS256"]) + ".e30.",
    b64url_json("RS256") + ".e30.",
    "é.é.é",
    "\ud800.\udfff.x",
    "x" * 200_000,
]


@pytest.mark.parametrize("token", MALFORMED, ids=range(len(MALFORMED)))
async def test_garbage_is_malformed(
    verifier: TokenVerifier, jwks_server: JWKSServer, token: str
) -> None:
    assert await rejected(verifier, token) == "malformed token"
    assert jwks_server.hits == 0


async def test_header_without_alg(verifier: TokenVerifier) -> None:
    assert await rejected(verifier, "e30.e30.e30") == "unsupported algorithm"


async def test_no_input_raises_anything_but_token_error(
    verifier: TokenVerifier, issuer: LocalTokenIssuer
) -> None:
    rng = random.Random(7)
    valid = issuer.issue("u", groups=["admin"])
    alphabet = string.ascii_letters + string.digits + "-_.=+/ \x00é"
    candidates: list[str] = []
    for _ in range(300):
        candidates.append("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 120))))
        # Mutations of a real token keep the header parseable, reaching the later stages.
        chars = list(valid)
        for _ in range(rng.randint(1, 4)):
            chars[rng.randrange(len(chars))] = rng.choice(alphabet)
        candidates.append("".join(chars))

    for candidate in candidates:
        if candidate == valid:
            continue
        with contextlib.suppress(TokenError):
            await verifier.verify(candidate)


# --- JWKS cache: rotation, cooldown, outages ---------------------------------------------------


async def test_unknown_kid_triggers_refetch_after_rotation(
    verifier: TokenVerifier,
    issuer: LocalTokenIssuer,
    next_issuer: LocalTokenIssuer,
    published: PublishedKeys,
    jwks_server: JWKSServer,
    clock: FakeClock,
) -> None:
    assert (await verifier.verify(issuer.issue("u"))).subject == "u"
    assert jwks_server.hits == 1

    published.keys = [issuer.public_jwk(), next_issuer.public_jwk()]
    clock.advance(COOLDOWN)

    assert (await verifier.verify(next_issuer.issue("v"))).subject == "v"
    assert jwks_server.hits == 2
    # Both keys are cached now: no further fetches.
    await verifier.verify(issuer.issue("u"))
    await verifier.verify(next_issuer.issue("v"))
    assert jwks_server.hits == 2


async def test_retired_keys_stop_verifying_after_a_refetch(
    verifier: TokenVerifier,
    issuer: LocalTokenIssuer,
    next_issuer: LocalTokenIssuer,
    published: PublishedKeys,
    clock: FakeClock,
) -> None:
    old_token = issuer.issue("u")
    await verifier.verify(old_token)
    published.keys = [next_issuer.public_jwk()]
    clock.advance(COOLDOWN)

    await verifier.verify(next_issuer.issue("v"))

    assert await rejected(verifier, old_token) == "unknown signing key"


async def test_rotation_within_cooldown_waits_for_the_cooldown(
    verifier: TokenVerifier,
    issuer: LocalTokenIssuer,
    next_issuer: LocalTokenIssuer,
    published: PublishedKeys,
    jwks_server: JWKSServer,
    clock: FakeClock,
) -> None:
    await verifier.verify(issuer.issue("u"))
    published.keys = [issuer.public_jwk(), next_issuer.public_jwk()]
    new_token = next_issuer.issue("v")

    clock.advance(COOLDOWN - 1)
    assert await rejected(verifier, new_token) == "unknown signing key"
    assert jwks_server.hits == 1

    clock.advance(1)
    assert (await verifier.verify(new_token)).subject == "v"
    assert jwks_server.hits == 2


async def test_flood_of_unknown_kids_causes_one_fetch(
    verifier: TokenVerifier,
    issuer: LocalTokenIssuer,
    jwks_server: JWKSServer,
    jwks_cache: JWKSCache,
) -> None:
    tokens = [issuer.sign(base_claims(issuer), headers={"kid": f"made-up-{i}"}) for i in range(50)]

    # Cold cache, all at once: single-flight makes one request for all of them.
    results = await asyncio.gather(*(verifier.verify(t) for t in tokens), return_exceptions=True)
    assert all(isinstance(r, TokenError) and r.reason == "unknown signing key" for r in results)
    assert jwks_server.hits == 1
    assert jwks_cache.fetch_count == 1

    # And later, one after the other, within the cooldown: no request at all.
    for token in tokens:
        assert await rejected(verifier, token) == "unknown signing key"
    assert jwks_server.hits == 1
    # The cached key still works.
    assert (await verifier.verify(issuer.issue("u"))).subject == "u"
    assert jwks_server.hits == 1


async def test_endpoint_down_keeps_cached_keys(
    verifier: TokenVerifier,
    issuer: LocalTokenIssuer,
    next_issuer: LocalTokenIssuer,
    published: PublishedKeys,
    jwks_server: JWKSServer,
    jwks_cache: JWKSCache,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await verifier.verify(issuer.issue("u"))
    jwks_server.available = False
    published.keys = [issuer.public_jwk(), next_issuer.public_jwk()]
    clock.advance(COOLDOWN)
    new_token = next_issuer.issue("v")

    assert await rejected(verifier, new_token) == "unknown signing key"
    assert jwks_server.hits == 2
    assert "HTTP 503" in caplog.text
    assert new_token not in caplog.text
    assert (await verifier.verify(issuer.issue("u"))).subject == "u"

    jwks_server.available = True
    clock.advance(COOLDOWN)
    assert (await verifier.verify(new_token)).subject == "v"
    assert jwks_cache.fetch_count == 3


@pytest.mark.parametrize(
    "document",
    [
        {"nope": []},
        {"keys": "all of them"},
        {"keys": []},
        {"keys": [{"kty": "EC", "kid": "ec-key", "crv": "P-256", "x": "AA", "y": "AA"}]},
        {"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]},
        {"keys": [{"kty": "RSA", "kid": "", "n": "AQAB", "e": "AQAB"}]},
    ],
)
async def test_unusable_jwks_documents_keep_cached_keys(
    issuer: LocalTokenIssuer,
    next_issuer: LocalTokenIssuer,
    http_client: httpx.AsyncClient,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    document: dict[str, Any],
) -> None:
    served = [issuer.jwks()]
    with JWKSServer(lambda: served[-1]) as server:
        cache = JWKSCache(
            server.url,
            client=http_client,
            refetch_cooldown=COOLDOWN,
            max_age=MAX_AGE,
            clock=clock,
        )
        assert await cache.get_key(issuer.kid) == issuer.public_jwk()
        served.append(document)
        clock.advance(COOLDOWN)

        assert await cache.get_key(next_issuer.kid) is None
        assert await cache.get_key(issuer.kid) == issuer.public_jwk()
        assert server.hits == cache.fetch_count == 2
        assert "JWKS fetch from" in caplog.text


class _NotJSONHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html>maintenance</html>"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


async def test_non_json_response_is_a_failed_fetch(
    issuer: LocalTokenIssuer, http_client: httpx.AsyncClient, clock: FakeClock
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotJSONHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        cache = JWKSCache(
            f"http://127.0.0.1:{port}/jwks.json",
            client=http_client,
            refetch_cooldown=0,
            max_age=MAX_AGE,
            clock=clock,
        )
        assert await cache.refresh() is False
        assert await cache.get_key(issuer.kid) is None
        assert cache.fetch_count == 2
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_failed_fetch_keeps_keys_then_recovers(
    issuer: LocalTokenIssuer,
    next_issuer: LocalTokenIssuer,
    http_client: httpx.AsyncClient,
    clock: FakeClock,
) -> None:
    documents: list[dict[str, Any]] = [
        issuer.jwks(),
        {"keys": "broken"},
        {"keys": [next_issuer.public_jwk()]},
    ]
    with JWKSServer(lambda: documents[0]) as server:
        cache = JWKSCache(
            server.url,
            client=http_client,
            refetch_cooldown=COOLDOWN,
            max_age=MAX_AGE,
            clock=clock,
        )
        assert await cache.get_key(issuer.kid) == issuer.public_jwk()

        documents.pop(0)
        clock.advance(COOLDOWN)
        assert await cache.get_key(next_issuer.kid) is None
        assert await cache.get_key(issuer.kid) == issuer.public_jwk()

        documents.pop(0)
        clock.advance(COOLDOWN)
        assert await cache.get_key(next_issuer.kid) == next_issuer.public_jwk()
        assert await cache.get_key(issuer.kid) is None
        assert server.hits == cache.fetch_count == 3


async def test_unreachable_endpoint_and_wrong_path(
    issuer: LocalTokenIssuer, http_client: httpx.AsyncClient, clock: FakeClock
) -> None:
    with JWKSServer(issuer.jwks) as server:
        dead_url = server.url
    unreachable = JWKSCache(
        dead_url, client=http_client, refetch_cooldown=0, max_age=MAX_AGE, clock=clock
    )
    assert await unreachable.get_key(issuer.kid) is None
    assert unreachable.fetch_count == 1

    with JWKSServer(issuer.jwks) as server:
        not_found = JWKSCache(
            server.url.replace("jwks.json", "other"),
            client=http_client,
            refetch_cooldown=0,
            max_age=MAX_AGE,
            clock=clock,
        )
        assert await not_found.get_key(issuer.kid) is None
        assert server.hits == 0


async def test_cache_keeps_only_rsa_keys(
    issuer: LocalTokenIssuer, http_client: httpx.AsyncClient, clock: FakeClock
) -> None:
    ec = {"kty": "EC", "kid": "ec-key", "crv": "P-256", "x": "AA", "y": "AA"}
    oct_key = {"kty": "oct", "kid": "hmac-key", "k": "c2VjcmV0"}
    with JWKSServer(lambda: {"keys": [ec, oct_key, issuer.public_jwk()]}) as server:
        cache = JWKSCache(
            server.url,
            client=http_client,
            refetch_cooldown=COOLDOWN,
            max_age=MAX_AGE,
            clock=clock,
        )
        assert await cache.get_key(issuer.kid) == issuer.public_jwk()
        assert await cache.get_key("ec-key") is None
        assert await cache.get_key("hmac-key") is None
        assert cache.fetch_count == 1


@pytest.mark.parametrize(
    ("key_fields", "reason"),
    [
        ({"n": "!!", "e": "AQAB"}, "unusable signing key"),
        ({"alg": "RS512"}, "signing key is not for RS256 signatures"),
        ({"use": "enc"}, "signing key is not for RS256 signatures"),
    ],
)
async def test_unsuitable_published_key(
    verifier: TokenVerifier,
    issuer: LocalTokenIssuer,
    published: PublishedKeys,
    key_fields: dict[str, str],
    reason: str,
) -> None:
    published.keys = [issuer.public_jwk() | key_fields]

    assert await rejected(verifier, issuer.issue("u")) == reason


# --- JWKS cache: refetched by age, so removed keys stop verifying --------------------------------


async def test_a_key_removed_from_the_jwks_stops_verifying_once_the_max_age_passes(
    verifier: TokenVerifier,
    issuer: LocalTokenIssuer,
    next_issuer: LocalTokenIssuer,
    published: PublishedKeys,
    jwks_server: JWKSServer,
    clock: FakeClock,
) -> None:
    token = issuer.issue("u")
    assert (await verifier.verify(token)).subject == "u"
    assert (await verifier.verify(token)).subject == "u"
    published.keys = [next_issuer.public_jwk()]

    # Fresh keys are used as they are: no request to the identity provider.
    clock.advance(MAX_AGE - 1)
    assert (await verifier.verify(token)).subject == "u"
    assert jwks_server.hits == 1

    # Verified and remembered before, yet refused once the refetch drops its key.
    clock.advance(1)
    assert await rejected(verifier, token) == "unknown signing key"
    assert await rejected(verifier, issuer.issue("u")) == "unknown signing key"
    assert jwks_server.hits == 2
    assert (await verifier.verify(next_issuer.issue("v"))).subject == "v"
    assert jwks_server.hits == 2


@pytest.mark.parametrize("seconds", ["0", "-1"])
def test_a_max_age_that_is_not_positive_is_refused(
    monkeypatch: pytest.MonkeyPatch, seconds: str
) -> None:
    monkeypatch.setenv("MEDREC_JWKS_MAX_AGE_SECONDS", seconds)

    with pytest.raises(ValidationError, match="jwks_max_age_seconds"):
        Settings()


async def test_a_key_replaced_under_the_same_kid_stops_verifying_what_the_old_key_signed(
    verifier: TokenVerifier,
    issuer: LocalTokenIssuer,
    next_issuer: LocalTokenIssuer,
    published: PublishedKeys,
    clock: FakeClock,
) -> None:
    token = issuer.issue("u")
    await verifier.verify(token)
    published.keys = [next_issuer.public_jwk() | {"kid": issuer.kid}]
    clock.advance(MAX_AGE)

    assert await rejected(verifier, token) == "invalid signature"
    replacement = next_issuer.sign(base_claims(issuer), headers={"kid": issuer.kid})
    assert (await verifier.verify(replacement)).subject == "user-1"


async def test_a_refetch_that_changes_nothing_keeps_the_same_key_objects(
    jwks_server: JWKSServer, jwks_cache: JWKSCache, issuer: LocalTokenIssuer, clock: FakeClock
) -> None:
    # The verifier remembers checked tokens per key object: a routine refetch must not drop that.
    first = await jwks_cache.get_key(issuer.kid)
    clock.advance(MAX_AGE)

    assert await jwks_cache.get_key(issuer.kid) is first
    assert jwks_server.hits == 2


async def test_cache_control_max_age_shorter_than_the_max_age_shortens_the_interval(
    verifier: TokenVerifier,
    issuer: LocalTokenIssuer,
    next_issuer: LocalTokenIssuer,
    published: PublishedKeys,
    jwks_server: JWKSServer,
    clock: FakeClock,
) -> None:
    jwks_server.jwks_headers = {"Cache-Control": "public, max-age=120"}
    token = issuer.issue("u")
    await verifier.verify(token)
    published.keys = [next_issuer.public_jwk()]

    clock.advance(119)
    assert (await verifier.verify(token)).subject == "u"
    assert jwks_server.hits == 1

    clock.advance(1)
    assert await rejected(verifier, token) == "unknown signing key"
    assert jwks_server.hits == 2


async def test_the_age_header_counts_against_cache_control_max_age(
    jwks_server: JWKSServer, jwks_cache: JWKSCache, issuer: LocalTokenIssuer, clock: FakeClock
) -> None:
    # A CDN that has held the response for 200 of its 300 seconds leaves 100.
    jwks_server.jwks_headers = {"Cache-Control": "max-age=300", "Age": "200"}
    await jwks_cache.get_key(issuer.kid)

    clock.advance(99)
    await jwks_cache.get_key(issuer.kid)
    assert jwks_server.hits == 1
    clock.advance(1)
    await jwks_cache.get_key(issuer.kid)
    assert jwks_server.hits == 2


@pytest.mark.parametrize(
    "cache_control",
    ["max-age=0", "max-age=5", "no-cache", "no-store", "max-age=soon", "max-age=300, max-age=1"],
)
async def test_cache_control_cannot_make_refetches_more_frequent_than_the_cooldown(
    jwks_server: JWKSServer,
    jwks_cache: JWKSCache,
    issuer: LocalTokenIssuer,
    clock: FakeClock,
    cache_control: str,
) -> None:
    jwks_server.jwks_headers = {"Cache-Control": cache_control}
    await jwks_cache.get_key(issuer.kid)

    for _ in range(5):
        clock.advance(COOLDOWN / 5 - 0.01)
        assert await jwks_cache.get_key(issuer.kid) == issuer.public_jwk()
    assert jwks_server.hits == 1

    clock.advance(0.05)
    await jwks_cache.get_key(issuer.kid)
    assert jwks_server.hits == 2


@pytest.mark.parametrize("max_age", ["86400", "99999999999999999999", str(int(MAX_AGE))])
async def test_cache_control_max_age_longer_than_the_max_age_does_not_lengthen_it(
    verifier: TokenVerifier,
    issuer: LocalTokenIssuer,
    next_issuer: LocalTokenIssuer,
    published: PublishedKeys,
    jwks_server: JWKSServer,
    clock: FakeClock,
    max_age: str,
) -> None:
    jwks_server.jwks_headers = {"Cache-Control": f"max-age={max_age}"}
    token = issuer.issue("u")
    await verifier.verify(token)
    published.keys = [next_issuer.public_jwk()]

    clock.advance(MAX_AGE)
    assert await rejected(verifier, token) == "unknown signing key"
    assert jwks_server.hits == 2


async def test_a_failed_scheduled_refetch_keeps_the_keys_and_retries_after_the_cooldown(
    verifier: TokenVerifier,
    issuer: LocalTokenIssuer,
    next_issuer: LocalTokenIssuer,
    published: PublishedKeys,
    jwks_server: JWKSServer,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = issuer.issue("u")
    await verifier.verify(token)
    jwks_server.available = False
    clock.advance(MAX_AGE)

    assert (await verifier.verify(token)).subject == "u"
    assert jwks_server.hits == 2
    assert "HTTP 503" in caplog.text

    # Stale keys keep serving while the endpoint is down, asked again once per cool-down.
    clock.advance(COOLDOWN - 1)
    for _ in range(3):
        assert (await verifier.verify(token)).subject == "u"
    assert jwks_server.hits == 2
    clock.advance(1)
    assert (await verifier.verify(token)).subject == "u"
    assert jwks_server.hits == 3

    jwks_server.available = True
    published.keys = [next_issuer.public_jwk()]
    clock.advance(COOLDOWN)
    assert await rejected(verifier, token) == "unknown signing key"
    assert jwks_server.hits == 4


async def test_a_failed_unknown_kid_refetch_puts_the_scheduled_one_off_by_the_cooldown(
    verifier: TokenVerifier,
    issuer: LocalTokenIssuer,
    next_issuer: LocalTokenIssuer,
    jwks_server: JWKSServer,
    clock: FakeClock,
) -> None:
    token = issuer.issue("u")
    await verifier.verify(token)
    jwks_server.available = False
    clock.advance(MAX_AGE - 10)
    assert await rejected(verifier, next_issuer.issue("v")) == "unknown signing key"
    assert jwks_server.hits == 2

    clock.advance(10)
    assert (await verifier.verify(token)).subject == "u"
    assert jwks_server.hits == 2
    clock.advance(COOLDOWN - 10)
    assert (await verifier.verify(token)).subject == "u"
    assert jwks_server.hits == 3


async def test_concurrent_requests_with_stale_keys_share_one_refetch(
    verifier: TokenVerifier,
    issuer: LocalTokenIssuer,
    next_issuer: LocalTokenIssuer,
    published: PublishedKeys,
    jwks_server: JWKSServer,
    jwks_cache: JWKSCache,
    clock: FakeClock,
) -> None:
    old_tokens = [issuer.issue(f"u{i}") for i in range(25)]
    await verifier.verify(old_tokens[0])
    published.keys = [next_issuer.public_jwk()]
    clock.advance(MAX_AGE)
    new_tokens = [next_issuer.issue(f"v{i}") for i in range(25)]

    results = await asyncio.gather(
        *(verifier.verify(t) for t in old_tokens + new_tokens), return_exceptions=True
    )

    refused = results[:25]
    assert all(isinstance(r, TokenError) and r.reason == "unknown signing key" for r in refused)
    assert [r.subject for r in results[25:] if isinstance(r, VerifiedToken)] == [
        f"v{i}" for i in range(25)
    ]
    assert jwks_server.hits == jwks_cache.fetch_count == 2


async def test_concurrent_requests_share_one_failed_refetch(
    verifier: TokenVerifier,
    issuer: LocalTokenIssuer,
    jwks_server: JWKSServer,
    clock: FakeClock,
) -> None:
    tokens = [issuer.issue(f"u{i}") for i in range(25)]
    await verifier.verify(tokens[0])
    jwks_server.available = False
    clock.advance(MAX_AGE)

    results = await asyncio.gather(*(verifier.verify(t) for t in tokens))

    assert [r.subject for r in results] == [f"u{i}" for i in range(25)]
    assert jwks_server.hits == 2


# --- Authorization header ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "token"),
    [("Bearer abc.def.ghi", "abc.def.ghi"), ("bearer x.y.z", "x.y.z"), ("BEARER  t.u.v ", "t.u.v")],
)
def test_bearer_token(value: str, token: str) -> None:
    assert bearer_token(value) == token


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "missing Authorization header"),
        ("", "missing Authorization header"),
        ("   ", "missing Authorization header"),
        ("Basic dXNlcjpwYXNz", "Authorization header must use the Bearer scheme"),
        ("Token abc.def.ghi", "Authorization header must use the Bearer scheme"),
        ("abc.def.ghi", "Authorization header must use the Bearer scheme"),
        ("Bearer", "missing bearer token"),
        ("Bearer    ", "missing bearer token"),
        ("Bearer abc.def ghi", "malformed token"),
    ],
)
def test_bearer_token_rejections(value: str | None, reason: str) -> None:
    with pytest.raises(TokenError) as caught:
        bearer_token(value)

    assert caught.value.reason == reason
    assert str(caught.value) == reason


# --- errors never carry the token or its claims ------------------------------------------------


async def test_reasons_never_echo_the_token_or_claims(
    verifier: TokenVerifier, issuer: LocalTokenIssuer
) -> None:
    secretish = "tenant-SECRET-VALUE-42"
    now = datetime.now(UTC)
    tokens = [
        issuer.issue(secretish, now=now - timedelta(hours=3)),
        issuer.issue(secretish, extra_claims={"iss": secretish}),
        issuer.issue(secretish, extra_claims={"aud": secretish}),
        issuer.issue(secretish, token_use="access", extra_claims={"client_id": secretish}),
        issuer.issue(secretish, extra_claims={"token_use": secretish}),
        issuer.sign(base_claims(issuer), headers={"kid": secretish}),
        issuer.sign(base_claims(issuer), headers={"alg": secretish}),
    ]
    for token in tokens:
        with pytest.raises(TokenError) as caught:
            await verifier.verify(token)
        error = caught.value
        for text in (str(error), repr(error), error.reason, str(error.args)):
            assert token not in text
            assert secretish not in text
        # Nothing chained either, so a logged traceback can't carry jose's messages.
        assert error.__cause__ is None
        assert error.__context__ is None or error.__suppress_context__


# --- the dev issuer ----------------------------------------------------------------------------


async def test_load_or_create_keeps_the_key(
    tmp_path: Path, settings: Settings, http_client: httpx.AsyncClient, clock: FakeClock
) -> None:
    path = tmp_path / "dev" / "issuer-key.pem"
    first = LocalTokenIssuer.load_or_create(
        path, issuer=settings.cognito_issuer, client_id=CLIENT_ID
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = first.issue("u", groups=["admin"])

    second = LocalTokenIssuer.load_or_create(
        path, issuer=settings.cognito_issuer, client_id=CLIENT_ID
    )

    assert second.kid == first.kid
    with JWKSServer(second.jwks) as server:
        cache = JWKSCache(
            server.url,
            client=http_client,
            refetch_cooldown=COOLDOWN,
            max_age=MAX_AGE,
            clock=clock,
        )
        verified = await TokenVerifier(settings, cache).verify(token)
    assert verified.roles == (Role.ADMIN,)


def test_issued_tokens_are_cognito_shaped(issuer: LocalTokenIssuer) -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    id_claims = unverified_claims(
        issuer.issue("s", groups=["admin"], tenant_id="t", now=now, lifetime=timedelta(minutes=5))
    )
    access_claims = unverified_claims(issuer.issue("s", token_use="access", now=now))

    assert id_claims["aud"] == CLIENT_ID
    assert id_claims["token_use"] == "id"
    assert id_claims["iss"] == issuer.issuer
    assert id_claims["iat"] == id_claims["auth_time"] == int(now.timestamp())
    assert id_claims["exp"] == int(now.timestamp()) + 300
    assert id_claims["cognito:groups"] == ["admin"]
    assert id_claims["custom:tenant_id"] == "t"
    assert access_claims["client_id"] == CLIENT_ID
    assert access_claims["token_use"] == "access"
    assert "aud" not in access_claims
    assert "cognito:groups" not in access_claims
    assert "custom:tenant_id" not in access_claims
    header = jws.get_unverified_header(issuer.issue("s"))
    assert header["alg"] == "RS256"
    assert header["kid"] == issuer.kid
    assert issuer.jwks()["keys"][0] | {"n": "", "e": ""} == {
        "kty": "RSA",
        "kid": issuer.kid,
        "alg": "RS256",
        "use": "sig",
        "n": "",
        "e": "",
    }
