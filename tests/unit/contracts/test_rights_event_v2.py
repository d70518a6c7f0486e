"""RightsEvent v2 [8.2; GDPR Art. 12(3), 12(4), 12(6), 18, 21]: restriction and objection, the steps the clock needs, an
extension's months and reason code; v1 data still read; the gate and the constructor refuse what does not go together,
naming the field.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import fastavro
import pytest

from consentflow.contracts import events
from consentflow.contracts.codec import SingleObjectCodec
from consentflow.contracts.errors import ContractError
from consentflow.contracts.gate import Gate
from consentflow.contracts.json_events import InvalidEvent, event_from_json
from consentflow.contracts.releases import default_store
from consentflow.contracts.topics import RIGHTS

T = datetime(2024, 1, 31, 10, tzinfo=UTC)
ARRIVAL = datetime(2024, 2, 1, tzinfo=UTC)


def rights(**fields: Any) -> dict[str, Any]:
    """A valid v2 rights event's record, with ``fields`` replaced (bypassing the constructor's checks)."""
    record = dict(
        events.rights_event("cand-1", "access", "requested", request_id="req-1", source_service="support", occurred_at=T).record
    )
    record.update(fields)
    return record


def test_v2_adds_the_two_rights_and_the_clocks_steps() -> None:
    contract = default_store().latest("RightsEvent")
    assert contract.version == 2
    by_name = {f["name"]: f for f in contract.schema["fields"]}
    assert {"restriction", "objection"} <= set(by_name["right"]["type"]["symbols"])
    assert {"extended", "identity_requested", "identity_verified", "rejected"} <= set(by_name["status"]["type"]["symbols"])
    assert all(by_name[name]["default"] is None for name in ("purpose", "extension_months", "reason_code"))


def test_a_v1_message_is_still_read_with_the_new_fields_empty_and_passes_the_gate() -> None:
    """A message an emitter of v1 wrote (single-object framing, v1's fingerprint) decodes into v2."""
    v1 = default_store().versions("RightsEvent")[0]
    record = {
        k: v
        for k, v in rights(right="erasure", status="fulfilled").items()
        if k not in ("purpose", "extension_months", "reason_code")
    }
    body = io.BytesIO()
    fastavro.schemaless_writer(body, v1.parsed, record)
    decoded = SingleObjectCodec().decode(RIGHTS, b"\xc3\x01" + v1.fingerprint + body.getvalue())
    assert (decoded["right"], decoded["status"]) == ("erasure", "fulfilled")
    assert (decoded["purpose"], decoded["extension_months"], decoded["reason_code"]) == (None, None, None)
    Gate().check(RIGHTS, decoded, ARRIVAL)


def test_a_v2_extension_round_trips_and_passes() -> None:
    event = events.rights_event(
        "cand-1",
        "objection",
        "extended",
        request_id="req-1",
        source_service="support",
        occurred_at=T,
        extension_months=2,
        reason_code="complexity",
    )
    codec = SingleObjectCodec()
    decoded = codec.decode(RIGHTS, codec.encode(RIGHTS, event.record))
    assert (decoded["extension_months"], decoded["reason_code"]) == (2, "complexity")
    Gate().check(RIGHTS, decoded, ARRIVAL)


@pytest.mark.parametrize(
    ("fields", "field", "fragment"),
    [
        ({"status": "extended"}, "extension_months", "an extension names 1 or 2 further months"),
        ({"status": "extended", "extension_months": 3}, "extension_months", "got 3"),
        ({"status": "extended", "extension_months": 0}, "extension_months", "got 0"),
        ({"status": "fulfilled", "extension_months": 1}, "extension_months", "only an extension"),
        ({"extension_months": "2", "status": "extended"}, "extension_months", "not a 32-bit integer"),
        ({"right": "access", "purpose": "marketing"}, "purpose", "only a consent withdrawal or an objection"),
        ({"right": "objection", "purpose": "no_such_purpose"}, "purpose", "is not a Purpose"),
        ({"status": "rejected", "reason_code": "Identity not proven!"}, "reason_code", "is not a reason code"),
        ({"right": "unknown"}, "right", "'unknown' stands for a symbol"),
        ({"status": "paused"}, "status", "is not a RequestStatus"),
    ],
)
def test_the_gate_refuses_what_does_not_go_together_naming_the_field(fields: dict[str, Any], field: str, fragment: str) -> None:
    with pytest.raises(ContractError, match=fragment) as caught:
        Gate().check(RIGHTS, rights(**fields), ARRIVAL)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"status": "extended"}, "extension_months"),
        ({"status": "extended", "extension_months": 5}, "extension_months"),
        ({"right": "erasure", "purpose": "marketing"}, "purpose"),
        ({"status": "rejected", "reason_code": "x" * 65}, "reason_code"),
    ],
)
def test_the_constructor_refuses_the_same(arguments: dict[str, Any], field: str) -> None:
    base: dict[str, Any] = {"right": "access", "status": "requested"}
    base.update(arguments)
    with pytest.raises(ContractError) as caught:
        events.rights_event("cand-1", request_id="req-1", source_service="support", occurred_at=T, **base)
    assert caught.value.field == field


def test_the_collector_body_names_the_field() -> None:
    body = {"subject_id": "cand-1", "right": "access", "status": "extended", "request_id": "req-1", "source_service": "support"}
    with pytest.raises(InvalidEvent) as caught:
        event_from_json(RIGHTS, {**body, "extension_months": True})
    assert caught.value.field == "extension_months"
    event = event_from_json(RIGHTS, {**body, "extension_months": 1, "reason_code": "number_of_requests"})
    assert event.record["extension_months"] == 1
