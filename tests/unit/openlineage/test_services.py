"""A job per processing, a purpose of one source service (LineageEdge v2, issue 23): two services sending one purpose
to one recipient are two jobs, the same through the tables (``sinks.lineage_flows``) and through the fold
(``openlineage.folding``), and their events are valid against OpenLineage's JSON Schema; an edge written as
LineageEdge v1 names no service, so its processing is named by its source kind, as before v2."""

from __future__ import annotations

import json
from typing import Any

from openlineage.client.serde import Serde

from consentflow.contracts import events
from consentflow.contracts.codec import SINGLE_OBJECT_MAGIC, SingleObjectCodec, write_body
from consentflow.contracts.releases import default_store
from consentflow.contracts.topics import LINEAGE
from consentflow.core.processor import Processor
from consentflow.openlineage.events import lineage_events
from consentflow.openlineage.folding import fold
from consentflow.policy.vocabulary import LegalBasis, Purpose
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.sinks.lineage_flows import processing_flows
from consentflow.streams.embedded import run_events
from tests.support.builders import CLOUDNEST, POSTWAVE, at, disclose, eid, processor_with
from tests.support.openlineage_schemas import event_errors, registry

PURPOSE, BASIS = Purpose.CONTRACT_INTRODUCTIONS, LegalBasis.CONTRACT


def _from_crm(subject: str, hours: float) -> events.Event:
    """A disclosure of the same purpose to the same recipient as ``disclose``'s, from another service."""
    return events.data_disclosed(
        subject,
        CLOUDNEST.recipient_id,
        ["contact", "identity"],
        purpose=PURPOSE,
        legal_basis=BASIS,
        source_service="crm",
        occurred_at=at(hours),
        event_id=eid(subject, "crm", hours),
    )


SENT = [
    disclose("cand-1", CLOUDNEST, ["contact"], at(1), purpose=PURPOSE, basis=BASIS),  # source_service "matching"
    _from_crm("cand-2", 2),
    disclose("cand-3", CLOUDNEST, ["contact"], at(3), purpose=PURPOSE, basis=BASIS),
    _from_crm("cand-3", 4),
]


def _dicts(flows: Any) -> list[dict[str, Any]]:
    return [json.loads(Serde.to_json(event)) for event in lineage_events(flows)]


def test_two_services_sending_one_purpose_are_two_jobs_in_the_tables_and_in_the_fold(chdb_dsn: str, database: str) -> None:
    sink = ClickHouseSink(chdb_dsn, database)
    registered = [spec.event() for spec in (CLOUDNEST, POSTWAVE)]  # into the recipients table: the legal names
    run_events([(e.topic, e.record) for e in [*registered, *SENT]], Processor(), sink)
    flows = processing_flows(sink.reader)
    assert [(f.purpose, f.source, f.counts.subjects, f.counts.edges) for f in flows] == [
        ("contract_introductions", "crm", 2, 2),
        ("contract_introductions", "matching", 2, 2),
    ]
    assert [[c.category for c in f.categories] for f in flows] == [["contact", "identity"], ["contact"]]
    processor = processor_with([CLOUDNEST, POSTWAVE])
    edges = [edge for e in SENT for edge in processor.process(e.topic.short_name, e.record).lineage]
    assert fold(edges, processor.registry) == flows

    sent = _dicts(flows)
    schemas = registry()
    assert [error for event in sent for error in event_errors(event, schemas)] == []
    assert [(e["eventType"], e["job"]["name"]) for e in sent] == [
        ("START", "processing.contract_introductions.crm"),
        ("COMPLETE", "processing.contract_introductions.crm"),
        ("START", "processing.contract_introductions.matching"),
        ("COMPLETE", "processing.contract_introductions.matching"),
    ]
    assert [e["job"]["facets"]["consentflow_processing"]["source"] for e in sent[::2]] == ["crm", "matching"]
    assert {e["run"]["runId"] for e in sent[::2]} == {e["run"]["runId"] for e in sent[1::2]}
    assert len({e["run"]["runId"] for e in sent}) == 2


def test_an_edge_written_as_v1_reads_without_a_service_and_is_the_processing_of_its_source_kind(
    chdb_dsn: str, database: str
) -> None:
    """A lineage topic of v1 records (before issue 23) read by this version: ``source_service`` is the default, and
    the job is ``processing.<purpose>.<source kind>``, the name the export gave it then."""
    processor = processor_with([CLOUDNEST, POSTWAVE])
    edges = [edge for e in SENT[:2] for edge in processor.process(e.topic.short_name, e.record).lineage]
    store = default_store()
    v1, v2 = store.versions("LineageEdge")
    assert (v1.version, v2.version) == (1, 2)
    codec = SingleObjectCodec(store)
    as_v1 = [{k: v for k, v in e.items() if k != "source_service"} for e in edges]  # what a v1 producer wrote
    old = [SINGLE_OBJECT_MAGIC + v1.fingerprint + write_body(LINEAGE, v1, e) for e in as_v1]
    read = [codec.decode(LINEAGE, data) for data in old]
    assert [e["source_service"] for e in read] == ["", ""]
    assert [codec.decode(LINEAGE, codec.encode(LINEAGE, e))["source_service"] for e in edges] == ["matching", "crm"]

    sink = ClickHouseSink(chdb_dsn, database)
    sink.add_all(("recipients", spec.event().record) for spec in (CLOUDNEST, POSTWAVE))
    sink.add_all(("lineage", e) for e in read)
    sink.flush()
    flows = processing_flows(sink.reader)
    assert [(f.purpose, f.source, f.counts.edges) for f in flows] == [("contract_introductions", "disclosure", 2)]
    assert fold(read, processor.registry) == flows
    assert [e["job"]["name"] for e in _dicts(flows)] == ["processing.contract_introductions.disclosure"] * 2
