"""The subject access export as one readable, self-contained HTML page [8.1, 12; GDPR Art. 15, 20].

The page shows what ``sinks.subject_access.subject_access_export`` returns and
nothing else: no external stylesheet, font, script or image (it must read the
same offline, years later, attached to a letter), and every value escaped,
since ids and names come from upstream services and the registry. The proof of
record (issue 22) is embedded as the JSON ``consentflow verify-proof`` checks: the
page says what it claims, the command checks it with the log's public key.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

from consentflow.core.checkpoint import NoteError
from consentflow.core.log_proof import unsigned_checkpoint
from consentflow.core.merkle import ProofError
from consentflow.policy import labels
from consentflow.policy.vocabulary import ConsentAction, RecipientKind, RetentionActionKind, Rule

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#1d1d1f}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ccc}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem;font-size:.85rem;table-layout:fixed}
th,td{border:1px solid #ddd;padding:.3rem .4rem;text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{background:#f3f3f5}.note{color:#555;font-size:.9rem}.id,.term{color:#555;font-size:.9em;display:block}
code{font-size:.85rem}details{margin:.3rem 0}.alert{color:#a40000;font-weight:600}.differs{display:block}
pre{white-space:pre-wrap;overflow-wrap:anywhere;font-size:.75rem;background:#f7f7f9;padding:.5rem}
ul.held{columns:2;padding-left:1.2rem}.day{white-space:nowrap}
@page{size:A4;margin:12mm}
@media print{body{margin:0;max-width:none;padding:0;font-size:10pt}table{font-size:8pt}th,td{padding:2px 3px}
tr{break-inside:avoid}h2,h3{break-after:avoid}details{display:block}pre{font-size:6.5pt}}
""" + "".join(f".w{n}{{width:{n}%}}" for n in range(4, 41))  # column widths by class: the page's policy allows no style attribute

#: How a consent can be withdrawn, in the policy's words [6].
_WITHDRAWAL = (
    "unchecking the appropriate box in your account",
    "clicking the “unsubscribe” link provided in each of our messages",
    "contacting us using the methods described in Article 14 of the privacy policy",
)


def _when(value: str | None) -> str | None:
    """An ISO-8601 instant of the export as a person reads it, to the second, in UTC."""
    if value is None:
        return None
    return datetime.fromisoformat(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class Html(str):
    """A table cell already written as HTML (its parts escaped where they were put together)."""

    __slots__ = ()


def _text(value: Any) -> str:
    """A value as escaped text: lists joined, None as an em dash; ``Html`` as it is."""
    if isinstance(value, Html):
        return str(value)
    if value is None or value == []:
        return "—"
    if isinstance(value, list | tuple):
        return escape(", ".join(str(item) for item in value))
    if isinstance(value, bool):
        return "yes" if value else "no"
    return escape(str(value))


def _table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, empty: str, widths: Sequence[int] | None = None) -> str:
    """An HTML table of escaped cells, or a line saying there is nothing; ``widths`` in percent fit it to the page."""
    body = "".join("<tr>" + "".join(f"<td>{_text(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    if not body:
        return f'<p class="note">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    # Fixed layout with widths: a table fits the page (1280 px, A4) and wraps its cells, never cuts a column.
    cols = "".join(f'<col class="w{w}">' for w in widths) if widths else ""
    return f"<table>{f'<colgroup>{cols}</colgroup>' if cols else ''}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _mechanisms(mechanisms: Iterable[Mapping[str, Any]]) -> list[str]:
    """Transfer mechanisms in plain words, each with the GDPR provision framing it [7]."""
    return [labels.mechanism(m["mechanism"]) for m in mechanisms]


def _named(words: str, code: str | None) -> Html:
    """Plain words with the code or id they stand for beside, smaller (what the JSON and the tables call it)."""
    return Html(escape(words) + (f'<span class="id">{escape(code)}</span>' if code else ""))


def _recipient(recipient_id: str | None, name: str | None) -> Html:
    """A recipient by its legal name in the registry, its id beside [4]."""
    if not recipient_id:
        return Html("—")
    return _named(name or "not in the registry", recipient_id)


def _purposes(purposes: Iterable[Mapping[str, Any]]) -> Html:
    """Each purpose in plain words with the legal basis its processing was recorded under (the policy's in an export
    made before these were kept), and where the two differ, a line saying so [3; GDPR Art. 6(1)]."""
    parts = []
    for p in purposes:
        recorded = p.get("recorded_legal_bases") or [p["legal_basis"]]
        basis = "; ".join(labels.legal_basis_of_term(term) for term in recorded)
        parts.append(f'{escape(labels.purpose(p["purpose"]))}<span class="term basis">basis: {escape(basis)}</span>')
        if p.get("legal_basis_differs"):
            parts.append(
                '<span class="alert differs">Not the basis the privacy policy gives this purpose: '
                f"{escape(labels.legal_basis_of_term(p['legal_basis']))} [3].</span>"
            )
    return Html("".join(parts))


def _categories(categories: Iterable[str]) -> str:
    return "; ".join(labels.category(c) for c in categories)


def _consent_section(records: Sequence[Mapping[str, Any]], names: Mapping[str, str | None]) -> str:
    """Per purpose: your consent in plain words, since when, on which basis, how given and withdrawn; the history below.
    The W3C DPV terms are in the JSON export; the notice and policy version of each answer are in its history."""
    summary = _table(
        ("purpose", "your consent", "since", "legal basis", "given or refused via", "withdrawn via", "recipients"),
        (
            (
                labels.purpose(r["purpose"]),
                labels.consent_state(r["state"]),
                _when(r["state_since"]),
                labels.legal_basis_of_term(r["legal_basis"]),
                labels.channel(r["collection_method"]) if r["collection_method"] else None,
                labels.channel(r["withdrawal_method"]) if r["withdrawal_method"] else None,
                Html("".join(_recipient(rid, names.get(rid)) for rid in r["recipients"])) if r["recipients"] else None,
            )
            for r in records
        ),
        empty="No consent was asked of you.",
        widths=(18, 10, 13, 17, 14, 12, 16),
    )
    histories = "".join(
        f"<details><summary>History of “{escape(labels.purpose(r['purpose']))}” ({len(r['events'])} event(s), record "
        f"<code>{escape(r['record_id'])}</code>)</summary>"
        + _table(
            ("time", "what you did", "channel", "notice shown", "policy", "service", "ledger hash"),
            (
                (
                    _when(e["occurred_at"]),
                    labels.label(ConsentAction, e["action"]),
                    labels.channel(e["channel"]),
                    e["notice_id"],
                    e["policy_version"],
                    e["source_service"],
                    e["entry_hash"],
                )
                for e in r["events"]
            ),
            empty="Never asked.",
        )
        + "</details>"
        for r in records
        if r["events"]
    )
    withdraw = "".join(f"<li>{escape(way)}</li>" for way in _WITHDRAWAL)
    return (
        summary
        + histories
        + f'<p class="note">You can withdraw a consent at any time [6] by:</p><ul class="note">{withdraw}</ul>'
    )


def _day(value: str) -> Html:
    """An instant whose date never breaks across lines (a narrow column wraps before the time)."""
    day, _, rest = (_when(value) or "").partition(" ")
    return Html(f'<span class="day">{escape(day)}</span> {escape(rest)}')


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def _action_rows(
    actions: Iterable[Mapping[str, Any]], *, recorded: set[tuple[str, str | None]] | None = None
) -> list[tuple[Any, ...]]:
    """Retention actions as rows: due date, action in plain words, categories, section, reason (and whether recorded)."""
    rows = []
    for a in actions:
        row: tuple[Any, ...] = (
            _when(a["due_at"]),
            labels.label(RetentionActionKind, a["action"]),
            _categories(a["categories"]),
            a["policy_section"],
            a["reason"],
        )
        if recorded is not None:
            row += ("yes" if (a["action"], _when(a["due_at"])) in recorded else "not yet",)
        rows.append(row)
    return rows


def retention_section(plan: Mapping[str, Any] | None, emitted: Sequence[Mapping[str, Any]], now: datetime) -> str:
    """How long the data is kept [2.3; GDPR Art. 15(1)(d)], worded against ``now`` (the export's as-of, or when it
    was made) so that it never contradicts itself: a date before ``now`` in the past tense, one after it as a plan; the
    actions the pipeline recorded (``emitted``) told apart from those that fell due and are not recorded yet."""
    recorded = {(a["action"], _when(a["due_at"])) for a in emitted}
    today = escape(now.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"))
    if plan is None:
        parts = ['<p class="note">The retention plan is not computed yet; ask again in a moment.</p>']
        past: list[Mapping[str, Any]] = []
    else:
        past = [a for a in plan["actions"] if _instant(a["due_at"]) <= now]
        future = [a for a in plan["actions"] if _instant(a["due_at"]) > now]
        parts = [_archive_sentence(plan, recorded, now)]
        lifecycle = plan["lifecycle"]
        parts.append('<p class="note">The periods run from these dates of your account [2.3.1, 2.3.3]:</p>')
        parts.append(
            _table(
                ("registered", "last use", "closed", "latest negative decision or notification", "suspended or blocked"),
                [
                    [
                        _when(lifecycle[name])
                        for name in ("registered_at", "last_use", "closed_at", "last_negative", "suspended_at")
                    ]
                ],
                empty="",
            )
        )
        parts.append(f'<h3 id="retention-planned">Planned after {today}</h3>')
        parts.append(
            _table(
                ("will be due", "action", "categories", "section", "reason"),
                _action_rows(future),
                empty=f"No retention action is planned after {today}.",
                widths=(13, 11, 44, 8, 24),
            )
        )
        parts.append(f'<h3 id="retention-past">Fell due before {today}</h3>')
        parts.append(
            _table(
                ("was due", "action", "categories", "section", "reason", "carried out"),
                _action_rows(past, recorded=recorded),
                empty=f"No retention action fell due before {today}.",
                widths=(13, 10, 41, 7, 20, 9),
            )
        )
    unrecorded = [a for a in past if (a["action"], _when(a["due_at"])) not in recorded]
    past_keys = {(a["action"], _when(a["due_at"])) for a in past}
    if emitted:
        # Those of the plan are marked "yes" above; only one the plan no longer has is listed again.
        others = [a for a in emitted if (a["action"], _when(a["due_at"])) not in past_keys]
        done = f"<p>{len(emitted)} action(s) recorded" + (" (marked “yes” above)." if len(others) < len(emitted) else ".")
        done += "</p>" + (
            _table(("was due", "action", "categories", "section", "reason"), _action_rows(others), empty="") if others else ""
        )
    elif unrecorded:
        done = (
            f'<p class="alert">None is recorded yet, though {len(unrecorded)} action(s) fell due before {today} '
            "(above): they are overdue.</p>"
        )
    else:
        done = f'<p class="note">None: no retention action was due before {today}.</p>'
    return "".join(parts) + '<h3 id="retention-done">Retention actions recorded</h3>' + done


def _archive_sentence(plan: Mapping[str, Any], recorded: set[tuple[str, str | None]], now: datetime) -> str:
    """The archive date in the tense ``now`` gives it [2.3.1]."""
    if plan["archive_at"] is None:
        return "<p>No archive date yet: nothing is known of the use of your account.</p>"
    when = _text(_when(plan["archive_at"]))
    why = f"{_text(plan['reason'])} [{_text(plan['policy_section'])}]"
    if _instant(plan["archive_at"]) > now:
        return f'<p id="archive">Your data will be archived on <strong>{when}</strong>: {why}.</p>'
    if (RetentionActionKind.ARCHIVE.value, _when(plan["archive_at"])) in recorded:
        return f'<p id="archive">Your data was archived on <strong>{when}</strong>: {why}.</p>'
    return (
        f'<p id="archive">Your data was due to be archived on <strong>{when}</strong>: {why}. '
        '<span class="alert">The archiving is not recorded yet.</span></p>'
    )


def _checkpoint_row(item: Mapping[str, Any]) -> tuple[Any, ...]:
    """A checkpoint as the page shows it: log, origin, size, time, read from its note unverified (the command verifies)."""
    try:
        checkpoint = unsigned_checkpoint(item["note"])
        signed = checkpoint.time
    except (NoteError, ProofError):
        return (item["log"], "unreadable: verify-proof names why", None, None)
    return (item["log"], checkpoint.origin, checkpoint.size, _when(signed.isoformat()) if signed else None)


def _record_proof(proof: Mapping[str, Any] | None, fault: str | None) -> str:
    """The proof of record [GDPR Art. 7(1)]: what it proves, under which checkpoints, how to check it; the JSON itself."""
    if fault is not None:
        return f'<p class="alert">No proof of record: {_text(fault)}</p>'
    if proof is None:
        return '<p class="note">No proof of record: the consent log holds no entry of yours (or none is kept).</p>'
    kinds = [leaf["kind"] for leaf in proof["leaves"]]
    pending = proof["pending"]
    later = f" {pending} more, written after the latest checkpoint, are proven by the next one." if pending else ""
    return (
        f"<p><strong>{kinds.count('ledger-entry')}</strong> ledger entries and <strong>{kinds.count('erasure-notice')}"
        "</strong> erasure notices of yours are proven to be in the consent log: an append-only Merkle tree "
        f"(RFC 9162) whose checkpoints the log's key signs, so none of them can be changed or removed unseen.{later}</p>"
        + _table(
            ("log", "checkpoint origin", "size (entries)", "signed at"),
            (_checkpoint_row(item) for item in proof["checkpoints"]),
            empty="No checkpoint is signed yet.",
        )
        + '<p class="note">To check it, save the JSON below as <code>proof.json</code> and run <code>consentflow '
        "verify-proof proof.json --public-key KEY</code> with the log's public key, which we give on request. "
        "This page only shows what the proof claims; the command checks each signature and each path.</p>"
        + f"<details><summary>The proof (JSON, <code>{_text(proof['schema'])}</code>)</summary>"
        + f"<pre>{escape(json.dumps(proof, indent=2, ensure_ascii=False))}</pre></details>"
    )


def _incidents_section(incidents: list[Mapping[str, Any]], names: Mapping[str, str | None]) -> str:
    """The breaches at a recipient while it held the subject's data (issue 24), open or closed [12; GDPR Art. 33(5)]."""
    return _table(
        ("breach", "at", "period", "risk", "your data concerned", "authority notified", "you were told"),
        (
            (
                i["incident_id"],
                _recipient(i["recipient_id"], names.get(i["recipient_id"])),
                f"{_when(i['window_from'])} to {_when(i['window_to'])}",
                "high" if i["risk"] == "high" else "low",
                _categories(i["categories"]),
                _when(i["authority_notified_at"]) if i["authority_notified_at"] else "not yet",
                _when(i["notified_at"])
                if i["notified_at"]
                else ("not yet" if i["risk"] == "high" else "not required (low risk)"),
            )
            for i in incidents
        ),
        empty="No data breach concerned your data.",
    )


def render_access_page(export: Mapping[str, Any]) -> str:
    """The export (``SubjectAccessExport/v3``, or v2 without requests) as a complete HTML document in plain words;
    every value escaped."""
    subject = escape(export["subject_id"])
    refs = export["legal_references"]
    as_of = "every fact known" if export["as_of"] is None else _text(_when(export["as_of"]))
    now = _instant(export["as_of"] or export["generated_at"])
    countries = export["countries"]
    violations = export["violations"]
    names = {r["recipient_id"]: r["name"] for r in export["recipients"]}
    held = "".join(f"<li>{escape(labels.category(c))}</li>" for c in export["categories_held"])
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # No request leaves the page: nothing external may load, and nothing may run.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        f"<title>Your personal data: {subject}</title><style>{_STYLE}</style></head><body>",
        f"<h1>The personal data we hold about you (<code>{subject}</code>)</h1>",
        f'<p class="note">A copy of your data and its portability, as the privacy policy '
        f"(version {escape(export['policy_version'])}) sections {_text(refs['policy_sections'])} and GDPR "
        f"{_text(refs['gdpr_articles'])} give you. As of: {as_of}. Made at {_text(_when(export['generated_at']))}. "
        "It lists the kinds of data and where they went, never the values themselves. "
        f"The same export as JSON follows the schema <code>{escape(export['schema'])}</code> and names consent states, "
        "legal bases and transfer safeguards in W3C DPV terms.</p>",
        "<h2>Categories of data we hold</h2>",
        f'<ul class="held" id="categories-held">{held}</ul>' if held else "<p>—</p>",
        '<p class="note">What you provided in your profile and what any processing of your data named, '
        "on everything we know, whatever the as-of instant.</p>",
        "<h2>Your consents [6]</h2>",
        _consent_section(export["consent_records"], names),
        "<h2>Who received your data [4, 7]</h2>",
        _table(
            (
                "recipient",
                "kind",
                "country",
                "categories",
                "purposes and legal basis",
                "transfer framed by",
                "first sent",
                "last sent",
            ),
            (
                (
                    _recipient(r["recipient_id"], r["name"]),
                    labels.label(RecipientKind, r["kind"]),
                    _country(r["country"], r["in_eea"]),
                    _categories(r["categories"]),
                    _purposes(r["purposes"]),
                    _mechanisms(r["transfer_mechanisms"]),
                    _day(r["first_sent"]),
                    _day(r["last_sent"]),
                )
                for r in export["recipients"]
            ),
            empty="Your data was sent to no recipient.",
            widths=(16, 10, 10, 16, 17, 11, 10, 10),
        ),
        "<h2>Countries [7]</h2>",
        f"<p>Stored in: {_text([labels.country(c) for c in countries['stored']])}.</p>",
        _table(
            ("sent to", "recipients", "transfer framed by", "transfers", "first", "last"),
            (
                (
                    _country(c["country"], c["in_eea"]),
                    Html("".join(_recipient(r, names.get(r)) for r in c["recipients"])),
                    _mechanisms(c["transfer_mechanisms"]),
                    c["transfers"],
                    _when(c["first"]),
                    _when(c["last"]),
                )
                for c in countries["sent"]
            ),
            empty="Your data was sent to no other country.",
        ),
        "<h2>How long we keep your data [2.3]</h2>",
        retention_section(export["retention_plan"], export["retention_actions"], now),
        "<h2>Your requests and when we must answer [8.2; GDPR Art. 12(3)]</h2>",
        requests_section(export.get("rights_requests", [])),
        "<h2>Erasure notices to recipients [12]</h2>",
        _table(
            ("recipient", "to erase", "retained by law [2.3.2]", "requested", "fulfilled"),
            (
                (
                    _recipient(n["recipient_id"], names.get(n["recipient_id"])),
                    _categories(n["categories"]),
                    _categories(n["retained_categories"]),
                    _when(n["requested_at"]),
                    _when(n["fulfilled_at"]),
                )
                for n in export["erasure_notices"]
            ),
            empty="No erasure was carried out.",
        ),
        "<h2>Processing of your data that broke the policy</h2>",
        (f'<p class="alert">{len(violations)} breach(es) of the policy concern your data.</p>' if violations else "")
        + _table(
            ("time", "rule", "section", "recipient", "purpose", "categories", "detail"),
            (
                (
                    _when(v["occurred_at"]),
                    _named(labels.label(Rule, v["rule"]), v["rule"]),
                    v["policy_section"],
                    _recipient(v["recipient_id"], names.get(v["recipient_id"] or "")),
                    labels.purpose(v["purpose"]) if v["purpose"] else None,
                    _categories(v["categories"]),
                    v["detail"],
                )
                for v in violations
            ),
            empty="None found.",
        ),
        "<h2>Data breaches that concerned your data [12; GDPR Art. 33, 34]</h2>",
        _incidents_section(export.get("incidents") or [], names),
        "<h2>Proof of this record [GDPR Art. 7(1)]</h2>",
        _record_proof(export.get("record_proof"), export.get("record_proof_fault")),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


_CLOCKS = {
    "one_month": "within one month of receipt, extendable by two months [GDPR Art. 12(3)]",
    "at_once": "at once, in your consent record [GDPR Art. 7(3), 21(3)]",
    "none": "recorded, with no time limit [8.3]",
}


def requests_section(requests: Sequence[Mapping[str, Any]]) -> str:
    """The subject's rights requests: when each was received, the last day to answer it (the controller's calendar,
    moved past weekends and public holidays), any extension and how it ended [8.2; GDPR Art. 12(3), 12(4)]."""
    return _table(
        ("request", "right", "answered", "received", "identity checked", "last day to answer", "extension", "outcome", "late"),
        (
            (
                r["request_id"],
                r["right"].replace("_", " "),
                _CLOCKS.get(r["clock"], r["clock"]),
                _when(r["received_at"]),
                _identity(r),
                r["last_day"],
                (f"{r['extension_months']} further month(s)" if r["extension_months"] else None)
                if not r["extension_refused"]
                else "notified after the first month: not honoured",
                f"{r['outcome']} at {_when(r['outcome_at'])}" if r["outcome"] else r["state"].replace("_", " "),
                r["overdue"],
            )
            for r in requests
        ),
        empty="You made no request.",
    )


def _identity(request: Mapping[str, Any]) -> str | None:
    """When the identity was confirmed (the month runs from then [GDPR Art. 12(6)]), or that it is awaited."""
    if request["identity_verified_at"] is not None:
        return f"confirmed {_when(request['identity_verified_at'])}; the month runs from then"
    return "asked, awaited: the month waits" if request["identity_requested_at"] is not None else None


def _country(code: str | None, eea: bool | None) -> Html:
    """A country by name with its code, and whether it is inside the EU/EEA [7]."""
    where = "" if eea is None else ("inside the EU/EEA" if eea else "outside the EU/EEA")
    return Html(escape(labels.country(code)) + (f'<span class="term">{where}</span>' if where else ""))
