"""Opaque global ids and pagination cursors.

Both are base64url strings carrying a truncated HMAC, so an edited, truncated or invented value is
rejected as malformed instead of reaching the database. They are not secrets: every row is still
access-checked in SQL.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import json
import uuid
from datetime import datetime
from functools import lru_cache
from typing import Any

from app.domain.errors import BadUserInput

_MAC_BYTES = 8
_SHA256_BLOCK = 64
_IPAD = bytes(byte ^ 0x36 for byte in range(256))
_OPAD = bytes(byte ^ 0x5C for byte in range(256))


class NodeType(enum.IntEnum):
    """Wire codes of the types a global id can name; never renumber."""

    PROVIDER = 1
    PATIENT = 2
    MEDICAL_RECORD = 3
    DIAGNOSIS = 4
    ATTACHMENT = 5


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    if not text.isascii():
        raise ValueError("non-ascii")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    # The decoder skips stray characters and ignores unused trailing bits; only the one canonical
    # spelling of a value is accepted, so any edit to an id or cursor is refused.
    if _b64encode(raw) != text:
        raise ValueError("not canonical")
    return raw


class OpaqueIds:
    def __init__(self, key: str) -> None:
        # HMAC-SHA256 (RFC 2104) by hand: its keyed inner and outer states are made once and copied
        # per call, 2.4 times faster than hmac.digest; tests keep the bytes equal to hmac.digest's.
        padded = hashlib.sha256(key.encode()).digest().ljust(_SHA256_BLOCK, b"\0")
        self._blocks = (padded.translate(_IPAD), padded.translate(_OPAD))
        self._inner = hashlib.sha256(self._blocks[0])
        self._outer = hashlib.sha256(self._blocks[1])
        # Clients send the same ids again and again (a patient's page, then the patient): a
        # valid id is checked once while it stays among the recent ones; a bad one every time.
        self._decoded = lru_cache(maxsize=4096)(self._decode_id)

    def hmac_blocks(self) -> tuple[bytes, bytes]:
        """The key's inner and outer HMAC blocks, for statements that seal ids in SQL
        (app/data/repositories/json_trees.py)."""
        return self._blocks

    def _mac(self, domain: bytes, payload: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(domain)
        inner.update(payload)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()[:_MAC_BYTES]

    def _seal(self, domain: bytes, payload: bytes) -> str:
        return _b64encode(payload + self._mac(domain, payload))

    def _open(self, domain: bytes, text: str) -> bytes | None:
        try:
            raw = _b64decode(text)
        except (ValueError, binascii.Error):
            return None
        payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if len(raw) <= _MAC_BYTES or not hmac.compare_digest(mac, self._mac(domain, payload)):
            return None
        return payload

    def encode_id(self, node_type: NodeType, row_id: uuid.UUID) -> str:
        return self._seal(b"id", bytes((node_type,)) + row_id.bytes)

    def decode_id(self, text: str) -> tuple[NodeType, uuid.UUID]:
        return self._decoded(text)

    def _decode_id(self, text: str) -> tuple[NodeType, uuid.UUID]:
        payload = self._open(b"id", text)
        if payload is None or len(payload) != 17:
            raise BadUserInput("malformed id")
        try:
            node_type = NodeType(payload[0])
        except ValueError:
            raise BadUserInput("malformed id") from None
        return node_type, uuid.UUID(bytes=payload[1:])

    def decode_typed_id(self, text: str, expected: NodeType, argument: str) -> uuid.UUID:
        try:
            node_type, row_id = self.decode_id(text)
        except BadUserInput:
            raise BadUserInput(f"{argument}: malformed id") from None
        if node_type is not expected:
            raise BadUserInput(f"{argument}: not a {_TYPE_NAMES[expected]} id")
        return row_id

    def encode_cursor(self, kind: str, values: tuple[Any, ...]) -> str:
        payload = json.dumps([kind, *map(_to_json, values)], separators=(",", ":")).encode()
        return self._seal(b"cursor", payload)

    def decode_cursor(self, kind: str, text: str) -> list[Any]:
        """Returns the raw JSON values; the caller converts them to column types."""
        payload = self._open(b"cursor", text)
        if payload is None:
            raise BadUserInput("after: malformed cursor")
        try:
            values = json.loads(payload)
        except (ValueError, RecursionError):  # not UTF-8 or not JSON: signed with a leaked key
            raise BadUserInput("after: malformed cursor") from None
        if not isinstance(values, list) or not values or values[0] != kind:
            raise BadUserInput("after: cursor belongs to a different list")
        return values[1:]


_TYPE_NAMES = {
    NodeType.PROVIDER: "Provider",
    NodeType.PATIENT: "Patient",
    NodeType.MEDICAL_RECORD: "MedicalRecord",
    NodeType.DIAGNOSIS: "Diagnosis",
    NodeType.ATTACHMENT: "Attachment",
}


def _to_json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value
