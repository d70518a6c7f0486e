"""The CLI and the HTTP API reach ClickHouse only through ``sinks/`` (issue 20): no module of ``consentflow/cli`` or
``consentflow/http`` imports a ClickHouse client, writes SQL, or calls a client's query or insert, so every question
a DPO or an auditor asks is answered by one query module, the same for both ways in."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import consentflow

PACKAGE = Path(consentflow.__file__).resolve().parent
THIN_LAYERS = ("cli", "http")
CLIENTS = ("clickhouse_connect", "chdb")
SQL = re.compile(r"\b(SELECT|INSERT INTO|ALTER TABLE|CREATE TABLE|OPTIMIZE TABLE|DROP TABLE)\b", re.IGNORECASE)
CLIENT_CALLS = frozenset({"query", "query_arrow", "query_df", "raw_query", "insert", "insert_arrow", "insert_df"})


def trespasses(source: str) -> list[str]:
    """What in ``source`` reaches ClickHouse other than through ``sinks/``: client imports, SQL text, client calls."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"imports {a.name}" for a in node.names if a.name.split(".")[0] in CLIENTS]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in CLIENTS:
            found.append(f"imports {node.module}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value):
            found.append(f"SQL at line {node.lineno}: {node.value[:40]!r}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in CLIENT_CALLS:
            found.append(f"calls .{node.func.attr}() at line {node.lineno}")
    return found


@pytest.mark.parametrize("layer", THIN_LAYERS)
def test_the_cli_and_http_layers_reach_clickhouse_only_through_sinks(layer: str) -> None:
    modules = sorted((PACKAGE / layer).glob("*.py"))
    assert len(modules) > 3  # the layer is where this test looks for it
    found = {str(path.relative_to(PACKAGE)): trespasses(path.read_text()) for path in modules}
    assert {name: what for name, what in found.items() if what} == {}


def test_a_query_written_in_a_thin_layer_is_named() -> None:
    source = "import clickhouse_connect\ndef answer(sink):\n    return sink.reader.query('SELECT count() FROM ledger')\n"
    assert trespasses(source) == [
        "imports clickhouse_connect",
        "calls .query() at line 3",
        "SQL at line 3: 'SELECT count() FROM ledger'",
    ]
