"""A generated year across 1 January 2027, when version 2027-01-01 asks marketing consent again [13].

Subjects holding a marketing consent meet the change at their first activity from that day: some renew it (a grant
naming 2027-01-01), the others let it lapse; injected newsletters on a lapsed consent are ``consent_not_renewed`` in
the ground truth. A fresh ``Processor`` finds every injected violation and nothing else, in file order and in a
Kafka-like order.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from consentflow.contracts.eventfile import read_events
from consentflow.contracts.gate import SKEW_VARIABLE
from consentflow.core.processor import Processor
from consentflow.generator import GeneratorConfig, generate
from consentflow.policy.vocabulary import Rule
from tests.support.delivery_order import Events, kafka_order

CONFIG = GeneratorConfig(subjects=700, days=365, seed=2027, start=datetime(2026, 6, 1, tzinfo=UTC), violation_share=0.03)
#: 00:00 on 1 January 2027 in Paris.
EFFECTIVE = datetime(2026, 12, 31, 23, tzinfo=UTC)
Key = tuple[str, str]  # (rule, offending event id)


def _active(stream: Iterable[tuple[str, Mapping[str, Any]]]) -> set[Key]:
    """(rule, offending event id) of every violation whose final verdict (highest revision) is active, after a tick."""
    processor = Processor()
    final: dict[Key, Mapping[str, Any]] = {}
    latest: datetime | None = None
    batches = []
    for topic, record in stream:
        batches.append(processor.process(topic, record).violations)
        latest = record["occurred_at"] if latest is None or record["occurred_at"] > latest else latest
    assert latest is not None
    # One retention tick at the latest event time, as the embedded runner ticks: it judges rights requests [8.2].
    batches.append(processor.tick(latest).violations)
    for violations in batches:
        for violation in violations:
            key = (violation["rule"], violation["evidence_event_ids"][0])
            known = final.get(key)
            if known is None or violation["revision"] >= known["revision"]:
                final[key] = violation
    return {key for key, record in final.items() if record["active"]}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Events, set[Key]]:
    """The events in file order, and the injected (rule, event id) pairs."""
    out = tmp_path_factory.mktemp("policy-change") / "events.avro"
    truth_path = out.with_suffix(".truth.jsonl")
    generate(CONFIG, out, truth_path)
    with pytest.MonkeyPatch.context() as patch:
        # Most of the year lies ahead of today: the gate takes events dated up to their arrival plus this skew.
        patch.setenv(SKEW_VARIABLE, str(2 * 366 * 86_400))
        stream = [(topic.short_name, record) for topic, record in read_events(out)]
    truth = {(line["rule"], line["event_id"]) for line in map(json.loads, Path(truth_path).read_text().splitlines())}
    return stream, truth


def test_subjects_renew_or_let_lapse_and_events_name_the_version_in_force(dataset: tuple[Events, set[Key]]) -> None:
    """[13] renewals are grants from the day on naming 2027-01-01; every event names the version of its time."""
    stream, truth = dataset
    renewals = [r for t, r in stream if t == "consent" and r["notice_id"] == "notice-marketing-2027-01-01"]
    assert len(renewals) > 20 and all(r["occurred_at"] >= EFFECTIVE and r["action"] == "granted" for r in renewals)
    for _, record in stream:
        assert record["policy_version"] == ("2027-01-01" if record["occurred_at"] >= EFFECTIVE else "2020-11-14")
    by_rule = Counter(rule for rule, _ in truth)
    assert by_rule[Rule.CONSENT_NOT_RENEWED.value] > 5, by_rule
    lapsed_letters = {event_id for rule, event_id in truth if rule == Rule.CONSENT_NOT_RENEWED.value}
    times = {r["event_id"]: r["occurred_at"] for _, r in stream}
    assert all(times[event_id] >= EFFECTIVE for event_id in lapsed_letters)


def test_every_injected_violation_is_found_and_nothing_else(dataset: tuple[Events, set[Key]]) -> None:
    """Precision and recall are exactly 1.0 across the change, consent_not_renewed included [13]."""
    stream, truth = dataset
    found = _active(stream)
    assert not found - truth, f"false positives: {sorted(found - truth)[:10]}"
    assert not truth - found, f"missed: {sorted(truth - found)[:10]}"


def test_a_kafka_like_order_finds_the_same(dataset: tuple[Events, set[Key]]) -> None:
    """Only each (topic, subject) queue keeps its order: late renewals retract provisional verdicts, the answer holds."""
    stream, truth = dataset
    assert _active(kafka_order(stream, 1)) == truth
