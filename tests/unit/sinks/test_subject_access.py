"""The subject access export (``dsar``) on the real engine (chDB), against answers computed from the generated events.

The dataset is the DPO tests' (``tests/support/dpo_expected.py``): a generated stream
delivered twice in two Kafka-like orders, so every part of the export must
count each fact once and let event time decide. What the export must hold is
computed here from the events themselves; every export is validated against
the shipped JSON Schema, and the schema must refuse a broken one. Retention
dates are computed here from the profile events and the policy's periods [2.3],
never by asking the pipeline's schedule.
"""

from __future__ import annotations

import copy
import html
import json
import random
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

from consentflow.cli import main
from consentflow.contracts.events import consent_granted, data_disclosed, recipient_registered
from consentflow.core.processor import Processor
from consentflow.http.access_page import render_access_page
from consentflow.policy import labels
from consentflow.policy.geography import in_eea
from consentflow.policy.vocabulary import (
    ConsentAction,
    ConsentChannel,
    DataCategory,
    Purpose,
    RecipientKind,
    RetentionActionKind,
    Rule,
    TransferMechanism,
)
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.sinks.reading import UnknownId, open_tables
from consentflow.sinks.subject_access import export_schema, subject_access_export
from consentflow.streams.embedded import run_events
from tests.support import dpo_expected as expected
from tests.support.dpo_expected import GDPR_TRANSFER, Dataset, after, after_financial_year

DATABASE = "subject_access"
#: W3C DPV consent statuses of the states the ledger records [6].
DPV_STATE = {
    "granted": "dpv:ConsentGiven",
    "withdrawn": "dpv:ConsentWithdrawn",
    "refused": "dpv:ConsentRefused",
    "never_asked": "dpv:ConsentUnknown",
}
#: GDPR Chapter V provisions of the mechanisms that frame a transfer [7].
#: The periods of [2.3] in the policy's words, in years, counted in calendar time (``dpo_expected.after``).
AFTER_LAST_USE, AFTER_CLOSURE, AFTER_NEGATIVE = 3, 1, 2  # [2.3.1]
AFTER_SUSPENSION = 3  # [2.3.3] "between one and three years": three, as the pipeline runs unconfigured
FINANCIAL = {"banking", "financial_transactions"}  # [2.3.2] "financial data (for example, payments, reimbursements)"
#: Profile actions that count as a use of the Sites [2.3.1], that suspend [2.3.3], and negative decisions [2.3.1].
USE, SUSPENSION, NEGATIVE = {"registered", "used", "updated"}, {"suspended", "blocked"}, {"negative_decision", "notification"}
#: Input topics whose events are processings of the subject's data.
PROCESSING_TOPICS = ("message", "cookie", "disclosure")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, chdb_dsn: str) -> Dataset:
    return expected.load(tmp_path_factory.mktemp("dsar"), chdb_dsn, DATABASE)


@pytest.fixture(scope="module")
def sink(data: Dataset, chdb_dsn: str) -> ClickHouseSink:
    return open_tables(chdb_dsn, data.database)


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = export_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    assert "date-time" in checker.checkers, "rfc3339-validator must be installed for date-time to be checked"
    return jsonschema.Draft202012Validator(schema, format_checker=checker)


@pytest.fixture(scope="module")
def own(data: Dataset) -> dict[str, Dataset]:
    """Per subject, the dataset cut down to its own events (and the registry): the expected answers, computed fast."""
    events: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    registry = [(t, r) for t, r in data.events if t == "recipients"]
    for t, r in data.events:
        if t != "recipients":
            events[r["subject_id"]].append((t, r))
    processings = defaultdict(list)
    for p in data.processings:
        processings[p.subject_id].append(p)
    return {
        subject: replace(
            data,
            events=registry + events[subject],
            truth=[v for v in data.truth if v["subject_id"] == subject],
            processings=processings[subject],
        )
        for subject in data.subjects()
    }


def _sampled(data: Dataset, n: int, seed: int) -> list[str]:
    return sorted(random.Random(seed).sample(data.subjects(), n))


def _t(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _mine(data: Dataset, subject: str, *topics: str) -> list[dict[str, Any]]:
    """The subject's events of ``topics``, in event-time order."""
    rows = [r for t, r in data.events if t in topics and r["subject_id"] == subject]
    return sorted(rows, key=lambda r: (r["occurred_at"], r["event_id"]))


def _categories_held(data: Dataset, subject: str) -> set[str]:
    """[GDPR Art. 15(1)(b)] what the subject provided in the profile [2.1] and what any processing of its data named
    (messages, cookies, disclosures, with or without a recipient) [2.2, 4, 5]."""
    provided = {c for r in _mine(data, subject, "profile") for c in r["categories"]}
    return provided | {c for r in _mine(data, subject, *PROCESSING_TOPICS) for c in r["categories"]}


def _archive(data: Dataset, subject: str) -> tuple[datetime, str, str] | None:
    """[2.3.1, 2.3.3] when the subject's data is archived, the section that says so and the event it runs from, read
    off its profile events; None for an account whose suspension was lifted (the test leaves that case out)."""
    rows = _mine(data, subject, "profile")
    suspensions = [r for r in rows if r["action"] in SUSPENSION]
    if suspensions:
        last = max(suspensions, key=lambda r: r["occurred_at"])
        if any(r["action"] == "reinstated" and r["occurred_at"] > last["occurred_at"] for r in rows):
            return None  # lifted [2.3.3]: the account is open again
        return after(last["occurred_at"], AFTER_SUSPENSION), "2.3.3", last["event_id"]
    closures = [r for r in rows if r["action"] == "closed"]
    if closures:
        # "one year after the closure ... or two years following the most recent negative decision or notification
        # received, whichever is longest"
        closed, negatives = closures[0], [r for r in rows if r["action"] in NEGATIVE]
        if negatives and after(negatives[-1]["occurred_at"], AFTER_NEGATIVE) > after(closed["occurred_at"], AFTER_CLOSURE):
            return after(negatives[-1]["occurred_at"], AFTER_NEGATIVE), "2.3.1", negatives[-1]["event_id"]
        return after(closed["occurred_at"], AFTER_CLOSURE), "2.3.1", closed["event_id"]
    last = [r for r in rows if r["action"] in USE][-1]
    return after(last["occurred_at"], AFTER_LAST_USE), "2.3.1", last["event_id"]


def _check_retention_plan(data: Dataset, subject: str, export: dict[str, Any]) -> str | None:
    """The plan [2.3; GDPR Art. 15(1)(d)]: archive date, financial data's end [2.3.2], every category held planned for.

    Returns the case checked ("open", "closed", "suspended"), or None when the archive date was left out.
    """
    plan = export["retention_plan"]
    actions = plan["actions"]
    everything = _mine(data, subject, "profile", "consent", "rights", *PROCESSING_TOPICS)
    assert _t(plan["latest_event_at"]) == max(r["occurred_at"] for r in everything), subject
    # Nothing is kept forever: each category held is archived, anonymised, or kept and then deleted.
    assert {c for a in actions for c in a["categories"]} == set(export["categories_held"]), subject
    due = [datetime.fromisoformat(a["due_at"]) for a in actions]
    assert due == sorted(due), subject
    payments = [r for r in _mine(data, subject, *PROCESSING_TOPICS) if FINANCIAL & set(r["categories"])]
    deletions = [a for a in actions if a["action"] == "delete"]
    if payments:  # [2.3.2] "the duration required by applicable legislation on taxation and accounting", from the last
        last = payments[-1]
        assert [(_t(a["due_at"]), a["policy_section"], a["basis_event_id"]) for a in deletions] == [
            (after_financial_year(last["occurred_at"]), "2.3.2", last["event_id"])
        ], subject
    else:
        assert not deletions, subject
    for record in export["consent_records"]:  # the consent records are archived with the rest
        assert record["retention"]["archive_due_at"] == plan["archive_at"], subject
    expected = _archive(data, subject)
    if expected is None:
        return None
    at, section, basis = expected
    assert (_t(plan["archive_at"]), plan["policy_section"]) == (at, section), subject
    at_archive = [a for a in actions if _t(a["due_at"]) == at and a["action"] != "delete"]
    assert at_archive and all(a["basis_event_id"] == basis for a in at_archive), subject
    return "suspended" if section == "2.3.3" else "closed" if plan["lifecycle"]["closed_at"] else "open"


# -- contents ----------------------------------------------------------------------------


def _check_recipients(data: Dataset, subject: str, export: dict[str, Any], as_of: datetime | None) -> None:
    """Recipients: every one that received the subject's data, with what, why, where, under what [4, 7]."""
    want = expected.who_has(data, subject, as_of)
    got = {r["recipient_id"]: r for r in export["recipients"]}
    assert set(got) == set(want), subject
    for recipient, w in want.items():
        r = got[recipient]
        assert (r["kind"], r["country"] or "") == (w["recipient_kind"], w["country"])
        assert r["in_eea"] == (in_eea(w["country"]) if w["country"] else None)
        assert r["categories"] == w["categories"]
        assert [p["purpose"] for p in r["purposes"]] == w["purposes"]
        assert [m["mechanism"] for m in r["transfer_mechanisms"]] == w["mechanisms"]
        assert all(m["gdpr_basis"] == GDPR_TRANSFER.get(m["mechanism"]) for m in r["transfer_mechanisms"])
        assert (_t(r["first_sent"]), _t(r["last_sent"])) == (w["first"], w["last"])


def _check_consent(data: Dataset, subject: str, export: dict[str, Any], as_of: datetime | None) -> None:
    """Consent records: state per purpose and every fact in event time, with the event's own evidence [6]."""
    want = expected.consent(data, subject, as_of)
    records = {r["purpose"]: r for r in export["consent_records"]}
    assert set(records) == set(want), subject
    recipients_for: dict[str, set[str]] = defaultdict(set)
    for p in data.processings:
        if p.subject_id == subject and (as_of is None or p.at <= as_of):
            recipients_for[p.purpose].add(p.recipient_id)
    for purpose, (state, facts) in want.items():
        record = records[purpose]
        assert record["record_id"] == f"{subject}:{purpose}" and record["subject_id"] == subject
        assert record["state"] == DPV_STATE[state]
        assert record["legal_basis"] == "eu-gdpr:A6-1-a"  # every purpose the ledger records needs consent
        assert [e["event_id"] for e in record["events"]] == [f["event_id"] for f in facts]
        for event, fact in zip(record["events"], facts, strict=True):
            assert _t(event["occurred_at"]) == fact["occurred_at"]
            assert (event["action"], event["channel"], event["notice_id"]) == (fact["action"], fact["channel"], fact["notice_id"])
            assert (event["policy_version"], event["source_service"]) == (fact["policy_version"], fact["source_service"])
            assert event["state"] == DPV_STATE[fact["action"]]
        last = facts[-1] if facts else None
        assert _t(record["state_since"]) == (last["occurred_at"] if last else None)
        assert record["notice_id"] == (last["notice_id"] if last else None)
        assert record["policy_version"] == (last["policy_version"] if last else None)
        answered = [f for f in facts if f["action"] in ("granted", "refused")]
        withdrawn = [f for f in facts if f["action"] == "withdrawn"]
        assert record["collection_method"] == (answered[-1]["channel"] if answered else None)
        assert record["withdrawal_method"] == (withdrawn[-1]["channel"] if withdrawn else None)
        assert set(record["recipients"]) == recipients_for.get(purpose, set())


def _check_countries(data: Dataset, subject: str, export: dict[str, Any], as_of: datetime | None) -> None:
    """Where the data is stored (the EU [7]) and every country it was sent to."""
    before = replace(data, processings=[p for p in data.processings if as_of is None or p.at <= as_of])
    want = expected.countries_sent(before, subject)
    got = {
        c["country"] or "": {
            "recipients": c["recipients"],
            "mechanisms": [m["mechanism"] for m in c["transfer_mechanisms"]],
            "edges": c["transfers"],
        }
        for c in export["countries"]["sent"]
    }
    assert got == want, subject
    assert export["countries"]["stored"] and all(in_eea(c) for c in export["countries"]["stored"])


def _check_violations(data: Dataset, subject: str, export: dict[str, Any]) -> None:
    """Active violations concerning the subject: the injected ones, each citing its section."""
    got = {(v["rule"], v["evidence_event_ids"][0]) for v in export["violations"]}
    assert got == {(rule, event) for rule, event, s in expected.injected(data) if s == subject}, subject
    assert all(v["policy_section"] for v in export["violations"])


def _check_erasure_notices(data: Dataset, subject: str, export: dict[str, Any]) -> None:
    got = {
        n["notice_id"]: {
            "recipient_id": n["recipient_id"],
            "categories": n["categories"],
            "retained_categories": n["retained_categories"],
            "fulfilled_at": _t(n["fulfilled_at"]),
        }
        for n in export["erasure_notices"]
    }
    assert got == expected.erasure_notices(data, subject), subject


def test_the_export_of_a_subject_says_what_the_events_say(
    data: Dataset, own: dict[str, Dataset], sink: ClickHouseSink, validator: jsonschema.protocols.Validator
) -> None:
    archives = expected.open_account_archives(data)
    seen: dict[str, int] = defaultdict(int)
    for subject in _sampled(data, 80, seed=5):
        mine = own[subject]
        export = subject_access_export(sink, subject)
        validator.validate(export)
        assert (export["schema"], export["subject_id"], export["as_of"]) == ("SubjectAccessExport/v3", subject, None)
        _check_recipients(mine, subject, export, None)
        _check_consent(mine, subject, export, None)
        _check_countries(mine, subject, export, None)
        _check_violations(mine, subject, export)
        _check_erasure_notices(mine, subject, export)
        # Categories held [GDPR Art. 15(1)(b)]: exactly what the profile provided and the processings named.
        assert export["categories_held"] == sorted(_categories_held(mine, subject)), subject
        # The retention plan [2.3]: the archive date, the financial data's end, every category planned for.
        seen[f"plan:{_check_retention_plan(mine, subject, export)}"] += 1
        # Retention [2.3.1]: an open account is archived three years after its last use, and its actions name all it holds.
        archive = [r for r in export["retention_actions"] if r["action"] == "archive"]
        if subject in archives:
            due, basis = archives[subject]
            assert [(_t(r["due_at"]), r["basis_event_id"], r["policy_section"]) for r in archive] == [(due, basis, "2.3.1")]
            assert _t(export["retention_plan"]["archive_at"]) == due
        assert all(_t(r["due_at"]) <= data.clock for r in export["retention_actions"])
        seen["recipients"] += len(export["recipients"])
        seen["outside_eea"] += sum(r["in_eea"] is False for r in export["recipients"])
        seen["violations"] += len(export["violations"])
        seen["notices"] += len(export["erasure_notices"])
        seen["withdrawn"] += sum(r["state"] == "dpv:ConsentWithdrawn" for r in export["consent_records"])
    # The dataset exercises every part of the export.
    assert seen["recipients"] > 200 and min(seen.values()) > 0 and seen["plan:open"] > 50, dict(seen)


def test_the_retention_plan_of_closed_and_suspended_accounts(
    data: Dataset, own: dict[str, Dataset], sink: ClickHouseSink, validator: jsonschema.protocols.Validator
) -> None:
    """[2.3.1] one year after closure or two after the latest negative decision, whichever is longest; [2.3.3] three
    years after a suspension or blocking; [2.3.2] financial data until the legal period ends: for every such account."""
    cases: dict[str | None, int] = defaultdict(int)
    for subject in data.subjects():
        actions = {r["action"] for r in _mine(own[subject], subject, "profile")}
        if actions <= USE:
            continue  # open accounts: the test above
        export = subject_access_export(sink, subject)
        validator.validate(export)
        assert export["categories_held"] == sorted(_categories_held(own[subject], subject)), subject
        cases[_check_retention_plan(own[subject], subject, export)] += 1
    assert cases["closed"] >= 5 and cases["suspended"] >= 2, dict(cases)


def test_the_export_as_it_stood_at_a_past_instant(
    data: Dataset, own: dict[str, Dataset], sink: ClickHouseSink, validator: jsonschema.protocols.Validator
) -> None:
    times = sorted(p.at for p in data.processings)
    rng = random.Random(7)
    instants = [
        times[len(times) // 3],
        times[len(times) // 2] + timedelta(microseconds=1),
        times[0] + (times[-1] - times[0]) * rng.random(),
    ]
    for subject in _sampled(data, 20, seed=7):
        for as_of in instants:
            export = subject_access_export(sink, subject, as_of)
            validator.validate(export)
            assert _t(export["as_of"]) == as_of
            _check_recipients(own[subject], subject, export, as_of)
            _check_consent(own[subject], subject, export, as_of)
            _check_countries(own[subject], subject, export, as_of)
            assert all(_t(v["occurred_at"]) <= as_of for v in export["violations"])
            assert all(_t(r["due_at"]) <= as_of for r in export["retention_actions"])
            assert all(_t(n["fulfilled_at"]) <= as_of for n in export["erasure_notices"])
            # What is held and until when is on every event known, whatever the instant asked about.
            now = subject_access_export(sink, subject)
            assert (export["categories_held"], export["retention_plan"]) == (now["categories_held"], now["retention_plan"])


def test_an_export_as_of_an_instant_after_the_runs_clock_lists_the_actions_then_due(
    data: Dataset, sink: ClickHouseSink, validator: jsonschema.protocols.Validator
) -> None:
    """[2.3; GDPR Art. 15(1)(d)] asked as of an instant after the pipeline's clock, the export's retention actions are
    those of the plan due by then: the financial data's deletion [2.3.2] among them, on the tests' own calendar."""
    deletions = expected.financial_deletions(data)
    for subject in sorted(deletions)[:10]:
        due, basis = deletions[subject]
        for as_of, listed in ((due, True), (due - timedelta(microseconds=1), False)):
            export = subject_access_export(sink, subject, as_of)
            validator.validate(export)
            deleted = [(_t(r["due_at"]), r["basis_event_id"]) for r in export["retention_actions"] if r["action"] == "delete"]
            assert deleted == ([(due, basis)] if listed else []), subject
        assert not [r for r in subject_access_export(sink, subject)["retention_actions"] if r["action"] == "delete"]


def test_consent_evidence_carries_the_ledger_hash_chain(data: Dataset, sink: ClickHouseSink) -> None:
    """Each event's ledger entry is named by its SHA-256 hash, in the subject's chain order (sequence)."""
    subject = max(data.subjects(), key=lambda s: sum(r["subject_id"] == s for r in data.of_topic("consent")))
    events = [e for r in subject_access_export(sink, subject)["consent_records"] for e in r["events"]]
    assert len(events) == sum(r["subject_id"] == subject for r in data.of_topic("consent"))
    assert sorted(e["sequence"] for e in events) == list(range(len(events)))
    assert len({e["entry_hash"] for e in events}) == len(events)


def test_an_unknown_subject_is_refused(sink: ClickHouseSink) -> None:
    with pytest.raises(UnknownId, match="unknown subject 'subj-nobody'"):
        subject_access_export(sink, "subj-nobody")


# -- the schema --------------------------------------------------------------------------


def _sample(sink: ClickHouseSink, data: Dataset) -> dict[str, Any]:
    """The export of a subject whose export has every part: recipients out of the EU/EEA, withdrawals, violations."""
    violated = {s for _, _, s in expected.injected(data)}
    withdrew = {r["subject_id"] for r in data.of_topic("consent") if r["action"] == "withdrawn"}
    abroad = {p.subject_id for p in data.processings if not in_eea(p.country)}
    subject = sorted(violated & withdrew & abroad)[0]
    return subject_access_export(sink, subject)


def _break(path: list[str | int], value: Any) -> Any:
    def apply(export: dict[str, Any]) -> dict[str, Any]:
        broken = copy.deepcopy(export)
        target: Any = broken
        for key in path[:-1]:
            target = target[key]
        if value is _DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value
        return broken

    return apply


_DELETE = object()


@pytest.mark.parametrize(
    ("breakage", "why"),
    [
        (_break(["consent_records", 0, "state"], "dpv:ConsentMaybe"), "a consent status DPV does not have"),
        (_break(["consent_records", 0, "legal_basis"], "consent"), "a lawful basis in our words instead of GDPR's"),
        (_break(["recipients", 0, "transfer_mechanisms", 0, "gdpr_basis"], "eu-gdpr:A46"), "a transfer basis out of the list"),
        (_break(["recipients", 0, "first_sent"], "yesterday"), "a time that is not RFC 3339"),
        (_break(["as_of"], "2021-13-01T00:00:00+00:00"), "a month 13"),
        (_break(["recipients", 0, "email"], "someone@example.com"), "a field the contract does not have (a value!)"),
        (_break(["consent_records", 0, "events"], _DELETE), "a consent record without its history"),
        (_break(["categories_held"], ["contact", "contact"]), "a category twice"),
        (_break(["categories_held", 0], "shoe_size"), "a category the policy does not name"),
        (_break(["subject_id"], "subj 1; DROP TABLE"), "an id that is not pseudonymous"),
        (_break(["countries", "stored"], []), "no storage country"),
        (_break(["schema"], "SubjectAccessExport/v1"), "another contract"),
        (_break(["retention_plan"], _DELETE), "an export without its retention plan"),
        (_break(["retention_plan", "actions", 0, "action"], "shred"), "a retention action the policy does not have"),
        (_break(["retention_plan", "actions", 0, "categories"], []), "a planned action on no category"),
        (_break(["retention_plan", "archive_at"], "in three years"), "an archive date that is not RFC 3339"),
        (_break(["retention_plan", "lifecycle", "birth_date"], "1990-01-01T00:00:00+00:00"), "a lifecycle field (a value!)"),
    ],
)
def test_the_schema_refuses_a_broken_export(
    data: Dataset, sink: ClickHouseSink, validator: jsonschema.protocols.Validator, breakage: Any, why: str
) -> None:
    export = _sample(sink, data)
    validator.validate(export)
    assert not validator.is_valid(breakage(export)), why


def test_the_released_versions_stay_and_each_only_adds_its_members(data: Dataset, sink: ClickHouseSink) -> None:
    """Every released schema version stays, so an export made before can still be checked; v2 is v1 plus the plan,
    (issue 22) the optional proof of record and (issue 23) each recipient purpose's optional recorded bases; v3 is v2
    plus the subject's rights requests and the incidents that touched its data (issue 24), both optional."""
    v1, v2 = export_schema(1), export_schema(2)
    jsonschema.Draft202012Validator.check_schema(v1)
    export = _sample(sink, data)
    added = {"retention_plan", "record_proof", "record_proof_fault", "rights_requests", "incidents"}
    recorded = {"recorded_legal_bases", "legal_basis_differs"}
    as_v1 = {k: v for k, v in export.items() if k not in added} | {"schema": "SubjectAccessExport/v1"}
    as_v1["recipients"] = [
        r | {"purposes": [{k: v for k, v in p.items() if k not in recorded} for p in r["purposes"]]} for r in export["recipients"]
    ]
    purpose_item = export_schema()["$defs"]["recipient"]["properties"]["purposes"]["items"]
    assert set(purpose_item["properties"]) - set(purpose_item["required"]) == recorded
    jsonschema.Draft202012Validator(v1, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER).validate(as_v1)
    assert set(v2["properties"]) - set(v1["properties"]) == added - {"rights_requests", "incidents"}
    assert set(export_schema()["properties"]) - set(v2["properties"]) == {"rights_requests", "incidents"}
    assert not {"record_proof", "rights_requests", "incidents"} & set(export_schema()["required"])


def test_the_schema_knows_every_symbol_of_the_vocabulary() -> None:
    """The schema's enums are the vocabulary's: a new symbol must be added to the contract too."""
    defs = export_schema()["$defs"]
    for name, enum in [
        ("category", DataCategory),
        ("purpose", Purpose),
        ("consent_action", ConsentAction),
        ("consent_channel", ConsentChannel),
        ("recipient_kind", RecipientKind),
        ("transfer_mechanism", TransferMechanism),
        ("rule", Rule),
        ("retention_action_kind", RetentionActionKind),
    ]:
        assert set(defs[name]["enum"]) == {m.value for m in enum}, name
    assert set(defs["dpv_consent_status"]["enum"]) == set(DPV_STATE.values())
    assert set(defs["gdpr_transfer_basis"]["enum"]) == {*GDPR_TRANSFER.values(), None}


# -- the page ----------------------------------------------------------------------------


def test_the_page_is_self_contained_and_shows_the_recipients(data: Dataset, sink: ClickHouseSink) -> None:
    subject = max(data.subjects(), key=lambda s: len(expected.who_has(data, s)))
    export = subject_access_export(sink, subject)
    page = render_access_page(export)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    for recipient in expected.who_has(data, subject):
        assert f'<span class="id">{recipient}</span></td>' in page  # the id beside the legal name
    for name in (r["name"] for r in export["recipients"] if r["name"]):
        assert f"<td>{html.escape(name)}<span" in page
    # How long the data is kept [2.3]: the archive date and every planned action, due or not, with its date.
    plan = export["retention_plan"]
    assert _t(plan["archive_at"]).strftime("%Y-%m-%d %H:%M:%S UTC") in page
    for action in plan["actions"]:
        row = f"<td>{_t(action['due_at']).strftime('%Y-%m-%d %H:%M:%S UTC')}</td><td>{labels.label(RetentionActionKind, action['action'])}</td>"
        assert row in page, action
    assert "".join(f"<li>{html.escape(labels.category(c))}</li>" for c in export["categories_held"]) in page
    lowered = page.lower()
    for external in ("<script", "<link", "<img", "src=", "href=", "@import", "url("):
        assert external not in lowered, external  # nothing loads from elsewhere, nothing runs


def test_the_page_escapes_a_hostile_recipient_name(chdb_dsn: str, database: str) -> None:
    """A registry name is whatever the vendor registry says: on the page it must stay text."""
    hostile = '<script>alert("pwned")</script><img src=x onerror=alert(1)> & "Partners"'
    t0 = datetime(2021, 3, 1, tzinfo=UTC)
    events = [
        recipient_registered(
            "hostile-vendor",
            name=hostile,
            kind=RecipientKind.BUSINESS_PARTNER,
            country="FR",
            allowed_purposes=[Purpose.PARTNER_AGGREGATION],
            source_service="vendor-registry",
            occurred_at=t0,
        ),
        consent_granted(
            "subj-hostile",
            Purpose.PARTNER_AGGREGATION,
            channel=ConsentChannel.REGISTRATION_FORM,
            source_service="registration",
            occurred_at=t0 + timedelta(days=1),
        ),
        data_disclosed(
            "subj-hostile",
            "hostile-vendor",
            [DataCategory.PROFESSIONAL_CV],
            purpose=Purpose.PARTNER_AGGREGATION,
            legal_basis="consent",
            source_service="partners",
            occurred_at=t0 + timedelta(days=2),
        ),
    ]
    sink = ClickHouseSink(chdb_dsn, database)
    run_events(((e.topic, e.record) for e in events), Processor(), sink)
    export = subject_access_export(open_tables(chdb_dsn, database), "subj-hostile")
    assert [r["name"] for r in export["recipients"]] == [hostile]
    page = render_access_page(export)
    assert hostile not in page and "<script" not in page.lower() and "<img" not in page.lower()
    assert (
        "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt; &amp; &quot;Partners&quot;"
        in page
    )


# -- the command -------------------------------------------------------------------------


def _dsar(chdb_dsn: str, *args: str) -> Any:
    return CliRunner().invoke(main, ["dsar", *args, "--dsn", chdb_dsn, "--database", DATABASE])


def _without_generated_at(export: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in export.items() if k != "generated_at"}


def test_dsar_prints_the_json_export_and_writes_the_page(
    data: Dataset, sink: ClickHouseSink, chdb_dsn: str, tmp_path: Path
) -> None:
    subject = data.processings[len(data.processings) // 2].subject_id
    asked = datetime.now(UTC)
    result = _dsar(chdb_dsn, subject)
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    now = datetime.fromisoformat(printed["as_of"])  # the default is now, named in the export
    assert asked <= now <= datetime.now(UTC)
    assert _without_generated_at(printed) == _without_generated_at(subject_access_export(sink, subject, now))
    page = tmp_path / "access.html"
    result = _dsar(chdb_dsn, subject, "--format", "html", "--out", str(page))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert all(f'<span class="id">{r}</span></td>' in page.read_text(encoding="utf-8") for r in expected.who_has(data, subject))


def test_dsar_as_of_reads_a_naive_time_as_utc(data: Dataset, sink: ClickHouseSink, chdb_dsn: str) -> None:
    subject = data.processings[0].subject_id
    naive, zoned = (
        _dsar(chdb_dsn, subject, "--as-of", "2021-06-01T12:00:00"),
        _dsar(chdb_dsn, subject, "--as-of", "2021-06-01T14:00:00+02:00"),
    )
    assert naive.exit_code == zoned.exit_code == 0, naive.output + zoned.output
    assert _without_generated_at(json.loads(naive.stdout)) == _without_generated_at(json.loads(zoned.stdout))
    assert json.loads(naive.stdout)["as_of"] == "2021-06-01T12:00:00+00:00"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["subj-nobody"], "unknown subject 'subj-nobody'"),
        (["subj 1'; DROP TABLE ledger; --"], "subject id: "),
        (["SUBJECT", "--as-of", "last tuesday"], "--as-of: 'last tuesday' is not an ISO-8601 time"),
        (["SUBJECT", "--as-of", "2021-02-30"], "--as-of: '2021-02-30' is not an ISO-8601 time"),
        (["SUBJECT", "--format", "pdf"], "'pdf' is not one of 'json', 'html'"),
        (["SUBJECT", "--out", "/nonexistent-dir/x.json"], "--out: cannot write /nonexistent-dir/x.json"),
    ],
)
def test_dsar_refuses_in_one_line(data: Dataset, chdb_dsn: str, args: list[str], message: str) -> None:
    known = data.subjects()[0]  # a subject that exists: only the argument named is wrong
    result = _dsar(chdb_dsn, *(known if a == "SUBJECT" else a for a in args))
    assert result.exit_code != 0
    assert message in result.output
    lines = result.output.strip().splitlines()
    if "--format" in args:  # click's own refusal of a choice: usage, then the one error line
        assert lines[-1].startswith("Error: ") and message in lines[-1]
    else:
        assert len(lines) == 1, result.output
