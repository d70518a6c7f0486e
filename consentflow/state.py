"""``consentflow.state``, kept for the imports written before the package took its layout (issue 20): the per-subject
state, now in ``consentflow.core.state``. Changelogs written before the move pickle it as ``consentflow.state.SubjectState``:
this name keeps them loading."""

from consentflow.core.state import (
    FORMAT_KEY,
    GENESIS_HASH,
    STATE_FIELDS,
    STATE_FORMAT,
    ConsentFact,
    FactRow,
    IssuedAction,
    MemoryStore,
    Processing,
    ProcessingRow,
    StateFormatError,
    SubjectState,
    SubjectStore,
)

__all__ = [
    "FORMAT_KEY",
    "GENESIS_HASH",
    "STATE_FIELDS",
    "STATE_FORMAT",
    "ConsentFact",
    "FactRow",
    "IssuedAction",
    "MemoryStore",
    "Processing",
    "ProcessingRow",
    "StateFormatError",
    "SubjectState",
    "SubjectStore",
]
