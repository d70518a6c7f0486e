"""The compiled processors (consentflow.runtime.native): used only when built from the sources as they are, and they
give what the plain Python source gives, event for event, with states either can read from the other."""

from __future__ import annotations

import base64
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from consentflow.core.state import SubjectState
from consentflow.generator import GeneratorConfig, generate
from consentflow.runtime import native

# One run of the processors in a process of its own, as plain Python or compiled by the environment.
# argv: events file, "all" | "first" (the first half) | a file of pickled states to go on from (the
# second half, after the registry events of the first). Prints, pickled: the processor module's file,
# every event's changes, a retention tick's changes at the end (none after "first"), and the pickled states.
_RUN = r"""
import pickle, sys
from datetime import timedelta
from consentflow.core import processor
from consentflow.contracts.eventfile import read_events

path, part = sys.argv[1], sys.argv[2]
events = [(topic.short_name, record) for topic, record in read_events(path)]
half = len(events) // 2
p = processor.Processor()
if part == "all":
    todo = events
elif part == "first":
    todo = events[:half]
else:
    with open(part, "rb") as f:
        for blob in pickle.load(f):
            p.store.put(pickle.loads(blob))
    todo = [e for e in events[:half] if e[0] == "recipients"] + events[half:]
changes = [list(p.process(name, record)) for name, record in todo]
end = max(record["occurred_at"] for name, record in events if name != "recipients")
tick = [] if part == "first" else list(p.tick(end + timedelta(days=4 * 366)))  # a tick would change the states
states = [pickle.dumps(state) for state in p.store.states()]
sys.stdout.buffer.write(pickle.dumps((processor.__file__, changes, tick, states)))
"""

# A SubjectState pickled by the code before the compiled build existed (a slotted dataclass's own
# pickling): subject "a", seen {"x"}, ledger_sequence 4. Changelogs written then must still load.
_PICKLED_BEFORE = (
    "gASVNAIAAAAAAACMEWNvbnNlbnRmbG93LnN0YXRllIwMU3ViamVjdFN0YXRllJOUKYGUTn2UKIwKc3ViamVjdF9pZJSMAWGU"
    "jARzZWVulI+UKIwBeJSQjAhjb25zZW50c5R9lIwPbGVkZ2VyX3NlcXVlbmNllEsEjAtsZWRnZXJfaGVhZJSMQDAwMDAwMDAw"
    "MDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDCUjAphY3Rpdml0aWVzlF2U"
    "jAxhY2NvdW50X2tpbmSUTowNcmVnaXN0ZXJlZF9hdJROjAhsYXN0X3VzZZROjAljbG9zZWRfYXSUTowNbGFzdF9uZWdhdGl2"
    "ZZROjAxzdXNwZW5kZWRfYXSUTowNcmVpbnN0YXRlZF9hdJROjAxiYXNpc19ldmVudHOUfZSMBGhlbGSUj5SMDnJldGVudGlv"
    "bl9kb25llI+UjBFob2xkaW5nc19yZXZpc2lvbpRK/////4wPbGF0ZXN0X2V2ZW50X2F0lE6MCHJlcXVlc3RzlH2UjBJlcmFz"
    "dXJlX3JlcXVlc3RfaWSUTowUZXJhc3VyZV9yZXF1ZXN0ZWRfYXSUTowUZXJhc3VyZV9mdWxmaWxsZWRfYXSUTowQZXJhc3Vy"
    "ZV9ldmVudF9pZJROjBJlcmFzdXJlc19mdWxmaWxsZWSUSwCMDmVyYXN1cmVfZXZlbnRzlEsAjAdub3RpY2VzlH2UdYaUYi4="
)


def _run(events: Path, part: str, *, pure: bool) -> tuple[str, list[Any], list[Any], list[bytes]]:
    env = {**os.environ, native.PURE_PYTHON_VARIABLE: "1" if pure else "0"}
    done = subprocess.run([sys.executable, "-c", _RUN, str(events), part], env=env, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    result: tuple[str, list[Any], list[Any], list[bytes]] = pickle.loads(done.stdout)
    return result


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A year of 300 subjects with violations injected often, so every rule's path runs."""
    if native.current_build() is None:
        message = "no compiled build of the current sources: make native (python -m consentflow.runtime.native_build)"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    directory = tmp_path_factory.mktemp("native")
    path = directory / "events.avro"
    generate(GeneratorConfig(300, 365, 7, violation_share=0.05), path, directory / "truth.jsonl")
    return path


def test_the_compiled_processors_give_what_the_source_gives(events: Path) -> None:
    compiled_file, compiled, compiled_tick, compiled_states = _run(events, "all", pure=False)
    source_file, source, source_tick, source_states = _run(events, "all", pure=True)
    assert compiled_file.endswith(".so") and compiled_file.startswith(str(native.build_directory()))
    assert source_file.endswith("processor.py")
    assert sum(map(len, source)) > len(source) // 2  # the run made outputs: ledger, lineage, verdicts
    assert any(topic == "violations" and record["active"] for changes in source for topic, record in changes)
    assert compiled == source
    assert compiled_tick == source_tick and compiled_tick
    # The states themselves, compared field by field after a round trip through the other build's pickles.
    assert [pickle.loads(s).__getstate__() for s in compiled_states] == [pickle.loads(s).__getstate__() for s in source_states]


@pytest.mark.parametrize("first_pure", [True, False], ids=["plain-then-compiled", "compiled-then-plain"])
def test_a_worker_of_either_build_goes_on_from_the_states_of_the_other(events: Path, tmp_path: Path, first_pure: bool) -> None:
    """A changelog written by one build restores in the other, and the run goes on as one run would."""
    *_, states = _run(events, "first", pure=first_pure)
    saved = tmp_path / "states.pickle"
    saved.write_bytes(pickle.dumps(states))
    _, second_half, tick, _ = _run(events, str(saved), pure=not first_pure)
    _, whole, whole_tick, _ = _run(events, "all", pure=not first_pure)
    registry_events = len(second_half) - (len(whole) - len(whole) // 2)
    assert second_half[registry_events:] == whole[len(whole) // 2 :]
    assert tick == whole_tick


def test_a_state_pickled_before_the_compiled_build_still_loads() -> None:
    state = pickle.loads(base64.b64decode(_PICKLED_BEFORE))
    assert isinstance(state, SubjectState)
    assert (state.subject_id, state.seen, state.ledger_sequence, state.activities) == ("a", {"x"}, 4, [])


def _package(tmp_path: Path) -> Path:
    """A copy of the compiled modules' sources, as a package of their own."""
    package = tmp_path / "consentflow"
    for name in native.COMPILED:
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(native.PACKAGE / name, package / name)
    return package


def test_a_build_is_used_only_while_its_sources_are_unchanged(tmp_path: Path) -> None:
    package = _package(tmp_path)
    build = tmp_path / "build"
    build.mkdir()
    assert native.current_build(build, package) is None  # never stamped
    (build / native.STAMP).write_text(native.sources_digest(package) + "\n")
    assert native.current_build(build, package) == build / "consentflow"
    edited = package / native.COMPILED[-1]
    edited.write_text(edited.read_text() + "\n# edited\n")
    assert native.current_build(build, package) is None  # a stale build would shadow the edit


def test_the_build_comes_first_in_the_package_path_unless_turned_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native, "current_build", lambda: tmp_path / "consentflow")
    monkeypatch.delenv(native.PURE_PYTHON_VARIABLE, raising=False)
    assert native.package_path(["/src"]) == [str(tmp_path / "consentflow"), "/src"]
    monkeypatch.setenv(native.PURE_PYTHON_VARIABLE, "1")
    assert native.package_path(["/src"]) == ["/src"]
    monkeypatch.setattr(native, "current_build", lambda: None)
    monkeypatch.delenv(native.PURE_PYTHON_VARIABLE)
    assert native.package_path(["/src"]) == ["/src"]


def test_a_subpackage_follows_the_choice_consentflow_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import consentflow

    monkeypatch.setattr(native, "build_directory", lambda: tmp_path)
    monkeypatch.setattr(native, "current_build", lambda: pytest.fail("a subpackage hashes the sources again"))
    monkeypatch.setattr(consentflow, "__path__", [str(tmp_path / "consentflow"), "/src"])
    assert native.package_path(["/src/sinks"], "sinks") == [str(tmp_path / "consentflow" / "sinks"), "/src/sinks"]
    monkeypatch.setattr(consentflow, "__path__", ["/src"])  # plain Python: turned off, or no current build
    assert native.package_path(["/src/sinks"], "sinks") == ["/src/sinks"]
