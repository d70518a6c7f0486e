"""One digest per table: what an auditor compares between two databases.

A digest is the row count and an order-independent XOR of row hashes, read with
``FINAL`` (so redelivered rows count once) over the columns that a replay must
reproduce: Kafka coordinates (only Kafka runs have them), revisions (how much
was known when) and wall-clock failure times are left out. Violations and
retention actions count only the records in force (``active``). A column a
later release added (``Table.added``) enters a row's hash only when it differs
from its default: a row an older release wrote hashes as it did then, so a
digest taken before the release still compares, and a table made before it that
no writer has altered yet (a reader runs no DDL) reads as if it had been.
"""

from __future__ import annotations

from collections.abc import Collection

from consentflow.sinks.reader import TableReader
from consentflow.sinks.tables import SOURCE_COLUMNS, TABLES, Table

#: Columns a replay need not reproduce.
EXCLUDED = SOURCE_COLUMNS | {"revision", "failed_at", "partition", "offset"}


def compared_columns(table: Table) -> list[str]:
    """The columns of ``table`` that a replay must reproduce, in table order."""
    return [c for c in table.column_names if c not in EXCLUDED]


def compared_values(table: Table, present: Collection[str] | None = None) -> list[str]:
    """The SQL of each compared column of ``table``, in order: the column, or, for an added column the stored table
    lacks (``present``: the columns it has; None: all), its default under its name."""
    defaults = dict(table.added)
    return [
        f"{defaults[c]} AS `{c}`" if present is not None and c in defaults and c not in present else f"`{c}`"
        for c in compared_columns(table)
    ]


def row_hash_sql(table: Table, present: Collection[str] | None = None) -> str:
    """The SQL hash of one row of ``table`` over its compared columns (``compared_values``); a row whose added columns
    hold their defaults hashes without them, as the release before them hashed it."""
    values = compared_values(table, present)
    if not table.added:
        return f"cityHash64(tuple({', '.join(values)}))"
    added = {name for name, _ in table.added}
    older = [v for c, v in zip(compared_columns(table), values, strict=True) if c not in added]
    if present is not None and not added & set(present):
        return f"cityHash64(tuple({', '.join(older)}))"
    defaults = " AND ".join(f"`{name}` = {default}" for name, default in table.added)
    return f"if({defaults}, cityHash64(tuple({', '.join(older)})), cityHash64(tuple({', '.join(values)})))"


def stored_columns(reader: TableReader, table: Table) -> frozenset[str] | None:
    """The columns the stored ``table`` has when it may lack some (a table with added columns), else None (all)."""
    return reader.columns(table.name) if table.added else None


def table_digests(reader: TableReader) -> dict[str, tuple[int, str]]:
    """``{table: (rows, hex digest)}`` for every table."""
    out = {}
    for table in TABLES:
        where = table.counted_rows
        count, digest = reader.query(
            f"SELECT count(), groupBitXor({row_hash_sql(table, stored_columns(reader, table))}) FROM {{db:Identifier}}.`{table.name}` FINAL{where}"
        )[0]
        out[table.name] = (int(count), f"{int(digest):016x}")
    return out
