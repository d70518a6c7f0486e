"""The realistic event generator shared by the demo, the tests and the benchmarks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from consentflow.contracts.eventfile import write_events
from consentflow.contracts.events import Event
from consentflow.generator.simulation import GeneratorConfig, Simulation, Stats, TruthRecord

__all__ = ["GeneratorConfig", "Simulation", "Stats", "TruthRecord", "generate"]


def generate(config: GeneratorConfig, out: str | Path, truth: str | Path | None) -> Stats:
    """Write the events of ``config`` to the container file ``out`` and the injected violations to ``truth``.

    Events stream from the simulation into the file as they are made; the
    ground truth is written as JSON lines, one per injected violation.
    """
    sim = Simulation(config)
    truth_file: IO[str] | None = open(truth, "w", encoding="utf-8") if truth is not None else None  # noqa: SIM115

    def drained() -> Iterator[Event]:
        for event in sim.events():
            if sim.truth:
                if truth_file is not None:
                    for record in sim.truth:
                        truth_file.write(json.dumps(record.as_json(), sort_keys=True) + "\n")
                sim.truth.clear()
            yield event

    try:
        metadata = {
            "consentflow.generator": json.dumps(
                {
                    "subjects": config.subjects,
                    "days": config.days,
                    "seed": config.seed,
                    "start": config.start.isoformat(),
                    "violation_share": config.violation_share,
                },
                sort_keys=True,
            )
        }
        write_events(out, drained(), sync_marker=sim.sync_marker(), metadata=metadata)
    finally:
        if truth_file is not None:
            truth_file.close()
    return sim.stats
