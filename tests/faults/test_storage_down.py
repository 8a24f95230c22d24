"""An unreachable object store fails attachment operations, clearly, and nothing else."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.domain.opaque_ids import NodeType, OpaqueIds
from app.server.main import create_app
from app.settings import Settings
from models import Attachment
from models.enums import AttachmentStatus, RecordStatus
from tests.api_client import Api, error_codes
from tests.factories import Factory

IDS = OpaqueIds("medrec-opaque-id-v1")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # closed again: nothing listens there


@pytest.fixture
async def api_without_storage(settings: Settings, api: Api) -> AsyncIterator[Api]:
    app = create_app(
        settings.model_copy(update={"s3_endpoint_url": f"http://127.0.0.1:{_closed_port()}"})
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.8", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://medrec.test") as client:
            yield Api(client, api.issuer, api.tenant_id)


async def test_reads_work_and_attachment_operations_fail_clearly(
    api_without_storage: Api, factory: Factory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    api = api_without_storage
    provider = await factory.provider(cognito_sub="dr-s3")
    patient = await factory.patient()
    record = await factory.record(patient, provider, status=RecordStatus.DRAFT)
    pending = await factory.attachment(record, status=AttachmentStatus.PENDING_UPLOAD)
    doctor = api.token(subject="dr-s3", groups=("provider",))

    data = await api.data("{ records { totalCount edges { node { status } } } }", token=doctor)
    assert data["records"]["totalCount"] == 1

    body = await api.query(
        "mutation($id: ID!) { confirmAttachmentUpload(id: $id) { attachment { status } } }",
        {"id": IDS.encode_id(NodeType.ATTACHMENT, pending["id"])},
        token=doctor,
    )
    assert error_codes(body) == ["INTERNAL_SERVER_ERROR"]
    assert body["errors"][0]["message"] == "attachment storage is unavailable"
    async with sessionmaker() as session:
        status = await session.scalar(
            select(Attachment.status).where(Attachment.id == pending["id"])
        )
    assert status is AttachmentStatus.PENDING_UPLOAD

    # Presigning needs no network: a new upload can still be handed out.
    content = b"still works"
    upload = await api.data(
        "mutation($i: RequestAttachmentUploadInput!) { requestAttachmentUpload(input: $i) "
        "{ attachment { status } } }",
        {
            "i": {
                "recordId": IDS.encode_id(NodeType.MEDICAL_RECORD, record["id"]),
                "fileName": "x.txt",
                "contentType": "text/plain",
                "sizeBytes": len(content),
                "checksumSha256": hashlib.sha256(content).hexdigest(),
            }
        },
        token=doctor,
    )
    assert upload["requestAttachmentUpload"]["attachment"]["status"] == "PENDING_UPLOAD"
