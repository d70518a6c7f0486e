"""The ClickHouse tables the pipeline fills, and how a batch of output records becomes their columns.

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from consentflow.core.merkle import HASH_SIZE

Records = Sequence[Mapping[str, Any]]
#: Reads one column of a batch: the column's values, one per record, in order.
ColumnReader = Callable[[Records], list[Any]]


@dataclass(frozen=True)
class Table:
    """A table declared once: its columns (name, ClickHouse type), sorting key, version column and partitioning, and how
    a batch of records becomes its columns. The DDL (single node or cluster: ``sinks.cluster``), the digests, the
    verification and the readers derive from these facts.

    A column is read as the records' field of the same name, unless ``derived`` says how to read it,
    one pass over a batch of records each: no row per record, no transposition of rows (bench/RESULTS.md §5).
    """

    name: str
    topic: str  # output topic short name whose records fill it
    columns: tuple[tuple[str, str], ...]
    sorting_key: tuple[str, ...]  # ReplacingMergeTree's key: rows with equal keys collapse under FINAL
    version: str | None = None  # ReplacingMergeTree(version): the highest version of a key is the one kept
    partition_by: str | None = None
    point_lookups: bool = False  # read one subject at a time: smaller granules (POINT_LOOKUPS)
    in_force: str | None = None  # revisable records: the UInt8 column saying the latest revision stands
    #: Columns a later contract release added, each with the DEFAULT a row of an older release reads as (last columns).
    added: tuple[tuple[str, str], ...] = ()
    derived: Mapping[str, ColumnReader] = field(default_factory=dict, compare=False)

    @property
    def column_names(self) -> list[str]:
        """Column names in order."""
        return [name for name, _ in self.columns]

    @functools.cached_property
    def column_readers(self) -> tuple[ColumnReader, ...]:
        """How each column, in order, is read from a batch of records."""
        return tuple(self.derived.get(name) or _field(name) for name, _ in self.columns)

    @functools.cached_property
    def arrow_schema(self) -> Any:
        """The ``pyarrow.Schema`` an insert sends: this table's columns in order, each as its Arrow type.

        pyarrow builds the columns from Python values in C++, where clickhouse-connect's Native
        writer loops in Python (the sink's slowest part); ClickHouse casts each on insert to the
        DDL's type (``LowCardinality``, ``DateTime64``), which stays the stored type.
        """
        import pyarrow  # imported with the first insert: readers never need it

        return pyarrow.schema([(name, arrow_type(kind)) for name, kind in self.columns])

    def to_arrow(self, records: Records) -> Any:
        """``records`` (this table's output records) as a ``pyarrow.Table`` of ``arrow_schema``, column by column.

        A record that lacks a field or holds a value of the wrong type raises ``ValueError`` naming the
        table, the record's place in the batch and the column.
        """
        import pyarrow

        schema = self.arrow_schema
        try:
            columns = [pyarrow.array(read(records), type=f.type) for read, f in zip(self.column_readers, schema, strict=True)]
        except (KeyError, TypeError, ValueError) as exc:  # pyarrow's ArrowInvalid and ArrowTypeError are among these
            raise ValueError(self._first_bad_record(records, exc)) from exc
        return pyarrow.Table.from_arrays(columns, schema=schema)

    def _first_bad_record(self, records: Records, batch_error: Exception) -> str:
        """Which record of a batch that failed to convert is at fault, and in which column: read one by one."""
        import pyarrow

        for index, record in enumerate(records):
            for read, f in zip(self.column_readers, self.arrow_schema, strict=True):
                try:
                    pyarrow.array(read([record]), type=f.type)
                except (KeyError, TypeError, ValueError) as exc:
                    return f"{self.name}: record {index} of the batch cannot fill column {f.name}: {type(exc).__name__}: {exc}"
        return f"{self.name}: the batch cannot be converted: {type(batch_error).__name__}: {batch_error}"

    @property
    def column_list(self) -> str:
        """The column definitions of a CREATE TABLE statement, one per line."""
        return ",\n  ".join(f"`{name}` {kind}" for name, kind in self.columns)

    def engine(self, replicated: tuple[str, str] | None = None) -> str:
        """The engine clause; ``replicated`` (ZooKeeper path, replica) makes it ReplicatedReplacingMergeTree."""
        arguments = [f"'{argument}'" for argument in replicated or ()] + ([self.version] if self.version else [])
        kind = "ReplicatedReplacingMergeTree" if replicated else "ReplacingMergeTree"
        clause = f"ENGINE = {kind}" + (f"({', '.join(arguments)})" if arguments else "")
        if self.partition_by:
            clause += f" PARTITION BY {self.partition_by}"
        clause += f" ORDER BY ({', '.join(self.sorting_key)})"
        return clause + (f" {POINT_LOOKUPS}" if self.point_lookups else "")

    def ddl(self) -> str:
        """The single-node CREATE TABLE statement, its database the query parameter ``{db:Identifier}``."""
        return f"CREATE TABLE IF NOT EXISTS {{db:Identifier}}.`{self.name}` (\n  {self.column_list}\n) {self.engine()}"

    @property
    def counted_rows(self) -> str:
        """The WHERE clause selecting the rows that count (only revisions in force), or ''."""
        return f" WHERE `{self.in_force}` = 1" if self.in_force else ""


def _field(name: str) -> ColumnReader:
    """The reader of the records' field ``name``: one C-level pass."""
    get = itemgetter(name)
    return lambda records: list(map(get, records))


#: The one time type of every table: microseconds, UTC.
DATETIME = "DateTime64(6, 'UTC')"
T = DATETIME
LC = "LowCardinality(String)"
_LC_NULLABLE = "LowCardinality(Nullable(String))"
CATS = "Array(LowCardinality(String))"
#: A SHA-256 as its raw bytes: half the size of hex, and what the tree's hashing takes.
HASH = f"FixedString({HASH_SIZE})"
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
    if kind == HASH:
        return pyarrow.binary(HASH_SIZE)
    scalar = {"String": pyarrow.string(), "UInt8": pyarrow.uint8(), "UInt64": pyarrow.uint64()}
    scalar.update({"Int32": pyarrow.int32(), "Int64": pyarrow.int64()})
    if kind not in scalar:
        raise ValueError(f"no Arrow type for ClickHouse type {kind!r}")
    return scalar[kind]


def _hex(data: bytes | str | None) -> str | None:
    if data is None:
        return None
    return (data.encode() if isinstance(data, str) else bytes(data)).hex()


def _source_part(key: str) -> ColumnReader:
    """The reader of one of the Kafka coordinates in the records' ``source`` (None for records without one)."""

    def read(records: Records) -> list[Any]:
        sources = [record.get("source") for record in records]
        if not any(sources):  # embedded runs: no coordinates at all
            return [None] * len(sources)
        return [source[key] if source else None for source in sources]

    return read


#: The source coordinates, read from the records' ``source``: every table that has them.
_SOURCE_READERS: dict[str, ColumnReader] = {name: _source_part(name.removeprefix("source_")) for name, _ in SOURCE}


def _flag(name: str) -> ColumnReader:
    """A boolean field as ClickHouse's UInt8."""
    return lambda records: [1 if record[name] else 0 for record in records]


def _each(field_name: str, key: str) -> ColumnReader:
    """An array column: ``key`` of each item of the records' list field ``field_name``."""
    return lambda records: [[item[key] for item in record[field_name]] for record in records]


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
    # The entry hash is in the key: a redelivered entry collapses, two different entries at one sequence (a fork,
    # a forged copy) both stay for ``verify`` to name, instead of one silently replacing the other.
    sorting_key=("subject_id", "sequence", "entry_hash"),
    point_lookups=True,
    derived=_SOURCE_READERS,
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
    ("source_service", LC),  # LineageEdge v2
)
#: LineageEdge v2's column: an edge written as v1 has no service.
_EDGE_ADDED = (("source_service", "''"),)
#: A record of v1's shape (an embedded run's dict of an older release) reads as v2 does: no service.
_EDGE_READERS: dict[str, ColumnReader] = {
    **_SOURCE_READERS,
    "source_service": lambda records: [record.get("source_service", "") for record in records],
}

LINEAGE = Table(
    "lineage_edges",
    "lineage",
    _EDGE_COLUMNS,
    sorting_key=("subject_id", "occurred_at", "edge_id"),
    point_lookups=True,
    added=_EDGE_ADDED,
    derived=_EDGE_READERS,
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
    sorting_key=("subject_id", "violation_id"),
    version="revision",
    in_force="active",
    derived={"active": _flag("active")},
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
        ("active", "UInt8"),
        ("revision", "UInt64"),
    ),
    # The highest revision of an action id is the record in force; active = 0 retracts it (RetentionSchedule.due).
    sorting_key=("subject_id", "action_id"),
    version="revision",
    in_force="active",
    # A record of v1's shape (RetentionAction v1 has neither field) is in force, at revision 0, as v2 reads it.
    derived={
        "active": lambda records: [1 if record.get("active", True) else 0 for record in records],
        "revision": lambda records: [record.get("revision", 0) for record in records],
    },
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
    sorting_key=("subject_id", "notice_id"),
    version="revision",
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
    sorting_key=("subject_id",),
    version="revision",
    derived={
        "planned_actions": _each("planned", "action"),
        "planned_categories": _each("planned", "categories"),
        "planned_due_at": _each("planned", "due_at"),
        "planned_sections": _each("planned", "policy_section"),
        "planned_reasons": _each("planned", "reason"),
        "planned_basis_event_ids": _each("planned", "basis_event_id"),
    },
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
    sorting_key=("recipient_id", "since", "event_id"),
    derived={
        "since": _field("occurred_at"),
        "mechanisms": _each("transfer_mechanisms", "mechanism"),
        "mechanism_from": _each("transfer_mechanisms", "valid_from"),
        "mechanism_until": _each("transfer_mechanisms", "valid_until"),
        "active": _flag("active"),
    },
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
    sorting_key=("topic", "partition", "offset"),
    derived={
        "partition": lambda records: [-1 if r["partition"] is None else r["partition"] for r in records],
        "offset": lambda records: [-1 if r["offset"] is None else r["offset"] for r in records],
        "key_hex": lambda records: [_hex(r["key"]) for r in records],
        "value_hex": lambda records: [_hex(r["value"]) for r in records],
    },
)

_NT = f"Nullable({T})"
RIGHTS_REQUESTS = Table(
    "rights_requests",
    "requests",
    (
        ("subject_id", "String"),
        ("request_id", "String"),
        ("right", LC),
        ("clock", LC),
        ("state", LC),
        ("purpose", _LC_NULLABLE),
        ("received_at", _NT),
        ("received_event_id", "Nullable(String)"),
        ("clock_from", _NT),
        ("first_due_at", _NT),
        ("due_at", _NT),
        ("last_day", "Nullable(String)"),
        ("extension_months", "Int32"),
        ("extended_at", _NT),
        ("extension_reason", _LC_NULLABLE),
        ("extension_refused", "UInt8"),
        ("identity_requested_at", _NT),
        ("identity_verified_at", _NT),
        ("outcome", _LC_NULLABLE),
        ("outcome_at", _NT),
        ("outcome_reason", _LC_NULLABLE),
        ("late", "UInt8"),
        ("events", "Int32"),
        ("revision", "UInt64"),
    ),
    # One row per request [8.2; GDPR Art. 12(3)]: the highest revision (its events known) is the request on everything known.
    sorting_key=("subject_id", "request_id"),
    version="revision",
    derived={"extension_refused": _flag("extension_refused"), "late": _flag("late")},
)

#: The breach register's facts [12; GDPR Art. 33, 34], every event kept (Art. 33(5) documentation): the register, its
#: 72-hour clock and whom to tell are computed from them when read (core/incidents.py, sinks/incident_queries.py).
INCIDENTS = Table(
    "incidents",
    "incidents",
    (
        ("incident_id", "String"),
        ("occurred_at", T),
        ("event_id", "String"),
        ("kind", LC),
        ("recipient_id", "Nullable(String)"),
        ("window_from", f"Nullable({T})"),
        ("window_to", f"Nullable({T})"),
        ("aware_at", f"Nullable({T})"),
        ("risk", _LC_NULLABLE),
        ("categories", CATS),
        ("subject_id", "Nullable(String)"),
        ("delay_reason", "Nullable(String)"),
        ("source_service", LC),
        ("policy_version", LC),
    ),
    # One row per event: a redelivered one collapses, an incident's events read in event-time order.
    sorting_key=("incident_id", "occurred_at", "event_id"),
)

TABLES: tuple[Table, ...] = (LEDGER, LINEAGE, VIOLATIONS, RETENTION, ERASURE_NOTICES, HOLDINGS, RECIPIENTS, DEAD_LETTERS)
TABLES += (RIGHTS_REQUESTS, INCIDENTS)  # issue 24: rights requests as tracked objects, the breach register
TABLE_FOR_TOPIC: dict[str, Table] = {t.topic: t for t in TABLES}

# The consent log's tables (issue 22), filled by the notary, not from an output topic ("notary" stands for it). They
# are kept out of ``TABLES`` and so of the digests that compare runs: a log's leaf order is its topic partition's, which
# differs between runs by design; ``verify --checkpoint`` is their check. No partitioning: a log's rows are read by
# key, never dropped by time. Each key ends in the hash, as the ledger's does: a second, different row at an index
# (a rewrite) stays beside the first for the audit to name, where a redelivered equal row collapses under ``FINAL``.
LOG_LEAVES = Table(
    "log_leaves",
    "notary",
    (
        ("log_id", LC),  # "<output topic>/<partition>", or "embedded" for the embedded runner's one log
        ("leaf_index", "UInt64"),
        ("leaf_hash", HASH),
        ("subject_id", "String"),
        ("kind", LC),  # "ledger" or "notice"
        ("record_id", "String"),  # a ledger entry's entry_hash, an erasure notice's notice_id
        ("revision", "UInt64"),  # an erasure notice's revision (each is a leaf); 0 for a ledger entry
        ("written_at", T),
        ("source_offset", "UInt64"),  # the output message's Kafka offset (the embedded log: the leaf index)
    ),
    # By log then index: a proof reads a leaf by its address; a subject's leaves are found by the audit's scan.
    sorting_key=("log_id", "leaf_index", "leaf_hash"),
    point_lookups=True,
)

LOG_NODES = Table(
    "log_nodes",
    "notary",
    (("log_id", LC), ("level", "UInt8"), ("node_index", "UInt64"), ("hash", HASH)),
    # The complete subtrees above the leaves (level >= 1: a leaf's hash is in log_leaves), written once each, read by
    # address (``core.merkle``): a proof is one point lookup of at most twice the tree's height rows.
    sorting_key=("log_id", "level", "node_index", "hash"),
    point_lookups=True,
)

CHECKPOINTS = Table(
    "checkpoints",
    "checkpoints",
    (("log_id", LC), ("size", "UInt64"), ("root", HASH), ("note", "String"), ("signed_at", T)),
    # Every signed note is kept (the same size may be signed twice, at two times): the latest is the highest size,
    # then the latest time; the audit checks each one's signature.
    sorting_key=("log_id", "size", "signed_at"),
)

LOG_TABLES: tuple[Table, ...] = (LOG_LEAVES, LOG_NODES, CHECKPOINTS)

#: The breach query's copy of the lineage, sorted by recipient and time [12], filled by a materialised view.
BY_RECIPIENT = Table(
    "lineage_by_recipient",
    "lineage",
    _EDGE_COLUMNS,
    sorting_key=("recipient_id", "occurred_at", "subject_id", "edge_id"),
    added=_EDGE_ADDED,
)
LINEAGE_BY_RECIPIENT = BY_RECIPIENT.name


def on_cluster(cluster: str | None) -> str:
    """The ``ON CLUSTER`` clause of a statement run on every node of ``cluster`` (none for one node)."""
    return f" ON CLUSTER `{cluster}`" if cluster else ""


def retention_v2(table_name: str = RETENTION.name, cluster: str | None = None) -> str:
    """The RetentionAction v2 columns a retention_actions table of v1 records lacks; those were all in force, at revision 0."""
    return (
        f"ALTER TABLE {{db:Identifier}}.`{table_name}`{on_cluster(cluster)} ADD COLUMN IF NOT EXISTS `active` UInt8 DEFAULT 1, "
        "ADD COLUMN IF NOT EXISTS `revision` UInt64 DEFAULT 0"
    )


def added_columns(table: Table, table_name: str | None = None, cluster: str | None = None) -> str:
    """The columns of ``table.added`` a table made by an earlier release lacks (a no-op on a new one); its rows read
    as each column's DEFAULT. ``table_name``: the table altered, the table's own name unless given (a cluster's local)."""
    additions = ", ".join(
        f"ADD COLUMN IF NOT EXISTS `{name}` {dict(table.columns)[name]} DEFAULT {default}" for name, default in table.added
    )
    return f"ALTER TABLE {{db:Identifier}}.`{table_name or table.name}`{on_cluster(cluster)} {additions}"


def by_recipient_view(source: str, target: str, cluster: str | None = None) -> str:
    """The materialised view that copies each lineage edge inserted into ``source`` into ``target``."""
    return (
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {{db:Identifier}}.`{target}_mv`{on_cluster(cluster)} "
        f"TO {{db:Identifier}}.`{target}` AS SELECT * FROM {{db:Identifier}}.`{source}`"
    )


def schema_ddl() -> list[str]:
    """Every single-node statement a writer runs, in order, its database the parameter ``{db:Identifier}``: the
    database, the tables, the columns a table created by an earlier version lacks (a no-op on a new one), the
    by-recipient copy of the lineage and the view that fills it, then the consent log's tables."""
    return [
        "CREATE DATABASE IF NOT EXISTS {db:Identifier}",
        *(table.ddl() for table in TABLES),
        retention_v2(),
        added_columns(LINEAGE),
        BY_RECIPIENT.ddl(),
        added_columns(BY_RECIPIENT),
        by_recipient_view(LINEAGE.name, BY_RECIPIENT.name),
        *(table.ddl() for table in LOG_TABLES),
    ]


def log_schema_ddl() -> list[str]:
    """The statements a writer of the consent log alone runs (the standalone notary): the database and the log's tables."""
    return ["CREATE DATABASE IF NOT EXISTS {db:Identifier}", *(table.ddl() for table in LOG_TABLES)]
