"""Attachment objects in S3 (or any S3-compatible store), through aiobotocore.

The server never carries file bytes on the way in: clients upload straight to the store with a
presigned POST whose policy pins the key, the exact size and type, the checksum and encryption.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from app.domain.errors import ServiceUnavailable

if TYPE_CHECKING:
    from collections.abc import Mapping

    from app.settings import Settings

_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}


class StorageUnavailable(ServiceUnavailable):
    pass


@dataclass(frozen=True, slots=True)
class PresignedPost:
    url: str
    fields: dict[str, str]
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class StoredObject:
    size: int
    content_type: str | None
    sha256_hex: str


def sha256_base64(sha256_hex: str) -> str:
    """S3 carries checksums base64-encoded; the API speaks hex."""
    return base64.b64encode(bytes.fromhex(sha256_hex)).decode("ascii")


class AttachmentStorage:
    def __init__(self, client: Any, settings: Settings) -> None:
        self._client = client
        self._bucket = settings.s3_bucket
        self._upload_expiry = settings.s3_upload_expiry_seconds
        self._download_expiry = settings.s3_download_expiry_seconds
        self._encryption: dict[str, str] = (
            {
                "x-amz-server-side-encryption": "aws:kms",
                "x-amz-server-side-encryption-aws-kms-key-id": settings.s3_kms_key_id,
            }
            if settings.s3_kms_key_id
            else {"x-amz-server-side-encryption": "AES256"}
        )
        self._storage_class = settings.s3_storage_class

    async def presign_upload(
        self,
        key: str,
        *,
        content_type: str,
        size: int,
        sha256_hex: str,
        metadata: Mapping[str, str],
    ) -> PresignedPost:
        """A POST the store accepts for exactly this object: every field is pinned by the policy."""
        fields = {
            "Content-Type": content_type,
            **self._encryption,
            "x-amz-storage-class": self._storage_class,
            "x-amz-checksum-algorithm": "SHA256",
            "x-amz-checksum-sha256": sha256_base64(sha256_hex),
            **{f"x-amz-meta-{name}": value for name, value in metadata.items()},
        }
        conditions: list[Any] = [{name: value} for name, value in fields.items()]
        conditions.append(["content-length-range", size, size])
        try:
            post = await self._client.generate_presigned_post(
                self._bucket,
                key,
                Fields=fields,
                Conditions=conditions,
                ExpiresIn=self._upload_expiry,
            )
        except (BotoCoreError, ClientError) as error:
            raise StorageUnavailable("attachment storage is unavailable") from error
        # expiresAt is the policy's own expiration, to the second the store will enforce.
        policy = json.loads(base64.b64decode(post["fields"]["policy"]))
        expires_at = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
        return PresignedPost(url=post["url"], fields=post["fields"], expires_at=expires_at)

    async def inspect(self, key: str) -> StoredObject | None:
        """What the store holds under ``key``, its SHA-256 included; None when nothing is there."""
        try:
            head = await self._client.head_object(
                Bucket=self._bucket, Key=key, ChecksumMode="ENABLED"
            )
            checksum = head.get("ChecksumSHA256")
            if checksum and "-" not in checksum:
                sha256_hex = base64.b64decode(checksum).hex()
            else:
                # No whole-object checksum from the store: hash the bytes ourselves.
                sha256_hex = await self._hash(key)
        except ClientError as error:
            if str(error.response.get("Error", {}).get("Code")) in _NOT_FOUND:
                return None
            raise StorageUnavailable("attachment storage is unavailable") from error
        except (BotoCoreError, binascii.Error) as error:
            raise StorageUnavailable("attachment storage is unavailable") from error
        return StoredObject(
            size=int(head["ContentLength"]),
            content_type=head.get("ContentType"),
            sha256_hex=sha256_hex,
        )

    async def _hash(self, key: str) -> str:
        digest = hashlib.sha256()
        response = await self._client.get_object(Bucket=self._bucket, Key=key)
        async with response["Body"] as body:
            async for chunk in body.iter_chunks(1024 * 1024):
                digest.update(chunk)
        return digest.hexdigest()

    async def delete(self, key: str) -> None:
        try:
            await self._client.delete_object(Bucket=self._bucket, Key=key)
        except (BotoCoreError, ClientError) as error:
            raise StorageUnavailable("attachment storage is unavailable") from error

    async def download_url(self, key: str, file_name: str) -> str:
        try:
            url: str = await self._client.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self._bucket,
                    "Key": key,
                    "ResponseContentDisposition": f'attachment; filename="{file_name}"',
                },
                ExpiresIn=self._download_expiry,
            )
        except (BotoCoreError, ClientError) as error:
            raise StorageUnavailable("attachment storage is unavailable") from error
        return url
