"""``consentflow/contracts/records.py`` is what its generator writes from ``schemas/`` now, and its TypedDicts say what
records really hold: every release decoded by the codec, and every output the processors emit over a generated year.

The types are checked against the values themselves (``_conforms``), from the annotations read back by ``typing``,
not from the generator's own mapping.
"""

from __future__ import annotations

import random
import types
from datetime import UTC, datetime
from typing import Any, Union, get_args, get_origin, get_type_hints, is_typeddict

import pytest

from consentflow.contracts import records
from consentflow.contracts.codec import SingleObjectCodec, read_body, write_body
from consentflow.contracts.dead_letters import dead_letter
from consentflow.contracts.records_gen import RECORDS_PATH, render
from consentflow.contracts.releases import Contract, default_store
from consentflow.contracts.topics import topic_for_record, topic_named
from consentflow.core.processor import Processor
from consentflow.generator.simulation import GeneratorConfig, Simulation
from tests.support.samples import incident_event, sample_record

STORE = default_store()


def _conforms(value: Any, annotation: Any) -> str | None:
    """Why ``value`` is not of type ``annotation`` (None when it is)."""
    origin = get_origin(annotation)
    if annotation is type(None):
        return None if value is None else f"{value!r} is not None"
    if origin in (Union, types.UnionType):
        reasons = [_conforms(value, branch) for branch in get_args(annotation)]
        return None if None in reasons else " and ".join(r for r in reasons if r)
    if origin is list:
        if type(value) is not list:
            return f"{value!r} is not a list"
        return next((r for r in (_conforms(item, get_args(annotation)[0]) for item in value) if r), None)
    if is_typeddict(annotation):
        if type(value) is not dict:
            return f"{value!r} is not a dict"
        if set(value) != annotation.__required_keys__:
            return f"keys {sorted(value)} are not {annotation.__name__}'s {sorted(annotation.__required_keys__)}"
        hints = get_type_hints(annotation)
        return next((f"{name}: {r}" for name in hints if (r := _conforms(value[name], hints[name]))), None)
    if annotation is datetime:
        return None if isinstance(value, datetime) and value.utcoffset() is not None else f"{value!r} is not a UTC instant"
    if annotation in (int, bool):
        return None if type(value) is annotation else f"{value!r} is not {annotation.__name__}"
    return None if isinstance(value, annotation) else f"{value!r} is not {annotation.__name__}"


def _typed_dict(record_name: str) -> Any:
    return getattr(records, record_name)


def test_records_py_is_what_the_generator_writes_now() -> None:
    assert RECORDS_PATH.read_text(encoding="utf-8") == render(), "records.py is stale: run `make records`"


def test_every_record_has_a_typed_dict_and_a_topic_union() -> None:
    assert sorted(n for n in records.__all__ if is_typeddict(getattr(records, n))) == sorted(
        {*STORE.names(), "SourceCoordinates", "MechanismPeriod", "PlannedRetention"}
    )
    assert {t.__name__ for t in get_args(records.InputRecord)} | {t.__name__ for t in get_args(records.OutputRecord)} == set(
        STORE.names()
    )


@pytest.mark.parametrize("contract", STORE.all(), ids=lambda c: f"{c.name}-v{c.version}")
def test_a_record_of_every_release_decodes_into_its_typed_dict(contract: Contract) -> None:
    topic = topic_for_record(contract.name)
    reader = STORE.latest(contract.name)
    rng = random.Random(f"records {contract.name} {contract.version}")
    for _ in range(50):
        body = write_body(topic, contract, sample_record(contract.schema, rng))
        decoded = read_body(topic, contract, reader, body)
        assert _conforms(decoded, _typed_dict(contract.name)) is None, decoded


def test_a_generated_years_events_decoded_and_outputs_emitted_hold_their_typed_dicts() -> None:
    codec, processor = SingleObjectCodec(), Processor()
    checked: dict[str, int] = {}

    def check(made: list[tuple[str, Any]]) -> None:
        for name, record in made:
            assert _conforms(record, _typed_dict(name)) is None, (name, record)
            checked[name] = checked.get(name, 0) + 1

    for event in Simulation(GeneratorConfig(subjects=60, days=365, seed=11, violation_share=0.05)).events():
        decoded = codec.decode(event.topic, codec.encode(event.topic, event.record))
        check([(event.topic.record, decoded), *_named(processor.process(event.topic.short_name, decoded))])
    check(_named(processor.tick(datetime(2040, 1, 1, tzinfo=UTC))))
    check([("DeadLetter", dead_letter("consent", "a reason", ValueError(), partition=1, offset=2, key=b"k", value=None))])
    incident = incident_event()  # the DPO's, not the generator's (issue 24)
    check([("IncidentEvent", codec.decode(incident.topic, codec.encode(incident.topic, incident.record)))])
    assert set(checked) == set(STORE.names()), checked


def _named(changes: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """Output records with their record names, as the topics name them."""
    return [(topic_named(topic).record, record) for topic, record in changes]


def test_the_conformance_check_refuses_a_wrong_value() -> None:
    edge = next(r for t, r in _some_outputs() if t == "lineage")
    assert _conforms(edge, records.LineageEdge) is None
    assert _conforms({**edge, "occurred_at": 0}, records.LineageEdge) is not None  # micros, not the datetime decoded
    assert _conforms({**edge, "categories": ("identity",)}, records.LineageEdge) is not None
    assert _conforms({k: v for k, v in edge.items() if k != "source"}, records.LineageEdge) is not None


def _some_outputs() -> list[tuple[str, Any]]:
    processor = Processor()
    out: list[tuple[str, Any]] = []
    for event in Simulation(GeneratorConfig(subjects=20, days=120, seed=2, violation_share=0.05)).events():
        out += processor.process(event.topic.short_name, event.record).records
    return out
