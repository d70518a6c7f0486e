"""``consentflow schemas list`` (issue 23): every contract's version, file and fingerprint, pinned to the fingerprint
Java's Avro (``SchemaNormalization``) computes for the same file, so a Java or JVM consumer finds the writer schema
of any message by the bytes after ``c3 01`` or by the ``consentflow.schema.fingerprint`` header."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from consentflow.cli import main
from consentflow.contracts.releases import default_store
from tests.support.paths import SUPPORT

JAVA_PROJECT = SUPPORT / "java_fingerprints"


def _listed(*args: str) -> list[dict[str, Any]]:
    result = CliRunner().invoke(main, ["schemas", "list", "--json", *args])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines()]


def _java_fingerprints(files: list[str], workdir: Path) -> dict[str, tuple[str, int]]:
    """file -> (hex of Java's 8 fingerprint bytes, Java's 64-bit fingerprint), by Maven-resolved Avro on local Java."""
    java, mvn = shutil.which("java"), shutil.which("mvn")
    if java is None or mvn is None:
        pytest.skip(f"Java's Avro is the oracle here and needs java and mvn on PATH (java: {java}, mvn: {mvn})")
    classpath = workdir / "classpath.txt"
    pom = JAVA_PROJECT / "pom.xml"
    goal = [mvn, "-B", "-q", "-Dstyle.color=never", "-f", str(pom), "dependency:build-classpath"]
    resolved = subprocess.run([*goal, f"-Dmdep.outputFile={classpath}"], capture_output=True, text=True, timeout=600)
    assert resolved.returncode == 0, f"maven could not resolve org.apache.avro:avro:\n{resolved.stdout}\n{resolved.stderr}"
    source = JAVA_PROJECT / "Fingerprints.java"
    ran = subprocess.run(
        [java, "-cp", classpath.read_text().strip(), str(source), *files], capture_output=True, text=True, timeout=300
    )
    assert ran.returncode == 0, ran.stderr
    found = {}
    for line in ran.stdout.splitlines():
        file, fingerprint, as_long = line.split("\t")
        found[file] = (fingerprint, int(as_long))
    return found


def test_lists_every_contract_version_with_its_file() -> None:
    listed = _listed()
    store = default_store()
    assert [(row["contract"], row["version"]) for row in listed] == [(c.full_name, c.version) for c in store.all()]
    assert {Path(row["file"]).name for row in listed} == {"v1.avsc", "v2.avsc"}
    for row in listed:
        document = json.loads(Path(row["file"]).read_text(encoding="utf-8"))
        assert f"{document['namespace']}.{document['name']}" == row["contract"]
    assert len(listed) >= 14  # every record of schemas/, RetentionAction twice


def test_the_table_form_lists_the_same() -> None:
    result = CliRunner().invoke(main, ["schemas", "list"])
    assert result.exit_code == 0, result.output
    header, *lines = result.output.splitlines()
    assert header.split() == ["contract", "version", "fingerprint", "file"]
    assert [line.split() for line in lines] == [
        [row["contract"], str(row["version"]), row["fingerprint"], row["file"]] for row in _listed()
    ]


def test_fingerprints_are_javas(tmp_path: Path) -> None:
    listed = _listed()
    java = _java_fingerprints([row["file"] for row in listed], tmp_path)
    assert set(java) == {row["file"] for row in listed}
    for row in listed:
        fingerprint, as_long = java[row["file"]]
        assert row["fingerprint"] == fingerprint, row["contract"]
        # parsingFingerprint64's long, written little-endian: the same 8 bytes, so the byte order is Java's too.
        assert struct.pack("<q", as_long).hex() == fingerprint


def test_a_contract_folder_of_ones_own(tmp_path: Path) -> None:
    # --root reads another schemas/ folder: a contract with one field more has another fingerprint, still Java's.
    source = default_store().latest("ConsentEvent")
    document = json.loads(source.path.read_text(encoding="utf-8"))
    document["fields"].append({"name": "extra", "type": ["null", "string"], "default": None})
    (tmp_path / "ConsentEvent").mkdir()
    (tmp_path / "ConsentEvent" / "v1.avsc").write_text(json.dumps(document), encoding="utf-8")
    (mine,) = _listed("--root", str(tmp_path))
    assert mine["contract"] == "consentflow.ConsentEvent"
    assert mine["fingerprint"] != source.fingerprint.hex()
    java = _java_fingerprints([mine["file"]], tmp_path)
    assert java[mine["file"]][0] == mine["fingerprint"]
