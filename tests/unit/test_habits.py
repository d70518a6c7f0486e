"""The project's habits hold: the pre-commit configuration is valid and coverage leaves out exactly the compiled modules."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from consentflow.runtime.native import COMPILED
from tests.support.paths import REPO as ROOT


def test_the_pre_commit_configuration_is_valid() -> None:
    pre_commit = shutil.which("pre-commit", path=str(Path(sys.executable).parent))
    if pre_commit is None:
        pytest.skip("pre-commit is a dev dependency: pip install -e '.[dev]'")
    done = subprocess.run([pre_commit, "validate-config", ".pre-commit-config.yaml"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_coverage_leaves_out_the_compiled_modules_and_nothing_else() -> None:
    """A compiled module's lines run as C, unseen by coverage; a module left out that is not compiled hides untested code."""
    omitted = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["coverage"]["run"]["omit"]
    linked = {"sinks/", "streams/"}  # consentflow/sinks and consentflow/streams link to the top-level folders
    expected = {name if any(name.startswith(top) for top in linked) else f"consentflow/{name}" for name in COMPILED}
    assert set(omitted) == expected
