"""Where data is stored, and §7's check: "We keep your Personal Data in the European Union" [7, 4.3]."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from consentflow.core.recipients import RecipientRegistry, RecipientVersion
from consentflow.core.storage_countries import CONTROLLER, HOSTING_SUBCONTRACTOR, storage_countries
from consentflow.policy.versions import load_policy
from consentflow.policy.vocabulary import Purpose, RecipientKind
from tests.support.builders import CLOUDNEST, POSTWAVE, RecipientSpec, at, scc_from


def _registry(*specs: RecipientSpec) -> RecipientRegistry:
    registry = RecipientRegistry()
    for spec in specs:
        registry.add(RecipientVersion.from_record(dict(spec.event().record)))
    return registry


US_HOST = RecipientSpec(
    "bighost-us", RecipientKind.TECHNICAL_SUBCONTRACTOR, "US", (Purpose.TECHNICAL_OPERATIONS_ANALYTICS,), scc_from(at(days=-400))
)


def test_the_controllers_country_and_its_hosting_subcontractors_are_where_data_is_stored() -> None:
    found = storage_countries(load_policy(), _registry(CLOUDNEST, POSTWAVE), at())
    assert [(c.country, c.stored_by, c.recipients) for c in found] == [
        ("FR", (CONTROLLER,), ()),  # the policy file's storage country
        ("IE", (HOSTING_SUBCONTRACTOR,), (CLOUDNEST.recipient_id,)),
    ]
    # An emailing provider in the US is a country data is *sent* to, not where the platform stores it.
    assert not any(c.outside_eu_flagged for c in found)


def test_a_hosting_subcontractor_outside_the_eu_is_flagged_against_section_7() -> None:
    found = {c.country: c for c in storage_countries(load_policy(), _registry(CLOUDNEST, US_HOST), at())}
    assert found["US"].outside_eu_flagged and not found["US"].in_eea
    assert found["US"].recipients == (US_HOST.recipient_id,)
    assert not found["FR"].outside_eu_flagged and not found["IE"].outside_eu_flagged


def test_a_policy_storing_outside_the_eu_is_flagged() -> None:
    policy = dataclasses.replace(load_policy(), storage_countries=frozenset({"FR", "CH"}))
    found = {c.country: c for c in storage_countries(policy, _registry(), at())}
    assert found["CH"].outside_eu_flagged and found["CH"].stored_by == (CONTROLLER,)
    assert not found["FR"].outside_eu_flagged


def test_only_the_registry_in_force_at_the_instant_counts() -> None:
    later = dataclasses.replace(US_HOST, since=at(days=10))
    off_boarded = dataclasses.replace(US_HOST, recipient_id="gone-host", active=False)
    assert [c.country for c in storage_countries(load_policy(), _registry(later, off_boarded), at())] == ["FR"]
    assert [c.country for c in storage_countries(load_policy(), _registry(later), at() + timedelta(days=11))] == ["FR", "US"]
