"""The supply chain stays checked: bandit finds nothing in idp/, and the lock file pins, with
hashes, every dependency pyproject.toml declares (Makefile installs only from it)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~;\s]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_bandit_finds_nothing_in_the_provider():
    bandit = Path(sys.executable).parent / "bandit"
    result = subprocess.run([str(bandit), "-c", "pyproject.toml", "-r", "idp", "-q", "-f", "txt"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_every_declared_dependency_is_pinned_with_hashes_in_the_lock_file():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]}
    lock = (ROOT / "requirements.lock").read_text()
    pinned = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+) \\\n\s+--hash=sha256:", lock, re.M))
    pinned = {name.lower().replace("_", "-"): version for name, version in pinned.items()}
    assert declared - set(pinned) == set(), "run `make lock` after changing pyproject.toml"
    assert "setuptools" in pinned and "pip" in pinned  # the editable build uses the locked ones
    unhashed = re.findall(r"^([A-Za-z0-9_.-]+==\S+)\s*$", lock, re.M)
    assert unhashed == []
