"""What an auditor checks in a database: every subject's ledger chain, and where two databases differ.

Chains: the ledger table is read in (subject, sequence) order, one subject at a
time, and each subject's entries go through ``ledger.verify_chain``, which
recomputes the SHA-256 chain over the canonical encoding of each entry (Kafka
coordinates left out) and names the first altered, removed, inserted or
reordered entry [6]. An entry whose hashes were recomputed by whoever altered
it passes the chain; comparing with a replay of the input topics
(``first_difference``) catches that too.

Comparison: the per-table digests (``sinks.digest``) say which tables differ;
within the first one that does, the rows' keys and row hashes (over the same
columns as the digest) find the first key, in key order, whose rows differ or
exist on one side only. Only hashes cross the wire until that key is found.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from consentflow.core.ledger import HASHED_FIELDS, verify_chain
from consentflow.sinks.clickhouse import SinkUnavailable, check_database_name, connect
from consentflow.sinks.digest import compared_columns, compared_values, row_hash_sql, stored_columns, table_digests
from consentflow.sinks.reader import TableReader
from consentflow.sinks.reading import utc
from consentflow.sinks.tables import LEDGER, TABLES, Table

_LEDGER_COLUMNS = (*HASHED_FIELDS, "entry_hash")


def stored_rows(dsn: str, database: str) -> dict[str, int]:
    """Rows per table in ``database`` (tables only, views left out); empty when the database does not exist.

    Raises ``SinkUnavailable`` when ClickHouse does not answer: no retries, someone is waiting.
    """
    name = check_database_name(database)
    try:
        rows = (
            connect(dsn)
            .query(
                "SELECT name, total_rows FROM system.tables WHERE database = {database:String} AND total_rows IS NOT NULL",
                parameters={"database": name},
            )
            .result_rows
        )
    except Exception as exc:  # whatever the driver raises, the answer is that ClickHouse is not there
        raise SinkUnavailable.reaching(dsn, exc) from exc
    return {str(table): int(count) for table, count in rows}


def first_filled_table(dsn: str, database: str) -> tuple[str, int] | None:
    """The first table (by name) of ``database`` that holds rows, with how many; None for a fresh database.

    A replay writes only into a fresh one: rows already there would mix with what it rebuilds.
    """
    return next(((table, rows) for table, rows in sorted(stored_rows(dsn, database).items()) if rows), None)


# -- chains -----------------------------------------------------------------------------


@dataclass(frozen=True)
class BrokenChain:
    """A subject whose chain does not verify, and its first bad entry."""

    subject_id: str
    sequence: int
    event_id: str
    reason: str

    def __str__(self) -> str:
        return f"subject {self.subject_id}, entry {self.sequence} (event {self.event_id}): {self.reason}"


@dataclass
class LedgerCheck:
    """The outcome of verifying every chain of a ledger table."""

    subjects: int = 0
    entries: int = 0
    broken: list[BrokenChain] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every subject's chain verifies."""
        return not self.broken


def verify_ledger(reader: TableReader, on_progress: Callable[[int], None] | None = None) -> LedgerCheck:
    """Verify every subject's hash chain in the ledger table; ``on_progress`` sees the entries read so far."""
    check = LedgerCheck()
    columns = ", ".join(f"`{c}`" for c in _LEDGER_COLUMNS)
    sql = f"SELECT {columns} FROM {{db:Identifier}}.`{LEDGER.name}` FINAL ORDER BY {', '.join(LEDGER.sorting_key)}"
    subject: str | None = None
    entries: list[dict[str, Any]] = []
    with reader.blocks(sql) as stream:  # a subject at a time, never the whole ledger
        for block in stream:
            for row in block:
                entry = dict(zip(_LEDGER_COLUMNS, row, strict=True))
                entry["occurred_at"] = utc(entry["occurred_at"])  # the hash covers the UTC instant
                if entry["subject_id"] != subject:
                    _verify_subject(entries, check)
                    subject, entries = entry["subject_id"], []
                entries.append(entry)
            if on_progress is not None:
                on_progress(check.entries + len(entries))
    _verify_subject(entries, check)
    return check


def _verify_subject(entries: list[dict[str, Any]], check: LedgerCheck) -> None:
    if not entries:
        return
    check.subjects += 1
    check.entries += len(entries)
    verdict = verify_chain(entries)
    if not verdict.ok and verdict.first_bad is not None:
        bad = entries[verdict.first_bad]
        check.broken.append(BrokenChain(bad["subject_id"], int(bad["sequence"]), str(bad["event_id"]), verdict.reason))


# -- comparison ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    """The first difference between two databases: the table, the key, and the row on each side (None: absent)."""

    table: str
    key: dict[str, Any]
    left: dict[str, Any] | None
    right: dict[str, Any] | None
    left_rows: int
    right_rows: int

    @property
    def differing_columns(self) -> list[str]:
        """Columns whose values differ, when the key is on both sides."""
        if self.left is None or self.right is None:
            return []
        return [c for c in self.left if self.left[c] != self.right.get(c)]

    def __str__(self) -> str:
        key = ", ".join(f"{k}={shown(v)}" for k, v in self.key.items()) or "?"
        if self.left is None and self.right is None:
            return f"table {self.table}: digests differ ({self.left_rows} vs {self.right_rows} rows) but no row does"
        if self.left is None:
            return f"table {self.table}, key ({key}): only in the second database"
        if self.right is None:
            return f"table {self.table}, key ({key}): only in the first database"
        changed = "; ".join(f"{c}: {shown(self.left[c])} vs {shown(self.right.get(c))}" for c in self.differing_columns)
        return f"table {self.table}, key ({key}): {changed}"


def shown(value: Any) -> str:
    """A value as an auditor reads it: instants in ISO 8601 (UTC), everything else as Python writes it."""
    if isinstance(value, datetime):
        return utc(value).isoformat()
    return repr(value)


def key_columns(table: Table) -> list[str]:
    """The table's sort key, without the columns a replay need not reproduce (Kafka coordinates)."""
    compared = set(compared_columns(table))
    return [name for name in table.sorting_key if name in compared]


def first_difference(left: TableReader, right: TableReader, tables: Iterable[Table] = TABLES) -> Difference | None:
    """The first difference between the two databases, table by table in ``tables`` order; None when equal."""
    left_digests, right_digests = table_digests(left), table_digests(right)
    for table in tables:
        if left_digests[table.name] != right_digests[table.name]:
            return _first_row_difference(left, right, table, left_digests[table.name][0], right_digests[table.name][0])
    return None


def _first_row_difference(left: TableReader, right: TableReader, table: Table, left_rows: int, right_rows: int) -> Difference:
    keys = key_columns(table)
    selected = ", ".join(f"`{c}`" for c in keys)

    def rows(reader: TableReader) -> Counter[tuple[Any, ...]]:
        hashed = row_hash_sql(table, stored_columns(reader, table))
        return Counter(
            reader.query(f"SELECT {selected}, {hashed} FROM {{db:Identifier}}.`{table.name}` FINAL{table.counted_rows}")
        )

    on_left, on_right = rows(left), rows(right)
    only_left, only_right = on_left - on_right, on_right - on_left
    differing = sorted(set(only_left) | set(only_right))  # (key..., row hash): key order first
    if not differing:
        return Difference(table.name, {}, None, None, left_rows, right_rows)
    key = differing[0][:-1]
    left_hash = next((row[-1] for row in sorted(only_left) if row[:-1] == key), None)
    right_hash = next((row[-1] for row in sorted(only_right) if row[:-1] == key), None)
    return Difference(
        table.name,
        dict(zip(keys, key, strict=True)),
        _row(left, table, left_hash),
        _row(right, table, right_hash),
        left_rows,
        right_rows,
    )


def _row(reader: TableReader, table: Table, row_hash: int | None) -> dict[str, Any] | None:
    """The compared columns of the row with this row hash, or None."""
    if row_hash is None:
        return None
    names = compared_columns(table)
    present = stored_columns(reader, table)
    columns = ", ".join(compared_values(table, present))
    where = table.counted_rows
    condition = f"{row_hash_sql(table, present)} = {{row_hash:UInt64}}"
    where = f"{where} AND {condition}" if where else f" WHERE {condition}"
    rows = reader.query(f"SELECT {columns} FROM {{db:Identifier}}.`{table.name}` FINAL{where} LIMIT 1", {"row_hash": row_hash})
    return dict(zip(names, rows[0], strict=True)) if rows else None
