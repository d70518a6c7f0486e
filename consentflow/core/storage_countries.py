"""Where the platform stores personal data: the list §7 promises, and its one check [7].

"Upon simple request, we can provide you with the list of countries where we store your data and those where it
is occasionally sent." [7] The countries where data is *stored* are:

* the controller's own storage countries, configured in the policy file (``storage_countries``) and labelled as
  such; "We keep your Personal Data in the European Union" [7];
* the country of every technical subcontractor [4.3] the registry has in force at the instant: the policy's
  "subcontractors which we may employ for technical ... services" host and run the platform, so whatever the
  platform holds of a subject they hold too, whether or not an event names them for that subject.

Our reading, written down: §4.3 names no hosting kind apart from technical subcontractors, and the registry has
none, so every technical subcontractor counts as a place of storage; a processor that only receives data it is sent
(emailing, SMS, payment, analytics...) is a country data is *sent* to, answered from the lineage. §7's first
sentence becomes a check: a storage country outside the EU/EEA is flagged, naming who stores there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from consentflow.core.recipients import RecipientRegistry
from consentflow.policy.geography import in_eea
from consentflow.policy.versions import Policy
from consentflow.policy.vocabulary import RecipientKind

#: Who stores data in a country: the controller itself, or technical subcontractors hosting the platform [4.3].
CONTROLLER = "controller"
HOSTING_SUBCONTRACTOR = "hosting_subcontractor"

#: The kinds of recipient that host the platform's data [4.3].
HOSTING_KINDS = frozenset({RecipientKind.TECHNICAL_SUBCONTRACTOR})


@dataclass(frozen=True)
class StorageCountry:
    """One country where the platform stores personal data, who stores it there, and whether §7 holds there."""

    country: str
    in_eea: bool
    stored_by: tuple[str, ...]  # CONTROLLER and/or HOSTING_SUBCONTRACTOR
    recipients: tuple[str, ...]  # the hosting subcontractors' ids (none for the controller alone)
    outside_eu_flagged: bool  # "We keep your Personal Data in the European Union" [7] does not hold here


def storage_countries(policy: Policy, registry: RecipientRegistry, at: datetime) -> list[StorageCountry]:
    """The countries where personal data is stored at ``at``, by country code [7]."""
    by_country: dict[str, tuple[set[str], set[str]]] = {}
    for country in policy.storage_countries:
        by_country.setdefault(country, (set(), set()))[0].add(CONTROLLER)
    for recipient_id in registry.recipient_ids():
        version = registry.at(recipient_id, at)
        if version is not None and version.kind in HOSTING_KINDS and version.country:
            stored_by, recipients = by_country.setdefault(version.country, (set(), set()))
            stored_by.add(HOSTING_SUBCONTRACTOR)
            recipients.add(recipient_id)
    out = []
    for country, (stored_by, recipients) in sorted(by_country.items()):
        inside = in_eea(country)
        out.append(StorageCountry(country, inside, tuple(sorted(stored_by)), tuple(sorted(recipients)), not inside))
    return out
