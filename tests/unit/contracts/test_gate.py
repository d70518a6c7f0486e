"""One gate for every way in [issue 18, findings 3, 4, 10]: files, JSON Lines, the producer.

A file mixing good events with each bad kind (an enum symbol the contract does not know, written under an
extended schema; ids that are no pseudonymous ids; times far in the future or the past) gives exactly one dead
letter per bad event, naming its position and field, and the good events' tables equal a run of them alone.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fastavro
import pytest

from consentflow.contracts import events
from consentflow.contracts.edge_checks import UNKNOWN_SYMBOL
from consentflow.contracts.errors import ContractError
from consentflow.contracts.eventfile import read_checked, read_events
from consentflow.contracts.events import Event
from consentflow.contracts.gate import EventTimeBounds, Gate
from consentflow.contracts.topics import CONSENT, DEAD_LETTER, PROFILE
from consentflow.generator import GeneratorConfig, generate
from consentflow.kafka.producer import DeliveryError, EventProducer
from tests.support.paths import REPO

EXAMPLE = REPO / "deploy" / "events.example.jsonl"
NOW = datetime(2026, 12, 6, tzinfo=UTC)


def _consentflow(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "consentflow.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False, stdin=subprocess.DEVNULL)


def _run_digests(source: Path, db: Path, *, expect: int = 0) -> dict[str, Any]:
    ran = _consentflow("run", str(source), "--dsn", f"chdb://{db}", "--no-overview")
    assert ran.returncode == expect, ran.stderr
    digest = _consentflow("digest", "--dsn", f"chdb://{db}")
    assert digest.returncode == 0, digest.stderr
    digests: dict[str, Any] = json.loads(digest.stdout)
    return digests


@pytest.fixture(scope="module")
def good_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gate") / "good.avro"
    generate(GeneratorConfig(subjects=80, days=60, seed=18), out, None)
    return out


def _extended_schema(good_file: Path) -> Any:
    """The file's own union schema, with a Purpose symbol no contract knows: what an emitter ahead of us writes."""
    with open(good_file, "rb") as handle:
        schema = json.loads(fastavro.reader(handle).metadata["avro.schema"])

    def extend(node: Any) -> bool:
        if isinstance(node, dict):
            if node.get("type") == "enum" and node["name"].rsplit(".", 1)[-1] == "Purpose":
                node["symbols"].append("world_domination")
                return True
            return any(extend(value) for value in node.values())
        return isinstance(node, list) and any(extend(item) for item in node)

    assert extend(schema), "no Purpose enum in the file's schema"
    return schema


def _bad_items(good: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, str, dict[str, Any]]]:
    """(the field the dead letter must name, record name, record) for each bad kind, from good records."""
    consent = next(r for name, r in good if name == "consentflow.ConsentEvent")
    profile = next(r for name, r in good if name == "consentflow.ProfileEvent")

    def fresh(record: dict[str, Any], **changes: Any) -> dict[str, Any]:
        return dict(copy.deepcopy(record), event_id=str(uuid.uuid4()), **changes)

    return [
        ("purpose", "consentflow.ConsentEvent", fresh(consent, purpose="world_domination")),
        ("subject_id", "consentflow.ConsentEvent", fresh(consent, subject_id="x'; DROP TABLE ledger; --")),
        ("subject_id", "consentflow.ProfileEvent", fresh(profile, subject_id="")),
        ("occurred_at", "consentflow.ConsentEvent", fresh(consent, occurred_at=datetime(2199, 12, 31, tzinfo=UTC))),
        ("occurred_at", "consentflow.ProfileEvent", fresh(profile, occurred_at=datetime(1000, 1, 1, tzinfo=UTC))),
    ]


@pytest.fixture(scope="module")
def mixed_file(good_file: Path) -> tuple[Path, list[tuple[int, str]]]:
    """The good events with the bad ones among them; returns the file and (item index, field) of each bad one."""
    good = [(f"consentflow.{topic.record}", record) for topic, record in read_events(good_file)]
    bad = _bad_items(good)
    items: list[Any] = list(good)
    expected = []
    for n, (field, name, record) in enumerate(bad):
        index = 3 + n * (len(good) // len(bad))
        items.insert(index, (name, record))
        expected.append((index, field))
    out = good_file.parent / "mixed.avro"
    with open(out, "wb") as handle:
        fastavro.writer(handle, fastavro.parse_schema(_extended_schema(good_file)), items, sync_interval=4_000)
    return out, expected


def test_each_bad_event_of_a_file_is_one_dead_letter_naming_its_item_and_field(
    mixed_file: tuple[Path, list[tuple[int, str]]], good_file: Path
) -> None:
    path, expected = mixed_file
    read = list(read_checked(path, Gate(), NOW))
    letters = [record for topic, record in read if topic is DEAD_LETTER]
    kept = [(topic, record) for topic, record in read if topic is not DEAD_LETTER]
    assert [(letter["offset"], re.search(r"field (\w+)", letter["reason"]).group(1)) for letter in letters] == expected  # type: ignore[union-attr]
    for letter in letters:
        assert re.match(r"item \d+ \(block at byte \d+\): ", letter["reason"]), letter["reason"]
    assert "'unknown' stands for a symbol the contract does not know" in letters[0]["reason"]
    assert kept == list(read_events(good_file))  # the good events, resolved into the contracts, as they were
    assert all(record.get("purpose") != UNKNOWN_SYMBOL for _, record in kept)


def test_a_run_of_the_mixed_file_equals_a_run_of_its_good_events_alone(
    mixed_file: tuple[Path, list[tuple[int, str]]], good_file: Path, tmp_path: Path
) -> None:
    path, expected = mixed_file
    mixed = _run_digests(path, tmp_path / "mixed")
    alone = _run_digests(good_file, tmp_path / "alone")
    assert mixed.pop("dead_letters")[0] == len(expected)
    assert alone.pop("dead_letters")[0] == 0
    assert mixed == alone
    assert mixed["ledger"][0] > 0


def test_event_time_bounds_come_from_the_environment_with_defaults() -> None:
    assert EventTimeBounds.from_env({}) == EventTimeBounds(datetime(2000, 1, 1, tzinfo=UTC), timedelta(hours=1))
    configured = EventTimeBounds.from_env({"CONSENTFLOW_EARLIEST_EVENT_TIME": "2015-06-01", "CONSENTFLOW_MAX_EVENT_SKEW": "60"})
    assert configured == EventTimeBounds(datetime(2015, 6, 1, tzinfo=UTC), timedelta(seconds=60))
    with pytest.raises(ValueError, match="CONSENTFLOW_MAX_EVENT_SKEW"):
        EventTimeBounds.from_env({"CONSENTFLOW_MAX_EVENT_SKEW": "an hour"})
    gate = Gate(configured)
    event = events.consent_granted(
        "s-1", "marketing", channel="registration_form", source_service="web", occurred_at=NOW + timedelta(seconds=61)
    )
    with pytest.raises(ContractError, match="later than the event's arrival") as info:
        gate.check(CONSENT, event.record, NOW)
    assert info.value.field == "occurred_at"
    gate.check(CONSENT, event.record, NOW + timedelta(seconds=1))  # within the skew of its arrival


def test_the_gate_refuses_what_the_constructors_refuse_field_by_field() -> None:
    gate = Gate()
    good = events.profile_event(
        "s-1",
        "registered",
        account_kind="applicant",
        categories=["identity"],
        source_service="web",
        occurred_at=NOW - timedelta(days=1),
    )
    gate.check(PROFILE, good.record, NOW)
    for field, value in (
        ("subject_id", "jane@example.com"),
        ("subject_id", "s-1\n"),
        ("event_id", "not-a-uuid"),
        ("source_service", "Web"),
        ("policy_version", "2020-11"),
        ("action", UNKNOWN_SYMBOL),
        ("categories", ["identity", "hobbies-and-secrets"]),
    ):
        with pytest.raises(ContractError) as info:
            gate.check(PROFILE, dict(good.record, **{field: value}), NOW)
        assert info.value.field == field
    missing = dict(good.record)
    del missing["account_kind"]
    with pytest.raises(ContractError, match="missing"):
        gate.check(PROFILE, missing, NOW)


def test_the_producer_refuses_a_bad_event_before_anything_is_sent() -> None:
    """``produce`` and every upstream service send through ``EventProducer.send``: it passes the gate first."""
    producer = EventProducer("127.0.0.1:1")  # nothing listens: what is sent stays in librdkafka's queue
    good = events.consent_granted(
        "s-1", "marketing", channel="registration_form", source_service="web", occurred_at=datetime.now(UTC) - timedelta(days=1)
    )
    bad_id = Event(CONSENT, dict(good.record, subject_id="x'; DROP TABLE ledger; --"))
    unknown = Event(CONSENT, dict(good.record, purpose=UNKNOWN_SYMBOL))
    future = Event(CONSENT, dict(good.record, occurred_at=datetime(2199, 12, 31, tzinfo=UTC)))
    for event, field in ((bad_id, "subject_id"), (unknown, "purpose"), (future, "occurred_at")):
        with pytest.raises(ContractError) as info:
            producer.send(event)
        assert info.value.field == field
    producer.flush(0)  # librdkafka's queue is empty: nothing was handed to it
    producer.send(good)
    with pytest.raises(DeliveryError, match="1 event"):
        producer.flush(0)


def test_json_lines_run_as_their_converted_container_file(tmp_path: Path) -> None:
    converted = tmp_path / "example.avro"
    done = _consentflow("convert", str(EXAMPLE), str(converted))
    assert done.returncode == 0, done.stderr
    assert [t.short_name for t, _ in read_events(converted)] == [t.short_name for t, _ in read_events(EXAMPLE)]
    by_hand = _run_digests(EXAMPLE, tmp_path / "jsonl")
    from_avro = _run_digests(converted, tmp_path / "avro")
    assert by_hand == from_avro
    assert by_hand["violations"][0] > 0  # the newsletter after the withdrawal [6]


def test_a_bad_line_is_a_dead_letter_naming_its_line_and_field(tmp_path: Path) -> None:
    lines = EXAMPLE.read_text().splitlines()
    first_event = next(n for n, line in enumerate(lines) if line.startswith("{"))
    bad = [
        json.dumps(
            {
                "topic": "consent",
                "subject_id": "",
                "purpose": "marketing",
                "action": "granted",
                "channel": "registration_form",
                "source_service": "web",
            }
        ),
        json.dumps(
            {
                "topic": "consent",
                "subject_id": "s-9",
                "purpose": "world_domination",
                "action": "granted",
                "channel": "registration_form",
                "source_service": "web",
            }
        ),
        json.dumps(
            {
                "topic": "consent",
                "subject_id": "s-9",
                "purpose": "marketing",
                "action": "granted",
                "channel": "registration_form",
                "source_service": "web",
                "occurred_at": "2199-12-31T00:00:00Z",
            }
        ),
        "{not json",
        json.dumps({"topic": "ledger", "subject_id": "s-9"}),
    ]
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text("\n".join([*lines[: first_event + 1], *bad, *lines[first_event + 1 :]]) + "\n")
    letters = [r for t, r in read_checked(mixed, Gate(), datetime.now(UTC)) if t is DEAD_LETTER]
    numbers = [first_event + 2 + n for n in range(len(bad))]
    assert [letter["offset"] for letter in letters] == numbers
    for letter, field in zip(letters, ["subject_id", "purpose", "occurred_at", None, "topic"], strict=True):
        assert letter["reason"].startswith(f"line {letter['offset']}: ")
        if field:
            assert f"field {field}" in letter["reason"]
    refused = _consentflow("convert", str(mixed), str(tmp_path / "never.avro"))
    assert refused.returncode == 1 and not (tmp_path / "never.avro").exists()
    assert all(f"line {n}:" in refused.stderr for n in numbers)
    with_letters = _run_digests(mixed, tmp_path / "mixed-db")
    alone = _run_digests(EXAMPLE, tmp_path / "alone-db")
    assert with_letters.pop("dead_letters")[0] == len(bad)
    alone.pop("dead_letters")
    assert with_letters == alone
