"""graphql-http's GraphQL-over-HTTP server audits (the npm package) against `medrec serve`.

Every audit operation is `{ __typename }` or introspection, which need no token: the audit runs
as an anonymous client does.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.settings import Settings
from tests.node_packages import node_with_packages
from tests.servers import server_environment, serving

AUDIT = Path(__file__).parent / "audit"


@pytest.fixture(scope="module")
def node() -> str:
    return node_with_packages(AUDIT, "graphql-http", "the GraphQL-over-HTTP audit")


@pytest.fixture(scope="module")
def endpoint(settings: Settings) -> Iterator[str]:
    with serving(server_environment(settings)) as url:
        yield f"{url}/graphql"


def test_the_graphql_over_http_audit_has_no_warnings_and_no_errors(
    node: str, endpoint: str
) -> None:
    ran = subprocess.run(
        [node, "audit.mjs", endpoint],
        cwd=AUDIT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, f"the audit script failed:\n{ran.stderr}"
    results = json.loads(ran.stdout)
    assert results, "the audit ran no audits"
    failed = [result for result in results if result["status"] != "ok"]
    report = "\n".join(
        f"{result['status']}: {result['name']} ({result['id']}, HTTP {result['httpStatus']}): "
        f"{result['reason']}"
        for result in failed
    )
    counts = {status: sum(r["status"] == status for r in results) for status in ("ok", "notice")}
    assert not [r for r in failed if r["status"] in ("warn", "error")], (
        f"{counts['ok']} ok, {counts['notice']} notices; not ok:\n{report}"
    )
