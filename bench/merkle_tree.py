"""The consent log's tree alone (issue 22, ``consentflow/core/merkle.py``): leaves appended a second, proof times,
bytes held a leaf. No Kafka, no ClickHouse: the notary's own ceiling before I/O (``bench/notary.py`` will measure
the notary over a topic).

    python bench/merkle_tree.py [--leaves N] [--proofs P]

Leaves are ledger entries' canonical bytes (``core/log_leaves.py``) of made-up subjects, built before the clock
starts; the append rate counts the leaf hash and the nodes each leaf completes. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from datetime import UTC, datetime, timedelta

from consentflow.core.log_leaves import ledger_entry_leaf
from consentflow.core.merkle import HASH_SIZE, MerkleTree, verify_consistency, verify_inclusion

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def leaves(count: int) -> list[bytes]:
    """``count`` ledger-entry leaves, of the size real entries have."""
    out = []
    for i in range(count):
        entry = {
            "subject_id": f"cand-{i % 50_000:06d}",
            "sequence": i // 50_000,
            "event_id": f"{i:08x}-7a1f-4c53-9e3c-5d2c8c0e7d11",
            "occurred_at": T0 + timedelta(seconds=i),
            "purpose": "marketing",
            "action": "granted",
            "channel": "registration_form",
            "policy_version": "2020-11-14",
            "source_service": "registration",
            "notice_id": "notice-2020-11-14",
            "previous_hash": f"{i:064x}",
        }
        out.append(ledger_entry_leaf(entry))
    return out


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0-1) of ``values``, in milliseconds."""
    return statistics.quantiles(values, n=100)[round(q * 100) - 1] * 1000


def main() -> None:
    """Append, then time proofs against the full tree, and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--proofs", type=int, default=2_000)
    args = parser.parse_args()
    data = leaves(args.leaves)
    tree = MerkleTree()
    started = time.perf_counter()
    tree.extend(data)
    append_seconds = time.perf_counter() - started
    rng = random.Random(1)
    root = tree.root()
    inclusion, consistency = [], []
    for _ in range(args.proofs):
        index = rng.randrange(tree.size)
        started = time.perf_counter()
        proof = tree.inclusion_proof(index)
        inclusion.append(time.perf_counter() - started)
        verify_inclusion(index, tree.size, tree.leaf_hash(index), proof, root)
        old = rng.randrange(1, tree.size + 1)
        started = time.perf_counter()
        proof = tree.consistency_proof(old)
        consistency.append(time.perf_counter() - started)
        verify_consistency(old, tree.size, tree.root(old), root, proof)
    nodes = sum(tree.size >> level for level in range(tree.size.bit_length()))
    print(
        json.dumps(
            {
                "leaves": tree.size,
                "leaves_per_second": round(tree.size / append_seconds),
                "append_seconds": round(append_seconds, 3),
                "inclusion_proof_ms_p50": round(percentile(inclusion, 0.50), 4),
                "inclusion_proof_ms_p95": round(percentile(inclusion, 0.95), 4),
                "consistency_proof_ms_p50": round(percentile(consistency, 0.50), 4),
                "consistency_proof_ms_p95": round(percentile(consistency, 0.95), 4),
                "hash_bytes_held_per_leaf": round(nodes * HASH_SIZE / tree.size, 2),
                "leaf_bytes_mean": round(sum(map(len, data)) / len(data), 1),
            }
        )
    )


if __name__ == "__main__":
    main()
