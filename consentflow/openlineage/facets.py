"""consentflow's custom OpenLineage facets, each with its JSON Schema under ``schemas/openlineage/`` [3, 4, 7].

A facet names its schema in ``_schemaURL`` (``urn:consentflow:schema:openlineage:<Facet>:v1``, the schema's ``$id``,
as the project's other JSON Schemas are named); the fields are camelCase as OpenLineage's own facets are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attr
from openlineage.client.generated.base import DatasetFacet, JobFacet

import consentflow

#: Where the facets' JSON Schemas are, one ``<Facet>.schema.json`` each.
SCHEMAS = Path(consentflow.__file__).resolve().parent / "schemas" / "openlineage"


def schema_url(name: str) -> str:
    """The ``_schemaURL`` of facet ``name``: its schema's ``$id`` and the pointer to its definition."""
    return f"urn:consentflow:schema:openlineage:{name}:v1#/$defs/{name}"


@attr.define(kw_only=True)
class ProcessingJobFacet(JobFacet):
    """A purpose over the events of one source service, its legal bases and how many subjects it concerned [3, 5, 6]."""

    purpose: str
    policySections: str
    source: str
    legalBases: list[str]
    subjects: int
    edges: int
    first: str
    last: str

    @staticmethod
    def _get_schema() -> str:
        return schema_url("ProcessingJobFacet")


@attr.define(kw_only=True)
class CategoryDatasetFacet(DatasetFacet):
    """A data category as a processing's input: subjects and edges [2.1, 2.2]."""

    category: str
    subjects: int
    edges: int
    first: str
    last: str

    @staticmethod
    def _get_schema() -> str:
        return schema_url("CategoryDatasetFacet")


@attr.define(kw_only=True)
class RecipientDatasetFacet(DatasetFacet):
    """A recipient as a processing's output: kind, registered name, categories received, subjects [4]."""

    recipientId: str
    recipientKind: str
    legalName: str | None
    categories: list[str]
    subjects: int
    edges: int
    first: str
    last: str

    @staticmethod
    def _get_schema() -> str:
        return schema_url("RecipientDatasetFacet")


@attr.define(kw_only=True)
class TransfersDatasetFacet(DatasetFacet):
    """Countries and transfer mechanisms of the data a recipient received, with the mechanisms' periods [7]."""

    transfers: list[dict[str, Any]]

    @staticmethod
    def _get_schema() -> str:
        return schema_url("TransfersDatasetFacet")
