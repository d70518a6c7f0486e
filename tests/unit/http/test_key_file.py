"""The key file is private (issue 21): created 0600 whatever the umask, refused at start when others may write it.

Under ``umask 000`` the key file came out 0666, and anyone who could write it
could add a ``dpo`` key. ``consentflow api-key add`` now writes it whole into a
file created 0600 and renamed into place; ``consentflow serve`` refuses, as ssh
does, a key file that group or others may write, in one line saying why and
how to fix it. Real files, a real umask, the real command.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from consentflow.cli import main
from consentflow.http.api_keys import KEYS_ENV, KeyFileError, key_hash, load_keys, read_key_file

ENTRY = '[[keys]]\nname = "dpo-laptop"\nrole = "dpo"\nsha256 = "' + key_hash("k" * 30) + '"\n'


@pytest.fixture
def open_umask() -> Iterator[None]:
    """``umask 000``: every file this process creates without a mode of its own is writable by everyone."""
    before = os.umask(0)
    try:
        yield
    finally:
        os.umask(before)


def _add(keys_file: Path, name: str) -> str:
    result = CliRunner().invoke(main, ["api-key", "add", "--keys", str(keys_file), "--name", name, "--role", "dpo"])
    assert result.exit_code == 0, result.output
    return result.stdout.strip().splitlines()[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_api_key_add_creates_the_key_file_0600_under_umask_000(tmp_path: Path, open_umask: None) -> None:
    keys_file = tmp_path / "keys.toml"
    first = _add(keys_file, "dpo-laptop")
    assert _mode(keys_file) == 0o600
    inode = keys_file.stat().st_ino
    second = _add(keys_file, "dpo-desk")
    assert _mode(keys_file) == 0o600 and keys_file.stat().st_ino != inode  # written anew and renamed, never appended
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keys.toml"]  # no temporary file left behind
    ring = load_keys(keys_file, {})
    assert [k.name for k in ring.keys] == ["dpo-laptop", "dpo-desk"]
    assert ring.find(first) is not None and ring.find(second) is not None


def test_adding_to_a_key_file_others_could_write_leaves_it_0600(tmp_path: Path, open_umask: None) -> None:
    keys_file = tmp_path / "keys.toml"
    keys_file.write_text(ENTRY)
    assert _mode(keys_file) == 0o666
    _add(keys_file, "dpo-desk")
    assert _mode(keys_file) == 0o600
    assert [k.name for k in read_key_file(keys_file)] == ["dpo-laptop", "dpo-desk"]


@pytest.mark.parametrize(
    ("mode", "who"),
    [(0o666, "group and others"), (0o664, "group"), (0o602, "others"), (0o620, "group")],
    ids=["0666", "0664", "0602", "0620"],
)
def test_a_key_file_others_may_write_is_refused_at_start(tmp_path: Path, mode: int, who: str) -> None:
    keys_file = tmp_path / "keys.toml"
    keys_file.write_text(ENTRY)
    keys_file.chmod(mode)
    with pytest.raises(KeyFileError) as caught:
        load_keys(keys_file, {})
    assert str(caught.value) == (
        f"key file {keys_file} is writable by {who} (mode {mode:04o}): anyone who can write it can add a dpo key; "
        f"run chmod 600 {keys_file}"
    )


@pytest.mark.parametrize("mode", [0o600, 0o644, 0o400], ids=["0600", "0644", "0400"])
def test_a_key_file_only_its_owner_may_write_is_read(tmp_path: Path, mode: int) -> None:
    keys_file = tmp_path / "keys.toml"
    keys_file.write_text(ENTRY)
    keys_file.chmod(mode)
    assert [k.name for k in load_keys(keys_file, {}).keys] == ["dpo-laptop"]


def test_serve_does_not_start_on_a_key_file_others_may_write(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.toml"
    keys_file.write_text(ENTRY)
    keys_file.chmod(0o666)
    env = {k: v for k, v in os.environ.items() if k != KEYS_ENV}
    serve = [sys.executable, "-c", "from consentflow.cli import main; main()", "serve", "--keys", str(keys_file)]
    # Before the fix it started and served (until this timeout); now it ends at once.
    started = subprocess.run(
        [*serve, "--dsn", f"chdb://{tmp_path}/db", "--port", str(_free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert started.returncode == 1
    lines = started.stderr.strip().splitlines()
    assert len(lines) == 1 and "is writable by group and others (mode 0666)" in lines[0] and "chmod 600" in lines[0], lines
