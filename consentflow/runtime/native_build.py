"""Build the processors' compiled modules with mypyc (``consentflow.runtime.native`` says what, where, and when they are used).

Run: ``python -m consentflow.runtime.native_build`` (``make`` does, after installing the dev extras).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from consentflow.runtime.native import COMPILED, GROUP, PACKAGE, STAMP, build_directory, current_build, sources_digest


def build(directory: Path | None = None) -> Path:
    """Compile ``COMPILED`` with mypyc into ``directory`` (default: this environment's), replacing any build there."""
    # Build-time only: mypy (with mypyc) and setuptools come with the dev extras.
    from mypyc.build import mypycify
    from setuptools import Distribution  # type: ignore[import-untyped]  # this setuptools ships no types

    directory = directory if directory is not None else build_directory()
    digest = sources_digest()
    directory.parent.mkdir(parents=True, exist_ok=True)
    # Staged beside its place, so that it moves in with one rename: a process starting meanwhile
    # sees the old build or the new one, never half of one.
    with tempfile.TemporaryDirectory(prefix=".consentflow-native-", dir=directory.parent) as work:
        staged = Path(work) / "lib"
        cwd = os.getcwd()
        os.chdir(PACKAGE.parent)  # mypyc names modules by the package tree around the paths it gets
        try:
            extensions = mypycify(
                [f"{PACKAGE.name}/{name}" for name in COMPILED],
                group_name=GROUP,
                target_dir=str(Path(work) / "c"),
            )
            distribution = Distribution({"name": "consentflow-native", "ext_modules": extensions})
            distribution.verbose = False  # the compiler's command lines: only its errors matter
            command = distribution.get_command_obj("build_ext")
            command.build_lib = str(staged)
            command.build_temp = str(Path(work) / "objects")
            command.ensure_finalized()
            command.run()
        finally:
            os.chdir(cwd)
        (staged / STAMP).write_text(digest + "\n")
        if directory.exists():
            directory.rename(Path(work) / "previous")  # removed with the work directory
        staged.rename(directory)
    return directory


def main() -> None:
    """Build unless a build from the current sources exists (``--force``: build anyway), and say where."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--force", action="store_true", help="build even when the build is current")
    if not parser.parse_args().force and current_build() is not None:
        print(f"consentflow: compiled processors current in {build_directory()}")
        return
    directory = build()
    print(f"consentflow: compiled {len(COMPILED)} modules into {directory}")


if __name__ == "__main__":
    main()
