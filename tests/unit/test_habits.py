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


@pytest.mark.parametrize(
    ("path", "source", "refused"),
    [
        ("streams/worker.py", "def f(consumer):\n    return consumer._acked\n", True),
        ("tests/test_x.py", "def f(sink):\n    return sink._take\n", True),
        ("streams/faust_compat.py", "def f(consumer):\n    return consumer._acked\n", False),  # the one exception
        ("sinks/consumer.py", "from confluent_kafka import KafkaError\n\nEOF = KafkaError._PARTITION_EOF\n", False),
    ],
)
def test_private_names_are_reached_only_from_the_faust_compatibility_module(path: str, source: str, refused: bool) -> None:
    """ruff's SLF rule, with the project's configuration: a private name of another object is refused, but in
    ``streams/faust_compat.py``; librdkafka's error codes (public under a leading underscore) pass."""
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent))
    if ruff is None:
        pytest.skip("ruff is a dev dependency: pip install -e '.[dev]'")
    command = [ruff, "check", "--no-cache", "--output-format", "concise", "--stdin-filename", path, "-"]
    done = subprocess.run(command, cwd=ROOT, input=source, capture_output=True, text=True)
    assert ("SLF001" in done.stdout) == refused, done.stdout + done.stderr
