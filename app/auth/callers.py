"""The caller of a request: its verified token, with the provider and patient rows linked to the
token's subject."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from app.data.repositories import subject_links
from app.domain.viewer import Viewer
from models.enums import Role

if TYPE_CHECKING:
    from app.auth.tokens import VerifiedToken
    from app.data.request_reads import ReaderSource


async def resolve_viewer(reads: ReaderSource, token: VerifiedToken) -> Viewer:
    """The caller, with the provider and patient rows linked to the token's subject.

    Runs on every request (nothing is cached across requests), so a provider deactivated or
    unlinked since the last request acts in no role from this one on.
    With a ``custom:tenant_id`` claim only that tenant's rows count. Without one the tenant is the
    linked row's: the database links a subject once (models.SubjectLink), and several tenants
    would get none.
    An admin token that names its tenant acts as admin whatever its subject is linked to, so
    its links are looked up only when asked for (``with_links``): no statement here.
    """
    links_known = token.tenant_id is None or Role.ADMIN not in token.roles
    tenant_id, linked = (
        await subject_links.linked(reads, token.subject, token.tenant_id)
        if links_known
        else (token.tenant_id, {})
    )
    return Viewer(
        subject=token.subject,
        roles=frozenset(token.roles),
        tenant_id=tenant_id,
        provider_id=linked.get("provider"),
        patient_id=linked.get("patient"),
        expires_at=token.expires_at,
        links_known=links_known,
    )


async def with_links(reads: ReaderSource, viewer: Viewer) -> Viewer:
    """``viewer`` with its linked provider and patient rows looked up, if they were not."""
    if viewer.links_known:
        return viewer
    _, linked = await subject_links.linked(reads, viewer.subject, viewer.tenant_id)
    return replace(
        viewer,
        provider_id=linked.get("provider"),
        patient_id=linked.get("patient"),
        links_known=True,
    )
