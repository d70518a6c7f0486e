"""The processors compiled: the hot modules built with mypyc from these very sources, used only when current.

The processors stay plain, typed Python. mypyc compiles the same source files to C
extension modules, which run them faster (figures: bench/RESULTS.md §6; ARCHITECTURE.md, "Compiled
processors"). A build lives in the interpreter's environment (``sys.prefix``), not in
the source tree, stamped with the digest of the sources it was compiled from; the
package loads it only while that digest matches, so an edited source is never shadowed
by a stale build, and a machine with no C compiler runs the same code as plain Python.

``python -m consentflow.runtime.native_build`` builds it (``make`` does); ``CONSENTFLOW_PURE_PYTHON=1``
turns it off for a process.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterable
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent  # consentflow/, this module lives in consentflow/runtime/
#: The modules compiled, relative to the package: what the processors and the embedded runner do per event.
COMPILED = (
    "core/processor.py",
    "core/ledger.py",
    "core/enforcement.py",
    "core/lineage.py",
    "core/state.py",
    "core/recipients.py",
    "contracts/timestamp_plan.py",
    "contracts/avro_plan.py",
    "sinks/tables.py",
    "streams/embedded.py",
)
#: The compiled modules share one runtime library, inside the package.
GROUP = "consentflow.native_runtime"
STAMP = "SOURCES.sha256"
#: Set to 1 to run the plain Python modules even where a current build exists.
PURE_PYTHON_VARIABLE = "CONSENTFLOW_PURE_PYTHON"


def build_directory(prefix: str | None = None) -> Path:
    """Where the build for this interpreter environment lives."""
    return Path(prefix if prefix is not None else sys.prefix) / "consentflow-native"


def sources_digest(package: Path = PACKAGE) -> str:
    """SHA-256 over the compiled modules' names and bytes, and the interpreter's tag: what a build was made from."""
    digest = hashlib.sha256(sys.implementation.cache_tag.encode())
    for name in COMPILED:
        digest.update(b"\0" + name.encode() + b"\0")
        digest.update((package / name).read_bytes())
    return digest.hexdigest()


def current_build(directory: Path | None = None, package: Path = PACKAGE) -> Path | None:
    """The build's package directory, if one exists and was compiled from the sources as they are now."""
    directory = directory if directory is not None else build_directory()
    try:
        stamp = (directory / STAMP).read_text().strip()
    except OSError:
        return None
    if stamp != sources_digest(package):
        return None
    return directory / "consentflow"


def package_path(path: Iterable[str], subpackage: str = "") -> list[str]:
    """consentflow's ``__path__`` with a current build first, so the built modules shadow their sources (unless
    turned off); a ``subpackage``'s with that build's folder first when consentflow took it. One decision per
    process: the sources are hashed once, and the packages cannot disagree."""
    path = list(path)
    if subpackage:
        built = build_in_use()
    elif os.environ.get(PURE_PYTHON_VARIABLE, "") not in ("", "0"):
        built = None
    else:
        built = current_build()
    return path if built is None else [str(built / subpackage), *path]


def build_in_use() -> Path | None:
    """The build's package directory when this process's ``consentflow`` loads from it, else None."""
    import consentflow  # its ``__path__`` is set by now: this module is imported from its __init__

    first = Path(consentflow.__path__[0])
    return first if first == build_directory() / "consentflow" else None


def described() -> str:
    """What runs the processors in this process, for benchmark output."""
    return "compiled by mypyc (consentflow.runtime.native)" if build_in_use() else "plain Python (no current compiled build)"
