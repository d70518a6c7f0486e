"""The breach register's contract (``IncidentEvent`` v1 on the ``incidents`` topic) through the one gate [12; GDPR
Art. 33, 34]: each kind carries its fields and only those, the gate names the field at fault, and every way in (the
constructor, the codec and the gate, an event file, JSON Lines) takes the same events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from consentflow.contracts import events
from consentflow.contracts.codec import SingleObjectCodec
from consentflow.contracts.errors import ContractError
from consentflow.contracts.eventfile import read_checked, read_events, write_events
from consentflow.contracts.gate import Gate
from consentflow.contracts.json_events import event_from_line
from consentflow.contracts.topics import DEAD_LETTER, INCIDENTS, INPUT_TOPICS
from consentflow.kafka.admin import INFINITE, topic_config

AWARE = datetime(2024, 3, 4, 10, 25, tzinfo=UTC)
NOW = datetime(2024, 4, 1, tzinfo=UTC)


def _opened(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "recipient_id": "cloudnest", "window_from": AWARE - timedelta(days=2), "window_to": AWARE, "aware_at": AWARE,
        "risk": "high", "categories": ["contact", "identity"], "source_service": "dpo", "occurred_at": AWARE,
    }  # fmt: skip
    return events.incident_event("inc-1", "opened", **(fields | overrides)).record


def test_the_incidents_topic_is_an_input_keyed_by_incident_and_kept_forever() -> None:
    """An input topic, so `topics create` makes it and replays read it; keyed by incident, not by subject; kept
    forever whatever the inputs' retention (GDPR Art. 33(5): every breach documented)."""
    assert INCIDENTS in INPUT_TOPICS
    assert topic_config(INCIDENTS, input_retention_ms="86400000") == {"cleanup.policy": "delete", "retention.ms": INFINITE}
    assert (INCIDENTS.name(), INCIDENTS.record, INCIDENTS.key_field) == ("consentflow.incidents", "IncidentEvent", "incident_id")
    assert events.Event(INCIDENTS, _opened()).key == "inc-1"


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({**_opened(), "aware_at": None}, "aware_at"),
        ({**_opened(), "risk": None}, "risk"),
        ({**_opened(), "window_to": AWARE - timedelta(days=3)}, "window_to"),
        ({**_opened(), "delay_reason": "late"}, "delay_reason"),
        ({**_opened(), "subject_id": "subj-1"}, "subject_id"),
        ({**_opened(), "kind": "authority_notified"}, "recipient_id"),
        ({**_opened(), "kind": "subject_notified", "recipient_id": None}, "subject_id"),
        ({**_opened(), "incident_id": "someone@example.com"}, "incident_id"),
        ({**_opened(), "risk": "unknown"}, "risk"),
    ],
    ids=["no-aware-at", "no-risk", "window-reversed", "reason-on-opening", "subject-on-opening", "opening-fields-elsewhere",
         "told-without-subject", "id-not-pseudonymous", "unknown-risk"],
)  # fmt: skip
def test_the_gate_refuses_an_incident_event_naming_the_field(record: dict[str, Any], field: str) -> None:
    """Every way in reads through ``Gate.check``: a refusal names the topic and field, as a dead letter will."""
    with pytest.raises(ContractError) as refused:
        Gate().check(INCIDENTS, record, NOW)
    assert (refused.value.topic, refused.value.field) == ("incidents", field)


@pytest.mark.parametrize("reason", ["x" * 161, "two\nlines", "   "])
def test_a_delay_reason_is_one_short_line(reason: str) -> None:
    """GDPR Art. 33(1) reasons are a code or short line the controller writes, never a narrative: one printable line of
    at most 160 characters, refused by the constructor and the gate alike, without echoing the text."""
    with pytest.raises(ContractError) as built:
        events.incident_event("inc-1", "authority_notified", delay_reason=reason, source_service="dpo", occurred_at=NOW)
    assert built.value.field == "delay_reason"
    assert reason.strip() not in str(built.value) or not reason.strip()
    good = events.incident_event("inc-1", "authority_notified", delay_reason="ok", source_service="dpo", occurred_at=NOW)
    with pytest.raises(ContractError) as gated:
        Gate().check(INCIDENTS, {**good.record, "delay_reason": reason}, NOW)
    assert gated.value.field == "delay_reason"


def test_an_incident_event_round_trips_the_codec_and_passes_the_gate() -> None:
    """Encoded as single-object Avro and decoded into the newest contract, the event is the one built."""
    codec = SingleObjectCodec()
    record = _opened()
    decoded = codec.decode(INCIDENTS, codec.encode(INCIDENTS, record))
    assert decoded == record
    Gate().check(INCIDENTS, decoded, NOW)
    told = events.incident_event("inc-1", "subject_notified", subject_id="subj-7", source_service="dpo", occurred_at=NOW)
    assert codec.decode(INCIDENTS, codec.encode(INCIDENTS, told.record)) == told.record


def test_an_event_file_carries_incident_events_through_the_gate(tmp_path: Path) -> None:
    """An event file (the union of the input contracts) holds incident events beside subject events, read back
    through the gate; one the gate refuses becomes a dead letter naming the field, the others go on."""
    path = tmp_path / "events.avro"
    consent = events.consent_granted(
        "subj-1", "marketing", channel="account_settings", source_service="mailing", occurred_at=AWARE
    )
    opened = _opened()
    write_events(path, [consent, events.Event(INCIDENTS, opened)])
    assert [(t, r) for t, r in read_events(path)] == [(consent.topic, consent.record), (INCIDENTS, opened)]
    lines = tmp_path / "events.jsonl"
    good = {"topic": "incidents", "incident_id": "inc-2", "kind": "authority_notified", "source_service": "dpo",
            "occurred_at": "2024-03-07T09:00:00Z", "delay_reason": "forensics-pending"}  # fmt: skip
    bad = {**good, "kind": "opened", "recipient_id": "cloudnest"}
    lines.write_text("".join(json.dumps(line) + "\n" for line in (good, bad)))
    read = list(read_checked(lines, Gate(), NOW))
    assert read[0] == (INCIDENTS, event_from_line(dict(good, event_id=read[0][1]["event_id"])).record)
    assert read[1][0] is DEAD_LETTER
    assert "window_from" in read[1][1]["reason"]
