"""The HTTP API started by ``consentflow serve``: the DPO's questions, the auditor's checks, the collector.

``create_app(settings)`` builds the FastAPI app. Every request but ``/health``
goes key → role → query → ClickHouse: the ``X-API-Key`` header names a key
(``api_keys``), its role must allow the endpoint's action (401 without a known
key, 403 for the wrong role), the arguments are checked by the same functions
as the command line (``query_arguments``; 422 naming the parameter), and the
query layer (``sinks/*_queries.py``) answers from the tables, read with
``FINAL``. Answers are the query layer's dataclasses in their JSON form
(``sinks.answers.jsonable``), the same JSON ``--json`` prints; the OpenAPI
document at ``/openapi.json`` describes them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from consentflow.contracts.query_arguments import check_id, check_window, now_unless, parse_purpose, parse_rule
from consentflow.contracts.topics import Topic
from consentflow.core.lineage import RecipientHolding
from consentflow.http.api_keys import Role, may_emit_as
from consentflow.http.body_limit import BodyLimit
from consentflow.http.collector import CONSTRUCTORS, Collector, InvalidEvent, KafkaUnavailable, body_schema, event_from_json
from consentflow.http.context import (
    Auditor,
    Emitter,
    Reader,
    Server,
    ServerSettings,
    argument,
    instant_argument,
    server_of,
)
from consentflow.http.docs_page import DocsReader
from consentflow.http.errors import API_PREFIX, KEYED, KEYED_BY_ID, KEYED_WITH_BODY, ApiError, ErrorBody, install_error_handlers
from consentflow.http.json_body import json_body
from consentflow.http.key_scopes import refusal
from consentflow.http.readiness import add_readiness_route
from consentflow.http.replay import add_replay_routes
from consentflow.http.request_metrics import add_request_metrics
from consentflow.http.rights_requests import add_requests_route
from consentflow.sinks import compliance_queries, consent_queries, lineage_queries
from consentflow.sinks.answers import (
    ActiveViolation,
    BreachImpact,
    ErasureNotice,
    RetentionDue,
    SubjectConsent,
    SubjectCountries,
    Transfer,
    jsonable,
)
from consentflow.sinks.database_scope import DatabaseRefused, check_database_scope, check_pipeline_database
from consentflow.sinks.queries import overview
from consentflow.sinks.reading import require_subject

_SUBJECT = Path(description="A pseudonymous subject id, as the events carry it.", examples=["subj-0000042"])
_RECIPIENT = Path(description="A recipient id, as the registry carries it.", examples=["valumen-usa"])
_AS_OF = Query(
    description="As it stood at this instant (ISO-8601; UTC when no zone). Default: now; facts dated later are left out."
)

# -- answers that are not one of the query layer's dataclasses ------------------------------------


@dataclass(frozen=True)
class SubjectRecipients:
    """Who holds a subject's data, as of an instant (None: now) [4, 7]."""

    subject_id: str
    as_of: datetime | None
    recipients: tuple[RecipientHolding, ...]


@dataclass(frozen=True)
class BrokenEntry:
    """A subject whose ledger chain does not verify, and its first bad entry [6]."""

    subject_id: str
    sequence: int
    event_id: str
    reason: str


@dataclass(frozen=True)
class TableDigest:
    """A table's rows and order-independent digest (``consentflow digest``)."""

    table: str
    rows: int
    digest: str


@dataclass(frozen=True)
class FirstDifference:
    """Where two databases first differ: the table, the key, and the differing columns with both values."""

    table: str
    key: dict[str, str]
    only_in: str | None  # "served" or "against" when the key is on one side only
    columns: dict[str, tuple[str, str]]  # column: (served value, against value)
    summary: str


@dataclass(frozen=True)
class Verification:
    """What ``consentflow verify`` reports: every ledger chain, a digest per table, and the comparison asked for."""

    database: str
    ok: bool
    subjects: int
    entries: int
    broken: tuple[BrokenEntry, ...]
    digests: tuple[TableDigest, ...]
    against_database: str | None
    against_digests: tuple[TableDigest, ...] | None
    equal: bool | None
    first_difference: FirstDifference | None


class Health(BaseModel):
    """The server runs (says nothing about ClickHouse or Kafka)."""

    status: str


class Collected(BaseModel):
    """An event the broker acknowledged."""

    event_id: str
    topic: str
    subject_id: str


def _answer(value: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(jsonable(value), status_code=status)


def _id(text: str, field: str) -> str:
    return argument(check_id, field, text, field)


# -- the app -------------------------------------------------------------------------------------


def create_app(settings: ServerSettings) -> FastAPI:
    """The API over ``settings``: JSON endpoints under ``/v1``, the browser pages, ``/health``."""
    try:
        package_version = version("consentflow")
    except PackageNotFoundError:  # running from a source tree that was not installed
        package_version = "0"
    app = FastAPI(
        title="consentflow",
        version=package_version,
        description=(
            "The DPO's and auditors' questions over the consent ledger and lineage graph, and a collector for "
            "emitters that cannot speak Kafka. Send an API key in the `X-API-Key` header: the `dpo` role may do "
            "everything, `auditor` read, replay and verify, `service` only post to the collector, `operator` only read "
            "`/metrics` (Prometheus text; also as `Authorization: Bearer KEY`). This document "
            "itself needs a key of any role."
        ),
        # Every endpoint but /health needs a key: the document is served keyed below, and FastAPI's
        # viewers would load their scripts from a CDN, which the pages' policy forbids (http/docs_page.py).
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    server = Server(settings)
    app.state.server = server
    app.state.collector = Collector(
        settings.bootstrap,
        settings.prefix,
        registry_url=settings.registry_url,
        timeout=settings.collect_timeout,
        producer_factory=settings.producer_factory,
    )
    install_error_handlers(app)
    app.add_middleware(BodyLimit, limits=settings.body_limits)  # inside the headers' middleware: its 413 gets them too
    _add_security_headers(app)
    _add_query_routes(app)
    _add_incident_routes(app)
    _add_request_routes(app)
    add_requests_route(app)  # issue 24: rights requests and their deadlines
    _add_audit_routes(app)
    add_replay_routes(app)
    add_readiness_route(app)
    _add_collector_routes(app)
    from consentflow.http.docs_page import add_docs_routes
    from consentflow.http.pages import add_page_routes  # the browser pages, apart from the JSON API

    add_page_routes(app)
    add_docs_routes(app)
    app.state.metrics = add_request_metrics(app)  # added last, so outermost: every refusal is counted too
    return app


def _add_security_headers(app: FastAPI) -> None:
    from consentflow.http.lineage_page import CONTENT_SECURITY_POLICY

    @app.middleware("http")
    async def headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        # Answers name people's recipients: no cache may keep them, no browser may guess their type.
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers["X-Content-Type-Options"] = "nosniff"
        # No other site learns our URLs; our own forms' posts keep their Origin, which /login checks (no-referrer: null).
        response.headers["Referrer-Policy"] = "same-origin"
        if response.headers.get("content-type", "").startswith("text/html"):
            response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return response


def _add_query_routes(app: FastAPI) -> None:
    @app.get("/health", response_model=Health, tags=["server"])
    async def health() -> Health:  # async: answered on the event loop, never queued behind reads for a thread
        """Whether the server runs (``HEAD`` too); open to everyone, tells nothing about the data; ``/ready`` checks ClickHouse."""
        return Health(status="ok")

    app.head("/health", include_in_schema=False)(health)

    @app.get("/openapi.json", include_in_schema=False)
    def openapi_document(_: DocsReader) -> JSONResponse:
        """The OpenAPI document, for a key of any role (a service reads the collector's body schemas here); the
        header, or the login form's cookie (the explorer at /docs loads it)."""
        return JSONResponse(app.openapi())

    @app.get(
        f"{API_PREFIX}/subjects/{{subject_id}}/recipients",
        response_model=SubjectRecipients,
        responses=KEYED_BY_ID,
        tags=["lineage"],
        summary="Who has a subject's data (who-has)",
    )
    def who_has(
        request: Request, _: Reader, subject_id: Annotated[str, _SUBJECT], as_of: Annotated[str | None, _AS_OF] = None
    ) -> Response:
        """Every recipient of the subject's data: categories, purposes, country, transfer mechanisms [4, 7]."""
        subject, at = _id(subject_id, "subject_id"), now_unless(instant_argument(as_of, "as_of"))
        with server_of(request).tables() as sink:
            holdings = lineage_queries.who_has(sink, subject, at)
        return _answer(SubjectRecipients(subject, at, tuple(holdings)))

    @app.get(
        f"{API_PREFIX}/subjects/{{subject_id}}/countries",
        response_model=SubjectCountries,
        responses=KEYED_BY_ID,
        tags=["lineage"],
        summary="Where a subject's data is stored and was sent",
    )
    def countries(request: Request, _: Reader, subject_id: Annotated[str, _SUBJECT]) -> Response:
        """The policy's storage countries and every country the subject's data was sent to [7]."""
        subject = _id(subject_id, "subject_id")
        with server_of(request).tables() as sink:
            return _answer(lineage_queries.countries(sink, subject))

    @app.get(
        f"{API_PREFIX}/subjects/{{subject_id}}/consent",
        response_model=SubjectConsent,
        responses=KEYED_BY_ID,
        tags=["consent"],
        summary="A subject's consent per purpose, with the evidence",
    )
    def consent(
        request: Request,
        _: Reader,
        subject_id: Annotated[str, _SUBJECT],
        purpose: Annotated[str | None, Query(description="Only this purpose (the policy's words, e.g. marketing).")] = None,
        as_of: Annotated[str | None, _AS_OF] = None,
    ) -> Response:
        """The consent state per purpose at ``as_of`` (event time decides) and every ledger fact behind it [6]."""
        subject = _id(subject_id, "subject_id")
        only = None if purpose is None else argument(parse_purpose, "purpose", purpose)
        at = now_unless(instant_argument(as_of, "as_of"))
        with server_of(request).tables() as sink:
            return _answer(consent_queries.consent(sink, subject, only, at))

    @app.get(
        f"{API_PREFIX}/subjects/{{subject_id}}/erasure-notices",
        response_model=list[ErasureNotice],
        responses=KEYED_BY_ID,
        tags=["compliance"],
        summary="Erasure notices to a subject's recipients",
    )
    def erasure_notices(request: Request, _: Reader, subject_id: Annotated[str, _SUBJECT]) -> Response:
        """The notices telling the subject's recipients what to erase, each at its latest revision [12; GDPR Art. 19]."""
        subject = _id(subject_id, "subject_id")
        with server_of(request).tables() as sink:
            return _answer(compliance_queries.erasure_notices(sink, subject))

    @app.get(
        f"{API_PREFIX}/recipients/{{recipient_id}}/breach",
        response_model=BreachImpact,
        responses=KEYED_BY_ID,
        tags=["lineage"],
        summary="Who a breach at a recipient concerns",
    )
    def breach(
        request: Request,
        _: Reader,
        recipient_id: Annotated[str, _RECIPIENT],
        start: Annotated[str, Query(alias="from", description="Window start, included (ISO-8601; UTC when no zone).")],
        end: Annotated[str, Query(alias="to", description="Window end, excluded (ISO-8601; UTC when no zone).")],
    ) -> Response:
        """Subjects and categories the recipient received in ``[from, to)`` [12]."""
        recipient = _id(recipient_id, "recipient_id")
        first, last = instant_argument(start, "from"), instant_argument(end, "to")
        assert first is not None and last is not None  # both are required parameters
        if last <= first:
            raise ApiError(422, f"to: {end!r} is not after from: {start!r}; the window [from, to) would be empty", "to")
        window = check_window(first, last)
        with server_of(request).tables() as sink:
            return _answer(lineage_queries.breach(sink, recipient, *window))

    @app.get(
        f"{API_PREFIX}/transfers",
        response_model=list[Transfer],
        responses=KEYED,
        tags=["lineage"],
        summary="Transfers by country, recipient and mechanism",
    )
    def transfers(
        request: Request,
        _: Reader,
        outside_eea: Annotated[bool, Query(description="Only transfers out of the EU/EEA (and to unknown countries).")] = False,
    ) -> Response:
        """Edges by country, recipient and mechanism; ``framed`` is false where nothing frames a transfer [7]."""
        with server_of(request).tables() as sink:
            return _answer(lineage_queries.transfers(sink, outside_eea=outside_eea))

    @app.get(
        f"{API_PREFIX}/violations",
        response_model=list[ActiveViolation],
        responses=KEYED_BY_ID,
        tags=["compliance"],
        summary="Active violations",
    )
    def violations(
        request: Request,
        _: Reader,
        since: Annotated[str | None, Query(description="Only those that occurred at or after this instant (ISO-8601).")] = None,
        rule: Annotated[str | None, Query(description="Only this rule, e.g. marketing_without_consent.")] = None,
        subject_id: Annotated[str | None, Query(description="Only this subject's.")] = None,
    ) -> Response:
        """Violations whose latest verdict stands (retracted ones are left out), oldest first."""
        start = instant_argument(since, "since")
        only = None if rule is None else argument(parse_rule, "rule", rule)
        subject = None if subject_id is None else _id(subject_id, "subject_id")
        with server_of(request).tables() as sink:
            found = compliance_queries.violations(sink, start, only, subject_id=subject)
            if subject is not None and not found:
                require_subject(sink, subject)  # an unknown subject is a 404, not "no violations"
            return _answer(found)

    @app.get(
        f"{API_PREFIX}/retention/due",
        response_model=list[RetentionDue],
        responses=KEYED,
        tags=["compliance"],
        summary="Retention actions due",
    )
    def retention_due(request: Request, _: Reader, as_of: Annotated[str | None, _AS_OF] = None) -> Response:
        """Retention actions due at or before ``as_of``, past or future: archive, anonymise, keep for the legal period,
        delete [2.3]. Read from each subject's retention plan (its latest holdings record) and the actions the pipeline
        emitted: ``emitted`` says whether the pipeline's clock reached the action, ``planned_as_of`` the latest event
        time the subject's plan was computed on."""
        at = instant_argument(as_of, "as_of")
        with server_of(request).tables() as sink:
            return _answer(compliance_queries.retention_due(sink, at))

    @app.get(
        f"{API_PREFIX}/overview",
        response_model=dict[str, Any],
        responses=KEYED,
        tags=["compliance"],
        summary="The DPO overview",
    )
    def overview_route(request: Request, _: Reader) -> Response:
        """Subjects, consent rates by purpose, top recipients, transfers outside the EU/EEA, violations by rule."""
        with server_of(request).tables() as sink:
            return _answer(overview(sink))


def _add_incident_routes(app: FastAPI) -> None:
    """The breach register [12; GDPR Art. 33, 34] (``consentflow incident list``)."""
    from consentflow.sinks.answers import IncidentSummary

    @app.get(
        f"{API_PREFIX}/incidents",
        response_model=list[IncidentSummary],
        responses=KEYED,
        tags=["compliance"],
        summary="The breach register",
    )
    def incidents(
        request: Request,
        _: Reader,
        open_only: Annotated[bool, Query(alias="open", description="Only incidents not closed.")] = False,
        as_of: Annotated[
            str | None,
            Query(description="Judge at this instant (ISO-8601). Default: the pipeline's clock, the latest event time held."),
        ] = None,
    ) -> Response:
        """Every incident with its 72-hour clock: ``hours_left`` until the authority's notification is due (negative:
        overdue), ``notification`` (pending, overdue, in_time, late_with_reasons, late_without_reasons), ``flagged``,
        and the subjects and categories its recipient received in the window [12; GDPR Art. 33(1), 33(5)]."""
        from consentflow.sinks.incident_queries import incident_register

        at = instant_argument(as_of, "as_of")
        with server_of(request).tables() as sink:
            return _answer(incident_register(sink, at, open_only=open_only))


def _add_request_routes(app: FastAPI) -> None:
    """The subject access export [8.1, 12] and the record of processing activities (GDPR Art. 30)."""

    @app.get(
        f"{API_PREFIX}/subjects/{{subject_id}}/access-export",
        response_model=dict[str, Any],
        responses=KEYED_BY_ID,
        tags=["rights"],
        summary="A subject's access and portability export (dsar)",
    )
    def access_export(
        request: Request, _: Reader, subject_id: Annotated[str, _SUBJECT], as_of: Annotated[str | None, _AS_OF] = None
    ) -> Response:
        """Everything the tables hold about the subject, as ``SubjectAccessExport/v3`` JSON (``consentflow dsar``)
        [8.1, 12; GDPR Art. 15, 20], with its proof of record in the consent log (``record_proof``); ``as_of``
        default: now."""
        from consentflow.notary.stored_log import StoredLog
        from consentflow.sinks.subject_access import subject_access_export

        subject, at = _id(subject_id, "subject_id"), now_unless(instant_argument(as_of, "as_of"))
        with server_of(request).tables() as sink:
            return _answer(subject_access_export(sink, subject, at, log=StoredLog(sink)))

    @app.get(
        f"{API_PREFIX}/ropa",
        response_model=dict[str, Any],
        responses={**KEYED, 200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "The record."}},
        tags=["compliance"],
        summary="The record of processing activities (ropa)",
    )
    def ropa(
        request: Request,
        _: Reader,
        format: Annotated[Literal["json", "csv"], Query(description="json (default) or csv, as `consentflow ropa`.")] = "json",
    ) -> Response:
        """One row per purpose and recipient: the policy and the registry beside what the lineage shows, with findings
        (GDPR Art. 30; ``consentflow ropa``)."""
        from consentflow.sinks.record_of_processing import record_of_processing, ropa_csv

        with server_of(request).tables() as sink:
            record = record_of_processing(sink)
        if format == "csv":
            return Response(ropa_csv(record["rows"]), media_type="text/csv; charset=utf-8")
        return _answer(record)


def _table_digests(digests: dict[str, tuple[int, str]]) -> tuple[TableDigest, ...]:
    return tuple(TableDigest(table, rows, digest) for table, (rows, digest) in digests.items())


def _add_audit_routes(app: FastAPI) -> None:
    @app.get(
        f"{API_PREFIX}/audit/verify",
        response_model=Verification,
        responses=KEYED_BY_ID,
        tags=["audit"],
        summary="Verify the ledger chains; compare with another database",
    )
    def verify(
        request: Request,
        _: Auditor,
        against_database: Annotated[
            str | None, Query(description="Another database on the same ClickHouse (e.g. a replay) to compare with.")
        ] = None,
    ) -> Response:
        """Every subject's ledger hash chain recomputed [6], a digest per table, and the first difference with
        ``against_database`` when given (``consentflow verify``). ``ok`` is true when every chain verifies and the
        databases are equal."""
        from consentflow.sinks.digest import table_digests
        from consentflow.sinks.reading import TablesMissing
        from consentflow.sinks.verification import first_difference, shown, verify_ledger

        server = server_of(request)
        served = server.settings.database
        if against_database is not None:
            try:
                check_database_scope(against_database)
            except DatabaseRefused as exc:
                raise ApiError(422, f"against_database: {exc}", "against_database") from None
            if against_database == served:
                raise ApiError(422, f"against_database: {served} is the database being verified", "against_database")
        with server.tables() as sink:
            check = verify_ledger(sink)
            digests = table_digests(sink)
            other = difference = None
            if against_database is not None:
                try:
                    check_pipeline_database(server.settings.dsn, against_database)
                    other_sink = server.readers.beside(against_database)  # on this request's client
                except DatabaseRefused as exc:
                    raise ApiError(422, f"against_database: {exc}", "against_database") from None
                except TablesMissing:
                    missing = f"against_database: database {against_database} holds no consentflow tables"
                    raise ApiError(404, missing, "against_database") from None
                other = table_digests(other_sink)
                difference = first_difference(sink, other_sink)
        first = None
        if difference is not None:
            left, right = difference.left or {}, difference.right or {}
            first = FirstDifference(
                table=difference.table,
                key={k: shown(v) for k, v in difference.key.items()},
                only_in="against" if difference.left is None else "served" if difference.right is None else None,
                columns={c: (shown(left.get(c)), shown(right.get(c))) for c in difference.differing_columns},
                summary=str(difference),
            )
        equal = None if other is None else difference is None
        report = Verification(
            database=served,
            ok=check.ok and equal is not False,
            subjects=check.subjects,
            entries=check.entries,
            broken=tuple(BrokenEntry(b.subject_id, b.sequence, b.event_id, b.reason) for b in check.broken),
            digests=_table_digests(digests),
            against_database=against_database,
            against_digests=None if other is None else _table_digests(other),
            equal=equal,
            first_difference=first,
        )
        return _answer(report)


def _collect_route(app: FastAPI, topic: Topic) -> None:
    schema = copy.deepcopy(body_schema(topic))

    @app.post(
        f"{API_PREFIX}/collect/{topic.short_name}",
        status_code=202,
        response_model=Collected,
        responses=_collect_refusals(),
        tags=["collector"],
        summary=f"Emit a {topic.record}",
        operation_id=f"collect_{topic.short_name}",
        description=(
            f"Validate a {topic.record} (the fields of its Avro contract, times in ISO-8601 with a zone) and produce it "
            f"to the {topic.short_name} topic, keyed by subject. 202 once the broker acknowledged it; 422 naming the "
            "field for an invalid event or an `occurred_at` out of the event-time bounds (nothing is sent); 403 when a service key names another `source_service` than "
            "its own name, or a topic, purpose or channel its scope does not allow; 503 when Kafka does not take it. Send your own `event_id` to retry safely: a duplicate "
            "changes nothing."
        ),
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}},
    )
    async def collect(request: Request, emitter: Emitter) -> Response:
        collector: Collector = request.app.state.collector
        received_at = datetime.now(UTC)  # the event's arrival: the gate's bound, and its Kafka timestamp
        body = json_body(await request.body())
        try:
            event = event_from_json(topic, body)
        except InvalidEvent as exc:
            raise ApiError(422, str(exc), exc.field) from None
        claimed = event.record["source_service"]
        if not may_emit_as(emitter.role, emitter.key_name, claimed):
            raise ApiError(
                403,
                f"key {emitter.key_name} may emit only as source_service {emitter.key_name!r}, not {claimed!r}",
                "source_service",
            )
        refused = refusal(emitter.scope, topic.short_name, event.record) if emitter.role is Role.SERVICE else None
        if refused is not None:  # the scope a service key states (key_scopes); the DPO's keys have none
            raise ApiError(403, f"key {emitter.key_name} {refused.detail}", refused.field)
        try:
            await run_in_threadpool(collector.send, event, received_at)
        except InvalidEvent as exc:
            raise ApiError(422, str(exc), exc.field) from None
        except KafkaUnavailable as exc:
            raise ApiError(503, "Kafka did not take the event; retry with the same event_id", logged=str(exc)) from None
        collected = Collected(event_id=event.record["event_id"], topic=topic.short_name, subject_id=event.key)
        return JSONResponse(collected.model_dump(), status_code=202)


def _collect_refusals() -> dict[int | str, dict[str, Any]]:
    refusals = dict(KEYED_WITH_BODY)
    refusals[503] = {"model": ErrorBody, "description": "Kafka did not acknowledge the event in time."}
    return refusals


def _add_collector_routes(app: FastAPI) -> None:
    for topic in CONSTRUCTORS:
        _collect_route(app, topic)
