"""OpenLineage's own JSON Schemas (vendored in tests/data/openlineage) and consentflow's facet schemas, as one
validator: an event against the spec's ``RunEvent``, then each facet against the schema its ``_schemaURL`` names."""

from __future__ import annotations

import json
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

from consentflow.openlineage.facets import SCHEMAS
from tests.support.paths import DATA

SPEC = DATA / "openlineage"
RUN_EVENT = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"


def registry() -> Registry:
    """Every schema by its ``$id``: the spec, the two standard facets the export uses, consentflow's four."""
    paths = [SPEC / "OpenLineage.json", SPEC / "JobTypeJobFacet.json", SPEC / "DocumentationJobFacet.json"]
    paths += sorted(SCHEMAS.glob("*.schema.json"))
    resources = [Resource.from_contents(json.loads(p.read_text())) for p in paths]
    return Registry().with_resources((str(r.id()), r) for r in resources)


def errors(schema_url: str, instance: Any, schemas: Registry) -> list[str]:
    """What ``instance`` breaks of the definition at ``schema_url`` (a ``$id`` with its JSON pointer)."""
    validator = Draft202012Validator({"$ref": schema_url}, registry=schemas, format_checker=FormatChecker())
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(instance)]


def facets(event: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every facet of a run event, with where it sits."""
    found = [(f"job.{k}", v) for k, v in event["job"].get("facets", {}).items()]
    found += [(f"run.{k}", v) for k, v in event["run"].get("facets", {}).items()]
    for side in ("inputs", "outputs"):
        for d in event.get(side, []):
            found += [(f"{side}.{d['name']}.{k}", v) for k, v in d.get("facets", {}).items()]
    return found


def event_errors(event: dict[str, Any], schemas: Registry) -> list[str]:
    """What a run event breaks of OpenLineage's ``RunEvent`` and of each of its facets' schemas."""
    found = errors(RUN_EVENT, event, schemas)
    for where, facet in facets(event):
        found += [f"{where}: {e}" for e in errors(facet["_schemaURL"], facet, schemas)]
    return found
