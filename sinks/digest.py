"""One digest per table: what an auditor compares between two databases.

A digest is the row count and an order-independent XOR of row hashes, read with
``FINAL`` (so redelivered rows count once) over the columns that a replay must
reproduce: Kafka coordinates (only Kafka runs have them), revisions (how much
was known when) and wall-clock failure times are left out. Violations and
retention actions count only the records in force (``active``). A column a
later release added (``Table.added``) enters a row's hash only when it differs
from its default: a row an older release wrote hashes as it did then, so a
digest taken before the release still compares.
"""

from __future__ import annotations

from consentflow.sinks.reader import TableReader
from consentflow.sinks.tables import SOURCE_COLUMNS, TABLES, Table

#: Columns a replay need not reproduce.
EXCLUDED = SOURCE_COLUMNS | {"revision", "failed_at", "partition", "offset"}


def compared_columns(table: Table) -> list[str]:
    """The columns of ``table`` that a replay must reproduce, in table order."""
    return [c for c in table.column_names if c not in EXCLUDED]


def row_hash_sql(table: Table) -> str:
    """The SQL hash of one row of ``table`` over its compared columns; a row whose added columns hold their defaults
    hashes without them, as the release before them hashed it."""
    added = dict(table.added)
    columns = [f"`{c}`" for c in compared_columns(table)]
    if not added:
        return f"cityHash64(tuple({', '.join(columns)}))"
    older = [c for c in columns if c.strip("`") not in added]
    defaults = " AND ".join(f"`{name}` = {default}" for name, default in table.added)
    return f"if({defaults}, cityHash64(tuple({', '.join(older)})), cityHash64(tuple({', '.join(columns)})))"


def table_digests(reader: TableReader) -> dict[str, tuple[int, str]]:
    """``{table: (rows, hex digest)}`` for every table."""
    out = {}
    for table in TABLES:
        where = table.counted_rows
        count, digest = reader.query(
            f"SELECT count(), groupBitXor({row_hash_sql(table)}) FROM {{db:Identifier}}.`{table.name}` FINAL{where}"
        )[0]
        out[table.name] = (int(count), f"{int(digest):016x}")
    return out
