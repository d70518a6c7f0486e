"""What the DPO reads of a consent a later policy version asks again [13]: the consent answer says "awaiting
re-consent" once that version is in force, the overview counts such consents, and the CLI prints it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from click.testing import CliRunner

from consentflow.cli import main
from consentflow.contracts import events
from consentflow.contracts.topics import CONSENT
from consentflow.core.processor import Processor
from consentflow.policy.vocabulary import ConsentAction, ConsentChannel, Purpose
from consentflow.sinks import consent_queries
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.sinks.queries import overview
from consentflow.streams.embedded import run_events
from tests.support.builders import consent

#: 00:00 on 1 January 2027 in Paris, when 2027-01-01 (which asks marketing again) takes effect.
EFFECTIVE = datetime(2026, 12, 31, 23, tzinfo=UTC)
GRANTED, WITHDRAWN = ConsentAction.GRANTED, ConsentAction.WITHDRAWN


def _ahead(subject: str) -> events.Event:
    """A marketing consent to the new text, asked ten days before its day [13]."""
    return events.consent_event(
        subject,
        Purpose.MARKETING,
        GRANTED,
        channel=ConsentChannel.ACCOUNT_SETTINGS,
        source_service="profile",
        occurred_at=EFFECTIVE - timedelta(days=10),
        policy_version="2027-01-01",
    )


def test_a_grant_given_before_the_new_version_awaits_re_consent_from_its_day(chdb_dsn: str, database: str) -> None:
    """[13] cand-old granted in 2026 under 2020-11-14: still "granted" (the ledger's word), awaiting re-consent from
    1 January 2027; cand-new renewed after the day, cand-ahead answered the new text early, cand-gone withdrew."""
    before = datetime(2026, 3, 1, 9, tzinfo=UTC)
    facts = [
        consent("cand-old", Purpose.MARKETING, GRANTED, before),
        consent("cand-new", Purpose.MARKETING, GRANTED, before),
        consent("cand-new", Purpose.MARKETING, GRANTED, EFFECTIVE + timedelta(days=5)),
        _ahead("cand-ahead"),
        consent("cand-gone", Purpose.MARKETING, GRANTED, before),
        consent("cand-gone", Purpose.MARKETING, WITHDRAWN, before + timedelta(days=1)),
    ]
    sink = ClickHouseSink(chdb_dsn, database)
    run_events([(CONSENT, e.record) for e in facts], Processor(), sink)

    def marketing(subject: str, at: datetime | None) -> tuple[str, str | None]:
        (answer,) = consent_queries.consent(sink.reader, subject, Purpose.MARKETING, at).purposes
        return answer.state, answer.awaiting_reconsent

    in_2027 = EFFECTIVE + timedelta(days=30)
    assert marketing("cand-old", EFFECTIVE - timedelta(microseconds=1)) == ("granted", None)
    assert marketing("cand-old", EFFECTIVE) == ("granted", "2027-01-01")
    assert marketing("cand-old", None) == ("granted", "2027-01-01")  # on everything known: under the newest version
    assert marketing("cand-new", in_2027) == ("granted", None)
    assert marketing("cand-ahead", in_2027) == ("granted", None)
    assert marketing("cand-gone", in_2027) == ("withdrawn", None)
    assert overview(sink.reader)["awaiting_reconsent"] == [
        {"purpose": "marketing", "version": "2027-01-01", "since": EFFECTIVE.isoformat(), "subjects": 1}
    ]
    runner = CliRunner(env={"COLUMNS": "200"})
    shown = runner.invoke(
        main, ["consent", "cand-old", "--as-of", in_2027.isoformat(), "--dsn", chdb_dsn, "--database", database]
    )
    assert shown.exit_code == 0, shown.output
    assert "granted, awaiting re-consent (version 2027-01-01)" in shown.stdout
    panel = runner.invoke(main, ["overview", "--dsn", chdb_dsn, "--database", database])
    assert panel.exit_code == 0 and "re-consent" in panel.stdout and "2027-01-01" in panel.stdout, panel.output
