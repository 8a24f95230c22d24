"""Logs captured whole, down to DEBUG."""

from __future__ import annotations

import logging

import pytest


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every record of every logger, down to DEBUG (no library is capped here)."""
    caplog.set_level(logging.DEBUG)
    return caplog
