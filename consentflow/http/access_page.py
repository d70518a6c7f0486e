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

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#1d1d1f}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ccc}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem;font-size:.9rem}
th,td{border:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f3f5}.note{color:#555;font-size:.9rem}
code{font-size:.85rem}.wide{overflow-x:auto}details{margin:.3rem 0}.alert{color:#a40000;font-weight:600}
pre{white-space:pre-wrap;overflow-wrap:anywhere;font-size:.75rem;background:#f7f7f9;padding:.5rem}
"""

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


def _text(value: Any) -> str:
    """A value as escaped text: lists joined, None as an em dash."""
    if value is None or value == []:
        return "—"
    if isinstance(value, list | tuple):
        return escape(", ".join(str(item) for item in value))
    if isinstance(value, bool):
        return "yes" if value else "no"
    return escape(str(value))


def _table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, empty: str) -> str:
    """An HTML table of escaped cells, or a line saying there is nothing."""
    body = "".join("<tr>" + "".join(f"<td>{_text(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    if not body:
        return f'<p class="note">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    return f'<div class="wide"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _mechanisms(mechanisms: Iterable[Mapping[str, Any]]) -> list[str]:
    return [m["mechanism"] + (f" ({m['gdpr_basis']})" if m["gdpr_basis"] else "") for m in mechanisms]


def _consent_section(records: Sequence[Mapping[str, Any]]) -> str:
    summary = _table(
        (
            "purpose",
            "state (W3C DPV)",
            "since",
            "lawful basis",
            "collected via",
            "withdrawn via",
            "notice",
            "policy",
            "recipients",
        ),
        (
            (
                r["purpose"],
                r["state"],
                _when(r["state_since"]),
                r["legal_basis"],
                r["collection_method"],
                r["withdrawal_method"],
                r["notice_id"],
                r["policy_version"],
                r["recipients"],
            )
            for r in records
        ),
        empty="No consent was asked of you.",
    )
    histories = "".join(
        f"<details><summary>History of <code>{escape(r['purpose'])}</code> ({len(r['events'])} event(s), record "
        f"<code>{escape(r['record_id'])}</code>)</summary>"
        + _table(
            ("time", "action", "state", "channel", "notice", "policy", "service", "ledger hash"),
            (
                (
                    _when(e["occurred_at"]),
                    e["action"],
                    e["state"],
                    e["channel"],
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


def _retention_plan(plan: Mapping[str, Any] | None) -> str:
    """The archive date, what it runs from, and every retention action planned, due or not [2.3]."""
    if plan is None:
        return '<p class="note">The retention plan is not computed yet; ask again in a moment.</p>'
    if plan["archive_at"] is None:
        archive = "<p>No archive date yet: nothing is known of the use of your account.</p>"
    else:
        archive = (
            f"<p>Your data is archived on <strong>{_text(_when(plan['archive_at']))}</strong>: "
            f"{_text(plan['reason'])} [{_text(plan['policy_section'])}].</p>"
        )
    lifecycle = plan["lifecycle"]
    instants = _table(
        ("registered", "last use", "closed", "latest negative decision or notification", "suspended or blocked"),
        [[_when(lifecycle[name]) for name in ("registered_at", "last_use", "closed_at", "last_negative", "suspended_at")]],
        empty="",
    )
    planned = _table(
        ("due", "action", "categories", "section", "reason"),
        ((_when(a["due_at"]), a["action"], a["categories"], a["policy_section"], a["reason"]) for a in plan["actions"]),
        empty="No retention action is planned.",
    )
    return (
        archive
        + '<p class="note">The periods run from these instants of your account [2.3.1, 2.3.3]:</p>'
        + instants
        + "<p>Every action planned, due or not:</p>"
        + planned
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


def render_access_page(export: Mapping[str, Any]) -> str:
    """The export (``SubjectAccessExport/v2``) as a complete HTML document; every value escaped."""
    subject = escape(export["subject_id"])
    refs = export["legal_references"]
    as_of = "every fact known" if export["as_of"] is None else _text(_when(export["as_of"]))
    countries = export["countries"]
    violations = export["violations"]
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
        f"The same export as JSON follows the schema <code>{escape(export['schema'])}</code>.</p>",
        "<h2>Categories of data we hold</h2>",
        f"<p>{_text(export['categories_held'])}</p>",
        '<p class="note">What you provided in your profile and what any processing of your data named, '
        "on everything we know, whatever the as-of instant.</p>",
        "<h2>Your consents [6]</h2>",
        _consent_section(export["consent_records"]),
        "<h2>Who received your data [4, 7]</h2>",
        _table(
            ("recipient", "name", "kind", "country", "EU/EEA", "categories", "purposes", "transfer framed by", "first", "last"),
            (
                (
                    r["recipient_id"],
                    r["name"],
                    r["kind"],
                    r["country"],
                    r["in_eea"],
                    r["categories"],
                    [p["purpose"] for p in r["purposes"]],
                    _mechanisms(r["transfer_mechanisms"]),
                    _when(r["first_sent"]),
                    _when(r["last_sent"]),
                )
                for r in export["recipients"]
            ),
            empty="Your data was sent to no recipient.",
        ),
        "<h2>Countries [7]</h2>",
        f"<p>Stored in: {_text(countries['stored'])}.</p>",
        _table(
            ("sent to", "EU/EEA", "recipients", "transfer framed by", "transfers", "first", "last"),
            (
                (
                    c["country"] or "unknown",
                    c["in_eea"],
                    c["recipients"],
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
        _retention_plan(export["retention_plan"]),
        "<h3>Retention actions already due</h3>",
        _table(
            ("due", "action", "categories", "section", "reason"),
            (
                (_when(r["due_at"]), r["action"], r["categories"], r["policy_section"], r["reason"])
                for r in export["retention_actions"]
            ),
            empty="No retention action is due yet.",
        ),
        "<h2>Erasure notices to recipients [12]</h2>",
        _table(
            ("recipient", "to erase", "retained by law [2.3.2]", "requested", "fulfilled"),
            (
                (n["recipient_id"], n["categories"], n["retained_categories"], _when(n["requested_at"]), _when(n["fulfilled_at"]))
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
                    v["rule"],
                    v["policy_section"],
                    v["recipient_id"],
                    v["purpose"],
                    v["categories"],
                    v["detail"],
                )
                for v in violations
            ),
            empty="None found.",
        ),
        "<h2>Proof of this record [GDPR Art. 7(1)]</h2>",
        _record_proof(export.get("record_proof"), export.get("record_proof_fault")),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"
