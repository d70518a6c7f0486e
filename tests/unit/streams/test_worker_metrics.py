"""The worker's tally on the processor's real outputs: per kind, per verdict (rule, outcome), per retention action and
per dead letter reason, as the counters read once the tally is added; the tally starts again from nothing."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from consentflow.contracts.eventfile import read_events
from consentflow.core.processor import Processor
from consentflow.generator import GeneratorConfig, generate
from consentflow.runtime.metrics import WorkerMetrics
from consentflow.streams.worker_metrics import OutputTally


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, Any]]:
    out = tmp_path_factory.mktemp("tally") / "events.avro"
    generate(GeneratorConfig(subjects=80, days=400, seed=3, violation_share=0.1), out, None)
    processor = Processor()
    records = [(kind, r) for topic, record in read_events(out) for kind, r in processor.process(topic.short_name, record)]
    latest = max(r["occurred_at"] for kind, r in records if kind == "lineage")
    return records + list(processor.tick(latest + timedelta(days=3 * 366)).records)  # archives fall due [2.3]


def test_the_counters_hold_what_the_batches_wrote(outputs: list[tuple[str, Any]]) -> None:
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    tally = OutputTally()
    half = len(outputs) // 2
    for batch in (outputs[:half], outputs[half:]):  # two batches, added one after the other
        for kind, record in batch:
            tally.written(kind, record)
        tally.taken("consent", 7)
        tally.add_to(metrics)
    kinds = Counter(kind for kind, _ in outputs)
    verdicts = Counter((r["rule"], "violation" if r["active"] else "compliant") for k, r in outputs if k == "violations")
    assert {"violation", "compliant"} <= {outcome for _, outcome in verdicts}
    assert kinds["retention"] > 0
    for kind, count in kinds.items():
        assert registry.get_sample_value("consentflow_outputs_total", {"kind": kind}) == count
    for (rule, outcome), count in verdicts.items():
        assert registry.get_sample_value("consentflow_verdicts_total", {"rule": str(rule), "outcome": outcome}) == count
    assert registry.get_sample_value("consentflow_events_in_total", {"topic": "consent"}) == 14
    assert not tally.kinds and not tally.verdicts and not tally.events_in  # added once, not again


def test_retention_actions_and_dead_letters_by_kind_and_reason() -> None:
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    tally = OutputTally()
    tally.written("retention", {"action": "archive", "active": True})
    tally.written("retention", {"action": "archive", "active": False})
    tally.written("retention", {"action": "erase", "active": True})
    tally.written("dead-letter", {"error_type": "EdgeCheckFailed"})
    tally.add_to(metrics)
    value = registry.get_sample_value
    assert value("consentflow_retention_actions_total", {"action": "archive", "outcome": "issued"}) == 1
    assert value("consentflow_retention_actions_total", {"action": "archive", "outcome": "retracted"}) == 1
    assert value("consentflow_retention_actions_total", {"action": "erase", "outcome": "issued"}) == 1
    assert value("consentflow_dead_letters_total", {"reason": "EdgeCheckFailed"}) == 1
    assert value("consentflow_outputs_total", {"kind": "retention"}) == 3
