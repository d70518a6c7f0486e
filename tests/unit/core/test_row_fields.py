"""The row fields' names (``consentflow.core.state``) stand where the named views put those fields.

A state keeps plain tuples (``ProcessingRow``, ``FactRow``) and the hot paths read them by index constants; the
NamedTuples ``Processing`` and ``ConsentFact`` are the rows' field lists, so each constant must index its field there.
"""

from __future__ import annotations

from typing import get_args

from consentflow.core import state
from consentflow.core.state import ConsentFact, Processing


def test_every_processing_row_constant_indexes_its_field_in_processing() -> None:
    names = ["OCCURRED_AT", "EVENT_ID", "SUBJECT_ID", "SOURCE_KIND", "RECIPIENT_ID", "PURPOSE", "LEGAL_BASIS", "CATEGORIES"]
    assert [Processing._fields[getattr(state, name)] for name in names] == [name.lower() for name in names]
    assert len(names) == len(Processing._fields)


def test_every_fact_row_constant_indexes_its_field_in_consent_fact() -> None:
    named = {"OCCURRED_AT": "occurred_at", "EVENT_ID": "event_id", "FACT_ACTION": "action", "FACT_CHANNEL": "channel"}
    assert {name: ConsentFact._fields[getattr(state, name)] for name in named} == named


def test_the_issued_action_constant_indexes_its_last_field_whether_in_force() -> None:
    fields = get_args(state.IssuedAction)
    assert len(fields) - 1 == state.ISSUED_ACTIVE and fields[state.ISSUED_ACTIVE] is bool
