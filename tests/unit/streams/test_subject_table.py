"""The subject table: its value codec (states pickled without faust's base64 layer, the old base64 form still read),
and its cache across rebalances."""

from __future__ import annotations

import pickle

import faust
from faust.serializers import codecs

from consentflow.core.processor import Processor
from consentflow.core.state import SubjectState
from consentflow.streams.subject_table import PartitionWrite, PickledState, StateCodec, TableStore
from tests.support.samples import input_events


def _a_state() -> SubjectState:
    """A state with processings, consent facts and seen ids: what the changelog carries."""
    processor = Processor()
    for event in input_events():
        processor.process(event.topic.short_name, event.record)
    states = [s for s in processor.store.values() if s.activities and s.consents]
    assert states, "the sample events give a subject with processings and consents"
    return states[0]


def test_the_table_writes_states_as_plain_pickles() -> None:
    state = _a_state()
    written = StateCodec().dumps(state)
    assert written == pickle.dumps(state)  # no base64 text: the pickle's own bytes
    assert written[:1] == b"\x80"
    assert StateCodec().loads(written).__getstate__() == state.__getstate__()


def test_states_written_by_fausts_pickle_codec_still_load() -> None:
    """Changelogs and stores written before hold faust's ``pickle`` codec's base64 text."""
    state = _a_state()
    before = codecs.get_codec("pickle").dumps(state)
    assert before[:1] != b"\x80" and before.isascii()
    assert StateCodec().loads(before).__getstate__() == state.__getstate__()


def test_the_subject_table_uses_the_state_codec() -> None:
    """faust takes a table's value serializer from its value type, as the worker declares the table."""
    app = faust.App("state-codec", broker="kafka://127.0.0.1:1", store="memory://")
    table = app.Table("subjects", default=None, key_type=str, value_type=PickledState)
    assert isinstance(codecs.get_codec(table.value_serializer), StateCodec)


def test_a_revocation_forgets_cached_states_but_those_not_written_yet() -> None:
    """A partition that comes back may have been changed by another worker: its states are read from the table again
    (faust recovered them there), while a state changed in the batch in hand stays until the batch writes it."""
    mine, theirs = _a_state(), _a_state()
    table = {mine.subject_id: mine}  # the table's store, a plain mapping here (``get`` is all the cache reads)
    store = TableStore(table, changelog=None)  # type: ignore[arg-type]  # nothing is written to a changelog
    assert store.get(mine.subject_id) is mine
    table[mine.subject_id] = theirs  # the partition went to another worker, which changed the state, and came back
    store.forget_cached()
    assert store.get(mine.subject_id) is theirs

    pending = _a_state()
    store.current = PartitionWrite("topic", 0)
    store.put(pending)  # changed in the batch in hand: written at its end
    store.forget_cached()
    assert store.get(pending.subject_id) is pending
