"""Processing flows to OpenLineage run events (consentflow.openlineage.events): valid against OpenLineage's own JSON
Schema and the facets' schemas, at the catalog's level (job per processing, dataset per category and per recipient),
deterministic, and counting subjects without naming them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
from openlineage.client.serde import Serde

from consentflow.core.recipients import MechanismWindow
from consentflow.openlineage.events import lineage_events, run_events
from consentflow.policy.vocabulary import TransferMechanism
from consentflow.sinks.lineage_flows import CategoryFlow, Counts, ProcessingFlow, RecipientFlow, TransferFlow
from tests.support.openlineage_schemas import errors, event_errors, registry

T0 = datetime(2021, 3, 1, 9, 30, tzinfo=UTC)
T1 = datetime(2021, 9, 14, 17, 5, 12, 250000, tzinfo=UTC)
SCC = MechanismWindow(TransferMechanism.SCC, datetime(2020, 1, 1, tzinfo=UTC), datetime(2022, 12, 31, tzinfo=UTC))
OPEN_SCC = MechanismWindow(TransferMechanism.SCC, datetime(2023, 1, 1, tzinfo=UTC), None)


def _counts(subjects: int, edges: int) -> Counts:
    return Counts(subjects, edges, T0, T1)


def _marketing() -> ProcessingFlow:
    return ProcessingFlow(
        purpose="marketing",
        source="disclosure",
        legal_bases=("consent",),
        categories=(CategoryFlow("contact", _counts(40, 90)), CategoryFlow("identity", _counts(12, 15))),
        recipients=(
            RecipientFlow(
                recipient_id="rcp-mailer-us",
                recipient_kind="emailing_provider",
                legal_name="Mailer Inc.",
                categories=("contact", "identity"),
                transfers=(
                    TransferFlow("US", "scc", (SCC, OPEN_SCC), _counts(30, 70)),
                    TransferFlow("US", "none", (), _counts(3, 5)),
                ),
                counts=_counts(31, 75),
            ),
            RecipientFlow(
                recipient_id="rcp-ghost",
                recipient_kind="unknown",
                legal_name=None,
                categories=("contact",),
                transfers=(TransferFlow("", "unknown", (), _counts(9, 30)),),
                counts=_counts(9, 30),
            ),
        ),
        counts=_counts(40, 105),
    )


def _cookies() -> ProcessingFlow:
    return ProcessingFlow(
        purpose="cookies_analytics",
        source="cookie",
        legal_bases=("consent",),
        categories=(CategoryFlow("device_network", _counts(5, 8)),),
        recipients=(
            RecipientFlow(
                "rcp-analytics-fr",
                "analytics_provider",
                "Analytique SAS",
                ("device_network",),
                (TransferFlow("FR", "within_eea", (), _counts(5, 8)),),
                _counts(5, 8),
            ),
        ),
        counts=_counts(5, 8),
    )


def _dicts(flows: list[ProcessingFlow]) -> list[dict[str, Any]]:
    return [Serde.to_dict(e) for e in lineage_events(flows)]


@pytest.fixture(scope="module")
def schemas() -> Any:
    return registry()


def test_every_event_and_every_facet_validates_against_openlineages_schema_and_ours(schemas: Any) -> None:
    events = _dicts([_marketing(), _cookies()])
    assert len(events) == 4
    for event in events:
        assert event_errors(event, schemas) == []
    # The custom facets are there and were checked against consentflow's schemas, not skipped.
    urls = {f["_schemaURL"] for e in events for d in e["outputs"] for f in d["facets"].values()}
    assert urls == {
        "urn:consentflow:schema:openlineage:RecipientDatasetFacet:v1#/$defs/RecipientDatasetFacet",
        "urn:consentflow:schema:openlineage:TransfersDatasetFacet:v1#/$defs/TransfersDatasetFacet",
    }


def test_the_schemas_reject_what_the_spec_and_the_facets_forbid(schemas: Any) -> None:
    event = _dicts([_marketing()])[0]
    bad_time = dict(event, eventTime="yesterday")
    assert event_errors(bad_time, schemas)
    recipient = event["outputs"][0]["facets"]["consentflow_recipient"]
    del recipient["subjects"]
    assert any("subjects" in e for e in errors(recipient["_schemaURL"], recipient, schemas))
    transfers = event["outputs"][0]["facets"]["consentflow_transfers"]
    transfers["transfers"][0]["subject_ids"] = ["s-1"]  # the facet has no room for subject ids
    assert errors(transfers["_schemaURL"], transfers, schemas)


def test_a_job_per_processing_an_input_per_category_an_output_per_recipient() -> None:
    start, complete = _dicts([_marketing()])
    assert (start["eventType"], start["eventTime"]) == ("START", T0.isoformat())
    assert (complete["eventType"], complete["eventTime"]) == ("COMPLETE", T1.isoformat())
    assert start["run"]["runId"] == complete["run"]["runId"]
    assert start["job"]["namespace"] == "consentflow"
    assert start["job"]["name"] == "processing.marketing.disclosure"
    assert [d["name"] for d in start["inputs"]] == ["category.contact", "category.identity"]
    assert [d["name"] for d in start["outputs"]] == ["recipient.rcp-mailer-us", "recipient.rcp-ghost"]
    processing = start["job"]["facets"]["consentflow_processing"]
    assert (processing["purpose"], processing["policySections"], processing["source"]) == ("marketing", "3.8, 6", "disclosure")
    assert (processing["legalBases"], processing["subjects"], processing["edges"]) == (["consent"], 40, 105)
    assert start["inputs"][0]["facets"]["consentflow_category"]["subjects"] == 40
    mailer = start["outputs"][0]["facets"]
    assert mailer["consentflow_recipient"]["legalName"] == "Mailer Inc."
    assert mailer["consentflow_recipient"]["categories"] == ["contact", "identity"]
    assert "legalName" not in start["outputs"][1]["facets"]["consentflow_recipient"]  # unregistered: no name to give


def test_transfers_carry_country_mechanism_its_periods_and_whether_it_was_framed() -> None:
    start = _dicts([_marketing(), _cookies()])[0]
    scc, none = start["outputs"][0]["facets"]["consentflow_transfers"]["transfers"]
    assert (scc["country"], scc["inEea"], scc["mechanism"], scc["framed"]) == ("US", False, "scc", True)
    assert scc["validity"] == [
        {"validFrom": "2020-01-01T00:00:00+00:00", "validUntil": "2022-12-31T00:00:00+00:00"},
        {"validFrom": "2023-01-01T00:00:00+00:00"},  # open-ended
    ]
    assert (none["mechanism"], none["framed"], none["validity"], none["subjects"]) == ("none", False, [], 3)
    inside = _dicts([_cookies()])[0]["outputs"][0]["facets"]["consentflow_transfers"]["transfers"][0]
    assert (inside["country"], inside["inEea"], inside["framed"]) == ("FR", True, True)


def test_the_same_flows_give_the_same_events_and_other_content_another_run() -> None:
    once = json.dumps(_dicts([_marketing(), _cookies()]), sort_keys=True)
    assert json.dumps(_dicts([_marketing(), _cookies()]), sort_keys=True) == once
    run = UUID(run_events(_marketing())[0].run.runId)
    assert run.version == 7
    assert run.int >> 80 == int(T0.timestamp() * 1000)  # UUIDv7: the first edge's time in its top 48 bits
    more = _marketing()
    more = ProcessingFlow(more.purpose, more.source, more.legal_bases, more.categories, more.recipients, _counts(41, 106))
    assert UUID(run_events(more)[0].run.runId) != run
    assert run_events(_marketing(), namespace="prod")[0].job.namespace == "prod"
