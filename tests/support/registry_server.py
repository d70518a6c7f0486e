"""A minimal Confluent-compatible Schema Registry, for tests only.

No real registry can run on this machine (Confluent's is not on Maven Central, karapace is not on
PyPI), so this serves, over real HTTP on 127.0.0.1, exactly the two calls confluent-kafka's
``SchemaRegistryClient`` makes for ``register_schema`` and ``get_schema``:

* ``POST /subjects/{subject}/versions[?normalize=...]`` with ``{"schema": ..., "schemaType": ...,
  "references": [...]}`` -> ``{"id": N}``. Ids are global: the same schema text gets the same id
  under any subject, and registering it again under a subject adds no version. Like the real
  registry's default (BACKWARD), a new version must be able to read data written with the
  subject's latest one, else HTTP 409 ``{"error_code": 409, ...}``.
* ``GET /schemas/ids/{id}[?subject=...&format=...]`` -> ``{"schema": ...}``, or HTTP 404
  ``{"error_code": 40403, "message": "Schema 7 not found"}``.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import avro.compatibility
import avro.errors
import avro.schema

_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


@dataclass
class RegistryState:
    """What the registry holds; guarded by ``lock`` since the server is threaded."""

    schemas: dict[int, tuple[str, str]] = field(default_factory=dict)  # id -> (schema type, text)
    ids: dict[tuple[str, str], int] = field(default_factory=dict)  # (schema type, text) -> id
    subjects: dict[str, list[int]] = field(default_factory=dict)  # subject -> ids, one per version
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path with query)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Error(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        state = self.server.state
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        query = parse_qs(url.query)
        with state.lock:
            state.requests.append((method, self.path))
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if method == "POST" and len(parts) == 3 and parts[0] == "subjects" and parts[2] == "versions":
                answer = self._register(parts[1], body, query)
            elif method == "GET" and len(parts) == 3 and parts[:2] == ["schemas", "ids"] and parts[2].isdigit():
                answer = self._schema(int(parts[2]))
            else:
                raise _Error(404, 404, "HTTP 404 Not Found")
            self._reply(200, answer)
        except _Error as err:
            self._reply(err.status, {"error_code": err.code, "message": err.message})

    def _register(self, subject: str, body: bytes, query: dict[str, list[str]]) -> dict[str, Any]:
        del query  # normalize=true|false: our schemas are compared as sent
        try:
            request = json.loads(body)
            text = request["schema"]
            schema_type = request.get("schemaType") or "AVRO"
        except (ValueError, KeyError, TypeError) as exc:
            raise _Error(422, 42201, f"Invalid schema request: {exc}") from None
        if schema_type != "AVRO":
            raise _Error(422, 42201, f"Invalid schema: schema type {schema_type} is not supported here")
        try:
            new = avro.schema.parse(text)
        except (avro.errors.AvroException, ValueError) as exc:
            raise _Error(422, 42201, f"Invalid schema {text[:80]}: {exc}") from None
        state = self.server.state
        with state.lock:
            key = (schema_type, text)
            versions = state.subjects.setdefault(subject, [])
            schema_id = state.ids.get(key)
            if schema_id is not None and schema_id in versions:
                return {"id": schema_id}
            if versions:
                latest = avro.schema.parse(state.schemas[versions[-1]][1])
                checker = avro.compatibility.ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
                verdict = checker.get_compatibility(new, latest)
                if verdict.compatibility is not avro.compatibility.SchemaCompatibilityType.compatible:
                    found = ", ".join(sorted(i.value for i in verdict.incompatibilities))
                    raise _Error(
                        409,
                        409,
                        f'Schema being registered is incompatible with an earlier schema for subject "{subject}": '
                        f"{found} at {sorted(verdict.locations)}",
                    )
            if schema_id is None:
                schema_id = len(state.schemas) + 1
                state.schemas[schema_id] = key
                state.ids[key] = schema_id
            versions.append(schema_id)
            return {"id": schema_id}

    def _schema(self, schema_id: int) -> dict[str, Any]:
        state = self.server.state
        with state.lock:
            found = state.schemas.get(schema_id)
        if found is None:
            raise _Error(404, 40403, f"Schema {schema_id} not found")
        schema_type, text = found
        answer: dict[str, Any] = {"schema": text}
        if schema_type != "AVRO":
            answer["schemaType"] = schema_type
        return answer

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", _CONTENT_TYPE)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: RegistryState) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


class SchemaRegistryServer:
    """The test registry on an ephemeral port; ``with SchemaRegistryServer() as r: r.url``."""

    def __init__(self) -> None:
        self.state = RegistryState()
        self._server = _Server(self.state)
        self._thread = threading.Thread(target=self._server.serve_forever, name="test-schema-registry", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> SchemaRegistryServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def versions(self, subject: str) -> list[int]:
        """Schema ids registered under ``subject``, oldest first."""
        with self.state.lock:
            return list(self.state.subjects.get(subject, []))

    def schema_text(self, schema_id: int) -> str:
        """The schema text stored under ``schema_id``."""
        with self.state.lock:
            return self.state.schemas[schema_id][1]

    def __enter__(self) -> SchemaRegistryServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
