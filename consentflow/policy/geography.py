"""Where data goes: the EU/EEA, inside which no transfer mechanism is needed [7]."""

from __future__ import annotations

#: EU member states plus Iceland, Liechtenstein and Norway (ISO 3166-1 alpha-2).
EEA_COUNTRIES = frozenset(
    [
        "AT",
        "BE",
        "BG",
        "HR",
        "CY",
        "CZ",
        "DK",
        "EE",
        "FI",
        "FR",
        "DE",
        "GR",
        "HU",
        "IE",
        "IT",
        "LV",
        "LT",
        "LU",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SK",
        "SI",
        "ES",
        "SE",
        "IS",
        "LI",
        "NO",
    ]
)


def in_eea(country: str) -> bool:
    """Whether ``country`` is in the EU/EEA, where GDPR Chapter V transfers do not arise."""
    return country in EEA_COUNTRIES
