"""Reading captured records back as the JSON lines `medrec serve` writes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.server.logging_config import JsonFormatter


def request_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """The medrec.request records, each formatted and parsed back."""
    formatter = JsonFormatter()
    lines = [formatter.format(r) for r in caplog.records if r.name == "medrec.request"]
    assert all("\n" not in line for line in lines)
    return [json.loads(line) for line in lines]
