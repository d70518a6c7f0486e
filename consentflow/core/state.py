"""What the processors remember per subject, behind a small store interface.

Drivers choose the store: a dict in the embedded runner and unit tests, a faust
table (RocksDB-backed, with a changelog topic) in the Kafka workers. Everything
here is plain data, so it pickles for a changelog.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import MISSING, dataclass, field, fields
from datetime import datetime
from typing import Final, NamedTuple, Protocol

from mypy_extensions import mypyc_attr

#: previous_hash of a subject's first ledger entry.
GENESIS_HASH = "0" * 64


class ConsentFact(NamedTuple):
    """One consent event as the ledger keeps it: the fact and its evidence."""

    occurred_at: datetime
    event_id: str
    action: str
    channel: str
    policy_version: str
    source_service: str
    notice_id: str | None


class Processing(NamedTuple):
    """A processing of one subject's data: a message, a cookie set or read, a disclosure.

    Kept in the subject's state because its consent- and erasure-dependent
    verdicts can change when an older fact arrives late.
    """

    occurred_at: datetime
    event_id: str
    subject_id: str
    source_kind: str  # "message", "cookie" or "disclosure"
    recipient_id: str | None
    purpose: str
    legal_basis: str
    categories: tuple[str, ...]


# How facts and processings are kept in a subject's state: plain tuples of the same
# fields. The cyclic garbage collector stops tracking a plain tuple of atoms, never a
# NamedTuple, and a state holds one per event; plain tuples also pickle smaller for
# the changelog. ``SubjectState.facts`` and ``.processings`` give the named views.
FactRow = tuple[datetime, str, str, str, str, str, str | None]
ProcessingRow = tuple[datetime, str, str, str, str | None, str, str, tuple[str, ...]]
# A rights event as a request's timeline keeps it [8.2; GDPR Art. 12]: (occurred_at, event_id, right, status, purpose,
# extension_months, reason_code) (core/requests.py).
RequestRow = tuple[datetime, str, str, str, str | None, int | None, str | None]
# The last record issued for a retention action id: (action, categories, due_at, policy_section, basis_event_id,
# reason, active). None for an id a state written before retractions existed knew only as emitted.
IssuedAction = tuple[str, tuple[str, ...], datetime, str, str | None, str, bool]

# The rows' fields by position, named as the NamedTuples name them: compiled, a Final int is inlined, so
# ``row[PURPOSE]`` costs what ``row[5]`` does. Both rows begin with the event's time and id.
OCCURRED_AT: Final = 0
EVENT_ID: Final = 1
#: ProcessingRow (``Processing``).
SUBJECT_ID: Final = 2
SOURCE_KIND: Final = 3
RECIPIENT_ID: Final = 4
PURPOSE: Final = 5
LEGAL_BASIS: Final = 6
CATEGORIES: Final = 7
#: FactRow (``ConsentFact``).
FACT_ACTION: Final = 2
FACT_CHANNEL: Final = 3
FACT_POLICY_VERSION: Final = 4
#: IssuedAction: whether the record issued was in force (the last field).
ISSUED_ACTIVE: Final = 6

#: The version of the form a SubjectState pickles to (``(None, {field: value, FORMAT_KEY: STATE_FORMAT})``): carried
#: inside each pickle, and beside each state a store keeps between runs, so a state written in another form is
#: refused, never mixed. Raise it when a field changes meaning or type; a new field with a default that
#: ``__setstate__`` fills needs none. A pickle without the key was written before it existed: format 1.
STATE_FORMAT: Final = 1
#: The pickle's key for its format (no field bears this name).
FORMAT_KEY: Final = "state_format"


class StateFormatError(ValueError):
    """A pickled SubjectState of a format this version does not read (written by a later consentflow)."""


@dataclass(slots=True)
class SubjectState:
    """Everything the processors know of one subject."""

    subject_id: str
    seen: set[str] = field(default_factory=set)  # event ids processed: duplicates change nothing
    # Consent ledger [6]: facts per purpose in event-time order, and the head of the hash chain.
    consents: dict[str, list[FactRow]] = field(default_factory=dict)
    ledger_sequence: int = -1
    ledger_head: str = GENESIS_HASH
    # Lineage and enforcement.
    # Every processing in (occurred_at, event_id) order: what each recipient received, when, for what.
    activities: list[ProcessingRow] = field(default_factory=list)
    # Account lifecycle for retention [2.3].
    account_kind: str | None = None
    registered_at: datetime | None = None
    last_use: datetime | None = None
    closed_at: datetime | None = None
    last_negative: datetime | None = None
    suspended_at: datetime | None = None  # the latest suspension or block
    reinstated_at: datetime | None = None  # the latest reinstatement
    basis_events: dict[str, str] = field(default_factory=dict)  # "last_use", "closed", ... -> event id
    held: set[str] = field(default_factory=set)  # categories the subject provided (profile events)
    # Retention action id -> the last record issued for it [2.3]: a due action is issued again when its record
    # changes, and retracted when a later-arriving fact moves or cancels it (RetentionSchedule.due).
    retention_issued: dict[str, IssuedAction | None] = field(default_factory=dict)
    # What the platform holds and until when [2.3]: the revision (events known) of the last
    # SubjectHoldings record issued, and the latest event time known, which that record carries.
    holdings_revision: int = -1
    latest_event_at: datetime | None = None
    # Rights [8, 12].
    requests: dict[str, dict[str, object]] = field(default_factory=dict)
    erasure_request_id: str | None = None
    erasure_requested_at: datetime | None = None
    erasure_fulfilled_at: datetime | None = None
    erasure_event_id: str | None = None
    erasures_fulfilled: int = 0  # fulfilled erasure events known: the revision of after-erasure verdicts
    erasure_events: int = 0  # erasure requests and fulfilments known: the high bits of a notice's revision
    notices: dict[str, tuple[frozenset[str], int]] = field(default_factory=dict)  # recipient -> (categories, revision)
    # Every rights event of each request, by request id: its timeline is folded from them (core/requests.py) [8.2].
    request_events: dict[str, list[RequestRow]] = field(default_factory=dict)
    # Request id -> (active, detail, revision) of the last request_overdue verdict issued [GDPR Art. 12(3)].
    request_verdicts: dict[str, tuple[bool, str, int]] = field(default_factory=dict)

    # A changelog holds states pickled by plain and compiled (consentflow.runtime.native) workers alike, and
    # pickles written before the compiled build: every one writes and reads the form Python gives a
    # slotted object, (None, {field: value}). A compiled class would otherwise pickle its own way.
    def __getstate__(self) -> tuple[None, dict[str, object]]:
        """``(None, {field: value})``, as Python pickles a slotted object, with the format under ``FORMAT_KEY``."""
        values: dict[str, object] = {name: getattr(self, name) for name in STATE_FIELDS}
        values[FORMAT_KEY] = STATE_FORMAT
        return None, values

    def __setstate__(self, state: tuple[None, dict[str, object]]) -> None:
        """Restore the fields ``__getstate__`` gave; a field an older writer did not know takes its default.

        Raises ``StateFormatError`` for a format later than ``STATE_FORMAT``: its fields may mean something else.
        """
        values = state[1]
        written = values.get(FORMAT_KEY, 1)
        if written != STATE_FORMAT:
            raise StateFormatError(
                f"a subject state of format {written!r}; this consentflow reads format {STATE_FORMAT} "
                "(and states written before formats were recorded)"
            )
        known = 0
        for name, value in values.items():
            if name == FORMAT_KEY or name in _RETIRED_FIELDS:
                continue
            setattr(self, name, value)
            known += 1
        if known != len(STATE_FIELDS) or not _RETIRED_FIELDS.isdisjoint(values):
            _upgrade(self, values)

    def suspension(self) -> datetime | None:
        """When the account's suspension in force began, or None: a suspension holds unless a later reinstatement lifted it.

        Both are kept as the latest of their kind, so the answer is the same whatever order they arrived in [2.3.3].
        """
        suspended = self.suspended_at
        if suspended is None or (self.reinstated_at is not None and self.reinstated_at > suspended):
            return None
        return suspended

    def facts(self, purpose: str) -> list[ConsentFact]:
        """The consent facts of ``purpose``, in event-time order."""
        return [ConsentFact._make(row) for row in self.consents.get(purpose, ())]

    def processings(self, start: int = 0) -> Iterator[Processing]:
        """The processings from index ``start`` of ``activities`` on, in event-time order."""
        activities = self.activities
        for index in range(start, len(activities)):
            yield Processing._make(activities[index])


#: SubjectState's fields in declaration order: its pickled form.
STATE_FIELDS = tuple(f.name for f in fields(SubjectState))
#: Fields of states pickled by earlier versions that this one keeps under another form.
_RETIRED_FIELDS: Final = frozenset({"retention_done"})
_DEFAULTS: Final = {f.name: f for f in fields(SubjectState)}


def _upgrade(state: SubjectState, values: dict[str, object]) -> None:
    """Fill what a state pickled by an earlier version lacks (a changelog outlives upgrades).

    ``retention_done``, the ids of retention actions emitted, became ``retention_issued``: each id is kept with
    its record unknown (None), so the next tick issues it again if it is still due and retracts it if not.
    ``request_events`` (issue 24) is rebuilt from ``requests``, which kept the time of each status of a request.
    """
    for name, spec in _DEFAULTS.items():
        if name not in values:
            setattr(state, name, spec.default_factory() if spec.default_factory is not MISSING else spec.default)
    if "request_events" not in values:
        # A state from before issue 24 kept one time per status of each request: its rows, under made-up event ids.
        for request_id, seen in state.requests.items():
            right = str(seen.get("right", "unknown"))
            rows: list[RequestRow] = [
                (t, f"{request_id}:{status}", right, status, None, None, None)
                for status, t in seen.items()
                if status != "right" and isinstance(t, datetime)
            ]
            if rows:
                state.request_events[request_id] = rows
    done = values.get("retention_done")
    if isinstance(done, set):
        for action_id in done:
            state.retention_issued.setdefault(action_id, None)


class SubjectStore(Protocol):
    """Where subject states live: a dict, or a faust table."""

    # True when the store keeps the very objects it hands out, so a changed state
    # needs no ``put`` (only a new one does); False when ``put`` writes it out.
    keeps_references: bool

    def get(self, subject_id: str) -> SubjectState | None:
        """The state of ``subject_id``, if any."""
        ...

    def put(self, state: SubjectState) -> None:
        """Store ``state`` (drivers backed by a changelog write it out here)."""
        ...

    def states(self) -> Iterator[SubjectState]:
        """Every state this store holds (a worker: its partitions' subjects)."""
        ...


@mypyc_attr(native_class=False)  # compiled (consentflow.runtime.native), a dict subclass stays a Python class
class MemoryStore(dict[str, SubjectState]):
    """A dict of subject states: the embedded runner's and the unit tests' store.

    A dict itself, so that ``get`` — called for every event — is the C method.
    """

    __slots__ = ()
    keeps_references = True

    def put(self, state: SubjectState) -> None:
        """Store ``state``."""
        self[state.subject_id] = state

    def states(self) -> Iterator[SubjectState]:
        """Every state, in subject id order (deterministic)."""
        for subject_id in sorted(self):
            yield self[subject_id]
