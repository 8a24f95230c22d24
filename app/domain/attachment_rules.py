"""What an attachment may be, and where its object lives.

Keys are chosen by the server only: ``<tenant>/medical-records/<yyyy>/<mm>/<record-id>/
<attachment-id>/<sanitized file name>``, with the year and month of the record's visit.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from app.domain.errors import BadUserInput

if TYPE_CHECKING:
    import uuid
    from collections.abc import Collection
    from datetime import datetime

FILE_NAME_MAX = 255
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def file_name(value: str, field: str) -> str:
    """The stored name: no path parts, only ``[A-Za-z0-9._-]`` (others become ``_``)."""
    name = value.strip()
    if not name:
        raise BadUserInput(f"{field}: must not be empty")
    if len(name) > FILE_NAME_MAX:
        raise BadUserInput(f"{field}: at most {FILE_NAME_MAX} characters")
    if "/" in name or "\\" in name or name in {".", ".."} or _CONTROL.search(name):
        raise BadUserInput(f"{field}: must be a plain file name, without a path")
    sanitized = _UNSAFE.sub("_", name).lstrip(".")
    if not sanitized.strip("_"):
        raise BadUserInput(f"{field}: must contain letters or digits")
    return sanitized


def content_type(value: str, field: str, *, allowed: Collection[str]) -> str:
    normalized = value.strip().lower()
    if normalized not in allowed:
        raise BadUserInput(f"{field}: must be one of {', '.join(sorted(allowed))}")
    return normalized


def size_bytes(value: int, field: str, *, maximum: int) -> int:
    if value < 1:
        raise BadUserInput(f"{field}: must be at least 1")
    if value > maximum:
        raise BadUserInput(f"{field}: must be at most {maximum} bytes")
    return value


def sha256_hex(value: str, field: str) -> str:
    checksum = value.strip()
    if not _SHA256_HEX.fullmatch(checksum):
        raise BadUserInput(f"{field}: must be 64 hexadecimal digits (a SHA-256)")
    return checksum.lower()


def object_key(
    tenant_id: str,
    record_id: uuid.UUID,
    visit_date: datetime,
    attachment_id: uuid.UUID,
    stored_name: str,
) -> str:
    return (
        f"{tenant_id}/medical-records/{visit_date:%Y}/{visit_date:%m}/"
        f"{record_id}/{attachment_id}/{stored_name}"
    )
