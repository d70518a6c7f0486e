"""The HTML the server sends a browser: a subject's lineage page, the key form, refusals.

Self-contained: one document, its style inline (allowed by hash in the
Content-Security-Policy, so nothing else may run or load), no script, no
external asset. Every value from the tables or the request is escaped.

The lineage page answers the DPO's first question about a person [7]: the
categories of their data held by recipients, every recipient grouped by
country, whether the country is inside the EU/EEA and under which transfer
mechanism the data went, with violations and transfers nothing frames in red.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from urllib.parse import quote, urlencode

import pycountry

from consentflow.core.lineage import RecipientHolding
from consentflow.core.recipients import FRAMING_MECHANISMS
from consentflow.policy import labels
from consentflow.policy.geography import in_eea
from consentflow.policy.versions import load_policy
from consentflow.policy.vocabulary import RecipientKind, Rule
from consentflow.sinks.answers import ActiveViolation

_FRAMING = frozenset(m.value for m in FRAMING_MECHANISMS)

STYLE = """
:root { color-scheme: light; --red: #b42318; --red-bg: #fef3f2; --green: #067647; --muted: #667085; --line: #e4e7ec; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #101828; background: #f9fafb; }
header { background: #1d2939; color: #fff; padding: 14px 28px; display: flex; justify-content: space-between; align-items: center; }
header h1 { font-size: 19px; margin: 0; font-weight: 600; }
header form { margin: 0; }
main { max-width: 1280px; margin: 0 auto; padding: 20px 28px 40px; }
h2 { font-size: 17px; margin: 26px 0 10px; }
h3 { font-size: 15px; margin: 0 0 8px; }
code, .id { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 13px; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 16px; min-width: 150px; }
.card b { display: block; font-size: 22px; }
.card.alert { border-color: var(--red); background: var(--red-bg); color: var(--red); }
.chips { display: flex; flex-wrap: wrap; gap: 6px; padding: 0; margin: 0; list-style: none; }
.chips li { background: #eef4ff; border: 1px solid #c7d7fe; border-radius: 999px; padding: 2px 10px; font-size: 13px; }
.chips li small { color: var(--muted); }
.country { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; margin: 0 0 14px; }
.country.outside { border-left: 5px solid #f79009; }
.country.inside { border-left: 5px solid var(--green); }
.country.unknown { border-left: 5px solid var(--red); }
.tag { display: inline-block; border-radius: 4px; padding: 0 6px; font-size: 12px; font-weight: 600; margin-left: 6px; }
.tag.inside { background: #ecfdf3; color: var(--green); }
.tag.outside { background: #fffaeb; color: #b54708; }
.tag.bad { background: var(--red); color: #fff; }
table { border-collapse: collapse; width: 100%; font-size: 13.5px; }
th, td { text-align: left; vertical-align: top; padding: 5px 8px; border-bottom: 1px solid var(--line); overflow-wrap: break-word; }
th { color: var(--muted); font-weight: 600; font-size: 12.5px; }
tr.violation td { background: var(--red-bg); }
td.unframed { color: var(--red); font-weight: 700; }
.violations tr td { background: var(--red-bg); }
.muted { color: var(--muted); }
.box { max-width: 440px; margin: 60px auto; background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 22px 26px; }
.box input[type=password], .box input[type=text] { width: 100%; padding: 8px; font: inherit; border: 1px solid #d0d5dd; border-radius: 6px; }
button { font: inherit; padding: 6px 14px; border-radius: 6px; border: 1px solid #d0d5dd; background: #fff; cursor: pointer; }
header button { background: transparent; color: #fff; border-color: #98a2b3; }
.error { color: var(--red); }
.tools { display: flex; flex-wrap: wrap; gap: 10px 28px; align-items: end; margin: 0 0 14px; }
.tools form { margin: 0; display: flex; gap: 8px; align-items: end; }
.tools label { font-size: 13px; color: var(--muted); display: flex; flex-direction: column; }
.tools input { font: inherit; padding: 5px 8px; border: 1px solid #d0d5dd; border-radius: 6px; color: #101828; }
table.recipients { table-layout: fixed; }
table.violations { table-layout: fixed; } .violations td { overflow-wrap: anywhere; }
.recipients col.who { width: 19%; } .recipients col.kind { width: 11%; } .recipients col.how { width: 14%; }
.recipients col.what { width: 19%; } .recipients col.why { width: 21%; } .recipients col.when { width: 8%; }
.name { font-weight: 600; display: block; }
.basis { color: var(--muted); display: block; font-size: 12.5px; }
.differs { color: var(--red); display: block; font-size: 12.5px; }
.purpose .tag.bad { margin-left: 0; }
.purpose + .purpose { margin-top: 4px; }
@page { size: A4; margin: 12mm; }
@media print {
  body { background: #fff; font-size: 10pt; }
  header { background: none; color: #000; padding: 0 0 6px; border-bottom: 1px solid #000; }
  header form, .tools { display: none; }
  main { max-width: none; padding: 0; }
  table { font-size: 8.5pt; }
  th, td { padding: 3px 4px; }
  tr, .card { break-inside: avoid; }
  h2, h3 { break-after: avoid; }
  .country { border-radius: 0; padding: 6px 8px; }
  a { color: inherit; text-decoration: none; }
  .recipients col.who, .recipients col.what { width: 18%; } .recipients col.kind { width: 10%; }
  .recipients col.how { width: 13%; } .recipients col.when { width: 10%; }
}
"""

_STYLE_ELEMENT = re.compile(r"<style>(.*?)</style>", re.DOTALL)


def _policy(styles: Iterable[str]) -> str:
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in styles)
    return f"default-src 'none'; style-src {hashes or chr(39) + 'none' + chr(39)}; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"


#: The Content-Security-Policy the pages are sent with: nothing runs, nothing loads, only the inline style above applies.
CONTENT_SECURITY_POLICY = _policy([STYLE])


def content_security_policy(document: str) -> str:
    """The same policy for another self-contained document: its own inline ``<style>`` elements allowed by hash, nothing else."""
    return _policy(_STYLE_ELEMENT.findall(document))


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")


#: What the as-of field takes: an ISO 8601 UTC instant to the minute or second, or a bare date (midnight UTC). The
#: server parses it (``parse_instant``, a 422 page naming the field otherwise); the pattern lets the browser say so first.
AS_OF_PATTERN = r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2})?Z?)?"


def _utc_input(value: datetime) -> str:
    """An instant as the as-of field shows and sends it: ISO 8601 in UTC with its ``Z``, the same in every locale."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _document(title: str, body: str, *, header_right: str = "") -> str:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="same-origin">'
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>"
        f"<header><h1>consentflow · {_e(title)}</h1>{header_right}</header>"
        f"<main>{body}</main></body></html>\n"
    )


def _logout() -> str:
    return '<form method="post" action="/logout"><button type="submit">Forget key</button></form>'


# -- the lineage page -------------------------------------------------------------------------


def _country_heading(country: str) -> tuple[str, str]:
    """(css class, heading html) of one country group [7]."""
    if not country:
        return "unknown", 'Unknown country <span class="tag bad">recipient not in the registry</span>'
    named = _country_name(country)
    if in_eea(country):
        return "inside", f'{named} <span class="tag inside">inside the EU/EEA</span>'
    return "outside", f'{named} <span class="tag outside">outside the EU/EEA: needs a transfer mechanism [7]</span>'


def _country_name(code: str) -> str:
    """``United States (US)``: the ISO 3166-1 name, escaped; the code alone when pycountry does not know it."""
    found = pycountry.countries.get(alpha_2=code)
    return f"{_e(found.name)} ({_e(code)})" if found is not None else _e(code)


def unframed(holding: RecipientHolding) -> bool:
    """Whether some of the recipient's data left the EU/EEA (or went to an unknown country) with no mechanism framing it [7]."""
    return not in_eea(holding.country) and any(m not in _FRAMING for m in holding.mechanisms)


def _mechanism_cell(holding: RecipientHolding) -> str:
    """The mechanisms the recipient's data went under, in plain words; red where a transfer out of the EU/EEA had none."""
    text = "<br>".join(_e(labels.mechanism(m)) for m in sorted(holding.mechanisms)) or "none"
    return (
        f'<td class="unframed">{text} <span class="tag bad">not framed</span></td>' if unframed(holding) else f"<td>{text}</td>"
    )


def _recipient_cell(holding: RecipientHolding, name: str | None, violations: int) -> str:
    """The recipient's legal name from the registry, its id beside it (the id alone is what the tables join on) [4]."""
    flag = f' <span class="tag bad">{violations} violation{"s" if violations != 1 else ""}</span>' if violations else ""
    named = f'<span class="name">{_e(name)}</span>' if name else '<span class="name muted">not in the registry</span>'
    return f'<td class="recipient" data-recipient="{_e(holding.recipient_id)}">{named}<code class="id">{_e(holding.recipient_id)}</code>{flag}</td>'


def _purposes_cell(holding: RecipientHolding) -> str:
    """Each purpose in plain words with the legal basis its edges were recorded under, and where that is not the one
    the policy gives the purpose, a flag saying so with the policy's beside [3; GDPR Art. 6(1)]."""
    policy = load_policy()
    cells = []
    for p in sorted(holding.purposes):
        given = labels.legal_basis(policy.basis_of(p))
        # A holding made without its recorded bases (an older caller) shows the policy's, as the page did before.
        recorded = sorted(holding.legal_bases.get(p, ())) or [policy.basis_of(p).value]
        basis = "; ".join(labels.legal_basis(b) for b in recorded)
        flag = (
            '<span class="tag bad">not the policy\'s basis</span>'
            f'<span class="differs">the policy gives this purpose {_e(given)} [3]</span>'
            if p in holding.legal_basis_differs
            else ""
        )
        cells.append(
            f'<div class="purpose" data-purpose="{_e(p)}">{_e(labels.purpose(p))}'
            f'<span class="basis" data-basis="{_e(" ".join(recorded))}">basis: {_e(basis)}</span>{flag}</div>'
        )
    return "".join(cells)


def _recipient_rows(holdings: Sequence[RecipientHolding], violated: dict[str, int], names: Mapping[str, str]) -> str:
    rows = []
    for h in holdings:
        count = violated.get(h.recipient_id, 0)
        rows.append(
            f'<tr class="{"violation" if count else ""}">'
            f"{_recipient_cell(h, names.get(h.recipient_id), count)}"
            f"<td>{_e(labels.label(RecipientKind, h.recipient_kind))}</td>"
            f"{_mechanism_cell(h)}"
            f"<td>{_e('; '.join(labels.category(c) for c in sorted(h.categories)))}</td>"
            f"<td>{_purposes_cell(h)}</td>"
            f"<td>{_e(_when(h.first))}</td><td>{_e(_when(h.last))}</td></tr>"
        )
    return "".join(rows)


def _violation_rows(violations: Iterable[ActiveViolation], names: Mapping[str, str]) -> str:
    return "".join(
        "<tr>"
        f"<td>{_e(_when(v.occurred_at))}</td>"
        f'<td><b>{_e(labels.label(Rule, v.rule))}</b> <code class="rule">{_e(v.rule)}</code></td>'
        f"<td>[{_e(v.policy_section)}]</td>"
        f'<td>{_e(names.get(v.recipient_id or "", ""))} <code class="id">{_e(v.recipient_id or "")}</code></td>'
        f"<td>{_e(labels.purpose(v.purpose) if v.purpose else '')}</td>"
        f"<td>{_e('; '.join(labels.category(c) for c in v.categories))}</td>"
        f"<td>{_e(v.detail)}</td>"
        "</tr>"
        for v in violations
    )


def _tools(subject_id: str, as_of: datetime | None) -> str:
    """Two forms, no script (the policy forbids it): the instant to show the lineage at, and another subject to open."""
    value = "" if as_of is None else _utc_input(as_of)
    now = f' <a href="{_e(lineage_path(subject_id))}" id="as-of-now">now</a>' if as_of is not None else ""
    return (
        '<nav class="tools">'
        f'<form method="get" action="{_e(lineage_path(subject_id))}" id="as-of-form">'
        # A text field, not datetime-local: that one shows the browser's locale (mm/dd/yyyy, 12 h) beside a UTC label.
        '<label for="as_of">As of (UTC, e.g. 2025-03-01T12:00:00Z or 2025-03-01)'
        f'<input type="text" id="as_of" name="as_of" value="{_e(value)}" pattern="{_e(AS_OF_PATTERN)}" '
        'placeholder="YYYY-MM-DDThh:mm:ssZ" title="An instant in UTC: 2025-03-01T12:00:00Z, or a date: 2025-03-01" '
        'size="22" autocomplete="off" spellcheck="false"></label>'
        f'<button type="submit">Show</button>{now}</form>'
        '<form method="get" action="/subjects" id="subject-form">'
        '<label for="subject_id">Another subject<input type="text" id="subject_id" name="subject_id" required></label>'
        '<button type="submit">Open</button></form></nav>'
    )


def lineage_page(
    subject_id: str,
    holdings: Sequence[RecipientHolding],
    stored_in: Sequence[str],
    violations: Sequence[ActiveViolation],
    *,
    signed_in_as: str,
    generated_at: datetime,
    names: Mapping[str, str] | None = None,
    as_of: datetime | None = None,
) -> str:
    """The lineage page of one subject: categories held, recipients by country with their legal names (``names``:
    recipient id -> name in the registry), mechanisms and legal bases, violations [7]; at ``as_of`` (None: now)."""
    names = names or {}
    by_country: dict[str, list[RecipientHolding]] = defaultdict(list)
    for h in holdings:
        by_country[h.country].append(h)
    violated: dict[str, int] = defaultdict(int)
    for v in violations:
        if v.recipient_id:
            violated[v.recipient_id] += 1
    held: dict[str, int] = defaultdict(int)
    for h in holdings:
        for category in h.categories:
            held[category] += 1
    outside = [c for c in by_country if c and not in_eea(c)]
    not_framed = [h for h in holdings if unframed(h)]

    # Outside the EU/EEA first (that is where the DPO looks), unknown countries last.
    order = sorted(by_country, key=lambda c: (not c, in_eea(c), c))
    groups = []
    columns = '<colgroup><col class="who"><col class="kind"><col class="how"><col class="what"><col class="why"><col class="when"><col class="when"></colgroup>'
    for country in order:
        css, heading = _country_heading(country)
        members = sorted(by_country[country], key=lambda h: h.recipient_id)
        groups.append(
            f'<section class="country {css}" data-country="{_e(country)}"><h3>{heading}</h3>'
            f'<table class="recipients">{columns}<thead><tr><th>recipient</th><th>kind</th><th>transfer mechanism</th>'
            "<th>categories</th><th>purposes and legal basis</th><th>first</th><th>last</th></tr></thead>"
            f"<tbody>{_recipient_rows(members, violated, names)}</tbody></table></section>"
        )
    chips = "".join(
        f'<li data-category="{_e(category)}">{_e(labels.category(category))} <small>{n} recipient{"s" if n != 1 else ""}</small></li>'
        for category, n in sorted(held.items())
    )
    cards = (
        '<div class="cards">'
        f'<div class="card"><b>{len(holdings)}</b>recipients</div>'
        f'<div class="card"><b>{len(by_country)}</b>countries</div>'
        f'<div class="card"><b>{len(outside)}</b>outside the EU/EEA</div>'
        f'<div class="card{" alert" if not_framed else ""}" id="unframed-count"><b>{len(not_framed)}</b>recipients without a transfer mechanism</div>'
        f'<div class="card{" alert" if violations else ""}" id="violation-count"><b>{len(violations)}</b>active violations</div>'
        "</div>"
    )
    violation_section = (
        '<h2 id="violations">Active violations</h2>'
        '<table class="violations"><thead><tr><th>occurred</th><th>rule</th><th>policy</th><th>recipient</th>'
        f"<th>purpose</th><th>categories</th><th>detail</th></tr></thead><tbody>{_violation_rows(violations, names)}</tbody></table>"
        if violations
        else '<h2 id="violations">Active violations</h2><p class="muted">None: every processing of this subject had its basis.</p>'
    )
    instant = (
        f'as of <b id="as-of">{_e(_when(as_of))}</b>'
        if as_of is not None
        else f'as of now (<span id="as-of">{_e(_when(generated_at))}</span>)'
    )
    body = (
        f"{_tools(subject_id, as_of)}"
        f'<p>Subject <code id="subject">{_e(subject_id)}</code> · {instant} · '
        f'<a href="{_e(access_path(subject_id, as_of))}">access export [8.1]</a> · '
        f"stored by the platform in {_e(', '.join(stored_in))} [7]</p>"
        f"{cards}"
        f'<h2>Categories held by recipients</h2><ul class="chips" id="categories">{chips or "<li>none</li>"}</ul>'
        f"<h2>Recipients by country [7]</h2>{''.join(groups) or '<p class=muted>No recipient received data of this subject.</p>'}"
        f"{violation_section}"
        f'<p class="muted">Signed in with key {_e(signed_in_as)}. Only metadata is shown: ids, categories, purposes, '
        "countries and times, never data values.</p>"
    )
    return _document(f"Lineage of {subject_id}", body, header_right=_logout())


# -- the key form, refusals ----------------------------------------------------------------------


def login_page(next_path: str, message: str = "") -> str:
    """The form a browser presents its API key with; the key starts a session (its id in an HttpOnly cookie), never in the URL."""
    problem = f'<p class="error" role="alert">{_e(message)}</p>' if message else ""
    body = (
        '<div class="box"><h2>API key needed</h2>'
        "<p>This page shows which recipients hold a person's data. Enter an API key with the "
        "<b>dpo</b> or <b>auditor</b> role.</p>"
        f"{problem}"
        '<form method="post" action="/login">'
        f'<input type="hidden" name="next" value="{_e(next_path)}">'
        '<p><label for="key">API key</label><br>'
        '<input type="password" id="key" name="key" autocomplete="current-password" required autofocus></p>'
        '<p><button type="submit" id="submit">Open</button></p></form>'
        '<p class="muted">The key is checked, not kept: a cookie holds a session of this browser, which ends when you '
        "forget the key, after a while unused, or when the browser closes.</p></div>"
    )
    return _document("sign in", body)


def subject_form_page(signed_in_as: str) -> str:
    """The start page: a form asking which subject's lineage to show."""
    body = (
        '<div class="box"><h2>Lineage of a subject</h2>'
        '<form method="get" action="/subjects">'
        '<p><label for="subject_id">Subject id</label><br>'
        '<input type="text" id="subject_id" name="subject_id" required autofocus></p>'
        '<p><button type="submit">Show</button></p></form>'
        f'<p class="muted">Signed in with key {_e(signed_in_as)}.</p></div>'
    )
    return _document("lineage", body, header_right=_logout())


def lineage_path(subject_id: str) -> str:
    """The path of a subject's lineage page (the id percent-encoded)."""
    return f"/subjects/{quote(subject_id, safe='')}/lineage"


def access_path(subject_id: str, as_of: datetime | None = None) -> str:
    """The path of a subject's access export page (the id percent-encoded), at ``as_of`` when one is named."""
    query = "" if as_of is None else "?" + urlencode({"as_of": _utc_input(as_of)})
    return f"/subjects/{quote(subject_id, safe='')}/access{query}"


def error_page(status: int, detail: str) -> str:
    """A refusal as a page: the status and the one-line reason."""
    body = f'<div class="box"><h2>{status}</h2><p class="error">{_e(detail)}</p><p><a href="/">Start page</a></p></div>'
    return _document(f"error {status}", body)
