"""`.ci/check_contract.py` against variants of the shared contract, run as CI runs it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from graphql import GraphQLSchema, build_schema, print_schema

REPO = Path(__file__).resolve().parents[2]
CHECKER = REPO / ".ci" / "check_contract.py"
EXEMPTIONS = REPO / ".ci" / "contract-exemptions.txt"
CONTRACT = REPO.parent / "shared" / "contract" / "schema.graphql"

pytestmark = pytest.mark.skipif(
    not CONTRACT.is_file(), reason=f"the shared contract {CONTRACT} is absent"
)


def run_checker(exported: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHECKER), str(CONTRACT), str(exported), *extra],
        capture_output=True,
        text=True,
        check=False,
    )


def exemptions() -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in EXEMPTIONS.read_text().splitlines())
    return [line for line in lines if line]


def contract_schema() -> GraphQLSchema:
    # The contract opens with a file-level doc string, which is not valid SDL; the checker
    # ignores it, and so does this helper.
    sdl = CONTRACT.read_text()
    if sdl.startswith('"""'):
        sdl = sdl[sdl.index('"""', 3) + 3 :]
    return build_schema(sdl)


def section(output: str, heading: str) -> list[str]:
    """The indented lines under ``heading`` in the checker's output."""
    lines = output.splitlines()
    start = lines.index(heading) + 1
    body: list[str] = []
    for line in lines[start:]:
        if not line.startswith("  "):
            break
        body.append(line.strip())
    return body


def test_contract_against_itself_only_reports_stale_exemptions(tmp_path: Path) -> None:
    stale = every_mutation_and_subscription_coordinate()[:3]
    some_exemptions = tmp_path / "some.txt"
    some_exemptions.write_text("".join(f"{c}  # #1\n" for c in stale))
    result = run_checker(CONTRACT, "--exemptions", str(some_exemptions))

    assert result.returncode == 1, result.stdout + result.stderr
    assert "No breaking changes outside the exemptions." in result.stdout
    for exemption in stale:
        assert f"warning: exemption {exemption} is no longer needed" in result.stdout
    assert f"FAIL: {len(stale)} stale exemption(s)." in result.stdout

    no_exemptions = tmp_path / "none.txt"
    no_exemptions.write_text("# nothing exempt\n")
    result = run_checker(CONTRACT, "--exemptions", str(no_exemptions))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: the exported schema keeps the contract" in result.stdout


def every_mutation_and_subscription_coordinate() -> list[str]:
    """The exemptions the project started from: every Mutation/Subscription field, and the types
    only they reach."""
    schema = contract_schema()
    assert schema.query_type is not None
    reached_by_query = set(GraphQLSchema(query=schema.query_type).type_map)
    coordinates = [
        f"{root.name}.{field}"
        for root in (schema.mutation_type, schema.subscription_type)
        if root is not None
        for field in root.fields
    ]
    roots = {t.name for t in (schema.mutation_type, schema.subscription_type) if t is not None}
    coordinates += [
        name
        for name in schema.type_map
        if name not in reached_by_query and name not in roots and not name.startswith("__")
    ]
    return coordinates


def test_contract_without_mutation_and_subscription_passes(tmp_path: Path) -> None:
    # What the server exported before any mutation existed: Query and the types it reaches.
    query_type = contract_schema().query_type
    assert query_type is not None
    exported = tmp_path / "query_only.graphql"
    exported.write_text(print_schema(GraphQLSchema(query=query_type)))
    full = every_mutation_and_subscription_coordinate()
    exemptions_file = tmp_path / "exemptions.txt"
    exemptions_file.write_text("".join(f"{c}  # #1\n" for c in full))

    result = run_checker(exported, "--exemptions", str(exemptions_file))

    assert result.returncode == 0, result.stdout + result.stderr
    missing = section(result.stdout, "still missing (exempt, owned by later issues):")
    assert sorted(missing) == sorted(full)
    assert "warning:" not in result.stdout


# The exemptions when the contract grew with #19's and #20's parts; the list only shrinks.
_GROWN_CONTRACT_EXEMPTIONS = frozenset(
    {
        *("Patient.preferredLanguage", "CreatePatientInput.preferredLanguage"),
        *("UpdatePatientInput.preferredLanguage", "MedicalRecord.staffNote"),
        *("CreateRecordInput.staffNote", "UpdateRecordInput.staffNote"),
        *("Confidentiality", "MedicalRecord.confidentiality"),
        *("CreateRecordInput.confidentiality", "UpdateRecordInput.confidentiality"),
        *("BreakGlassGrant", "BreakGlassGrantEdge", "BreakGlassGrantConnection"),
        *("BreakGlassGrantFilter", "BreakGlassInput", "BreakGlassPayload"),
        *("Query.breakGlassGrants", "Mutation.breakGlass", "Mutation.revokeBreakGlass"),
        *("Subscription.breakGlassActivated", "AuditEvent.breakGlassGrant"),
        *("AccessAction", "AccessLogEntry", "AccessLogEdge", "AccessLogConnection"),
        "Patient.accessLog",
    }
)


def test_repository_exemptions_only_shrink() -> None:
    assert set(exemptions()) <= _GROWN_CONTRACT_EXEMPTIONS


def test_every_repository_exemption_names_the_issue_that_builds_it() -> None:
    for line in EXEMPTIONS.read_text().splitlines():
        entry, _, comment = line.partition("#")
        if entry.strip():
            assert re.search(r"#\d+", comment), line


def test_contract_without_query_patients_fails(tmp_path: Path) -> None:
    schema = contract_schema()
    assert schema.query_type is not None
    del schema.query_type.fields["patients"]
    exported = tmp_path / "no_patients.graphql"
    exported.write_text(print_schema(schema))

    result = run_checker(exported)

    assert result.returncode == 1, result.stdout + result.stderr
    failures = section(result.stdout, f"FAIL: 1 breaking change(s) not covered by {EXEMPTIONS}:")
    assert failures == ["FIELD_REMOVED: Field Query.patients was removed."]


def test_a_query_field_may_be_exempted_while_its_issue_is_open(tmp_path: Path) -> None:
    schema = contract_schema()
    assert schema.query_type is not None
    del schema.query_type.fields["patients"]
    exported = tmp_path / "no_patients.graphql"
    exported.write_text(print_schema(schema))
    exempting = tmp_path / "exemptions.txt"
    exempting.write_text("Query.patients  # #42 builds the patient list\n")

    result = run_checker(exported, "--exemptions", str(exempting))

    assert result.returncode == 0, result.stdout + result.stderr
    assert section(result.stdout, "still missing (exempt, owned by later issues):") == [
        "Query.patients"
    ]


def test_an_exemption_without_its_issue_is_refused(tmp_path: Path) -> None:
    exempting = tmp_path / "exemptions.txt"
    exempting.write_text(
        "Mutation.createProvider  # issue 7\nQuery.patients  # later\nRecordStatusEvent\n"
    )

    result = run_checker(CONTRACT, "--exemptions", str(exempting))

    assert result.returncode == 1, result.stdout + result.stderr
    assert "'Query.patients' does not name the issue that builds it" in result.stdout
    assert "'RecordStatusEvent' does not name the issue that builds it" in result.stdout
    assert "'Mutation.createProvider'" not in result.stdout
