"""The README documents every setting the server reads."""

from __future__ import annotations

from pathlib import Path

from app.server.logging_config import LOG_LEVEL_ENV
from app.settings import Settings

README = Path(__file__).resolve().parent.parent / "README.md"


def _configuration_section() -> str:
    text = README.read_text()
    start = text.index("## Configuration\n")
    return text[start : text.index("\n## ", start + 1)]


def test_every_setting_is_in_the_configuration_table() -> None:
    section = _configuration_section()
    variables = [f"MEDREC_{name.upper()}" for name in Settings.model_fields]
    missing = [name for name in [*variables, LOG_LEVEL_ENV] if f"`{name}`" not in section]
    assert missing == []
