"""The tests are laid out like the package (issue 20): support code in ``tests/support/``, unit tests by the subpackage
they test, broker tests in ``tests/kafka/``, browser tests in ``tests/browser/``; no test module imports another."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.paths import REPO

TESTS = REPO / "tests"
#: Where test modules live: the unit tests of the whole repository beside those of each subpackage, then the broker's
#: and the browser's.
TEST_FOLDERS = ("unit", "kafka", "browser")
#: Modules that sit beside tests without being tests or support: pytest's and Python's own.
FRAMEWORK_MODULES = {"conftest.py", "__init__.py"}


def python_files() -> list[Path]:
    """Every Python module under tests/, data aside."""
    return sorted(p for p in TESTS.rglob("*.py") if "data" not in p.relative_to(TESTS).parts)


def imported_modules(path: Path) -> set[str]:
    """The dotted names ``path`` imports, each ``from X import Y`` counted as ``X`` and ``X.Y`` (Y may be a module)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def named_test_module(name: str) -> str | None:
    """The test module a dotted name under ``tests`` names or reaches into (``tests.x.test_y.z`` -> ``tests.x.test_y``)."""
    parts = name.split(".")
    if parts[0] != "tests":
        return None
    for i, part in enumerate(parts):
        if part.startswith("test_"):
            return ".".join(parts[: i + 1])
    return None


def test_no_module_under_tests_imports_a_test_module() -> None:
    """What two test modules share belongs in tests/support/ (or a folder's conftest.py): a test module imported by
    another runs its module-level code twice and ties two tests' edits together."""
    found = {
        f"{path.relative_to(REPO)} imports {test_module}"
        for path in python_files()
        for name in imported_modules(path)
        if (test_module := named_test_module(name)) is not None
    }
    assert not found, sorted(found)


def test_test_modules_sit_in_the_layouts_folders() -> None:
    """A test module lives in tests/unit/ (whole-repository checks), tests/unit/<subpackage>/, tests/kafka/ or
    tests/browser/; anything else under tests/ that is not a test lives in tests/support/."""
    misplaced = []
    for path in python_files():
        parts = path.relative_to(TESTS).parts
        if path.name in FRAMEWORK_MODULES:
            continue
        if path.name.startswith("test_"):
            in_place = parts[0] in TEST_FOLDERS and len(parts) <= (3 if parts[0] == "unit" else 2)
        else:
            in_place = parts[0] == "support"
        if not in_place:
            misplaced.append(str(path.relative_to(REPO)))
    assert not misplaced, misplaced


def test_each_unit_folder_names_a_subpackage_of_consentflow() -> None:
    """tests/unit/<name>/ holds the unit tests of consentflow.<name>, so the name must be one of its subpackages."""
    package = REPO / "consentflow"
    folders = {p.name for p in (TESTS / "unit").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders, "no unit folders"
    assert {name for name in folders if not (package / name / "__init__.py").is_file()} == set()


def marks_the_module_kafka(path: Path) -> bool:
    """Whether ``path`` sets ``pytestmark`` to ``pytest.mark.kafka`` (alone or in a list) at module level."""
    return any(
        isinstance(node, ast.Assign)
        and any(isinstance(target, ast.Name) and target.id == "pytestmark" for target in node.targets)
        and "pytest.mark.kafka" in ast.unparse(node.value)
        for node in ast.parse(path.read_text()).body
    )


def test_every_broker_module_is_marked_kafka_as_a_whole() -> None:
    """``-m "not kafka"`` (``make unit``) leaves tests/kafka/ out only while each of its modules sets ``pytestmark``."""
    modules = sorted((TESTS / "kafka").glob("test_*.py"))
    assert modules, "no broker test modules"
    unmarked = [path.name for path in modules if not marks_the_module_kafka(path)]
    assert not unmarked, unmarked
