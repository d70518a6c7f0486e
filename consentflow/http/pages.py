"""The browser pages of the HTTP API: the key form and the lineage page of a subject.

A browser cannot set the ``X-API-Key`` header, so a page without a known key
answers 401 with a form; the form posts the key to ``/login``, which refuses a
post from another site (``same_origin``), checks the key, starts a session
(``sessions``) and keeps only the session's id in a cookie (HttpOnly: no script
reads it; SameSite=Strict: no other site's link or form sends it; Secure over
https; no Max-Age: gone when the browser closes), and sends the browser back
where it was going. The key never appears in a URL nor in the cookie. "Forget
key" posts to ``/logout``, which ends the session on the server. Only the pages
(GET, changing nothing) accept the cookie; the JSON API takes the header alone.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from consentflow.contracts.query_arguments import check_id, now_unless
from consentflow.http.api_keys import Action, allows
from consentflow.http.context import KEY_COOKIE, Caller, argument, instant_argument, known_key, page_caller, server_of
from consentflow.http.errors import ApiError
from consentflow.http.lineage_page import content_security_policy, lineage_page, lineage_path, login_page, subject_form_page
from consentflow.http.same_origin import cross_site_refusal
from consentflow.sinks import compliance_queries, lineage_queries
from consentflow.sinks.registry_reading import registry_from_tables

PageReader = Annotated[Caller, Depends(page_caller(Action.READ))]
#: The largest login form body read (a key and a path).
_MAX_FORM = 4096

_AS_OF = Query(description="The instant to show (ISO-8601, UTC when no zone); empty or absent: now.")
_HTML: dict[int | str, dict[str, Any]] = {200: {"content": {"text/html": {}}, "description": "An HTML page."}}
_HTML_REFUSALS: dict[int | str, dict[str, Any]] = {
    status: {"content": {"text/html": {}}, "description": words}
    for status, words in (
        (401, "No known key: the key form."),
        (403, "The key's role may not read."),
        (404, "Unknown subject."),
        (422, "Malformed subject id."),
        (503, "ClickHouse cannot answer now."),
    )
}


def _local_path(text: str) -> str:
    """Where to go after the form: a path on this server only (never ``//host`` or ``https://...``: no open redirect)."""
    if text.startswith("/") and not text.startswith("//") and "\\" not in text and all(c.isprintable() for c in text):
        return text
    return "/"


def add_page_routes(app: FastAPI) -> None:
    """Register ``/``, ``/subjects``, ``/subjects/{id}/lineage``, ``/login`` and ``/logout`` on ``app``."""

    @app.get(
        "/", response_class=HTMLResponse, responses={**_HTML, 401: _HTML_REFUSALS[401], 403: _HTML_REFUSALS[403]}, tags=["pages"]
    )
    def start_page(who: PageReader) -> HTMLResponse:
        """The start page: which subject's lineage to show."""
        return HTMLResponse(subject_form_page(who.key_name))

    @app.get("/subjects", response_class=RedirectResponse, status_code=303, tags=["pages"], responses={**_HTML, **_HTML_REFUSALS})
    def find_subject(
        _: PageReader, subject_id: Annotated[str, Query(description="The subject whose lineage page to open.")]
    ) -> RedirectResponse:
        """Send the browser to the subject's lineage page (what the start page's form asks)."""
        return RedirectResponse(lineage_path(argument(check_id, "subject_id", subject_id.strip(), "subject_id")), status_code=303)

    @app.get(
        "/subjects/{subject_id}/lineage",
        response_class=HTMLResponse,
        responses={**_HTML, **_HTML_REFUSALS},
        tags=["pages"],
        summary="The lineage page of a subject",
    )
    def subject_lineage(
        request: Request,
        who: PageReader,
        subject_id: Annotated[str, Path(description="A pseudonymous subject id.")],
        as_of: Annotated[str | None, _AS_OF] = None,
    ) -> HTMLResponse:
        """A self-contained page: the categories held, every recipient grouped by country with its legal name, transfer
        mechanism, purposes and their legal basis, whether the country is inside the EU/EEA, the subject's violations
        highlighted [7]; as it stood at ``as_of`` (the page's own form sets it)."""
        subject = argument(check_id, "subject_id", subject_id, "subject_id")
        picked = instant_argument(as_of or None, "as_of")  # the form sends an empty field for "now"
        # Now is the present instant, as the JSON API and the CLI take it: a fact dated later is not held "now".
        at = now_unless(picked)
        with server_of(request).tables() as sink:
            holdings = lineage_queries.who_has(sink, subject, at)  # raises UnknownId: 404
            stored = lineage_queries.countries(sink, subject, at).stored
            violations = [v for v in compliance_queries.violations(sink, subject_id=subject) if v.occurred_at <= at]
            registry = registry_from_tables(sink)
        names = {}
        for h in holdings:  # the name in force when the data last went there, else the newest [4]
            version = registry.at(h.recipient_id, h.last) or registry.latest(h.recipient_id)
            if version is not None:
                names[h.recipient_id] = version.name
        page = lineage_page(
            subject,
            holdings,
            stored,
            violations,
            signed_in_as=f"{who.key_name} ({who.role.value})",
            generated_at=at,
            names=names,
            as_of=picked,
        )
        return HTMLResponse(page)

    @app.get(
        "/subjects/{subject_id}/access",
        response_class=HTMLResponse,
        responses={**_HTML, **_HTML_REFUSALS},
        tags=["pages"],
        summary="The access export of a subject, as a page",
    )
    def subject_access(
        request: Request,
        _: PageReader,
        subject_id: Annotated[str, Path(description="A pseudonymous subject id.")],
        as_of: Annotated[str | None, _AS_OF] = None,
    ) -> HTMLResponse:
        """The subject's access and portability export as one readable page (``consentflow dsar --format html``) [8.1, 12];
        as it stood at ``as_of`` when one is named (the lineage page's link carries its own), else now, as the JSON."""
        from consentflow.http.access_page import render_access_page
        from consentflow.notary.stored_log import StoredLog
        from consentflow.sinks.subject_access import subject_access_export

        subject = argument(check_id, "subject_id", subject_id, "subject_id")
        with server_of(request).tables() as sink:
            export = subject_access_export(
                sink, subject, now_unless(instant_argument(as_of or None, "as_of")), log=StoredLog(sink)
            )
        page = render_access_page(export)
        return HTMLResponse(page, headers={"Content-Security-Policy": content_security_policy(page)})

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        """Check the key the form posted; start a session, keep its id in a cookie and go back, or show the form again."""
        _refuse_cross_site(request)  # before the body is read: another site's post gets nothing
        raw = await request.body()
        form = parse_qs(raw[:_MAX_FORM].decode("utf-8", errors="replace"), max_num_fields=4)
        key = (form.get("key") or [""])[0].strip()
        target = _local_path((form.get("next") or ["/"])[0])
        who = known_key(request, key) if key else None
        if who is None:
            return HTMLResponse(login_page(target, "unknown API key" if key else "enter a key"), status_code=401)
        if not allows(who.role, Action.READ):
            return HTMLResponse(login_page(target, f"the {who.role.value} role may not read these pages"), status_code=403)
        sessions = server_of(request).sessions
        if previous := request.cookies.get(KEY_COOKIE):
            sessions.end(previous)  # a new id on every login: an id known before it cannot be carried over
        response = RedirectResponse(target, status_code=303)
        session_id = sessions.start(who.key_name, who.role)
        response.set_cookie(KEY_COOKIE, session_id, httponly=True, samesite="strict", secure=_secure(request), path="/")
        return response

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request) -> Response:
        """End the session on the server ("Forget key") and delete its cookie."""
        _refuse_cross_site(request)
        if session_id := request.cookies.get(KEY_COOKIE):
            server_of(request).sessions.end(session_id)
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(KEY_COOKIE, path="/", httponly=True, samesite="strict", secure=_secure(request))
        return response


def _secure(request: Request) -> bool:
    """Whether the browser reached us over https (as a trusted proxy says: ``serve --forwarded-allow-ips``)."""
    return request.url.scheme == "https"


def _refuse_cross_site(request: Request) -> None:
    refusal = cross_site_refusal(request, server_of(request).settings.public_origins)
    if refusal is not None:
        raise ApiError(403, refusal)
