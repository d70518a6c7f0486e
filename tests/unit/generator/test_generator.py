"""The event generator: reproducible, streaming, policy-respecting except where it says it injected."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from consentflow.cli import main
from consentflow.contracts.eventfile import read_events
from consentflow.generator import GeneratorConfig, Simulation, generate
from consentflow.generator import registry as reg
from consentflow.policy.versions import load_policy
from consentflow.policy.vocabulary import RULE_SECTIONS, CookieCategory, Purpose, Rule


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small dataset with a high injection share, so every rule shows up."""
    out = tmp_path_factory.mktemp("gen") / "events.avro"
    truth = out.with_suffix(".truth.jsonl")
    generate(GeneratorConfig(subjects=600, days=200, seed=7, violation_share=0.05), out, truth)
    return out, truth


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    paths = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        out = tmp_path / f"{name}.avro"
        generate(GeneratorConfig(subjects=150, days=60, seed=seed), out, tmp_path / f"{name}.truth")
        paths.append(out)
    assert _digest(paths[0]) == _digest(paths[1])
    assert (tmp_path / "a.truth").read_bytes() == (tmp_path / "b.truth").read_bytes()
    assert _digest(paths[0]) != _digest(paths[2])


def test_same_seed_gives_the_same_bytes_in_processes_with_different_hash_seeds(tmp_path: Path) -> None:
    """The README's promise holds across processes: string hashing, randomised per process, decides nothing written."""
    paths = []
    for hash_seed in ("1", "2", "3"):
        out = tmp_path / f"seed{hash_seed}.avro"
        environment = dict(os.environ, PYTHONHASHSEED=hash_seed)
        command = [sys.executable, "-m", "consentflow.cli", "generate", "--subjects", "20", "--days", "30", "--seed", "5"]
        subprocess.run([*command, "--out", str(out)], env=environment, check=True, capture_output=True)
        paths.append(out)
    assert _digest(paths[0]) == _digest(paths[1]) == _digest(paths[2])


def test_events_stream_with_state_bounded_by_subjects() -> None:
    sim = Simulation(GeneratorConfig(subjects=300, days=120, seed=1))
    stream = sim.events()
    first = next(stream)
    # A generator: the first event exists before the rest are made.
    assert first.topic.short_name == "recipients"
    assert sim.stats.events < 100
    total = 1 + sum(1 for _ in stream)
    assert total == sim.stats.events
    assert total > 20 * 300  # a realistic volume per subject
    assert len(sim.subjects) == 300


def test_every_input_topic_and_consent_channel_appears(generated: tuple[Path, Path]) -> None:
    out, _ = generated
    topics: Counter[str] = Counter()
    channels: set[str] = set()
    actions: set[str] = set()
    recipients: set[str] = set()
    for topic, record in read_events(out):
        topics[topic.short_name] += 1
        if topic.short_name == "consent":
            channels.add(record["channel"])
            actions.add(record["action"])
        if topic.short_name == "disclosure":
            recipients.add(record["recipient_id"])
        if topic.short_name == "message" and record["processor_id"]:
            recipients.add(record["processor_id"])
    assert set(topics) == {"recipients", "profile", "consent", "cookie", "message", "disclosure", "rights"}
    assert channels == {"registration_form", "account_settings", "unsubscribe_link", "contact_request", "cookie_banner"}
    assert actions == {"granted", "withdrawn", "refused"}
    # Non-EU recipients under SCCs received data: the US emailing and SMS providers, group entities outside the EU.
    assert {reg.EMAILING.recipient_id, reg.SMS.recipient_id, reg.GROUP_US.recipient_id, reg.GROUP_MA.recipient_id} <= recipients


def test_registry_has_eu_non_eu_a_late_scc_and_one_without_mechanism(generated: tuple[Path, Path]) -> None:
    out, _ = generated
    registry = {r["recipient_id"]: r for t, r in read_events(out) if t.short_name == "recipients"}
    start = GeneratorConfig(subjects=1, days=1, seed=1).start
    late = registry[reg.MARKETING_LATE_SCC.recipient_id]
    assert late["country"] == "US"
    assert late["transfer_mechanisms"][0]["mechanism"] == "scc"
    assert late["transfer_mechanisms"][0]["valid_from"] > start
    none = registry[reg.NO_MECHANISM.recipient_id]
    assert none["country"] not in {"FR", "DE", "IE"} and none["transfer_mechanisms"] == []
    assert any(r["transfer_mechanisms"] and r["transfer_mechanisms"][0]["mechanism"] == "within_eea" for r in registry.values())
    assert reg.UNREGISTERED_ID not in registry


def test_truth_lists_every_rule_with_its_section_and_points_at_real_events(generated: tuple[Path, Path]) -> None:
    out, truth = generated
    lines = [json.loads(line) for line in truth.read_text().splitlines()]
    rules = {line["rule"] for line in lines}
    # consent_not_renewed needs a span across a policy change: test_policy_change_truth.py [13].
    assert rules == {r.value for r in Rule if r not in (Rule.UNKNOWN, Rule.CONSENT_NOT_RENEWED)}
    assert all(line["policy_section"] == RULE_SECTIONS[Rule(line["rule"])] for line in lines)
    event_ids = {r["event_id"] for _, r in read_events(out)}
    assert {line["event_id"] for line in lines} <= event_ids
    assert len({line["event_id"] for line in lines}) == len(lines)


def test_legitimate_events_respect_consent_and_only_injected_ones_do_not(generated: tuple[Path, Path]) -> None:
    """Replays consent by event time, independently of the generator, and checks every gated event."""
    out, truth = generated
    injected = {json.loads(line)["event_id"]: json.loads(line)["rule"] for line in truth.read_text().splitlines()}
    policy = load_policy()
    consent: dict[tuple[str, str], bool] = {}
    erased: set[str] = set()
    found: dict[str, str] = {}
    for topic, r in read_events(out):
        name = topic.short_name
        if name == "consent":
            consent[(r["subject_id"], r["purpose"])] = r["action"] == "granted"
            continue
        if name == "rights" and r["right"] == "erasure" and r["status"] == "fulfilled":
            erased.add(r["subject_id"])
            continue
        subject = r.get("subject_id")
        if subject in erased and name != "rights":
            found[r["event_id"]] = Rule.PROCESSING_AFTER_ERASURE.value
        elif name == "message" and r["purpose"] == Purpose.MARKETING and not consent.get((subject, "marketing"), False):
            found[r["event_id"]] = Rule.MARKETING_WITHOUT_CONSENT.value
        elif name == "cookie" and policy.needs_consent(needed := policy.cookie_purpose[CookieCategory(r["cookie_category"])]):
            if not consent.get((subject, needed.value), False):
                found[r["event_id"]] = Rule.COOKIE_WITHOUT_CONSENT.value
        elif (
            name == "disclosure"
            and "geolocation" in r["categories"]
            and not consent.get((subject, "geolocation_services"), False)
        ):
            found[r["event_id"]] = Rule.GEOLOCATION_WITHOUT_CONSENT.value
        elif (
            name == "disclosure"
            and r["purpose"] == "partner_aggregation"
            and not consent.get((subject, "partner_aggregation"), False)
        ):
            found[r["event_id"]] = Rule.PARTNER_AGGREGATION_WITHOUT_CONSENT.value
    consent_rules = {
        Rule.PROCESSING_AFTER_ERASURE.value,
        Rule.MARKETING_WITHOUT_CONSENT.value,
        Rule.COOKIE_WITHOUT_CONSENT.value,
        Rule.GEOLOCATION_WITHOUT_CONSENT.value,
        Rule.PARTNER_AGGREGATION_WITHOUT_CONSENT.value,
    }
    expected = {event_id: rule for event_id, rule in injected.items() if rule in consent_rules}
    assert expected, "the dataset should contain consent-related injections"
    assert found == expected


def test_cli_generate_writes_file_truth_and_summary(tmp_path: Path) -> None:
    out = tmp_path / "cli.avro"
    result = CliRunner().invoke(main, ["generate", "--subjects", "50", "--days", "30", "--seed", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["events"] == sum(1 for _ in read_events(out))
    assert Path(summary["truth"]) == Path(f"{out}.truth.jsonl")
    assert Path(summary["truth"]).exists()
    summarised = CliRunner().invoke(main, ["summarise", str(out)])
    assert summarised.exit_code == 0, summarised.output
    assert json.loads(summarised.output)["subjects"] == 50


def test_cli_rejects_bad_arguments_with_a_reason(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["generate", "--subjects", "0", "--days", "3", "--out", str(tmp_path / "x.avro")])
    assert result.exit_code != 0
    assert "--subjects" in result.output
    not_avro = tmp_path / "not.avro"
    not_avro.write_bytes(b"hello")
    result = CliRunner().invoke(main, ["summarise", str(not_avro)])
    assert result.exit_code != 0
    assert "not an Avro object container file" in result.output
