"""One digest per table: what an auditor compares between two databases.

A digest is the row count and an order-independent XOR of row hashes, read with
``FINAL`` (so redelivered rows count once) over the columns that a replay must
reproduce: Kafka coordinates (only Kafka runs have them), revisions (how much
was known when) and wall-clock failure times are left out. Violations and
retention actions count only the records in force (``active``).
"""

from __future__ import annotations

from consentflow.sinks.reader import TableReader
from consentflow.sinks.tables import SOURCE_COLUMNS, TABLES, Table

#: Columns a replay need not reproduce.
EXCLUDED = SOURCE_COLUMNS | {"revision", "failed_at", "partition", "offset"}


def compared_columns(table: Table) -> list[str]:
    """The columns of ``table`` that a replay must reproduce, in table order."""
    return [c for c in table.column_names if c not in EXCLUDED]


def table_digests(reader: TableReader) -> dict[str, tuple[int, str]]:
    """``{table: (rows, hex digest)}`` for every table."""
    out = {}
    for table in TABLES:
        columns = ", ".join(f"`{c}`" for c in compared_columns(table))
        where = table.counted_rows
        count, digest = reader.query(
            f"SELECT count(), groupBitXor(cityHash64(tuple({columns}))) FROM {{db:Identifier}}.`{table.name}` FINAL{where}"
        )[0]
        out[table.name] = (int(count), f"{int(digest):016x}")
    return out
