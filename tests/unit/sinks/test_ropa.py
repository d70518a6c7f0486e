"""The record of processing (GDPR Art. 30, ``ropa``) on chDB, against the policy file and the generated events.

What the record must list is computed here without the code under test: the
purposes from the policy's TOML, the registry from the recipient records, and
what happened from the message, cookie and disclosure events (``dpo_expected``).
"""

from __future__ import annotations

import csv
import io
import json
import re
import tomllib
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from consentflow.cli import main
from consentflow.contracts.events import data_disclosed, recipient_registered
from consentflow.core.processor import Processor
from consentflow.policy.geography import EEA_COUNTRIES
from consentflow.policy.vocabulary import CURRENT_POLICY_VERSION, DataCategory, LegalBasis, Purpose, RecipientKind
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.sinks.reading import open_tables
from consentflow.sinks.record_of_processing import COLUMNS, PURPOSE_SECTIONS, record_of_processing
from consentflow.streams.embedded import run_events
from tests.support import dpo_expected as expected
from tests.support.dpo_expected import FRAMING, GDPR_TRANSFER, Dataset

DATABASE = "ropa"
GDPR_BASIS = {
    "consent": "eu-gdpr:A6-1-a",
    "contract": "eu-gdpr:A6-1-b",
    "legal_obligation": "eu-gdpr:A6-1-c",
    "legitimate_interest": "eu-gdpr:A6-1-f",
}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, chdb_dsn: str) -> Dataset:
    return expected.load(tmp_path_factory.mktemp("ropa"), chdb_dsn, DATABASE)


@pytest.fixture(scope="module")
def sink(data: Dataset, chdb_dsn: str) -> ClickHouseSink:
    return open_tables(chdb_dsn, data.database)


@pytest.fixture(scope="module")
def record(sink: ClickHouseSink) -> dict[str, Any]:
    return record_of_processing(sink)


@pytest.fixture(scope="module")
def policy() -> dict[str, Any]:
    """The policy file itself, read here without ``consentflow.policy.versions``."""
    text = (resources.files("consentflow.policy.policies") / f"{CURRENT_POLICY_VERSION}.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def _registry(data: Dataset) -> dict[str, dict[str, Any]]:
    """The newest version of every recipient in the registry records."""
    latest: dict[str, dict[str, Any]] = {}
    for r in sorted(data.of_topic("recipients"), key=lambda r: (r["occurred_at"], r["event_id"])):
        latest[r["recipient_id"]] = r
    return latest


def _basis(policy: dict[str, Any], purpose: str) -> str:
    return "consent" if purpose in policy["consent"]["required"] else policy["legal_basis"].get(purpose, "unknown")


def _observed(data: Dataset, policy: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """Per (purpose, recipient): what the events sent, where, under what, to how many subjects, on which basis."""
    disclosed_basis = {r["event_id"]: r["legal_basis"] for r in data.of_topic("disclosure")}
    grouped: dict[tuple[str, str], list[expected.Processing]] = defaultdict(list)
    for p in data.processings:
        grouped[(p.purpose, p.recipient_id)].append(p)
    return {
        key: {
            "categories": sorted(set().union(*(p.categories for p in ps))),
            "observed_countries": sorted({p.country or "unknown" for p in ps}),
            "mechanisms": sorted({p.mechanism for p in ps}),
            "legal_bases": sorted({disclosed_basis.get(p.event_id, _basis(policy, p.purpose)) for p in ps}),
            "subjects": len({p.subject_id for p in ps}),
            "transfers": len(ps),
            "unframed": sum(p.country not in EEA_COUNTRIES and p.mechanism not in FRAMING for p in ps),
            "first": min(p.at for p in ps),
            "last": max(p.at for p in ps),
        }
        for key, ps in grouped.items()
    }


def _rows(record: dict[str, Any]) -> dict[tuple[str, str | None], dict[str, Any]]:
    rows = {(r["purpose"], r["recipient_id"]): r for r in record["rows"]}
    assert len(rows) == len(record["rows"]), "one row per purpose and recipient"
    return rows


def test_every_purpose_of_the_policy_and_every_recipient_the_lineage_shows_has_its_row(
    data: Dataset, record: dict[str, Any], policy: dict[str, Any]
) -> None:
    described = set(policy["consent"]["required"]) | set(policy["legal_basis"])
    registry = _registry(data)
    observed = _observed(data, policy)
    want: set[tuple[str, str | None]] = set()
    for purpose in described | {p for p, _ in observed}:
        recipients = {r for r, v in registry.items() if v["active"] and purpose in v["allowed_purposes"]}
        recipients |= {r for p, r in observed if p == purpose}
        want |= {(purpose, r) for r in recipients} or {(purpose, None)}
    rows = _rows(record)
    assert set(rows) == want
    assert [(r["purpose"], r["recipient_id"] or "") for r in record["rows"]] == sorted(
        (p, r or "") for p, r in want
    )  # by purpose, then recipient
    assert {p for p, _ in rows} >= described
    assert {r for _, r in observed} <= {r for _, r in rows}  # ghost-crm too: unregistered, yet it received data
    assert record["policy_version"] == policy["version"]


def test_each_row_says_what_the_policy_says_of_its_purpose(record: dict[str, Any], policy: dict[str, Any]) -> None:
    for row in record["rows"]:
        basis = _basis(policy, row["purpose"])
        assert (row["legal_basis"], row["gdpr_legal_basis"]) == (basis, GDPR_BASIS.get(basis))
        assert row["consent_required"] == (row["purpose"] in policy["consent"]["required"])
        assert row["storage_countries"] == sorted(policy["storage_countries"])
        # Periods as the policy file states them (ISO 8601 durations in calendar time), never re-counted in days [2.3].
        periods = policy["retention"]
        assert any(
            "[2.3.1]" in limit
            and f"{periods['after_last_use']} after the last use" in limit
            and f"{periods['after_closure']} after closure" in limit
            and f"{periods['after_negative_decision']} after the latest negative decision" in limit
            and periods["time_zone"] in limit
            for limit in row["retention"]
        )
        assert any(
            "[2.3.3]" in limit and f"{periods['after_suspension_min']} to {periods['after_suspension_max']}" in limit
            for limit in row["retention"]
        )
        assert not any(re.search(r"\d+ days", limit) for limit in row["retention"])
        financial = set(policy["categories"]["financial"]) & set(row["categories"])
        assert any(
            "[2.3.2]" in limit
            and f"kept {periods['financial']} after the end of the financial year" in limit
            and periods.get("financial_year_end", "12-31") in limit
            for limit in row["retention"]
        ) == bool(financial)
        assert row["policy_sections"], row["purpose"]
    assert set(PURPOSE_SECTIONS) == set(Purpose)  # a new purpose must say where the policy describes it


def test_each_row_carries_the_registry_and_what_the_lineage_shows(
    data: Dataset, record: dict[str, Any], policy: dict[str, Any]
) -> None:
    registry = _registry(data)
    observed = _observed(data, policy)
    outside = 0
    for (purpose, recipient), row in _rows(record).items():
        version = registry.get(recipient) if recipient else None
        if version is None:
            assert (row["recipient_name"], row["country"], row["safeguards"]) == (None, None, [])
        else:
            assert (row["recipient_name"], row["recipient_kind"], row["country"]) == (
                version["name"],
                version["kind"],
                version["country"],
            )
            assert row["in_eea"] == (version["country"] in EEA_COUNTRIES)
            assert row["purpose_registered"] == (purpose in version["allowed_purposes"])
            if version["country"] in EEA_COUNTRIES:
                assert row["safeguards"] == []
            else:  # a transfer outside the EU/EEA: each mechanism with the date it holds from [7]
                outside += 1
                assert row["safeguards"] == [
                    f"{m['mechanism']} ({GDPR_TRANSFER[m['mechanism']]}) from {m['valid_from'].isoformat()}"
                    for m in version["transfer_mechanisms"]
                ]
        seen = observed.get((purpose, recipient)) if recipient else None
        assert row["observed"] == (seen is not None)
        if seen is None:
            assert (row["subjects"], row["transfers"], row["categories"], row["findings"]) == (0, 0, [], [])
            continue
        assert row["categories"] == seen["categories"]
        assert row["observed_countries"] == seen["observed_countries"]
        assert [m.split(" ")[0] for m in row["observed_mechanisms"]] == seen["mechanisms"]
        assert row["observed_legal_bases"] == seen["legal_bases"]
        assert (row["subjects"], row["transfers"], row["transfers_without_safeguard"]) == (
            seen["subjects"],
            seen["transfers"],
            seen["unframed"],
        )
        assert (datetime.fromisoformat(row["first_transfer"]), datetime.fromisoformat(row["last_transfer"])) == (
            seen["first"],
            seen["last"],
        )
    assert outside > 5


def test_observed_processing_the_policy_or_registry_does_not_describe_is_flagged(
    data: Dataset, record: dict[str, Any], policy: dict[str, Any]
) -> None:
    registry = _registry(data)
    described = set(policy["consent"]["required"]) | set(policy["legal_basis"])
    flagged: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for (purpose, recipient), seen in _observed(data, policy).items():
        version = registry.get(recipient)
        if purpose not in described:
            flagged["purpose_not_in_policy"].add((purpose, recipient))
        if version is None:
            flagged["recipient_not_registered"].add((purpose, recipient))
        elif purpose not in version["allowed_purposes"]:
            flagged["purpose_not_registered_for_recipient"].add((purpose, recipient))
        if seen["unframed"]:
            flagged["transfer_without_safeguard"].add((purpose, recipient))
        if seen["legal_bases"] != [_basis(policy, purpose)]:
            flagged["legal_basis_differs"].add((purpose, recipient))
    got: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for row in record["rows"]:
        for finding in row["findings"]:
            got[finding].add((row["purpose"], row["recipient_id"]))
    assert got == flagged
    assert set(got) <= set(record["findings"])  # every flag is explained
    # The generator's injected breaches of [4.3, 4.4] and [7] show: the unregistered CRM, transfers before SCCs held.
    assert {r for _, r in got["recipient_not_registered"]} == {"ghost-crm"}
    assert "brightfunnel" in {r for _, r in got["transfer_without_safeguard"]}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "; ".join(value)
    return str(value)


def _ropa(chdb_dsn: str, *args: str, database: str = DATABASE) -> Any:
    return CliRunner().invoke(main, ["ropa", *args, "--dsn", chdb_dsn, "--database", database])


def test_csv_and_json_carry_the_same_rows(data: Dataset, chdb_dsn: str, tmp_path: Path) -> None:
    out = tmp_path / "ropa.json"
    as_json = _ropa(chdb_dsn, "--format", "json", "--out", str(out))
    as_csv = _ropa(chdb_dsn)  # CSV on stdout by default
    assert as_json.exit_code == as_csv.exit_code == 0, as_json.output + as_csv.output
    rows = json.loads(out.read_text(encoding="utf-8"))["rows"]
    table = list(csv.reader(io.StringIO(as_csv.stdout)))
    assert table[0] == list(COLUMNS)
    assert table[1:] == [[_cell(row[c]) for c in COLUMNS] for row in rows]
    assert len(rows) > 30


def test_ropa_refuses_in_one_line(chdb_dsn: str, database: str) -> None:
    missing = _ropa(chdb_dsn, database=database)  # a database no run filled
    assert missing.exit_code != 0 and "lacks the consentflow tables" in missing.output
    assert len(missing.output.strip().splitlines()) == 1
    bad_format = _ropa(chdb_dsn, "--format", "xlsx")
    assert bad_format.exit_code != 0 and "'xlsx' is not one of 'csv', 'json'" in bad_format.output


def test_a_disclosure_under_another_basis_or_for_an_unregistered_purpose_is_flagged(chdb_dsn: str, database: str) -> None:
    """The record states what the policy and registry say; processing that departs from them is named, row by row."""
    t0 = datetime(2021, 3, 1, tzinfo=UTC)
    events = [
        recipient_registered(
            "acme-fr",
            name="Acme SA",
            kind=RecipientKind.CORPORATE_CUSTOMER,
            country="FR",
            allowed_purposes=[Purpose.CONTRACT_INTRODUCTIONS],
            source_service="vendor-registry",
            occurred_at=t0,
        ),
        # [3.2] introductions rest on the contract, not on a legitimate interest.
        data_disclosed(
            "subj-a",
            "acme-fr",
            [DataCategory.PROFESSIONAL_CV],
            purpose=Purpose.CONTRACT_INTRODUCTIONS,
            legal_basis=LegalBasis.LEGITIMATE_INTEREST,
            source_service="matching",
            occurred_at=t0 + timedelta(days=1),
        ),
        # The registry allows Acme introductions only [4.4].
        data_disclosed(
            "subj-a",
            "acme-fr",
            [DataCategory.CONTACT],
            purpose=Purpose.MARKETING,
            legal_basis=LegalBasis.CONSENT,
            source_service="mailing",
            occurred_at=t0 + timedelta(days=2),
        ),
    ]
    run_events(((e.topic, e.record) for e in events), Processor(), ClickHouseSink(chdb_dsn, database))
    rows = _rows(record_of_processing(open_tables(chdb_dsn, database)))
    introductions, marketing = rows[("contract_introductions", "acme-fr")], rows[("marketing", "acme-fr")]
    assert introductions["findings"] == ["legal_basis_differs"]
    assert introductions["observed_legal_bases"] == ["legitimate_interest"] and introductions["legal_basis"] == "contract"
    assert marketing["findings"] == ["purpose_not_registered_for_recipient"]
    assert (marketing["registered"], marketing["purpose_registered"], marketing["subjects"]) == (True, False, 1)
    # Purposes nobody received data for still have their row, with nothing observed and nothing flagged.
    alone = rows[("message_moderation", None)]
    assert (alone["observed"], alone["findings"], alone["legal_basis"]) == (False, [], "legitimate_interest")
