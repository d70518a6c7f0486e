"""The format version inside each pickled subject state (issue 20): a changelog or saved run outlives upgrades, so a
state says which form it was written in; an older form loads with defaults, a later one is refused, never mixed."""

from __future__ import annotations

import copyreg
import io
import pickle

import pytest

from consentflow.core.state import FORMAT_KEY, STATE_FIELDS, STATE_FORMAT, StateFormatError, SubjectState
from tests.support.paths import DATA

# Pickled before the format was recorded (see tests/unit/test_moved_names.py): it has no FORMAT_KEY.
PICKLED_BEFORE_FORMATS = DATA / "subject_state_2026-12-06.pickle"


def _with_values(state: SubjectState, **changes: object) -> bytes:
    """A pickle of ``state`` with its pickled values changed (None removes one): what another version would write."""
    _, values = state.__getstate__()
    for name, value in changes.items():
        if value is None:
            values.pop(name)
        else:
            values[name] = value

    class Writer(pickle.Pickler):
        def reducer_override(self, obj: object) -> object:
            if isinstance(obj, SubjectState):
                return copyreg.__newobj__, (SubjectState,), (None, values)  # type: ignore[attr-defined]
            return NotImplemented

    out = io.BytesIO()
    Writer(out).dump(state)
    return out.getvalue()


def test_a_state_pickles_with_the_format_it_was_written_in() -> None:
    state = SubjectState("cand-000001", held={"contact"})
    _, values = state.__getstate__()
    assert values[FORMAT_KEY] == STATE_FORMAT
    assert FORMAT_KEY not in STATE_FIELDS  # a key of the pickle, not a field
    again = pickle.loads(pickle.dumps(state))
    assert again == state


def test_a_state_pickled_before_formats_were_recorded_reads_as_format_one_and_gains_the_key() -> None:
    blob = PICKLED_BEFORE_FORMATS.read_bytes()
    assert FORMAT_KEY.encode() not in blob
    old = pickle.loads(blob)
    assert isinstance(old, SubjectState) and old.activities
    assert old.__getstate__()[1][FORMAT_KEY] == STATE_FORMAT == 1


def test_a_state_of_a_later_format_is_refused_naming_both_formats() -> None:
    blob = _with_values(SubjectState("cand-000002"), **{FORMAT_KEY: STATE_FORMAT + 1})
    with pytest.raises(StateFormatError, match=rf"format {STATE_FORMAT + 1}; this consentflow reads format {STATE_FORMAT}"):
        pickle.loads(blob)


def test_a_field_an_older_writer_did_not_know_takes_its_default() -> None:
    state = SubjectState("cand-000003", held={"contact"}, erasures_fulfilled=2)
    blob = _with_values(state, erasures_fulfilled=None, notices=None, **{FORMAT_KEY: None})
    old = pickle.loads(blob)
    assert old.held == {"contact"}
    assert old.erasures_fulfilled == 0 and old.notices == {}
