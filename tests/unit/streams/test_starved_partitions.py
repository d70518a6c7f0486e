"""Which assigned partitions faust starves: events wait past the commit point and faust handed none over for a while."""

from __future__ import annotations

from consentflow.streams.starved_partitions import CHUNK, StarvedPartitions

P = ("consentflow.consent", 2)
Q = ("consentflow.profile", 4)


def watch(now: float = 0.0) -> StarvedPartitions:
    starving = StarvedPartitions(starved_for=20.0)
    starving.assign([P, Q], now)
    return starving


def test_a_partition_faust_hands_nothing_of_while_events_wait_is_starved_after_the_bound() -> None:
    starving = watch()
    starving.observe({P: None, Q: 10}, 5.0)  # Q moves, P never does
    assert starving.starved({P: 100, Q: 50}, {P: 0, Q: 11}, 19.0) == {}  # not yet: P had 20 s from its assignment
    assert starving.starved({P: 100, Q: 50}, {P: 0, Q: 11}, 20.0) == {P: range(0, 100)}


def test_a_partition_whose_events_are_all_processed_is_not_starved_however_quiet() -> None:
    starving = watch()
    assert starving.starved({P: 100, Q: 50}, {P: 100, Q: 50}, 1000.0) == {}


def test_a_partition_whose_commit_point_is_unknown_is_left_alone() -> None:
    starving = watch()
    assert starving.starved({P: 100}, {P: None}, 1000.0) == {}


def test_faust_moving_again_ends_the_starvation_and_its_report() -> None:
    starving = watch()
    starved = starving.starved({P: 100}, {P: 0}, 30.0)
    assert starving.newly_starved(starved) == [P]
    assert starving.newly_starved(starving.starved({P: 100}, {P: 20}, 35.0)) == []  # reported once an episode
    starving.observe({P: 40}, 36.0)
    assert starving.starved({P: 100}, {P: 41}, 50.0) == {}
    assert starving.newly_starved(starving.starved({P: 100}, {P: 41}, 56.0)) == [P]  # a new episode


def test_a_long_backlog_is_read_a_chunk_at_a_time() -> None:
    starving = watch()
    assert starving.starved({P: 10 * CHUNK}, {P: 7}, 30.0) == {P: range(7, 7 + CHUNK)}


def test_revoked_partitions_are_not_watched_and_reassigned_ones_start_afresh() -> None:
    starving = watch()
    starving.forget([P])
    assert starving.starved({P: 100}, {P: 0}, 1000.0) == {}
    starving.assign([P], 1000.0)
    assert starving.starved({P: 100}, {P: 0}, 1010.0) == {}
    assert P in starving.starved({P: 100}, {P: 0}, 1020.0)
