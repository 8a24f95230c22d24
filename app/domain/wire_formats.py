"""The text the API writes for global ids, pagination cursors, timestamps and dates.

Python writes them (app/domain/opaque_ids.py, schema/scalars.py), and so does PostgreSQL in the
statements that write a whole answer's JSON (app/data/repositories/json_trees.py); both build
them from the definitions here, and tests/test_wire_formats.py holds the two to the same bytes.

- A sealed value (an id or a cursor) is base64url without padding of ``payload || MAC``, the
  MAC being the first ``MAC_BYTES`` of HMAC-SHA256(key, domain || payload); the domain keeps an
  id from passing as a cursor and back.
- An id's payload is its node type's byte, then the row uuid's 16 bytes in RFC 4122 order.
- A cursor's payload is the UTF-8 JSON array ``[kind, value, ...]`` of its order's columns,
  without spaces: a timestamp as its text (below), a uuid hyphenated in lower case, an integer
  as a number, text as a JSON string that escapes only ``"``, ``\\`` and control characters.
- A consistency token's payload is a WAL position (an LSN) as 8 bytes, big-endian.
- A timestamp is ISO 8601 in UTC: ``YYYY-MM-DDTHH:MM:SS``, then ``.`` and six digits of
  microseconds unless they are zero, then ``+00:00``, as ``datetime.isoformat`` writes a UTC
  value. A date is ``YYYY-MM-DD``. Years have four digits (those before 1000 zero-padded).
"""

from __future__ import annotations

import binascii
import json
import uuid
from datetime import UTC, date, datetime
from typing import Any

MAC_BYTES = 8
ID_DOMAIN = b"id"
CURSOR_DOMAIN = b"cursor"
CONSISTENCY_DOMAIN = b"consistency"
POSITION_BYTES = 8

# base64url (RFC 4648, section 5) is base64 with other characters for the values 62 and 63.
BASE64_CHARS_62_63 = "+/"
BASE64URL_CHARS_62_63 = "-_"
BASE64_PADDING = "="

NODE_TYPE_BYTES = 1
ID_PAYLOAD_BYTES = NODE_TYPE_BYTES + 16

CURSOR_ITEM_SEPARATOR = ","
# Python's json escapes non-ASCII characters unless told not to; PostgreSQL's to_json never does.
CURSOR_ENSURE_ASCII = False

TIMESTAMP_ZONE = UTC
TIMESTAMP_ZONE_NAME = "UTC"
TIMESTAMP_OFFSET = "+00:00"  # what isoformat() writes for UTC (never "Z")
DATE_TIME_SEPARATOR = "T"

_TO_BASE64URL = bytes.maketrans(BASE64_CHARS_62_63.encode(), BASE64URL_CHARS_62_63.encode())
_CURSOR_JSON = json.JSONEncoder(
    separators=(CURSOR_ITEM_SEPARATOR, ":"), ensure_ascii=CURSOR_ENSURE_ASCII
)


def base64url(raw: bytes) -> str:
    encoded = binascii.b2a_base64(raw, newline=False).translate(_TO_BASE64URL)
    return encoded.rstrip(BASE64_PADDING.encode()).decode("ascii")


def id_prefix(node_type: int) -> bytes:
    """The bytes before the row id in an id's payload."""
    return node_type.to_bytes(NODE_TYPE_BYTES, "big")


def id_payload(node_type: int, row_id: uuid.UUID) -> bytes:
    return id_prefix(node_type) + row_id.bytes


def cursor_payload(kind: str, values: tuple[Any, ...]) -> bytes:
    text = _CURSOR_JSON.encode([kind, *map(_cursor_value, values)])
    # A lone surrogate (no row holds one; a forged value may) has no UTF-8: backslashreplace
    # writes it as the JSON escape \udxxx, inside its string as it must be.
    return text.encode("utf-8", "backslashreplace")


def _cursor_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return timestamp_text(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def timestamp_text(value: datetime) -> str:
    if value.utcoffset() is None:
        # astimezone() would take it for the server's local time.
        raise ValueError("a timestamp without a UTC offset")
    return value.astimezone(TIMESTAMP_ZONE).isoformat(DATE_TIME_SEPARATOR)


def date_text(value: date) -> str:
    return value.isoformat()
