"""The README's Apollo Client example (apollo-example.mjs, run by Node as it is) against a real
`medrec dev`: two pages of patients merged by relayStylePagination's fetchMore, and one event of
a subscription over graphql-ws."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.node_packages import node_with_packages
from tests.test_dev_mode import DevServer, running_dev

HERE = Path(__file__).parent
EXAMPLE = HERE / "apollo-example.mjs"
README = HERE.parent.parent / "README.md"
PAGE_SIZE = 4


@pytest.fixture(scope="module")
def node() -> str:
    return node_with_packages(HERE, "@apollo/client", "the Apollo Client example")


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    with running_dev(tmp_path_factory.mktemp("xdg-data")) as server:
        yield server


def _mrns(server: DevServer, token: str, first: int) -> list[str]:
    response = httpx.post(
        f"{server.url}/graphql",
        json={"query": f"{{ patients(first: {first}) {{ edges {{ node {{ mrn }} }} }} }}"},
        headers={"Authorization": f"Bearer {token}"},
    )
    edges: list[dict[str, Any]] = response.json()["data"]["patients"]["edges"]
    return [edge["node"]["mrn"] for edge in edges]


def test_the_apollo_example_pages_and_subscribes(node: str, dev_server: DevServer) -> None:
    token = dev_server.headers("admin", "demo-north")["Authorization"].removeprefix("Bearer ")
    ran = subprocess.run(
        [node, EXAMPLE.name],
        cwd=HERE,
        env={
            **os.environ,
            "MEDREC_URL": dev_server.url,
            "MEDREC_TOKEN": token,
            "PAGE_SIZE": str(PAGE_SIZE),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0, f"the example failed:\n{ran.stdout}{ran.stderr}"
    # Apollo prints its warnings (deprecations, cache misses) on stderr: the example has none.
    assert ran.stderr == ""
    pages, subscribed = (json.loads(line) for line in ran.stdout.splitlines())

    expected = _mrns(dev_server, token, 2 * PAGE_SIZE)
    assert len(expected) == 2 * PAGE_SIZE
    assert pages["firstPage"] == expected[:PAGE_SIZE]
    assert pages["merged"] == expected  # the second page appended to the first, in order
    assert pages["hasNextPage"] is True

    event = subscribed["event"]
    assert re.fullmatch(r"[0-9]+", event["sequence"]), event
    assert event["status"] in ("DRAFT", "FINALIZED", "AMENDED", "ENTERED_IN_ERROR"), event
    assert event["record"]["id"], event


def test_the_readme_shows_the_example_as_it_runs() -> None:
    text = README.read_text()
    heading = re.search(r"^#+ Use it from your frontend$", text, re.MULTILINE)
    if heading is None:
        pytest.skip("the README has no 'Use it from your frontend' section yet")
    block = re.search(r"```js\n(.*?)```", text[heading.end() :], re.DOTALL)
    assert block is not None, "no ```js block after 'Use it from your frontend'"
    assert block[1] == EXAMPLE.read_text(), "the README's example differs from apollo-example.mjs"
