"""The ClickHouse tables the pipeline fills, and how an output record becomes a row.

Every table is a ReplacingMergeTree keyed by the record's deterministic id, so a
redelivered batch (at-least-once) leaves query results unchanged once read
with ``FINAL``. Sort keys follow the DPO's questions: by subject for
who-has / consent / DSAR, by recipient and time for breach impact [12] (a
materialised copy of the lineage edges), and lineage carries the country for
transfer reports [7]. Source coordinates (topic, partition, offset) are plain
columns outside every key: only Kafka runs have them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

Row = list[Any]


@dataclass(frozen=True)
class Table:
    """A table: its columns (name, ClickHouse type), engine clause, and how a record becomes a row."""

    name: str
    topic: str  # output topic short name whose records fill it
    columns: tuple[tuple[str, str], ...]
    engine: str
    to_row: Callable[[Mapping[str, Any]], Row]

    @property
    def column_names(self) -> list[str]:
        """Column names in order."""
        return [name for name, _ in self.columns]

    @functools.cached_property
    def arrow_schema(self) -> Any:
        """The ``pyarrow.Schema`` an insert sends: this table's columns in order, each as its Arrow type.

        pyarrow builds the columns from Python values in C++, where clickhouse-connect's Native
        writer loops in Python (the sink's slowest part); ClickHouse casts each on insert to the
        DDL's type (``LowCardinality``, ``DateTime64``), which stays the stored type.
        """
        import pyarrow  # imported with the first insert: readers never need it

        return pyarrow.schema([(name, arrow_type(kind)) for name, kind in self.columns])

    def to_arrow(self, rows: list[Row]) -> Any:
        """``rows`` (from ``to_row``) as a ``pyarrow.Table`` of ``arrow_schema``, column by column."""
        import pyarrow

        schema = self.arrow_schema
        columns = [pyarrow.array(list(map(itemgetter(index), rows)), type=field.type) for index, field in enumerate(schema)]
        return pyarrow.Table.from_arrays(columns, schema=schema)

    def ddl(self, database: str) -> str:
        """CREATE TABLE statement (identifiers come from this module, never from input)."""
        cols = ",\n  ".join(f"`{name}` {kind}" for name, kind in self.columns)
        return f"CREATE TABLE IF NOT EXISTS `{database}`.`{self.name}` (\n  {cols}\n) {self.engine}"


T = "DateTime64(6, 'UTC')"
LC = "LowCardinality(String)"
_LC_NULLABLE = "LowCardinality(Nullable(String))"
CATS = "Array(LowCardinality(String))"
SOURCE = (("source_topic", "Nullable(String)"), ("source_partition", "Nullable(Int32)"), ("source_offset", "Nullable(Int64)"))
SOURCE_COLUMNS = frozenset(name for name, _ in SOURCE)
# Tables the DPO reads one subject at a time (who-has, consent): a subject's rows sit in one
# granule per part, and a granule of 1,024 rows instead of 8,192 reads an eighth as much
# (bench/query_latency.py: who-has on ten million edges).
POINT_LOOKUPS = "SETTINGS index_granularity = 1024"


def arrow_type(kind: str) -> Any:
    """The Arrow type that carries values of ClickHouse type ``kind`` (the types our DDL uses)."""
    import pyarrow

    for wrapper in ("Nullable(", "LowCardinality("):  # Arrow columns are nullable; ClickHouse builds dictionaries itself
        if kind.startswith(wrapper):
            return arrow_type(kind[len(wrapper) : -1])
    if kind.startswith("Array("):
        return pyarrow.list_(arrow_type(kind[len("Array(") : -1]))
    if kind == T:
        return pyarrow.timestamp("us", tz="UTC")
    scalar = {"String": pyarrow.string(), "UInt8": pyarrow.uint8(), "UInt64": pyarrow.uint64()}
    scalar.update({"Int32": pyarrow.int32(), "Int64": pyarrow.int64()})
    if kind not in scalar:
        raise ValueError(f"no Arrow type for ClickHouse type {kind!r}")
    return scalar[kind]


def _hex(data: bytes | str | None) -> str | None:
    if data is None:
        return None
    return (data.encode() if isinstance(data, str) else bytes(data)).hex()


def _source(record: Mapping[str, Any]) -> Row:
    source = record.get("source")
    if not source:
        return [None, None, None]
    return [source["topic"], source["partition"], source["offset"]]


LEDGER = Table(
    "ledger",
    "ledger",
    (
        ("subject_id", "String"),
        ("sequence", "UInt64"),
        ("event_id", "String"),
        ("occurred_at", T),
        ("purpose", LC),
        ("action", LC),
        ("channel", LC),
        ("policy_version", LC),
        ("source_service", LC),
        ("notice_id", "Nullable(String)"),
        ("previous_hash", "String"),
        ("entry_hash", "String"),
        *SOURCE,
    ),
    f"ENGINE = ReplacingMergeTree ORDER BY (subject_id, sequence) {POINT_LOOKUPS}",
    lambda r: [
        r["subject_id"],
        r["sequence"],
        r["event_id"],
        r["occurred_at"],
        r["purpose"],
        r["action"],
        r["channel"],
        r["policy_version"],
        r["source_service"],
        r["notice_id"],
        r["previous_hash"],
        r["entry_hash"],
        *_source(r),
    ],
)

_EDGE_COLUMNS = (
    ("edge_id", "String"),
    ("subject_id", "String"),
    ("recipient_id", "String"),
    ("recipient_kind", LC),
    ("categories", CATS),
    ("purpose", LC),
    ("legal_basis", LC),
    ("country", LC),
    ("transfer_mechanism", LC),
    ("occurred_at", T),
    ("source_event_id", "String"),
    ("source_kind", LC),
    *SOURCE,
)

LINEAGE = Table(
    "lineage_edges",
    "lineage",
    _EDGE_COLUMNS,
    f"ENGINE = ReplacingMergeTree ORDER BY (subject_id, occurred_at, edge_id) {POINT_LOOKUPS}",
    lambda r: [
        r["edge_id"],
        r["subject_id"],
        r["recipient_id"],
        r["recipient_kind"],
        r["categories"],
        r["purpose"],
        r["legal_basis"],
        r["country"],
        r["transfer_mechanism"],
        r["occurred_at"],
        r["source_event_id"],
        r["source_kind"],
        *_source(r),
    ],
)

VIOLATIONS = Table(
    "violations",
    "violations",
    (
        ("violation_id", "String"),
        ("rule", LC),
        ("policy_section", LC),
        ("subject_id", "String"),
        ("occurred_at", T),
        ("evidence_event_ids", "Array(String)"),
        ("recipient_id", "Nullable(String)"),
        ("purpose", "Nullable(String)"),
        ("categories", CATS),
        ("detail", "String"),
        ("active", "UInt8"),
        ("revision", "UInt64"),
    ),
    # The highest revision of a violation id is its verdict [processor: late facts].
    "ENGINE = ReplacingMergeTree(revision) ORDER BY (subject_id, violation_id)",
    lambda r: [
        r["violation_id"],
        r["rule"],
        r["policy_section"],
        r["subject_id"],
        r["occurred_at"],
        r["evidence_event_ids"],
        r["recipient_id"],
        r["purpose"],
        r["categories"],
        r["detail"],
        1 if r["active"] else 0,
        r["revision"],
    ],
)

RETENTION = Table(
    "retention_actions",
    "retention",
    (
        ("action_id", "String"),
        ("subject_id", "String"),
        ("action", LC),
        ("categories", CATS),
        ("due_at", T),
        ("policy_section", LC),
        ("basis_event_id", "Nullable(String)"),
        ("reason", "String"),
    ),
    "ENGINE = ReplacingMergeTree ORDER BY (subject_id, action_id)",
    lambda r: [
        r["action_id"],
        r["subject_id"],
        r["action"],
        r["categories"],
        r["due_at"],
        r["policy_section"],
        r["basis_event_id"],
        r["reason"],
    ],
)

ERASURE_NOTICES = Table(
    "erasure_notices",
    "erasure-notices",
    (
        ("notice_id", "String"),
        ("subject_id", "String"),
        ("recipient_id", "String"),
        ("categories", CATS),
        ("retained_categories", CATS),
        ("request_id", "String"),
        ("requested_at", T),
        ("fulfilled_at", T),
        ("revision", "UInt64"),
    ),
    "ENGINE = ReplacingMergeTree(revision) ORDER BY (subject_id, notice_id)",
    lambda r: [
        r["notice_id"],
        r["subject_id"],
        r["recipient_id"],
        r["categories"],
        r["retained_categories"],
        r["request_id"],
        r["requested_at"],
        r["fulfilled_at"],
        r["revision"],
    ],
)

HOLDINGS = Table(
    "subject_holdings",
    "holdings",
    (
        ("subject_id", "String"),
        ("revision", "UInt64"),
        ("latest_event_at", T),
        ("account_kind", _LC_NULLABLE),
        ("categories_held", CATS),
        ("registered_at", f"Nullable({T})"),
        ("last_use", f"Nullable({T})"),
        ("closed_at", f"Nullable({T})"),
        ("last_negative", f"Nullable({T})"),
        ("suspended_at", f"Nullable({T})"),
        ("archive_at", f"Nullable({T})"),
        ("archive_section", _LC_NULLABLE),
        ("archive_reason", "Nullable(String)"),
        # The planned retention actions [2.3], one array per field, in due-date order.
        ("planned_actions", "Array(LowCardinality(String))"),
        ("planned_categories", f"Array({CATS})"),
        ("planned_due_at", f"Array({T})"),
        ("planned_sections", "Array(LowCardinality(String))"),
        ("planned_reasons", "Array(String)"),
        ("planned_basis_event_ids", "Array(Nullable(String))"),
    ),
    # One row per subject: the highest revision (events known) is the record on everything known.
    "ENGINE = ReplacingMergeTree(revision) ORDER BY (subject_id)",
    lambda r: [
        r["subject_id"],
        r["revision"],
        r["latest_event_at"],
        r["account_kind"],
        r["categories_held"],
        r["registered_at"],
        r["last_use"],
        r["closed_at"],
        r["last_negative"],
        r["suspended_at"],
        r["archive_at"],
        r["archive_section"],
        r["archive_reason"],
        [a["action"] for a in r["planned"]],
        [a["categories"] for a in r["planned"]],
        [a["due_at"] for a in r["planned"]],
        [a["policy_section"] for a in r["planned"]],
        [a["reason"] for a in r["planned"]],
        [a["basis_event_id"] for a in r["planned"]],
    ],
)

RECIPIENTS = Table(
    "recipients",
    "recipients",
    (
        ("recipient_id", "String"),
        ("event_id", "String"),
        ("since", T),
        ("name", "String"),
        ("kind", LC),
        ("country", LC),
        ("mechanisms", "Array(LowCardinality(String))"),
        ("mechanism_from", f"Array({T})"),
        ("mechanism_until", f"Array(Nullable({T}))"),
        ("allowed_purposes", CATS),
        ("active", "UInt8"),
    ),
    "ENGINE = ReplacingMergeTree ORDER BY (recipient_id, since, event_id)",
    lambda r: [
        r["recipient_id"],
        r["event_id"],
        r["occurred_at"],
        r["name"],
        r["kind"],
        r["country"],
        [m["mechanism"] for m in r["transfer_mechanisms"]],
        [m["valid_from"] for m in r["transfer_mechanisms"]],
        [m["valid_until"] for m in r["transfer_mechanisms"]],
        r["allowed_purposes"],
        1 if r["active"] else 0,
    ],
)

DEAD_LETTERS = Table(
    "dead_letters",
    "dead-letter",
    (
        ("topic", "String"),
        ("partition", "Int32"),
        ("offset", "Int64"),
        ("key_hex", "Nullable(String)"),  # the original bytes, hex-encoded: exact, and readable in any client
        ("value_hex", "Nullable(String)"),
        ("reason", "String"),
        ("error_type", LC),
        ("failed_at", T),
    ),
    # One row per input message: a redelivered failure replaces itself. Embedded
    # runs have no partition (-1) and use the position in the file as offset.
    "ENGINE = ReplacingMergeTree ORDER BY (topic, partition, offset)",
    lambda r: [
        r["topic"],
        -1 if r["partition"] is None else r["partition"],
        -1 if r["offset"] is None else r["offset"],
        _hex(r["key"]),
        _hex(r["value"]),
        r["reason"],
        r["error_type"],
        r["failed_at"],
    ],
)

TABLES: tuple[Table, ...] = (LEDGER, LINEAGE, VIOLATIONS, RETENTION, ERASURE_NOTICES, HOLDINGS, RECIPIENTS, DEAD_LETTERS)
TABLE_FOR_TOPIC: dict[str, Table] = {t.topic: t for t in TABLES}

#: The breach query's copy of the lineage, sorted by recipient and time [12].
LINEAGE_BY_RECIPIENT = "lineage_by_recipient"


def extra_ddl(database: str) -> list[str]:
    """Statements beyond the tables: the by-recipient copy of the lineage and the view that fills it."""
    cols = ",\n  ".join(f"`{name}` {kind}" for name, kind in _EDGE_COLUMNS)
    return [
        f"CREATE TABLE IF NOT EXISTS `{database}`.`{LINEAGE_BY_RECIPIENT}` (\n  {cols}\n) "
        "ENGINE = ReplacingMergeTree ORDER BY (recipient_id, occurred_at, subject_id, edge_id)",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS `{database}`.`{LINEAGE_BY_RECIPIENT}_mv` "
        f"TO `{database}`.`{LINEAGE_BY_RECIPIENT}` AS SELECT * FROM `{database}`.`{LINEAGE.name}`",
    ]
