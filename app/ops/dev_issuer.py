"""A stand-in for a Cognito user pool: signs Cognito-shaped tokens and serves their JWKS over HTTP.

Used by ``medrec dev`` and the tests, so that local tokens go through exactly the same
``TokenVerifier`` (JWKS over HTTP, RS256, claim checks) as real Cognito tokens.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jose import jwk, jws

ALGORITHM = "RS256"
JWKS_PATH = "/.well-known/jwks.json"


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _thumbprint(public_jwk: Mapping[str, str]) -> str:
    # RFC 7638: a kid derived from the key itself, so a reloaded key keeps its kid.
    canonical = json.dumps(
        {name: public_jwk[name] for name in ("e", "kty", "n")}, separators=(",", ":")
    )
    digest = hashlib.sha256(canonical.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class LocalTokenIssuer:
    def __init__(
        self,
        *,
        issuer: str,
        client_id: str,
        key_pem: bytes | None = None,
        kid: str | None = None,
    ) -> None:
        self.issuer = issuer
        self.client_id = client_id
        if key_pem is None:
            private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            loaded = serialization.load_pem_private_key(key_pem, password=None)
            if not isinstance(loaded, rsa.RSAPrivateKey):
                raise ValueError("the dev issuer key must be an RSA private key")
            private_key = loaded
        self.private_key_pem: bytes = private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self.public_key_pem: bytes = private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        numbers = private_key.public_key().public_numbers()
        public = {"kty": "RSA", "n": _b64url_uint(numbers.n), "e": _b64url_uint(numbers.e)}
        self.kid: str = kid or _thumbprint(public)
        self._public_jwk: dict[str, str] = {
            **public,
            "kid": self.kid,
            "alg": ALGORITHM,
            "use": "sig",
        }
        self._signing_key = jwk.construct(self.private_key_pem.decode("ascii"), ALGORITHM)

    @classmethod
    def load_or_create(cls, path: Path, *, issuer: str, client_id: str) -> Self:
        """An issuer whose key lives in ``path`` (created, mode 0600, on first use)."""
        try:
            return cls(issuer=issuer, client_id=client_id, key_pem=path.read_bytes())
        except FileNotFoundError:
            pass
        created = cls(issuer=issuer, client_id=client_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            # Another process created it first; use its key so both sign alike.
            return cls(issuer=issuer, client_id=client_id, key_pem=path.read_bytes())
        with os.fdopen(fd, "wb") as file:
            file.write(created.private_key_pem)
        return created

    def public_jwk(self) -> dict[str, str]:
        return dict(self._public_jwk)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.public_jwk()]}

    def issue(
        self,
        subject: str,
        *,
        groups: Sequence[str] = (),
        tenant_id: str | None = None,
        token_use: Literal["id", "access"] = "id",  # noqa: S107 - not a secret
        lifetime: timedelta = timedelta(hours=1),
        now: datetime | None = None,
        extra_claims: Mapping[str, Any] | None = None,
    ) -> str:
        """A token shaped like Cognito's; ``extra_claims`` add to or override the claims."""
        issued = int((now or datetime.now(UTC)).timestamp())
        claims: dict[str, Any] = {
            "sub": subject,
            "iss": self.issuer,
            "token_use": token_use,
            "auth_time": issued,
            "iat": issued,
            "exp": issued + int(lifetime.total_seconds()),
            "jti": str(uuid.uuid4()),
            "origin_jti": str(uuid.uuid4()),
        }
        if token_use == "id":  # noqa: S105 - not a secret
            claims |= {"aud": self.client_id, "cognito:username": subject}
        else:
            claims |= {
                "client_id": self.client_id,
                "username": subject,
                "scope": "aws.cognito.signin.user.admin",
            }
        if groups:
            claims["cognito:groups"] = list(groups)
        if tenant_id is not None:
            claims["custom:tenant_id"] = tenant_id
        if extra_claims:
            claims |= extra_claims
        return self.sign(claims)

    def sign(self, claims: Mapping[str, Any], *, headers: Mapping[str, Any] | None = None) -> str:
        """Sign any claims with this key (RS256, our ``kid`` unless ``headers`` override it)."""
        token: str = jws.sign(
            dict(claims),
            self._signing_key,
            headers={"kid": self.kid, **(headers or {})},
            algorithm=ALGORITHM,
        )
        return token


class JWKSServer:
    """Serves ``jwks_provider()`` at ``url`` from a background thread, like a user pool's endpoint.

    Set ``available = False`` to answer 503 instead, ``jwks_headers`` to send more headers with
    the JWKS (``Cache-Control``, ``Age``); ``hits`` counts requests for the JWKS.
    """

    def __init__(
        self,
        jwks_provider: Callable[[], dict[str, Any]],
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._provider = jwks_provider
        self._host = host
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._hits_lock = threading.Lock()
        self.hits = 0
        self.available = True
        self.jwks_headers: dict[str, str] = {}

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("JWKSServer is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{JWKS_PATH}"

    def start(self) -> None:
        if self._server is not None:
            return
        self._server = ThreadingHTTPServer((self._host, self._port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            # A short poll keeps stop() quick; shutdown() waits for the loop to notice.
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="jwks-server",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _count_hit(self) -> None:
        with self._hits_lock:
            self.hits += 1

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] != JWKS_PATH:
                    self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")
                    return
                server._count_hit()
                if not server.available:
                    self._send(HTTPStatus.SERVICE_UNAVAILABLE, b"unavailable", "text/plain")
                    return
                body = json.dumps(server._provider()).encode("utf-8")
                self._send(HTTPStatus.OK, body, "application/json", server.jwks_headers)

            def _send(
                self,
                status: HTTPStatus,
                body: bytes,
                content_type: str,
                headers: Mapping[str, str] | None = None,
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
