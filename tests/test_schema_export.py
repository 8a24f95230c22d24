"""The committed SDL is what the code serves, so clients and the contract check read the truth."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from schema.schema import export_sdl

COMMITTED_SDL = Path(__file__).resolve().parent.parent / "schema" / "schema.graphql"


def test_committed_sdl_matches_the_code() -> None:
    assert COMMITTED_SDL.read_text() == export_sdl(), (
        "schema/schema.graphql is stale: run `medrec export-schema > schema/schema.graphql`"
    )


def test_export_schema_command_prints_the_sdl() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "app.ops.cli", "export-schema"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert printed == export_sdl()
    assert "type Query {" in printed
