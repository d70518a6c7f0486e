"""Scoped service keys (issue 21): a service key emits only the topics, and for consent the purposes and channels, it names.

The cookie banner's key got 202 for a marketing consent via the registration
form, a disclosure, an erasure marked fulfilled and an account closed. Now
each is 403 naming what is not allowed, before anything is sent, while what the
scope allows goes on to Kafka (unreachable here, port 1: 503, past every check).
A service key that states no scope is refused when the keys are read, and
``consentflow serve`` does not start, with one line saying how to fix it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from consentflow.cli import main
from consentflow.http.api_keys import KEYS_ENV, ApiKey, KeyFileError, KeyRing, Role, key_hash, load_keys, new_key, read_key_file
from consentflow.http.app import create_app
from consentflow.http.context import ServerSettings
from consentflow.http.key_scopes import UNRESTRICTED, EmitScope

BANNER, LEGACY = new_key(), new_key()
DPO = new_key()
BANNER_SCOPE = EmitScope(frozenset({"cookie", "consent"}), ("cookies_*",), ("cookie_banner",))
HEADER = 'sha256 = "' + "0" * 64 + '"\n'


def _consent(**changes: Any) -> dict[str, Any]:
    body = {
        "subject_id": "subj-1",
        "purpose": "cookies_analytics",
        "action": "granted",
        "channel": "cookie_banner",
        "source_service": "cookie-banner",
    }
    return body | changes


BODIES: dict[str, dict[str, Any]] = {
    "consent": _consent(),
    "cookie": {
        "subject_id": "subj-1",
        "vendor_id": "adnet-us",
        "cookie_category": "analytics",
        "cookie_name": "_ga",
        "source_service": "cookie-banner",
    },
    "disclosure": {
        "subject_id": "subj-1",
        "recipient_id": "postwave",
        "categories": ["contact"],
        "purpose": "marketing",
        "legal_basis": "consent",
        "source_service": "cookie-banner",
    },
    "rights": {
        "subject_id": "subj-1",
        "right": "erasure",
        "status": "fulfilled",
        "request_id": "req-1",
        "source_service": "cookie-banner",
    },
    "profile": {"subject_id": "subj-1", "action": "closed", "account_kind": "applicant", "source_service": "cookie-banner"},
}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    keys = KeyRing(
        [
            ApiKey("cookie-banner", Role.SERVICE, key_hash(BANNER), BANNER_SCOPE),
            ApiKey("cookie-banner-old", Role.SERVICE, key_hash(LEGACY), UNRESTRICTED),
            ApiKey("dpo", Role.DPO, key_hash(DPO)),
        ]
    )
    dsn = f"chdb://{tmp_path_factory.mktemp('scopes')}"  # never read: the collector does not touch ClickHouse
    settings = ServerSettings(dsn, "consentflow", keys, bootstrap="127.0.0.1:1", collect_timeout=0.5)
    with TestClient(create_app(settings)) as client:
        yield client


def _post(api: TestClient, topic: str, body: dict[str, Any], key: str = BANNER) -> Any:
    return api.post(f"/v1/collect/{topic}", json=body, headers={"X-API-Key": key})


@pytest.mark.parametrize(
    ("topic", "body", "field", "words"),
    [
        (
            "consent",
            _consent(purpose="marketing"),
            "purpose",
            "may not record consent for purpose marketing (its purposes: cookies_*)",
        ),
        (
            "consent",
            _consent(channel="registration_form"),
            "channel",
            "through channel registration_form (its channels: cookie_banner)",
        ),
        ("disclosure", BODIES["disclosure"], "topic", "may not emit to topic disclosure (its topics: consent, cookie)"),
        ("rights", BODIES["rights"], "topic", "may not emit to topic rights"),
        ("profile", BODIES["profile"], "topic", "may not emit to topic profile"),
    ],
)
def test_a_scoped_service_key_is_refused_what_its_scope_does_not_name(
    api: TestClient, topic: str, body: dict[str, Any], field: str, words: str
) -> None:
    refused = _post(api, topic, body)
    assert refused.status_code == 403, refused.text
    assert refused.json()["field"] == field
    assert refused.json()["detail"].startswith("key cookie-banner ") and words in refused.json()["detail"]


@pytest.mark.parametrize("topic", ["consent", "cookie"])
def test_what_the_scope_names_goes_on_to_kafka(api: TestClient, topic: str) -> None:
    assert _post(api, topic, BODIES[topic]).status_code == 503  # past every check; Kafka is away


@pytest.mark.parametrize("topic", sorted(BODIES))
def test_an_explicitly_unscoped_key_and_the_dpos_emit_anything(api: TestClient, topic: str) -> None:
    body = BODIES[topic] | {"source_service": "cookie-banner-old"}
    assert _post(api, topic, body, LEGACY).status_code == 503
    assert _post(api, topic, BODIES[topic], DPO).status_code == 503


def test_a_service_key_without_a_scope_emits_nothing(tmp_path: Path) -> None:
    """Built in code, past the key file's check: still refused, never unrestricted by omission."""
    key = new_key()
    ring = KeyRing([ApiKey("cookie-banner", Role.SERVICE, key_hash(key))])
    settings = ServerSettings(f"chdb://{tmp_path}", "consentflow", ring, bootstrap="127.0.0.1:1", collect_timeout=0.5)
    with TestClient(create_app(settings)) as client:
        refused = _post(client, "cookie", BODIES["cookie"], key)
    assert refused.status_code == 403 and "states no scope" in refused.json()["detail"]


def test_api_key_add_writes_the_scope_and_the_key_file_reads_it_back(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.toml"
    scoped = ["--topics", "cookie,consent", "--purposes", "cookies_*", "--channels", "cookie_banner"]
    added = CliRunner().invoke(
        main, ["api-key", "add", "--keys", str(keys_file), "--name", "cookie-banner", "--role", "service", *scoped]
    )
    assert added.exit_code == 0, added.output
    key = added.stdout.strip().splitlines()[0]
    assert read_key_file(keys_file) == [ApiKey("cookie-banner", Role.SERVICE, key_hash(key), BANNER_SCOPE)]
    refusals = [
        (["--role", "service"], "a service key names what it may emit: give --topics"),
        (["--role", "service", "--topics", "disclosure,recipients"], "'recipients' is not a topic the collector takes"),
        (["--role", "service", "--topics", "consent", "--channels", "cookie_banner"], "purposes: a key that may emit consent"),
        (
            ["--role", "service", "--topics", "consent", "--purposes", "cookie_*", "--channels", "x"],
            "'cookie_*' matches no purpose",
        ),
        (["--role", "service", "--topics", "cookie", "--purposes", "marketing"], "scope consent events"),
        (["--role", "dpo", "--topics", "cookie"], "only a service key has a scope"),
    ]
    for args, words in refusals:
        refused = CliRunner().invoke(main, ["api-key", "add", "--keys", str(keys_file), "--name", "other", *args])
        assert refused.exit_code == 1 and words in refused.output, (args, refused.output)


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ('topics = ["cookie"]\nscopes = "any"\n', 'scopes = "any" and topics exclude each other'),
        ('scopes = "all"\n', "scopes: 'all' is not \"any\""),
        ('topics = "cookie"\n', "topics: expected a list of strings"),
        ('purposes = ["marketing"]\n', "name the topics too"),
    ],
)
def test_a_malformed_scope_is_refused_naming_the_key_and_field(tmp_path: Path, entry: str, words: str) -> None:
    keys_file = tmp_path / "keys.toml"
    keys_file.write_text(f'[[keys]]\nname = "banner"\nrole = "service"\n{HEADER}{entry}')
    with pytest.raises(KeyFileError, match="key 1 \\(banner\\)") as caught:
        read_key_file(keys_file)
    assert words in str(caught.value)


def test_the_environment_spells_a_scope_in_brackets() -> None:
    key = new_key()
    text = f"service@cookie-banner[topics=cookie+consent;purposes=cookies_*;channels=cookie_banner]:{key},service@old[any]:{key}x"
    ring = load_keys(None, {KEYS_ENV: text})
    assert [(k.name, k.scope) for k in ring.keys] == [("cookie-banner", BANNER_SCOPE), ("old", UNRESTRICTED)]
    with pytest.raises(KeyFileError, match=r"service@NAME\[any\]:KEY"):
        load_keys(None, {KEYS_ENV: f"service@cookie-banner:{key}"})
    with pytest.raises(KeyFileError, match="only a service key has a scope"):
        load_keys(None, {KEYS_ENV: f"dpo[any]:{key}"})


def test_serve_refuses_a_service_key_without_a_scope_in_one_line_saying_how(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.toml"
    keys_file.write_text(f'[[keys]]\nname = "cookie-banner"\nrole = "service"\n{HEADER}')
    keys_file.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if k != KEYS_ENV}
    command = [sys.executable, "-c", "from consentflow.cli import main; main()", "serve", "--keys", str(keys_file)]
    started = subprocess.run([*command, "--dsn", f"chdb://{tmp_path}/db"], env=env, capture_output=True, text=True, timeout=60)
    assert started.returncode == 1
    lines = started.stderr.strip().splitlines()
    assert len(lines) == 1, started.stderr
    assert "(cookie-banner): a service key names what it may emit: add topics = [...]" in lines[0]
    assert 'or scopes = "any" to let it emit anything as before' in lines[0]
