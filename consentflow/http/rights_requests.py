"""``GET /v1/requests``: rights requests against their legal deadlines [8.2; GDPR Art. 12(3), 12(4)], as
``consentflow requests`` lists them (the same filters, the same rows)."""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse

from consentflow.contracts.query_arguments import check_id, now_unless
from consentflow.http.context import Reader, argument, instant_argument, server_of
from consentflow.http.errors import API_PREFIX, KEYED
from consentflow.sinks import request_queries
from consentflow.sinks.answers import RightsRequestRow, jsonable


def add_requests_route(app: FastAPI) -> None:
    """The route, for any reader role."""

    @app.get(
        f"{API_PREFIX}/requests",
        response_model=list[RightsRequestRow],
        responses=KEYED,
        tags=["rights"],
        summary="Rights requests and their due dates",
    )
    def rights_requests(
        request: Request,
        _: Reader,
        open: Annotated[bool, Query(description="Only requests on the one-month clock with no outcome yet.")] = False,
        overdue: Annotated[bool, Query(description="Only those answered late, or open past their due date at as_of.")] = False,
        due_before: Annotated[
            str | None, Query(description="Only those whose time limit expires before this instant (ISO-8601).")
        ] = None,
        as_of: Annotated[
            str | None, Query(description="As they stood at this instant (ISO-8601): open, overdue. Default: now.")
        ] = None,
        subject_id: Annotated[str | None, Query(description="Only this subject's.")] = None,
    ) -> JSONResponse:
        """Rights requests with their due dates, earliest due first: one month from receipt (GDPR Art. 12(3)), counted
        as Regulation 1182/71 counts periods in the controller's calendar (a last day on a weekend or public holiday
        moves to the next working day), extended by up to two further months when notified within the first; a refusal
        is due within the first month (Art. 12(4)). As they stood at ``as_of``: received by then, open when answered
        later; ``overdue``: answered late by then, or open then with its limit expired."""
        before = instant_argument(due_before, "due_before")
        at = now_unless(instant_argument(as_of, "as_of"))
        subject = None if subject_id is None else argument(check_id, "subject_id", subject_id, "subject_id")
        with server_of(request).tables() as sink:
            rows = request_queries.rights_requests(
                sink, open_only=open, overdue_only=overdue, due_before=before, as_of=at, subject_id=subject
            )
        return JSONResponse(jsonable(rows))
