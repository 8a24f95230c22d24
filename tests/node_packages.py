"""Node.js programs the tests run, with the npm packages their directory's lock file pins."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path


def _tool(name: str, purpose: str) -> str:
    """node or npm on PATH. Missing, the test skips locally but fails in CI (`CI` set)."""
    found = shutil.which(name)
    if found is None:
        reason = f"`{name}` is missing: {purpose} needs Node.js and npm"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run it")
        pytest.skip(reason)
    return found


def node_with_packages(directory: Path, package: str, purpose: str) -> str:
    """The node executable, once ``directory``'s locked packages are in its (git-ignored)
    node_modules: installed with `npm ci` when ``package`` is not there yet."""
    node, npm = _tool("node", purpose), _tool("npm", purpose)
    if not (directory / "node_modules" / package).is_dir():
        installed = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert installed.returncode == 0, f"npm ci failed:\n{installed.stdout}{installed.stderr}"
    return node
