"""CI runs the whole suite on a UTC host and, again on a host in New York, only the tests marked `host_tz`:
those that can depend on the host's time zone. This test keeps the mark honest: every test that starts a
product process, runs the daemon or its schedule, reads the wall clock, sets TZ, or turns times into text or
back (itself or through its fixtures) must carry it."""
from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
# what can make a test's outcome depend on the host's zone
TIME_NAMES = {
    "run_cli", "subprocess", "Popen", "Daemon", "schedule", "run_demo",  # product processes, the schedule
    "now", "today", "utcnow", "time_ns", "localtime", "gmtime",  # the wall clock
    "TZ", "tzset",  # the zone itself
    "strftime", "strptime", "fromisoformat", "isoformat", "parse_time", "setup_logging",  # times as text
}
MARK = "host_tz"


CLOCK_CALLS = {"now", "today"}  # read the clock as methods (datetime.now()); a variable named `now` does not


def _names(node: ast.AST) -> set[str]:
    """Names, attributes and string constants used in a function (a string like "TZ" counts)."""
    found = set()
    for child in ast.walk(node):
        if isinstance(child, ast.Name) and child.id not in CLOCK_CALLS:
            found.add(child.id)
        elif isinstance(child, ast.Attribute):
            found.add(child.attr)
        elif isinstance(child, ast.Constant) and isinstance(child.value, str) and child.value.isidentifier():
            found.add(child.value)
    return found


def _marks(node: ast.FunctionDef) -> set[str]:
    return {d.attr for d in ast.walk(ast.Module(body=[*node.decorator_list], type_ignores=[]))
            if isinstance(d, ast.Attribute)}


def _is_fixture(node: ast.FunctionDef) -> bool:
    return any("fixture" in ast.unparse(d) for d in node.decorator_list)


def _module_marked(tree: ast.Module) -> bool:
    return any(isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "pytestmark" for t in n.targets)
               and MARK in ast.unparse(n.value) for n in tree.body)


def _functions(tree: ast.Module) -> dict[str, ast.FunctionDef]:
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}


def _helpers_used(node: ast.FunctionDef, helpers: dict[str, ast.FunctionDef], seen: set[str]) -> set[str]:
    """The names used by a function, the module's helpers and fixtures it calls or requests, transitively."""
    names = _names(node)
    for other in (names | {a.arg for a in node.args.args}) & set(helpers) - seen:
        seen.add(other)
        names |= _helpers_used(helpers[other], helpers, seen)
    return names


def unmarked_time_tests() -> list[str]:
    conftest = _functions(ast.parse((TESTS / "conftest.py").read_text()))
    fixtures = {name: node for name, node in conftest.items() if _is_fixture(node)}
    missing = []
    for path in sorted(TESTS.glob("test_*.py")):
        if path.name == Path(__file__).name:  # its own example strings are not clock readings
            continue
        tree = ast.parse(path.read_text())
        helpers = {**fixtures, **_functions(tree)}
        for name, node in _functions(tree).items():
            if not name.startswith("test_") or MARK in _marks(node) or _module_marked(tree):
                continue
            if _helpers_used(node, helpers, {name}) & TIME_NAMES:
                missing.append(f"{path.name}::{name}")
    return missing


def test_every_test_that_can_depend_on_the_host_zone_is_marked():
    assert unmarked_time_tests() == [], f"add @pytest.mark.{MARK} (CI runs them again under another TZ)"


def test_the_check_finds_an_unmarked_clock_reader(tmp_path):
    """The check itself: a test reading the clock without the mark is found, with the mark it is not."""
    source = "import time\n\ndef test_x():\n    assert time.localtime()\n"
    node = _functions(ast.parse(source))["test_x"]
    assert _helpers_used(node, {}, {"test_x"}) & TIME_NAMES == {"localtime"}
    marked = _functions(ast.parse("import pytest\n\n@pytest.mark.host_tz\n" + source.split("\n\n")[1]))["test_x"]
    assert MARK in _marks(marked)
