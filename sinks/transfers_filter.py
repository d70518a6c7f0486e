"""Which lineage edges are transfers outside the EU/EEA, said once for every query that asks [7].

§7: "We keep your Personal Data in the European Union", and a transfer elsewhere must be
framed. An edge whose country is unknown (a recipient the registry does not know) cannot be
shown to have stayed inside, so it counts as outside: the overview, ``transfers --outside-eea``
and the record of processing read the same condition.
"""

from __future__ import annotations

from consentflow.policy.geography import EEA_COUNTRIES

#: The SQL condition on a row's ``country``; its parameter is ``outside_eea_parameters()``.
OUTSIDE_EEA = "country NOT IN {eea:Array(String)}"


def outside_eea_parameters() -> dict[str, list[str]]:
    """The query parameters ``OUTSIDE_EEA`` names: the EU/EEA countries."""
    return {"eea": sorted(EEA_COUNTRIES)}
