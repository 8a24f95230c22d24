"""Sealing ids and cursors: the hand-written HMAC gives exactly the bytes clients already hold."""

from __future__ import annotations

import hashlib
import hmac
import random
import uuid
from datetime import UTC, datetime

import pytest

from app.domain.errors import BadUserInput
from app.domain.opaque_ids import NodeType, OpaqueIds


@pytest.mark.parametrize("key", ["", "medrec-opaque-id-v1", "k" * 200, "ключ"])
def test_mac_equals_hmac_sha256(key: str) -> None:
    ids = OpaqueIds(key)
    derived_key = hashlib.sha256(key.encode()).digest()
    rng = random.Random(key)
    for size in [*range(0, 140), *rng.choices(range(140, 5000), k=60)]:
        payload = rng.randbytes(size)
        for domain in (b"id", b"cursor"):
            expected = hmac.digest(derived_key, domain + payload, "sha256")[:8]
            assert ids._mac(domain, payload) == expected


def test_ids_and_cursors_issued_before_stay_valid() -> None:
    """Values sealed by the previous implementation (hmac.digest), kept verbatim."""
    ids = OpaqueIds("medrec-opaque-id-v1")
    record_id = uuid.UUID("00000000-0000-4000-8000-000000000001")
    assert ids.encode_id(NodeType.MEDICAL_RECORD, record_id) == "AwAAAAAAAEAAgAAAAAAAAAGh6q8Ysy9UGA"
    assert ids.decode_id("AwAAAAAAAEAAgAAAAAAAAAGh6q8Ysy9UGA") == (
        NodeType.MEDICAL_RECORD,
        record_id,
    )
    cursor = ids.encode_cursor(
        "records",
        (
            datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
            uuid.UUID("00000000-0000-4000-8000-000000000002"),
        ),
    )
    assert cursor == (
        "WyJyZWNvcmRzIiwiMjAyNS0wMS0wMlQwMzowNDowNSswMDowMCIsIjAwMDAwMDAwLTAwMDAtNDAwMC04MDAwLTAw"
        "MDAwMDAwMDAwMiJd6eW4eEOlhM8"
    )
    assert OpaqueIds("").encode_id(NodeType.PATIENT, uuid.UUID(int=0)) == (
        "AgAAAAAAAAAAAAAAAAAAAABH8uLqFUsfbQ"
    )


def test_a_value_sealed_with_another_key_is_refused() -> None:
    sealed = OpaqueIds("one").encode_id(NodeType.PATIENT, uuid.uuid4())
    with pytest.raises(BadUserInput):
        OpaqueIds("two").decode_id(sealed)


def test_a_decoded_id_is_remembered_and_a_bad_one_refused_each_time() -> None:
    ids = OpaqueIds("medrec-opaque-id-v1")
    other = OpaqueIds("another key")
    row_id = uuid.uuid4()
    text = ids.encode_id(NodeType.PATIENT, row_id)
    for _ in range(2):
        assert ids.decode_id(text) == (NodeType.PATIENT, row_id)
        with pytest.raises(BadUserInput):
            other.decode_id(text)  # another key's instance remembers nothing of this one
        with pytest.raises(BadUserInput):
            ids.decode_id(text[:-1] + ("A" if text[-1] != "A" else "B"))
    assert ids._decoded.cache_info().hits == 1
