"""The worker's own books of processed input offsets: the group commits only what is processed, never past a hole."""

from __future__ import annotations

from consentflow.streams.processed_offsets import ProcessedOffsets

P = ("consentflow.consent-events", 3)
Q = ("consentflow.profile-events", 3)


def books_at(start: int, *partitions: tuple[str, int]) -> ProcessedOffsets:
    books = ProcessedOffsets()
    books.assign(partitions or (P,))
    for partition in partitions or (P,):
        books.start(partition, start)
    return books


def test_the_commit_point_follows_processed_batches_in_order() -> None:
    books = books_at(100)
    assert books.commit_point(P) == 100  # the group's committed offset: nothing processed yet
    books.processed(P, range(100, 150))
    books.processed(P, range(150, 151))
    assert books.commit_point(P) == 151


def test_a_hole_holds_the_commit_point_until_it_is_processed() -> None:
    books = books_at(100)
    books.processed(P, [100, 101, 102, 110, 111])  # 103..109 skipped by faust, not read back yet
    assert books.commit_point(P) == 103
    assert books.holes() == {P: range(103, 110)}
    books.processed(P, range(103, 110))  # read back and processed
    assert books.commit_point(P) == 112
    assert books.holes() == {}


def test_offsets_processed_before_the_start_is_known_count_once_it_is() -> None:
    books = ProcessedOffsets()
    books.assign([P])
    books.processed(P, range(169, 200))  # the group's committed offset could not be read yet (the broker away)
    assert books.commit_point(P) is None  # nothing committed on a guess
    books.start(P, 169)
    assert books.commit_point(P) == 200


def test_a_start_below_the_first_processed_offset_is_a_hole_not_a_jump() -> None:
    """faust once handed over 346 first where the group stood at 248: the offsets between are owed, not done."""
    books = ProcessedOffsets()
    books.assign([P])
    books.processed(P, range(346, 401))
    books.start(P, 248)
    assert books.commit_point(P) == 248
    assert books.holes() == {P: range(248, 346)}


def test_redelivered_offsets_below_the_commit_point_change_nothing() -> None:
    books = books_at(100)
    books.processed(P, range(100, 200))
    books.processed(P, range(150, 180))  # a batch redelivered after a rebalance, processed again
    books.processed(P, range(100, 200))
    assert books.commit_point(P) == 200
    assert books.holes() == {}


def test_a_start_given_twice_keeps_the_first() -> None:
    books = books_at(100)
    books.processed(P, range(100, 120))
    books.start(P, 89)  # a stale read arriving late moves nothing back
    assert books.commit_point(P) == 120


def test_revoked_partitions_are_forgotten_and_offsets_processed_after_revocation_do_not_count() -> None:
    books = books_at(100, P, Q)
    books.processed(P, range(100, 110))
    books.forget([P])
    assert books.commit_point(P) is None
    assert books.partitions() == [Q]
    books.processed(P, range(110, 120))  # the batch in flight when P was revoked: its new owner redoes it
    books.assign([P])
    books.start(P, 105)  # the group's committed offset, from the revocation commit
    assert books.commit_point(P) == 105


def test_partitions_never_assigned_have_no_commit_point() -> None:
    books = ProcessedOffsets()
    books.processed(P, range(10))
    books.start(P, 0)
    assert books.commit_point(P) is None
    assert books.partitions() == []
