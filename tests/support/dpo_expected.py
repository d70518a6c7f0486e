"""What the DPO's answers must be, computed in plain Python from the generated events themselves.

Nothing here reads ClickHouse or calls the query layer: the registry is resolved
by this module's own reading of the recipient records (version in force at the
event's time, a mechanism only while its period holds [7]), processings are read
off the message, cookie and disclosure events, consent off the consent events.
``load`` builds the dataset the DPO tests share: a generated stream delivered
twice (at-least-once) into one database, in a Kafka-like order.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from consentflow.contracts.eventfile import read_events
from consentflow.contracts.topics import topic_named
from consentflow.core.processor import Processor
from consentflow.generator import GeneratorConfig, generate
from consentflow.policy.geography import EEA_COUNTRIES
from consentflow.policy.versions import load_policy
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.sinks.tables import LINEAGE_BY_RECIPIENT, TABLES
from consentflow.streams.embedded import run_events
from tests.support.delivery_order import kafka_order

Record = dict[str, Any]
CONFIG = GeneratorConfig(subjects=300, days=240, seed=515, violation_share=0.03)
#: The retention clock of the run: late enough for the archive dates of [2.3.1] to fall due.
CLOCK_DAYS = 4 * 365
#: Mechanisms that frame a transfer out of the EU/EEA (GDPR Art. 45-49) [7].
FRAMING = {"adequacy", "scc", "bcr", "derogation"}
#: The GDPR article framing each transfer mechanism, written out here apart from consentflow.policy.dpv (the test oracle).
GDPR_TRANSFER = {"scc": "eu-gdpr:A46-2-c", "adequacy": "eu-gdpr:A45-3", "bcr": "eu-gdpr:A46-2-b", "derogation": "eu-gdpr:A49-1"}
#: Profile actions that count as use of the account [2.3.1].
USE = {"registered", "used", "updated"}
#: The controller's time zone, where legal periods count their days (the policy file's ``time_zone``).
PARIS = ZoneInfo("Europe/Paris")


@dataclass(frozen=True)
class Processing:
    """One event that sent a subject's data to a recipient, with the registry as it stood then."""

    event_id: str
    subject_id: str
    recipient_id: str
    at: datetime
    categories: frozenset[str]
    purpose: str
    kind: str
    country: str
    mechanism: str


@dataclass
class Dataset:
    """The generated events, the injected violations, and the database they were run into."""

    events: list[tuple[str, Record]]
    truth: list[Record]
    database: str
    clock: datetime
    processings: list[Processing] = field(default_factory=list)

    def subjects(self) -> list[str]:
        """Every subject id in the events."""
        return sorted({r["subject_id"] for t, r in self.events if t != "recipients"})

    def of_topic(self, topic: str) -> list[Record]:
        """The records of one input topic."""
        return [r for t, r in self.events if t == topic]


def load(directory: Path, dsn: str, database: str) -> Dataset:
    """Generate the stream, run it twice (a fresh processor each time, as after a crash) into ``database``."""
    out = directory / "events.avro"
    truth_path = directory / "truth.jsonl"
    generate(CONFIG, out, truth_path)
    stream = [(topic.short_name, record) for topic, record in read_events(out)]
    clock = max(r["occurred_at"] for _, r in stream) + timedelta(days=CLOCK_DAYS)
    sink = ClickHouseSink(dsn, database, max_rows=2000)
    for table in [t.name for t in TABLES] + [LINEAGE_BY_RECIPIENT]:
        # Redelivered rows and superseded verdicts stay in their parts: only FINAL can make the answers right.
        sink.client.command(f"SYSTEM STOP MERGES `{database}`.`{table}`")
    for seed in (1, 2):  # at-least-once: everything delivered again, in another partition interleaving
        run_events(((topic_named(t), r) for t, r in kafka_order(stream, seed)), Processor(), sink, as_of=clock)
    # Once more for one subject, its consent facts last: the processings they allow are judged violations
    # first, then cleared by a higher revision; the tables must answer with the cleared verdicts.
    late = max(stream, key=lambda item: item[0] == "cookie" and item[1]["cookie_category"] != "strictly_necessary")[1]
    mine = [item for item in stream if item[0] != "recipients" and item[1]["subject_id"] == late["subject_id"]]
    replay = [item for item in stream if item[0] == "recipients"] + sorted(mine, key=lambda item: item[0] == "consent")
    run_events(((topic_named(t), r) for t, r in replay), Processor(), sink, as_of=clock)
    truth = [json.loads(line) for line in truth_path.read_text().splitlines()]
    data = Dataset(stream, truth, database, clock)
    data.processings = processings(stream)
    return data


# -- legal periods, counted here apart from consentflow.policy.legal_periods -----------------------


def paris_midnight(day: date) -> datetime:
    """00:00 in Paris on ``day``, as the UTC instant."""
    return datetime.combine(day, time(0), PARIS).astimezone(UTC)


def after(start: datetime, years: int) -> datetime:
    """When an action waiting ``years`` years from ``start`` falls due: 00:00 Paris on the day after the day, ``years``
    later, bearing the same date as ``start``'s day in Paris (28 February for 29 February) [Regulation 1182/71 Art. 3]."""
    d = start.astimezone(PARIS).date()
    last = date(d.year + years, d.month, d.day) if (d.month, d.day) != (2, 29) else date(d.year + years, 2, 28)
    return paris_midnight(last + timedelta(days=1))


def after_financial_year(transaction: datetime, years: int = 10) -> datetime:
    """[2.3.2] when ``years`` have run from the end (31 December) of the financial year of ``transaction``: 00:00
    Paris on 1 January of the year after the last (Code de commerce art. L123-22: ten years)."""
    return paris_midnight(date(transaction.astimezone(PARIS).year + years + 1, 1, 1))


# -- the registry and the processings ------------------------------------------------------


def processings(stream: Iterable[tuple[str, Record]]) -> list[Processing]:
    """Every event that names a recipient, resolved against the registry at its own time."""
    events = list(stream)
    versions: dict[str, list[Record]] = defaultdict(list)
    for topic, record in events:
        if topic == "recipients":
            versions[record["recipient_id"]].append(record)
    for listed in versions.values():
        listed.sort(key=lambda r: (r["occurred_at"], r["event_id"]))
    cookie_purpose = {c.value: p.value for c, p in load_policy().cookie_purpose.items()}
    out = []
    for topic, record in events:
        if topic == "message" and record["processor_id"] is not None:
            recipient, purpose = record["processor_id"], record["purpose"]
        elif topic == "cookie":
            recipient, purpose = record["vendor_id"], cookie_purpose[record["cookie_category"]]
        elif topic == "disclosure":
            recipient, purpose = record["recipient_id"], record["purpose"]
        else:
            continue
        kind, country, mechanism = _resolve(versions.get(recipient, []), record["occurred_at"])
        out.append(
            Processing(
                record["event_id"],
                record["subject_id"],
                recipient,
                record["occurred_at"],
                frozenset(record["categories"]),
                purpose,
                kind,
                country,
                mechanism,
            )
        )
    return out


def _resolve(versions: list[Record], t: datetime) -> tuple[str, str, str]:
    """(kind, country, mechanism) of the registry version in force at ``t``; unknown when none is."""
    in_force = [v for v in versions if v["occurred_at"] <= t]
    if not in_force or not in_force[-1]["active"]:
        return "unknown", "", "unknown"
    version = in_force[-1]
    if version["country"] in EEA_COUNTRIES:
        return version["kind"], version["country"], "within_eea"
    for period in version["transfer_mechanisms"]:
        holds = period["valid_from"] <= t and (period["valid_until"] is None or t < period["valid_until"])
        if period["mechanism"] in FRAMING and holds:
            return version["kind"], version["country"], period["mechanism"]
    return version["kind"], version["country"], "none"


# -- the answers ---------------------------------------------------------------------------


def who_has(data: Dataset, subject_id: str, as_of: datetime | None = None) -> dict[str, dict[str, Any]]:
    """Per recipient of the subject: kind and country of its latest processing, categories, purposes, mechanisms, times."""
    grouped: dict[str, list[Processing]] = defaultdict(list)
    for p in data.processings:
        if p.subject_id == subject_id and (as_of is None or p.at <= as_of):
            grouped[p.recipient_id].append(p)
    out = {}
    for recipient, ps in grouped.items():
        latest = max(ps, key=lambda p: (p.at, p.event_id))
        out[recipient] = {
            "recipient_kind": latest.kind,
            "country": latest.country,
            "categories": sorted(set().union(*(p.categories for p in ps))),
            "purposes": sorted({p.purpose for p in ps}),
            "mechanisms": sorted({p.mechanism for p in ps}),
            "first": min(p.at for p in ps),
            "last": latest.at,
        }
    return out


def countries_stored(data: Dataset, at: datetime) -> dict[str, list[str]]:
    """Per storage country [7], the technical subcontractors [4.3] storing there at ``at`` (none: the controller alone).

    The newest registry record of each recipient at or before ``at`` decides (ties by event id), active or not.
    """
    newest: dict[str, Record] = {}
    for record in data.of_topic("recipients"):
        current = newest.get(record["recipient_id"])
        if record["occurred_at"] <= at and (
            current is None or (record["occurred_at"], record["event_id"]) > (current["occurred_at"], current["event_id"])
        ):
            newest[record["recipient_id"]] = record
    stored: dict[str, list[str]] = {country: [] for country in load_policy().storage_countries}
    for recipient_id, record in sorted(newest.items()):
        if record["active"] and record["kind"] == "technical_subcontractor":
            stored.setdefault(record["country"], []).append(recipient_id)
    return stored


def countries_sent(data: Dataset, subject_id: str) -> dict[str, dict[str, Any]]:
    """Per country the subject's data reached: recipients, mechanisms, processings."""
    grouped: dict[str, list[Processing]] = defaultdict(list)
    for p in data.processings:
        if p.subject_id == subject_id:
            grouped[p.country].append(p)
    return {
        country: {
            "recipients": sorted({p.recipient_id for p in ps}),
            "mechanisms": sorted({p.mechanism for p in ps}),
            "edges": len(ps),
        }
        for country, ps in grouped.items()
    }


def consent(data: Dataset, subject_id: str, as_of: datetime | None = None) -> dict[str, tuple[str, list[Record]]]:
    """Per purpose asked about: the state at ``as_of`` and its facts in event time order; consent-gated purposes never asked too."""
    facts: dict[str, list[Record]] = defaultdict(list)
    for r in data.of_topic("consent"):
        if r["subject_id"] == subject_id and (as_of is None or r["occurred_at"] <= as_of):
            facts[r["purpose"]].append(r)
    out = {p.value: ("never_asked", []) for p in load_policy().consent_required}
    for purpose, rows in facts.items():
        # At the same instant a withdrawal or refusal prevails over a grant [6; GDPR Art. 7(1)], then the event id.
        rows.sort(key=lambda r: (r["occurred_at"], r["action"] != "granted", r["event_id"]))
        out[purpose] = (rows[-1]["action"], rows)
    return out


def breach(data: Dataset, recipient_id: str, start: datetime, end: datetime) -> dict[str, Any]:
    """Subjects, categories (subjects per category) and processings the recipient received in ``[start, end)``."""
    held: dict[str, set[str]] = defaultdict(set)
    edges = 0
    for p in data.processings:
        if p.recipient_id == recipient_id and start <= p.at < end:
            held[p.subject_id] |= p.categories
            edges += 1
    per_category: dict[str, int] = defaultdict(int)
    for categories in held.values():
        for category in categories:
            per_category[category] += 1
    return {"subject_ids": sorted(held), "categories": dict(per_category), "edges": edges}


def transfers(data: Dataset, outside_eea: bool) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Per (country, recipient, mechanism): processings, subjects, and whether the transfer is framed [7]."""
    grouped: dict[tuple[str, str, str], list[Processing]] = defaultdict(list)
    for p in data.processings:
        if not outside_eea or p.country not in EEA_COUNTRIES:
            grouped[(p.country, p.recipient_id, p.mechanism)].append(p)
    return {
        key: {
            "edges": len(ps),
            "subjects": len({p.subject_id for p in ps}),
            "framed": key[0] in EEA_COUNTRIES or key[2] in FRAMING,
        }
        for key, ps in grouped.items()
    }


def injected(data: Dataset, since: datetime | None = None, rule: str | None = None) -> set[tuple[str, str, str]]:
    """(rule, offending event id, subject) of the injected violations, the generator's ground truth."""
    return {
        (t["rule"], t["event_id"], t["subject_id"])
        for t in data.truth
        if (since is None or datetime.fromisoformat(t["occurred_at"]) >= since) and (rule is None or t["rule"] == rule)
    }


def open_account_archives(data: Dataset) -> dict[str, tuple[datetime, str]]:
    """[2.3.1] for accounts never closed, suspended or blocked: archive three years after the last use, in calendar
    time (and its event)."""
    profiles: dict[str, list[Record]] = defaultdict(list)
    for r in data.of_topic("profile"):
        profiles[r["subject_id"]].append(r)
    out = {}
    for subject, rows in profiles.items():
        if any(r["action"] not in USE for r in rows):
            continue
        last = max((r for r in rows if r["action"] in USE), key=lambda r: r["occurred_at"])
        out[subject] = (after(last["occurred_at"], 3), last["event_id"])
    return out


def financial_deletions(data: Dataset) -> dict[str, tuple[datetime, str]]:
    """[2.3.2] per subject with financial data processed (messages, cookies, disclosures naming banking or financial
    transactions): its deletion ten years after the end of the financial year of the last such processing, and that
    event."""
    financial = {c.value for c in load_policy().financial_categories}
    last: dict[str, Record] = {}
    for topic, r in data.events:
        if topic in ("message", "cookie", "disclosure") and financial & set(r["categories"]):
            mine = last.get(r["subject_id"])
            if mine is None or (r["occurred_at"], r["event_id"]) > (mine["occurred_at"], mine["event_id"]):
                last[r["subject_id"]] = r
    return {subject: (after_financial_year(r["occurred_at"]), r["event_id"]) for subject, r in last.items()}


def latest_event_times(data: Dataset) -> dict[str, datetime]:
    """Per subject, the latest event time among its events: what its retention plan rests on."""
    out: dict[str, datetime] = {}
    for topic, r in data.events:
        if topic != "recipients" and (r["subject_id"] not in out or r["occurred_at"] > out[r["subject_id"]]):
            out[r["subject_id"]] = r["occurred_at"]
    return out


def erasure_notices(data: Dataset, subject_id: str) -> dict[str, dict[str, Any]]:
    """[12; GDPR Art. 19] after the subject's first fulfilled erasure, per recipient that received data up to it.

    Other users are no party to notify [4.1]; financial data is retained for the
    accounting period [2.3.2], the rest is to be erased.
    """
    fulfilled = [
        r
        for r in data.of_topic("rights")
        if r["subject_id"] == subject_id and r["right"] == "erasure" and r["status"] == "fulfilled"
    ]
    if not fulfilled:
        return {}
    first = min(fulfilled, key=lambda r: (r["occurred_at"], r["event_id"]))
    financial = {c.value for c in load_policy().financial_categories}
    received: dict[str, set[str]] = defaultdict(set)
    for p in data.processings:
        if p.subject_id == subject_id and p.at <= first["occurred_at"] and p.kind != "other_users":
            received[p.recipient_id] |= p.categories
    return {
        f"{first['request_id']}:{recipient}": {
            "recipient_id": recipient,
            "categories": sorted(categories - financial),
            "retained_categories": sorted(categories & financial),
            "fulfilled_at": first["occurred_at"],
        }
        for recipient, categories in received.items()
        if categories
    }
