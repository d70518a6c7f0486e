"""Kafka headers that make a message self-describing: which contract, which version, which schema (issue 23).

Every message the project produces carries them, so ``kcat -f '%h'`` or Kafka's console consumer
(``--formatter-property print.headers=true``) names what a value is without the project's code:

* ``consentflow.schema``: the Avro record's full name (``consentflow.ConsentEvent``), or, for a value that is not
  Avro, the name of its format (``c2sp.org/tlog-checkpoint``, ``consentflow.SubjectState``);
* ``consentflow.schema.version``: the contract's release, ``N`` of ``schemas/<Record>/vN.avsc`` (Avro values only);
* ``consentflow.schema.fingerprint``: the writer schema's CRC-64-AVRO fingerprint of its Parsing Canonical Form
  (Avro values only), as 16 lowercase hex digits of its 8 bytes in the order single-object encoding writes them
  after ``c3 01`` (little-endian, the bytes Java's ``SchemaNormalization.parsingFingerprint("CRC-64-AVRO", s)``
  returns), the same text ``consentflow schemas list`` prints;
* ``consentflow.encoding``: how the value is framed: ``avro-single-object``, ``avro-confluent`` (a Schema Registry id
  after ``00``), ``c2sp.org/signed-note`` (UTF-8 text) or ``consentflow-state`` (the worker's pickled state, read by
  workers only).

Every header value is UTF-8 text. The header lists are made once per contract and shared by every message: the
worker's output path adds no work per message but librdkafka's copy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from consentflow.contracts.releases import Contract

SCHEMA = "consentflow.schema"
VERSION = "consentflow.schema.version"
FINGERPRINT = "consentflow.schema.fingerprint"
ENCODING = "consentflow.encoding"

SINGLE_OBJECT = "avro-single-object"
CONFLUENT = "avro-confluent"
SIGNED_NOTE = "c2sp.org/signed-note"

#: What confluent-kafka's ``produce`` takes as ``headers`` (a list: it refuses a tuple).
Headers = list[tuple[str, bytes]]

#: The headers of a signed checkpoint on ``<prefix>.checkpoints``: a C2SP tlog-checkpoint in a signed note.
CHECKPOINT_HEADERS: Headers = [(SCHEMA, b"c2sp.org/tlog-checkpoint"), (ENCODING, SIGNED_NOTE.encode())]

#: The headers of the worker's subjects-table changelog: pickled ``SubjectState``, for the workers' recovery only.
SUBJECT_STATE_HEADERS: Headers = [(SCHEMA, b"consentflow.SubjectState"), (ENCODING, b"consentflow-state")]


def fingerprint_hex(contract: Contract) -> str:
    """The contract's CRC-64-AVRO fingerprint as the header and ``schemas list`` write it: 16 hex digits, little-endian."""
    return contract.fingerprint.hex()


#: (fingerprint, encoding) -> its headers: a Contract holds dicts, so it cannot key a cache itself.
_made: dict[tuple[bytes, str], Headers] = {}


def contract_headers(contract: Contract, encoding: str = SINGLE_OBJECT) -> Headers:
    """The headers of a message whose value ``contract`` wrote, framed by ``encoding`` (made once, then shared:
    callers must not change the list)."""
    made = _made.get((contract.fingerprint, encoding))
    if made is None:
        made = _made[contract.fingerprint, encoding] = [
            (SCHEMA, contract.full_name.encode()),
            (VERSION, str(contract.version).encode()),
            (FINGERPRINT, fingerprint_hex(contract).encode()),
            (ENCODING, encoding.encode()),
        ]
    return made


def header_text(headers: Iterable[tuple[str, bytes | str | None]] | Mapping[str, bytes | str | None] | None) -> dict[str, str]:
    """The ``consentflow.*`` headers of a consumed message as text (a header given twice: the last one)."""
    pairs = headers.items() if isinstance(headers, Mapping) else (headers or [])
    found: dict[str, str] = {}
    for key, value in pairs:
        if key.startswith("consentflow."):
            found[key] = value.decode() if isinstance(value, bytes) else (value or "")
    return found
