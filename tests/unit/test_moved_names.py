"""The names that outlive the package's layout (issue 20): subject states pickled before the modules moved still load,
and the imports the README gives users still resolve, to the very objects of the subpackages."""

from __future__ import annotations

import importlib
import pickle
import pickletools
from datetime import timedelta
from typing import TypeVar

import pytest

from consentflow.contracts.eventfile import read_events
from consentflow.core.processor import Processor
from consentflow.core.state import SubjectState
from tests.support.paths import DATA

# Pickled on 2026-12-06 by the code before the layout (commit 3ff0cd1), from the run that the_same_run repeats:
# the state of the subject with the largest pickle.
PICKLED_BEFORE_THE_LAYOUT = DATA / "subject_state_2026-12-06.pickle"
# The events of that run as the generator wrote them then (GeneratorConfig(60, 365, 7, violation_share=0.05)): issue 24
# changed the generator's mix of rights requests, so the run is repeated from the file, not generated again.
EVENTS_BEFORE = DATA / "events_seed7_2026-12-06.avro"
#: SubjectState's fields added since (issue 24): a state pickled before has none; ``request_events`` is rebuilt on
#: load from ``requests`` (the time of each status), ``request_verdicts`` is filled by the next tick.
ADDED_SINCE = ("request_events", "request_verdicts")


def _globals_named(blob: bytes) -> set[str]:
    """The module paths a pickle names (the strings pushed before each ``STACK_GLOBAL``)."""
    strings: list[str] = []
    named: set[str] = set()
    for opcode, argument, _ in pickletools.genops(blob):
        if isinstance(argument, str):
            strings.append(argument)
        if opcode.name == "STACK_GLOBAL":
            named.add(strings[-2])
    return named


def the_same_run() -> dict[str, SubjectState]:
    """The run the pickle was taken from, by today's code: 60 subjects for a year, then a retention tick."""
    processor = Processor()
    events = [(topic.short_name, record) for topic, record in read_events(EVENTS_BEFORE)]
    for name, record in events:
        list(processor.process(name, record))
    end = max(record["occurred_at"] for name, record in events if name != "recipients")
    list(processor.tick(end + timedelta(days=800)))
    return {state.subject_id: state for state in processor.store.states()}


def _kept(state: SubjectState) -> dict[str, object]:
    """The pickled fields of ``state`` but those added since it was pickled."""
    return {name: value for name, value in state.__getstate__()[1].items() if name not in ADDED_SINCE}


def _steps(state: SubjectState) -> dict[str, list[tuple[object, ...]]]:
    """Each request's events as (time, right, status): what a state pickled before kept of them."""
    return {request: sorted((row[0], row[2], row[3]) for row in rows) for request, rows in state.request_events.items()}


def test_a_state_pickled_before_the_modules_moved_loads_as_the_state_computed_today() -> None:
    blob = PICKLED_BEFORE_THE_LAYOUT.read_bytes()
    assert "consentflow.state" in _globals_named(blob)  # the old path, which changelogs written before hold
    old = pickle.loads(blob)
    assert isinstance(old, SubjectState)
    today = the_same_run()[old.subject_id]
    assert _kept(old) == _kept(today)
    assert old.activities and old.ledger_sequence > 0  # a state with a history, not an empty one
    # Its rights requests, if any, are rebuilt from the times it kept (tests/unit/core/test_requests.py) [8.2].
    assert _steps(old) == _steps(today)
    # Pickled again, it names the state's module now, and loads back the same.
    assert pickle.loads(pickle.dumps(old)).__getstate__() == old.__getstate__()


@pytest.mark.parametrize(
    ("old", "new", "names"),
    [
        ("consentflow.events", "consentflow.contracts.events", ["Event", "consent_event", "ID_RULE"]),
        ("consentflow.producer", "consentflow.kafka.producer", ["EventProducer", "DeliveryError"]),
        ("consentflow.vocabulary", "consentflow.policy.vocabulary", ["Purpose", "ConsentAction", "CURRENT_POLICY_VERSION"]),
        ("consentflow.eventfile", "consentflow.contracts.eventfile", ["read_events", "write_events", "read_checked"]),
        ("consentflow.state", "consentflow.core.state", ["SubjectState", "MemoryStore", "STATE_FORMAT"]),
    ],
)
def test_the_public_imports_of_before_resolve_to_the_moved_objects(old: str, new: str, names: list[str]) -> None:
    before, now = importlib.import_module(old), importlib.import_module(new)
    for name in names:
        assert getattr(before, name) is getattr(now, name)
    defined = {name: value for name, value in vars(now).items() if getattr(value, "__module__", None) == new}
    public = {name for name, value in defined.items() if not name.startswith("_") and not isinstance(value, TypeVar)}
    assert public <= set(vars(before)), f"{old} lacks {sorted(public - set(vars(before)))}"
