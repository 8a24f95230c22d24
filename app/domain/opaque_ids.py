"""Opaque global ids and pagination cursors.

Both are base64url strings carrying a truncated HMAC, so an edited, truncated or invented value is
rejected as malformed instead of reaching the database. They are not secrets: every row is still
access-checked in SQL. Their layout is app/domain/wire_formats.py's.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import json
import uuid
from functools import lru_cache
from typing import Any

from app.domain.errors import BadUserInput
from app.domain.wire_formats import (
    BASE64_CHARS_62_63,
    BASE64_PADDING,
    BASE64URL_CHARS_62_63,
    CONSISTENCY_DOMAIN,
    CURSOR_DOMAIN,
    ID_DOMAIN,
    ID_PAYLOAD_BYTES,
    MAC_BYTES,
    NODE_TYPE_BYTES,
    POSITION_BYTES,
    base64url,
    cursor_payload,
    id_payload,
)

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
    BREAK_GLASS_GRANT = 6


_FROM_BASE64URL = str.maketrans(BASE64URL_CHARS_62_63, BASE64_CHARS_62_63)


def _b64decode(text: str) -> bytes:
    if not text.isascii():
        raise ValueError("non-ascii")
    raw = base64.b64decode((text + BASE64_PADDING * (-len(text) % 4)).translate(_FROM_BASE64URL))
    # The decoder skips stray characters and ignores unused trailing bits; only the one canonical
    # spelling of a value is accepted, so any edit to an id or cursor is refused.
    if base64url(raw) != text:
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
        return outer.digest()[:MAC_BYTES]

    def _seal(self, domain: bytes, payload: bytes) -> str:
        return base64url(payload + self._mac(domain, payload))

    def _open(self, domain: bytes, text: str) -> bytes | None:
        try:
            raw = _b64decode(text)
        except (ValueError, binascii.Error):
            return None
        payload, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
        if len(raw) <= MAC_BYTES or not hmac.compare_digest(mac, self._mac(domain, payload)):
            return None
        return payload

    def encode_id(self, node_type: NodeType, row_id: uuid.UUID) -> str:
        return self._seal(ID_DOMAIN, id_payload(node_type, row_id))

    def decode_id(self, text: str) -> tuple[NodeType, uuid.UUID]:
        return self._decoded(text)

    def _decode_id(self, text: str) -> tuple[NodeType, uuid.UUID]:
        payload = self._open(ID_DOMAIN, text)
        if payload is None or len(payload) != ID_PAYLOAD_BYTES:
            raise BadUserInput("malformed id")
        try:
            node_type = NodeType(int.from_bytes(payload[:NODE_TYPE_BYTES], "big"))
        except ValueError:
            raise BadUserInput("malformed id") from None
        return node_type, uuid.UUID(bytes=payload[NODE_TYPE_BYTES:])

    def decode_typed_id(self, text: str, expected: NodeType, argument: str) -> uuid.UUID:
        try:
            node_type, row_id = self.decode_id(text)
        except BadUserInput:
            raise BadUserInput(f"{argument}: malformed id") from None
        if node_type is not expected:
            raise BadUserInput(f"{argument}: not a {_TYPE_NAMES[expected]} id")
        return row_id

    def encode_consistency(self, position: int) -> str:
        """The token of a mutation's response: what a later read must have seen."""
        return self._seal(CONSISTENCY_DOMAIN, position.to_bytes(POSITION_BYTES, "big"))

    def decode_consistency(self, text: str) -> int:
        payload = self._open(CONSISTENCY_DOMAIN, text)
        if payload is None or len(payload) != POSITION_BYTES:
            raise BadUserInput("malformed consistency token")
        return int.from_bytes(payload, "big")

    def encode_cursor(self, kind: str, values: tuple[Any, ...]) -> str:
        return self._seal(CURSOR_DOMAIN, cursor_payload(kind, values))

    def decode_cursor(self, kind: str, text: str) -> list[Any]:
        """Returns the raw JSON values; the caller converts them to column types."""
        payload = self._open(CURSOR_DOMAIN, text)
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
    NodeType.BREAK_GLASS_GRANT: "BreakGlassGrant",
}
