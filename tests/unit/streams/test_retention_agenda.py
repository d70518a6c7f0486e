"""When a worker's retention tick reads every subject (a sweep) and when the subjects events changed suffice [2.3]."""

from __future__ import annotations

from datetime import timedelta

from consentflow.streams.retention_agenda import RetentionAgenda
from tests.support.builders import T0

DAY = timedelta(days=1)


def test_a_worker_sweeps_first_then_only_once_the_clock_passes_the_earliest_action_ahead() -> None:
    agenda = RetentionAgenda(sweep_interval=60.0)
    assert agenda.sweep_due(T0, now=0.0), "a worker that just started has found nothing yet"
    agenda.swept(T0 + 10 * DAY, now=0.0)
    assert not agenda.sweep_due(T0 + 9 * DAY, now=1_000.0), "nothing can have fallen due before the earliest action"
    assert agenda.sweep_due(T0 + 10 * DAY, now=1_000.0)


def test_sweeps_are_spaced_by_the_interval_even_when_actions_keep_falling_due() -> None:
    agenda = RetentionAgenda(sweep_interval=60.0)
    agenda.swept(T0 + DAY, now=100.0)
    assert not agenda.sweep_due(T0 + 2 * DAY, now=159.0)
    assert agenda.sweep_due(T0 + 2 * DAY, now=160.0)


def test_a_touched_subject_with_an_earlier_action_brings_the_next_sweep_forward() -> None:
    agenda = RetentionAgenda(sweep_interval=0.0)
    agenda.swept(T0 + 30 * DAY, now=0.0)
    agenda.ticked(T0 + 40 * DAY)  # later than what the sweep found: changes nothing
    agenda.ticked(None)
    assert agenda.next_due == T0 + 30 * DAY
    agenda.ticked(T0 + 5 * DAY)
    assert agenda.sweep_due(T0 + 5 * DAY, now=1.0)


def test_nothing_ahead_means_no_sweep_until_partitions_are_assigned() -> None:
    agenda = RetentionAgenda(sweep_interval=0.0)
    agenda.swept(None, now=0.0)
    assert not agenda.sweep_due(T0 + 10_000 * DAY, now=1e9)
    agenda.reassigned()
    assert agenda.sweep_due(T0, now=1e9), "the subjects of newly assigned partitions have not been read"
