"""Every consentflow command runs with the collector thresholds for streaming (consentflow/runtime/gc_tuning.py)."""

from __future__ import annotations

import ast
import subprocess
import sys

from consentflow.runtime.gc_tuning import STREAMING_THRESHOLDS

_PROBE = """
import gc
from click.testing import CliRunner
from consentflow.cli import main
before = gc.get_threshold()
result = CliRunner().invoke(main, ["digest", "--help"])
assert result.exit_code == 0, result.output
print(before, gc.get_threshold())
"""


def test_a_command_sets_the_streaming_thresholds_and_importing_does_not() -> None:
    """In a fresh interpreter: importing the CLI leaves Python's defaults; running any command sets the thresholds."""
    probe = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120, check=True)
    before, after = probe.stdout.strip().split(") (")
    assert ast.literal_eval(before + ")") == (700, 10, 10)
    assert ast.literal_eval("(" + after) == STREAMING_THRESHOLDS


_DECODING_PROBE = """
import gc, os, sys
from consentflow.streams import decoding_process
sys.stdout = open(os.devnull, "w")  # its frames
decoding_process.main(["-", "10"])  # standard input is empty: one error frame
print(gc.get_threshold(), file=sys.stderr)
"""


def test_the_embedded_runners_decoding_process_runs_with_the_thresholds_too() -> None:
    probe = subprocess.run(
        [sys.executable, "-c", _DECODING_PROBE], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=True
    )
    assert ast.literal_eval(probe.stderr.strip().splitlines()[-1]) == STREAMING_THRESHOLDS
