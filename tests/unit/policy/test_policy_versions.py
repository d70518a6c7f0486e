"""Policy versions as data [13]: each file's effective day and reconsent purposes, the history that orders them, the
diff between two, and the ``consentflow policy`` commands that show them."""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from typing import Any

import pytest
from click.testing import CliRunner

from consentflow.cli import main
from consentflow.policy.diff import policy_diff
from consentflow.policy.versions import PolicyError, PolicyHistory, load_history, load_policy, parse_policy
from consentflow.policy.vocabulary import Purpose

OLD, NEW = "2020-11-14", "2027-01-01"
#: 00:00 on 1 January 2027 in Paris [1].
NEW_FROM = datetime(2026, 12, 31, 23, tzinfo=UTC)


def _data(version: str = OLD) -> dict[str, Any]:
    text = (resources.files("consentflow.policy.policies") / f"{version}.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def test_the_shipped_versions_in_effective_order_with_their_reconsent() -> None:
    """[13] two versions: 2020-11-14 asks nothing again; 2027-01-01 asks marketing again [3.8, 6]."""
    history = load_history()
    assert [(p.version, p.effective_from, p.reconsent) for p in history.versions] == [
        (OLD, date(2020, 11, 14), frozenset()),
        (NEW, date(2027, 1, 1), frozenset({Purpose.MARKETING})),
    ]
    assert history.latest.version == NEW


def test_the_version_in_force_changes_at_midnight_in_the_controllers_time_zone() -> None:
    """[1, 13] a version's day begins at 00:00 in Paris; before the first version, the first is in force."""
    history = load_history()
    assert history.starts == (datetime(2020, 11, 13, 23, tzinfo=UTC), NEW_FROM)
    assert history.in_force(NEW_FROM - timedelta(microseconds=1)).version == OLD
    assert history.in_force(NEW_FROM).version == NEW
    assert history.in_force(datetime(2019, 1, 1, tzinfo=UTC)).version == OLD
    assert history.renewal_at(Purpose.MARKETING.value, NEW_FROM - timedelta(microseconds=1)) is None
    renewal = history.renewal_at(Purpose.MARKETING.value, NEW_FROM)
    assert renewal is not None and (renewal.version, renewal.since, renewal.answered_by) == (NEW, NEW_FROM, frozenset({NEW}))


def test_a_consent_is_stale_when_given_before_the_day_under_an_earlier_notice() -> None:
    """[13] given before the day under 2020-11-14: stale; under 2027-01-01 (asked ahead) or on the day: it counts."""
    renewal = load_history().renewal_at(Purpose.MARKETING.value, NEW_FROM)
    assert renewal is not None
    assert renewal.stale(NEW_FROM - timedelta(seconds=1), OLD)
    assert not renewal.stale(NEW_FROM - timedelta(seconds=1), NEW)
    assert not renewal.stale(NEW_FROM, OLD)


def test_a_policy_file_without_an_effective_day_or_with_a_bad_one_is_refused() -> None:
    data = _data()
    del data["effective_from"]
    with pytest.raises(PolicyError, match="effective_from"):
        parse_policy(data)
    with pytest.raises(PolicyError, match=r"^effective_from: '1 Jan' is not a date"):
        parse_policy(_data() | {"effective_from": "1 Jan"})
    assert parse_policy(_data() | {"effective_from": "2021-03-04"}).effective_from == date(2021, 3, 4)


def test_reconsent_must_name_purposes_that_need_consent() -> None:
    """[13] only a consent can be asked again: a purpose on another basis (contract, [3.1]) is refused by name."""
    with pytest.raises(PolicyError, match=r"^reconsent: profile_matching needs no consent"):
        parse_policy(_data() | {"reconsent": ["marketing", "profile_matching"]})
    with pytest.raises(PolicyError, match=r"^reconsent: 'spam' is not a Purpose"):
        parse_policy(_data() | {"reconsent": ["spam"]})


def test_a_history_refuses_two_versions_on_one_day_and_knows_its_versions() -> None:
    old = load_policy(OLD)
    twin = parse_policy(_data() | {"version": "2020-11-15"})
    with pytest.raises(PolicyError, match="distinct days"):
        PolicyHistory.of([old, twin])
    with pytest.raises(PolicyError, match=r"no policy version '2099-01-01' \(known: 2020-11-14, 2027-01-01\)"):
        load_history().get("2099-01-01")
    with pytest.raises(PolicyError, match="no policy file for version '2099-01-01'"):
        load_policy("2099-01-01")


def test_the_diff_of_the_example_version_is_its_two_changes() -> None:
    """2027-01-01 differs from 2020-11-14 in what other users see [4.1] and in asking marketing again [13]; every
    other rule (consent, bases, cookies, retention...) is the same."""
    diff = policy_diff(load_history(), OLD, NEW)
    assert [(c.what, c.item, c.before, c.after, c.section) for c in diff.changes] == [
        ("visible to other users", "residence", "no", "yes", "4.1"),
        ("asks consent again", "marketing", "no", "yes", "13"),
    ]
    assert diff.reconsent == ("marketing",)
    assert (diff.before.version, diff.after.version, diff.after.effective_from) == (OLD, NEW, date(2027, 1, 1))
    backwards = policy_diff(load_history(), NEW, OLD)
    assert backwards.reconsent == () and [c.before for c in backwards.changes] == ["yes", "yes"]


def test_the_diff_names_changed_bases_retention_and_consent() -> None:
    """[2.3, 3] a version that changes a basis, a period and what needs consent shows each, with its section."""
    data = _data(NEW)
    data["legal_basis"] = dict(data["legal_basis"]) | {"experience_improvement": "contract"}
    data["retention"] = dict(data["retention"]) | {"after_last_use": "P2Y"}
    data["consent"] = {"required": [p for p in data["consent"]["required"] if p != "partner_aggregation"]}
    data["legal_basis"]["partner_aggregation"] = "legitimate_interest"
    changed = parse_policy(data)
    history = PolicyHistory.of([load_policy(OLD), changed])
    rows = {(c.what, c.item): (c.before, c.after, c.section) for c in policy_diff(history, OLD, NEW).changes}
    assert rows[("needs consent", "partner_aggregation")][:2] == ("yes", "no")
    assert rows[("legal basis", "partner_aggregation")][:2] == (None, "legitimate_interest")
    assert rows[("legal basis", "experience_improvement")] == ("legitimate_interest", "contract", "3")
    assert rows[("retention", "after_last_use")] == ("P3Y", "P2Y", "2.3")


def _cli(*args: str) -> Any:
    return CliRunner(env={"COLUMNS": "200"}).invoke(main, ["policy", *args])


def test_policy_versions_lists_each_version_its_day_and_what_it_asks_again() -> None:
    """``consentflow policy versions``: in force, superseded, upcoming, as of an instant."""
    result = _cli("versions", "--json", "--as-of", "2026-12-06T12:00:00Z")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [
        {
            "version": OLD,
            "effective_from": OLD,
            "effective_at": "2020-11-13T23:00:00+00:00",
            "reconsent": [],
            "status": "in force",
        },
        {
            "version": NEW,
            "effective_from": NEW,
            "effective_at": "2026-12-31T23:00:00+00:00",
            "reconsent": ["marketing"],
            "status": "upcoming",
        },
    ]
    later = json.loads(_cli("versions", "--json", "--as-of", "2027-01-01T00:00:00+01:00").stdout)
    assert [v["status"] for v in later] == ["superseded", "in force"]
    table = _cli("versions", "--as-of", "2027-02-01")
    assert table.exit_code == 0 and "marketing" in table.stdout and "superseded" in table.stdout


def test_policy_diff_prints_the_changes_and_refuses_an_unknown_version() -> None:
    """``consentflow policy diff A B``: a table, or JSON; an unknown version ends with one line naming the known ones."""
    answer = json.loads(_cli("diff", OLD, NEW, "--json").stdout)
    assert answer["reconsent"] == ["marketing"]
    assert {"what": "visible to other users", "item": "residence", "before": "no", "after": "yes", "section": "4.1"} in (
        answer["changes"]
    )
    table = _cli("diff", OLD, NEW)
    assert table.exit_code == 0 and "residence" in table.stdout and "stops counting" in table.stdout
    unknown = _cli("diff", OLD, "2031-01-01")
    assert unknown.exit_code == 1
    assert "no policy version '2031-01-01' (known: 2020-11-14, 2027-01-01)" in unknown.output
    assert "Traceback" not in unknown.output
