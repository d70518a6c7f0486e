"""The observed lineage as OpenLineage run events, for a data catalog (Marquez, DataHub, OpenMetadata)."""
