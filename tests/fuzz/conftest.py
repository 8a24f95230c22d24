"""Shared fixtures of the property tests: the schema, a seeded tenant, role tokens, and a caller.

``make test`` runs a bounded, derandomized number of examples; ``make fuzz`` sets
MEDREC_FUZZ_EXAMPLES to run many more, with fresh randomness each time.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import graphql
import pytest
from hypothesis import HealthCheck, settings

from app.domain.opaque_ids import NodeType, OpaqueIds
from app.settings import Settings
from models.enums import RecordStatus
from tests.api_client import Api, uncoded_errors
from tests.factories import Factory

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema" / "schema.graphql"
ROLES = ("admin", "provider", "patient", "none")
_GROUPS: dict[str, tuple[str, ...]] = {
    "admin": ("admin",),
    "provider": ("provider",),
    "patient": ("patient",),
    "none": (),
}


def examples(default: int) -> int:
    """How many examples each property runs: MEDREC_FUZZ_EXAMPLES, else ``default``."""
    return int(os.environ.get("MEDREC_FUZZ_EXAMPLES", default))


def fuzz_settings(default_examples: int) -> settings:
    """Deterministic in ``make test`` (CI runs it twice); random under ``make fuzz``."""
    return settings(
        max_examples=examples(default_examples),
        deadline=None,
        derandomize="MEDREC_FUZZ_EXAMPLES" not in os.environ,
        database=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,  # the seeded tenant is shared by the examples
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
    )


@pytest.fixture(scope="session")
def graphql_schema() -> graphql.GraphQLSchema:
    """The schema clients see: schema/schema.graphql, which `make contract` keeps current."""
    return graphql.build_schema(SCHEMA_FILE.read_text())


@pytest.fixture(scope="session")
def ids(settings: Settings) -> OpaqueIds:
    """Signs with the server's key: the default one, which a forger would know too."""
    return OpaqueIds(settings.opaque_id_key)


@dataclass(frozen=True)
class Seeded:
    """A tenant with one of everything, as global ids."""

    provider_id: str
    patient_id: str
    record_id: str
    draft_record_id: str
    diagnosis_id: str
    attachment_id: str

    def all_ids(self) -> list[str]:
        return [
            self.provider_id,
            self.patient_id,
            self.record_id,
            self.draft_record_id,
            self.diagnosis_id,
            self.attachment_id,
        ]


@pytest.fixture
async def seeded(factory: Factory, ids: OpaqueIds) -> Seeded:
    """The test's own tenant (fresh per test): mutations of one run never reach another's."""
    provider = await factory.provider(cognito_sub="fuzz-provider")
    patient = await factory.patient(primary_provider_id=provider["id"], cognito_sub="fuzz-patient")
    record = await factory.record(patient, provider)
    draft = await factory.record(patient, provider, status=RecordStatus.DRAFT)
    diagnosis = await factory.diagnosis(record)
    attachment = await factory.attachment(record)
    return Seeded(
        provider_id=ids.encode_id(NodeType.PROVIDER, provider["id"]),
        patient_id=ids.encode_id(NodeType.PATIENT, patient["id"]),
        record_id=ids.encode_id(NodeType.MEDICAL_RECORD, record["id"]),
        draft_record_id=ids.encode_id(NodeType.MEDICAL_RECORD, draft["id"]),
        diagnosis_id=ids.encode_id(NodeType.DIAGNOSIS, diagnosis["id"]),
        attachment_id=ids.encode_id(NodeType.ATTACHMENT, attachment["id"]),
    )


@dataclass
class Caller:
    """Posts operations as one of ROLES and returns the JSON body, after checking what every
    response must be: not a 5xx, JSON, and every error with one of the contract's codes."""

    api: Api

    def token(self, role: str) -> str:
        subject = {"provider": "fuzz-provider", "patient": "fuzz-patient"}.get(role, f"fuzz-{role}")
        return self.api.token(subject=subject, groups=_GROUPS[role])

    async def post(
        self, document: str, variables: dict[str, Any] | None = None, *, role: str = "admin"
    ) -> dict[str, Any]:
        body_sent: dict[str, Any] = {"query": document}
        if variables is not None:
            body_sent["variables"] = variables
        # Encoded here, with \u escapes: a lone surrogate, which UTF-8 cannot carry, is sent as
        # a client would send it.
        response = await self.api.client.post(
            "/graphql",
            content=json.dumps(body_sent),
            headers={
                "Authorization": f"Bearer {self.token(role)}",
                "Content-Type": "application/json",
            },
        )
        assert response.status_code < 500, (response.status_code, document, response.text)
        body: dict[str, Any] = response.json()
        assert uncoded_errors(body) == [], (document, body)
        return body


@pytest.fixture
def caller(api: Api) -> Caller:
    return Caller(api)
