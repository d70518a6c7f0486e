"""The pages speak plain words: every symbol of the vocabulary has a label, the lineage page names recipients by their
legal name with the id beside, gives each purpose its legal basis, and offers an as-of form and a subject search."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest

from consentflow.core.lineage import RecipientHolding
from consentflow.http.lineage_page import CONTENT_SECURITY_POLICY, access_path, lineage_page
from consentflow.policy import labels
from consentflow.sinks.answers import ActiveViolation

WHEN = datetime(2021, 3, 1, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize("kind", list(labels.LABELS), ids=lambda k: k.__name__)
def test_every_symbol_has_plain_words(kind: type) -> None:
    table = labels.LABELS[kind]
    assert set(table) == set(kind)
    for member in kind:
        words = labels.label(kind, member.value)
        assert words.strip() and "_" not in words and ":" not in words, member  # words, not a code or a term


def test_terms_read_as_words_with_the_gdpr_article_beside() -> None:
    assert labels.legal_basis("consent") == "your consent (GDPR Art. 6(1)(a))"
    assert labels.legal_basis("legitimate_interest") == "our legitimate interest (GDPR Art. 6(1)(f))"
    assert labels.legal_basis("unknown") == "no basis the policy names"
    assert labels.mechanism("scc") == "standard contractual clauses (GDPR Art. 46(2)(c))"
    assert labels.mechanism("none") == "nothing frames the transfer"
    assert labels.consent_state("dpv:ConsentGiven") == "given" and labels.consent_state("never_asked") == "never asked"
    assert labels.category("extra_professional") == "Mad skills, hobbies and associations"
    assert labels.purpose("cookies_advertising") == "Advertising cookies"
    # A symbol a newer release added is shown as it is, not dropped.
    assert labels.purpose("teleportation") == "teleportation"


def _holding(recipient: str, country: str, purposes: set[str], mechanisms: set[str]) -> RecipientHolding:
    return RecipientHolding(
        recipient_id=recipient,
        recipient_kind="emailing_provider",
        country=country,
        categories=frozenset({"contact", "identity"}),
        purposes=frozenset(purposes),
        mechanisms=frozenset(mechanisms),
        first=WHEN,
        last=WHEN,
    )


def _page(as_of: datetime | None = None) -> str:
    holdings = [
        _holding("mailer-us", "US", {"marketing", "service_information"}, {"scc"}),
        _holding("ghost-1", "", {"marketing"}, {"unknown"}),
    ]
    violation = ActiveViolation(
        "v",
        "marketing_without_consent",
        "3.8, 6",
        "s-1",
        WHEN,
        "mailer-us",
        "marketing",
        ("contact",),
        ("e",),
        "after withdrawal",
        1,
    )
    return lineage_page(
        "s-1",
        holdings,
        ["FR"],
        [violation],
        signed_in_as="dpo",
        generated_at=WHEN,
        names={"mailer-us": "Mailer & Co, Inc."},
        as_of=as_of,
    )


class _Rows(HTMLParser):
    """Per recipient row: the text of each cell."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[str]] = {}
        self._row: list[str] | None = None
        self._cell: list[str] = []
        self._in_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "td" and attributes.get("class") == "recipient":
            self._row = []
            self.rows[attributes.get("data-recipient") or ""] = self._row
        if tag == "td" and self._row is not None:
            self._in_cell, self._cell = True, []
        if tag in ("br", "div", "span", "code") and self._in_cell:
            self._cell.append(" | ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._row is not None and self._in_cell:
            self._row.append(re.sub(r"\s*\|\s*(\|\s*)*", " | ", "".join(self._cell)).strip(" |"))
            self._in_cell = False
        if tag == "tr":
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._in_cell:
            self._cell.append(data)


def test_a_recipient_line_has_its_legal_name_the_id_beside_and_each_purposes_basis() -> None:
    rows = _Rows()
    rows.feed(_page())
    who, kind, mechanism, categories, purposes, _, _ = rows.rows["mailer-us"]
    assert who.startswith("Mailer & Co, Inc. | mailer-us")
    assert kind == "emailing provider"
    assert mechanism == "standard contractual clauses (GDPR Art. 46(2)(c))"
    assert categories == "Contact details (email, phone); Identity (names, birth date and place, gender)"
    assert purposes == (
        "Offers, newsletters and event invitations | basis: your consent (GDPR Art. 6(1)(a)) | "
        "Information about the service | basis: our contract with you (GDPR Art. 6(1)(b))"
    )
    ghost = rows.rows["ghost-1"]
    assert ghost[0] == "not in the registry | ghost-1" and ghost[2].startswith("unknown (recipient not in the registry)")


def test_the_page_has_no_machine_terms_where_a_person_reads() -> None:
    page = _page()
    visible = re.sub(r"<[^>]+>", " ", page.split("<main>", 1)[1])
    for term in ("emailing_provider", "service_information", "eu-gdpr:", "dpv:", ">scc<"):
        assert term not in visible, term
    # The rule's code stays beside its words, for the DPO who searches the violations by it.
    assert "marketing without consent" in visible and "marketing_without_consent" in visible


def test_the_as_of_form_and_the_subject_search_need_no_script() -> None:
    now = _page()
    assert re.search(r'<form method="get" action="/subjects/s-1/lineage" id="as-of-form">', now)
    # A text field with a pattern, not datetime-local (which shows the browser's locale format beside a UTC label).
    (field,) = re.findall(r'<input type="text" id="as_of"[^>]*>', now)
    assert 'value=""' in field and "datetime-local" not in now
    pattern = re.fullmatch(r'.*pattern="([^"]+)".*', field)
    assert pattern is not None
    for good in ("2025-03-01T12:00:00Z", "2025-03-01", "2025-03-01T12:00Z", "2025-03-01T12:00:00"):
        assert re.fullmatch(pattern[1], good), good
    for bad in ("03/01/2025", "03/01/2025, 12:00 PM", "2025-03-01 12:00", "yesterday", "2025-03-01T12:00:00+01:00"):
        assert not re.fullmatch(pattern[1], bad), bad
    assert re.search(r'<form method="get" action="/subjects" id="subject-form">.*name="subject_id"', now)
    assert "as of now" in now and 'id="as-of-now"' not in now
    past = _page(datetime(2020, 6, 1, 12, 0, 5, tzinfo=UTC))
    assert 'value="2020-06-01T12:00:05Z"' in past and 'id="as-of">2020-06-01 12:00 UTC' in past
    assert 'href="/subjects/s-1/lineage" id="as-of-now"' in past  # back to now
    assert f'href="{access_path("s-1", datetime(2020, 6, 1, 12, 0, 5, tzinfo=UTC))}"' in past
    assert access_path("s-1", datetime(2020, 6, 1, 12, 0, 5, tzinfo=UTC)) == "/subjects/s-1/access?as_of=2020-06-01T12%3A00%3A05Z"
    assert "<script" not in past and "form-action 'self'" in CONTENT_SECURITY_POLICY


def test_the_page_has_a_print_stylesheet_for_a4() -> None:
    page = _page()
    assert "@page { size: A4" in page and "@media print" in page
    assert re.search(r"@media print \{[^}]*\}\s*[^@]*header form, \.tools \{ display: none; \}", page)
