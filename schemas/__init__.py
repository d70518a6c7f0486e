"""Avro contracts."""
