"""Processing flows as OpenLineage run events: pure, no I/O, the same flows give the same events [3, 4, 7].

At the level a catalog wants: a job per processing, a purpose of one source service (``processing.<purpose>.<source>``,
the source the service, or the source kind for edges written as LineageEdge v1), an input dataset per data
category it used (``category.<category>``), an output dataset per recipient (``recipient.<recipient id>``). Each run
is a START at the first edge's event time and a COMPLETE at the last's, both naming the datasets. The run id is a
UUIDv7 at the first edge's time whose other bits hash the run's content (openlineage-python's
``generate_static_uuid``): a replay of the same topics emits the same events. Counts of subjects, never their ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from uuid import UUID

from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import documentation_job, job_type_job
from openlineage.client.serde import Serde
from openlineage.client.uuid import generate_static_uuid

from consentflow.core.recipients import FRAMING_MECHANISMS
from consentflow.openlineage.facets import (
    CategoryDatasetFacet,
    ProcessingJobFacet,
    RecipientDatasetFacet,
    TransfersDatasetFacet,
)
from consentflow.policy.geography import in_eea
from consentflow.policy.vocabulary import Purpose
from consentflow.sinks.lineage_flows import Counts, ProcessingFlow, RecipientFlow, TransferFlow
from consentflow.sinks.record_of_processing import PURPOSE_SECTIONS

#: The job and dataset namespace when none is given.
DEFAULT_NAMESPACE = "consentflow"
#: The events' ``producer`` (a URI, as the spec asks): the project, not a process, so replays match.
PRODUCER = "urn:consentflow:openlineage-export"
_FRAMING = frozenset(m.value for m in FRAMING_MECHANISMS)


def _time(t: datetime) -> str:
    return t.isoformat()


def _counted(counts: Counts) -> dict[str, int | str]:
    return {"subjects": counts.subjects, "edges": counts.edges, "first": _time(counts.first), "last": _time(counts.last)}


def _sections(purpose: str) -> str:
    try:
        return PURPOSE_SECTIONS[Purpose(purpose)]
    except ValueError:  # a purpose the vocabulary does not know: the edge keeps it, the policy has no section
        return ""


def _transfer(t: TransferFlow) -> dict[str, object]:
    inside = bool(t.country) and in_eea(t.country)
    validity: list[dict[str, str]] = []
    for window in t.validity:
        period = {"validFrom": _time(window.valid_from)}
        if window.valid_until is not None:
            period["validUntil"] = _time(window.valid_until)
        validity.append(period)
    return {
        "country": t.country,
        "inEea": inside,
        "mechanism": t.mechanism,
        "framed": inside or t.mechanism in _FRAMING,
        "validity": validity,
        **_counted(t.counts),
    }


def _output(namespace: str, r: RecipientFlow) -> OutputDataset:
    recipient = RecipientDatasetFacet(
        producer=PRODUCER,
        recipientId=r.recipient_id,
        recipientKind=r.recipient_kind,
        legalName=r.legal_name,
        categories=list(r.categories),
        **_counted(r.counts),  # type: ignore[arg-type]
    )
    transfers = TransfersDatasetFacet(producer=PRODUCER, transfers=[_transfer(t) for t in r.transfers])
    return OutputDataset(
        namespace,
        f"recipient.{r.recipient_id}",
        facets={"consentflow_recipient": recipient, "consentflow_transfers": transfers},
    )


def job_name(flow: ProcessingFlow) -> str:
    """The catalog's name of the processing: ``processing.<purpose>.<source>`` (the source service, or kind for v1 edges)."""
    return f"processing.{flow.purpose}.{flow.source}"


def _job(namespace: str, flow: ProcessingFlow) -> Job:
    sections = _sections(flow.purpose)
    where = f" (privacy policy [{sections}])" if sections else ""
    return Job(
        namespace,
        job_name(flow),
        facets={
            "jobType": job_type_job.JobTypeJobFacet(
                producer=PRODUCER, processingType="BATCH", integration="CONSENTFLOW", jobType="PROCESSING"
            ),
            "documentation": documentation_job.DocumentationJobFacet(
                producer=PRODUCER,
                description=f"Personal data processed for {flow.purpose}{where}, as events from {flow.source} show it; "
                "observed by consentflow's lineage.",
            ),
            "consentflow_processing": ProcessingJobFacet(
                producer=PRODUCER,
                purpose=flow.purpose,
                policySections=sections,
                source=flow.source,
                legalBases=list(flow.legal_bases),
                **_counted(flow.counts),  # type: ignore[arg-type]
            ),
        },
    )


def run_events(flow: ProcessingFlow, namespace: str = DEFAULT_NAMESPACE) -> tuple[RunEvent, RunEvent]:
    """The processing's run: its START (at the first edge) and COMPLETE (at the last), with the same datasets."""
    job = _job(namespace, flow)
    inputs = [
        InputDataset(
            namespace,
            f"category.{c.category}",
            facets={"consentflow_category": CategoryDatasetFacet(producer=PRODUCER, category=c.category, **_counted(c.counts))},  # type: ignore[arg-type]
        )
        for c in flow.categories
    ]
    outputs = [_output(namespace, r) for r in flow.recipients]
    # The run's content, sorted keys, without the run id it decides.
    content = Serde.to_json(
        RunEvent(
            eventTime=_time(flow.counts.first),
            run=Run(runId=str(UUID(int=0))),
            job=job,
            inputs=inputs,
            outputs=outputs,
            producer=PRODUCER,
        )
    )
    run = Run(runId=str(generate_static_uuid(flow.counts.first, content.encode())))
    return tuple(  # type: ignore[return-value]
        RunEvent(
            eventType=state,
            eventTime=_time(at),
            run=run,
            job=job,
            inputs=inputs,
            outputs=outputs,
            producer=PRODUCER,
        )
        for state, at in ((RunState.START, flow.counts.first), (RunState.COMPLETE, flow.counts.last))
    )


def lineage_events(flows: Iterable[ProcessingFlow], namespace: str = DEFAULT_NAMESPACE) -> Iterator[RunEvent]:
    """Every processing's START and COMPLETE, in the flows' order."""
    for flow in flows:
        yield from run_events(flow, namespace)
