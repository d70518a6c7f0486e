"""Rights requests against the law's clock [8.2; GDPR Art. 12(3), 12(4), 12(6); Regulation 1182/71 Art. 3].

A request under Art. 15-22 is answered within one month of receipt, counted in the controller's calendar (Paris,
French public holidays); an extension of up to two further months is honoured only when notified before the first due
date; a refusal is due within the first month (Art. 12(4)); asking for the identity stops the clock (Art. 12(6)). A
request still open at its due instant, by the pipeline's retention clock (event time), or answered at or after it, is a
``request_overdue`` violation; an answer in time that arrives later in the stream retracts it. A consent withdrawal
(Art. 7(3)) and an objection to direct marketing (Art. 21(3)) act at once through the consent ledger; post-mortem
directives [8.3] are recorded with no clock. Expected days are written out by hand from the calendar.
"""

from __future__ import annotations

import copyreg
import io
import pickle
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consentflow.contracts import events
from consentflow.contracts.events import Event
from consentflow.core.processor import Changes, Processor
from consentflow.core.state import MemoryStore, SubjectState
from consentflow.policy.vocabulary import ConsentAction, ConsentChannel, Purpose, Rule
from tests.support.builders import (
    POSTWAVE,
    active_verdicts,
    consent,
    crash_and_replay,
    eid,
    feed,
    final_verdicts,
    newsletter,
    processor_with,
)

SUBJECT = "cand-000124"
PARIS = ZoneInfo("Europe/Paris")
OVERDUE = Rule.REQUEST_OVERDUE.value


def paris(text: str) -> datetime:
    """A Paris wall-clock time (``2024-03-15T10:00``) as the UTC instant."""
    return datetime.fromisoformat(text).replace(tzinfo=PARIS).astimezone(UTC)


def step(status: str, when: str, request: str = "req-1", right: str = "access", **extra: Any) -> Event:
    """One event of a request's handling, at Paris time ``when``."""
    return events.rights_event(
        SUBJECT,
        right,
        status,
        request_id=request,
        source_service="support",
        occurred_at=paris(when),
        event_id=eid(SUBJECT, request, status, when),
        **extra,
    )


def run(*items: Event, now: str | None = None) -> tuple[Processor, Changes]:
    """The events fed in order, then one tick at ``now`` (Paris), or at the latest event time, as the embedded run."""
    processor = Processor()
    changes = feed(processor, *items)
    clock = paris(now) if now else max(item.record["occurred_at"] for item in items)
    changes.extend(processor.tick(clock))
    return processor, changes


def overdue(changes: Changes) -> dict[str, Mapping[str, Any]]:
    """The request_overdue verdicts in force, by request id."""
    return {v["violation_id"].split(":", 1)[1]: v for v in active_verdicts(changes.violations).values() if v["rule"] == OVERDUE}


def request(changes: Changes, request_id: str = "req-1") -> Mapping[str, Any]:
    """The latest record of a request on the requests topic."""
    return max((r for r in changes.requests if r["request_id"] == request_id), key=lambda r: r["revision"])


def test_answered_on_its_due_date_is_in_time_and_the_next_day_is_overdue() -> None:
    """[8.2; Art. 12(3)] received Friday 15 March 2024: due by the end of Monday 15 April, Paris time."""
    received = step("requested", "2024-03-15T10:00")
    _, on_time = run(received, step("fulfilled", "2024-04-15T23:30"))
    assert overdue(on_time) == {}
    assert request(on_time)["last_day"] == "2024-04-15" and request(on_time)["state"] == "fulfilled"
    _, late = run(received, step("fulfilled", "2024-04-16T00:00"))
    verdict = overdue(late)["req-1"]
    assert verdict["policy_section"] == "8.2 (GDPR Art. 12(3))"
    assert verdict["evidence_event_ids"][0] == received.record["event_id"]
    assert verdict["occurred_at"] == paris("2024-04-16T00:00")
    assert "fulfilled at" in verdict["detail"] and "late" in verdict["detail"]
    assert request(late)["late"] is True


def test_an_open_request_is_overdue_once_the_retention_clock_passes_its_due_instant() -> None:
    """[Art. 12(3)] judged by event time: at 23:59 on the last day it is not yet late, at 00:00 the next day it is."""
    received = step("requested", "2024-03-15T10:00")
    _, before = run(received, now="2024-04-15T23:59")
    assert overdue(before) == {}
    _, after = run(received, now="2024-04-16T00:00")
    assert "still open" in overdue(after)["req-1"]["detail"]


def test_an_answer_in_time_arriving_later_in_the_stream_retracts_the_overdue_verdict() -> None:
    """The worker's clock passed the due date before the answer (dated in time) reached it: retracted, higher revision."""
    processor = Processor()
    changes = feed(processor, step("requested", "2024-03-15T10:00"), step("requested", "2024-05-01T09:00", request="req-2"))
    changes.extend(processor.tick(paris("2024-05-01T09:00")))
    assert "req-1" in overdue(changes)
    changes.extend(feed(processor, step("fulfilled", "2024-04-12T16:00")))
    changes.extend(processor.tick(paris("2024-05-01T09:00")))
    assert "req-1" not in overdue(changes)
    final = final_verdicts(changes.violations)[f"{OVERDUE}:req-1"]
    assert final["active"] is False and final["detail"].startswith("compliant:")


def test_due_dates_across_a_month_end() -> None:
    """Regulation 1182/71 Art. 3(2)(c): received 31 January, due 28 February (29 in a leap year)."""
    _, plain = run(step("requested", "2023-01-31T09:00"), step("fulfilled", "2023-02-28T18:00"))
    assert overdue(plain) == {} and request(plain)["last_day"] == "2023-02-28"
    _, leap = run(step("requested", "2024-01-31T09:00"), step("fulfilled", "2024-02-29T18:00"))
    assert overdue(leap) == {} and request(leap)["last_day"] == "2024-02-29"
    _, late = run(step("requested", "2023-01-31T09:00"), step("fulfilled", "2023-03-01T09:00"))
    assert "req-1" in overdue(late)


def test_a_due_date_on_a_weekend_moves_to_monday() -> None:
    """Art. 3(4): one month from 10 February 2024 ends on Sunday 10 March; the answer on Monday 11 March is in time."""
    _, changes = run(step("requested", "2024-02-10T12:00"), step("fulfilled", "2024-03-11T17:00"))
    assert overdue(changes) == {} and request(changes)["last_day"] == "2024-03-11"


def test_a_due_date_on_a_french_public_holiday_moves_to_the_next_working_day() -> None:
    """Art. 3(4) with French public holidays: 1 May, 14 July."""
    _, labour_day = run(step("requested", "2025-04-01T10:00"), step("fulfilled", "2025-05-02T10:00"))
    assert overdue(labour_day) == {} and request(labour_day)["last_day"] == "2025-05-02"
    _, national_day = run(step("requested", "2025-06-14T10:00"), step("fulfilled", "2025-07-15T22:00"))
    assert overdue(national_day) == {}
    _, late = run(step("requested", "2025-06-14T10:00"), step("fulfilled", "2025-07-16T08:00"))
    assert "req-1" in overdue(late)


def test_an_extension_before_the_due_date_and_an_answer_within_it_are_fine() -> None:
    """[Art. 12(3)] extended by two further months within the first month, with its reason: due 10 April 2024."""
    _, changes = run(
        step("requested", "2024-01-10T10:00"),
        step("extended", "2024-02-01T10:00", extension_months=2, reason_code="complexity"),
        step("fulfilled", "2024-04-05T10:00"),
    )
    assert overdue(changes) == {}
    record = request(changes)
    assert (record["extension_months"], record["extension_reason"], record["last_day"]) == (2, "complexity", "2024-04-10")
    assert record["first_due_at"] == paris("2024-02-13T00:00")  # 10 February 2024 is a Saturday: Monday 12th
    assert record["extension_refused"] is False


def test_an_extension_after_the_due_date_is_refused_recorded_but_not_honoured() -> None:
    """[Art. 12(3)] notified after the first month: the first due date stands, and the answer after it is late."""
    refused = step("extended", "2024-02-14T10:00", extension_months=2, reason_code="complexity")
    _, changes = run(step("requested", "2024-01-10T10:00"), refused, step("fulfilled", "2024-03-01T10:00"))
    verdict = overdue(changes)["req-1"]
    assert "not honoured" in verdict["detail"]
    assert refused.record["event_id"] in verdict["evidence_event_ids"]
    record = request(changes)
    assert (record["extension_months"], record["extension_refused"], record["last_day"]) == (0, True, "2024-02-12")


def test_a_refusal_after_one_month_is_late_even_with_an_extension() -> None:
    """[Art. 12(4)] the reasons for not acting are due within one month of receipt; an extension does not lengthen it."""
    received = step("requested", "2024-01-10T10:00")
    extended = step("extended", "2024-01-20T10:00", extension_months=2, reason_code="number_of_requests")
    _, refused = run(received, extended, step("rejected", "2024-02-20T10:00", reason_code="manifestly_unfounded"))
    verdict = overdue(refused)["req-1"]
    assert "[Art. 12(4)]" in verdict["detail"] and verdict["occurred_at"] == paris("2024-02-13T00:00")
    _, fulfilled = run(received, extended, step("fulfilled", "2024-02-20T10:00"))
    assert overdue(fulfilled) == {}
    _, refused_in_time = run(received, step("rejected", "2024-02-12T18:00", reason_code="manifestly_unfounded"))
    assert overdue(refused_in_time) == {}


def test_asking_for_the_identity_stops_the_clock_until_it_is_verified() -> None:
    """[8.1 (i); Art. 12(6)] asked on 12 January, verified 20 February: the month runs from 20 February (to 20 March)."""
    received, asked = step("requested", "2024-01-10T10:00"), step("identity_requested", "2024-01-12T10:00")
    _, waiting = run(received, asked, now="2024-03-30T10:00")
    assert overdue(waiting) == {} and request(waiting)["state"] == "awaiting_identity"
    assert request(waiting)["due_at"] is None
    verified = step("identity_verified", "2024-02-20T10:00")
    _, answered = run(received, asked, verified, step("fulfilled", "2024-03-20T10:00"))
    assert overdue(answered) == {} and request(answered)["last_day"] == "2024-03-20"
    _, open_after = run(received, asked, verified, now="2024-03-21T00:00")
    assert "req-1" in overdue(open_after)


def test_an_identity_request_after_the_first_due_date_stops_nothing() -> None:
    """[Art. 12(6)] asked on 14 February, after the month from 10 January ran out (12 February): the first limit stands."""
    _, changes = run(
        step("requested", "2024-01-10T10:00"),
        step("identity_requested", "2024-02-14T10:00"),
        step("identity_verified", "2024-02-15T10:00"),
        step("fulfilled", "2024-02-20T10:00"),
    )
    assert "req-1" in overdue(changes) and request(changes)["last_day"] == "2024-02-12"


def test_of_two_extensions_in_time_the_longest_counts() -> None:
    """[Art. 12(3)] one further month, then two, both within the first month: three months from receipt (10 April)."""
    _, changes = run(
        step("requested", "2024-01-10T10:00"),
        step("extended", "2024-01-15T10:00", extension_months=1, reason_code="complexity"),
        step("extended", "2024-02-01T10:00", extension_months=2, reason_code="number_of_requests"),
        step("fulfilled", "2024-04-10T20:00"),
    )
    assert overdue(changes) == {}
    assert (request(changes)["extension_months"], request(changes)["extension_reason"]) == (2, "number_of_requests")


def test_restriction_and_objection_are_on_the_one_month_clock() -> None:
    """[Art. 18, 21(1)] the two rights v2 adds: a request under Art. 15-22, with the same time limit."""
    _, changes = run(
        step("requested", "2024-01-10T10:00", request="r-restrict", right="restriction"),
        step("requested", "2024-01-10T10:00", request="r-object", right="objection", purpose="security_fraud_prevention"),
        now="2024-03-01T00:00",
    )
    assert set(overdue(changes)) == {"r-restrict", "r-object"}
    assert {request(changes, r)["clock"] for r in ("r-restrict", "r-object")} == {"one_month"}


def test_a_withdrawal_and_an_objection_to_marketing_act_at_once_through_the_ledger() -> None:
    """[6; Art. 7(3), 21(3)] no clock: the consent event sent with the request is the withdrawal, and a newsletter after
    it is marketing without consent; the request itself is recorded, never overdue, and writes no ledger entry (a
    subject's chain follows the consent topic alone, so the embedded and Kafka chains stay equal)."""
    for right in ("consent_withdrawal", "objection"):
        processor = processor_with()
        granted = consent(SUBJECT, Purpose.MARKETING, ConsentAction.GRANTED, paris("2024-01-02T10:00"))
        asked = step("requested", "2024-01-10T10:00", right=right, purpose="marketing")
        alone = feed(processor, granted, asked)
        assert len(alone.ledger) == 1, "the rights event writes no ledger entry"
        withdrawn = consent(
            SUBJECT, Purpose.MARKETING, ConsentAction.WITHDRAWN, paris("2024-01-10T10:00"), channel=ConsentChannel.CONTACT_REQUEST
        )
        changes = feed(processor, withdrawn, newsletter(SUBJECT, paris("2024-01-11T10:00")))
        changes.extend(processor.tick(paris("2024-06-01T00:00")))
        active = active_verdicts(changes.violations)
        assert [v["rule"] for v in active.values()] == ["marketing_without_consent"], right
        assert (request(alone)["clock"], request(alone)["state"], request(alone)["due_at"]) == ("at_once", "recorded", None)


def test_post_mortem_directives_are_recorded_without_the_clock() -> None:
    """[8.3] French law governs them: recorded, never overdue."""
    _, changes = run(step("requested", "2024-01-10T10:00", right="post_mortem_directives"), now="2025-01-10T00:00")
    assert overdue(changes) == {}
    assert (request(changes)["clock"], request(changes)["due_at"]) == ("none", None)


ITEMS = [
    step("requested", "2024-01-10T10:00", request="r-late"),
    step("fulfilled", "2024-02-20T10:00", request="r-late"),
    step("requested", "2024-01-15T10:00", request="r-fine"),
    step("extended", "2024-01-20T10:00", request="r-fine", extension_months=1, reason_code="complexity"),
    step("fulfilled", "2024-03-10T10:00", request="r-fine"),
    step("requested", "2024-02-01T10:00", request="r-open"),
    step("requested", "2024-01-12T10:00", request="r-refused"),
    step("rejected", "2024-01-30T10:00", request="r-refused", reason_code="manifestly_unfounded"),
    newsletter(SUBJECT, paris("2024-04-01T10:00"), processor_id=POSTWAVE.recipient_id),
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_arrival_order_and_a_crash_give_the_verdicts_of_one_pass(data: st.DataObject) -> None:
    """Event time decides: whatever the arrival order, ticks and a worker's crash, the verdicts in force are those of one
    pass with one tick at the latest event time (the embedded run): r-late and r-open overdue."""
    expected = {vid for vid, v in active_verdicts(run(*ITEMS)[1].violations).items() if v["rule"] == OVERDUE}
    assert expected == {f"{OVERDUE}:r-late", f"{OVERDUE}:r-open"}
    outputs = crash_and_replay([POSTWAVE], ITEMS, data.draw, ticks=True)
    found = {vid for vid, v in active_verdicts(outputs.violations).items() if v["rule"] == OVERDUE}
    assert found == expected


def _pickled_without(state: SubjectState, *names: str) -> bytes:
    """A pickle of ``state`` without the fields ``names``: what a consentflow before issue 24 wrote."""
    _, values = state.__getstate__()
    for name in names:
        values.pop(name)

    class Writer(pickle.Pickler):
        def reducer_override(self, obj: object) -> object:
            if isinstance(obj, SubjectState):
                return copyreg.__newobj__, (SubjectState,), (None, values)  # type: ignore[attr-defined]
            return NotImplemented

    out = io.BytesIO()
    Writer(out).dump(state)
    return out.getvalue()


def test_the_requests_of_a_state_saved_before_are_rebuilt_and_judged() -> None:
    """A saved state kept one time per status of each request: its timeline is rebuilt from them, so an old open
    request is judged against its time limit at the next tick [Art. 12(3)]."""
    processor = Processor()
    feed(processor, step("requested", "2024-01-10T10:00"))
    state = processor.store.get(SUBJECT)
    assert state is not None
    old = pickle.loads(_pickled_without(state, "request_events", "request_verdicts"))
    assert old.request_events == {
        "req-1": [(paris("2024-01-10T10:00"), "req-1:requested", "access", "requested", None, None, None)]
    }
    store = MemoryStore()
    store.put(old)
    assert "req-1" in overdue(Processor(store).tick(paris("2024-03-01T00:00")))
