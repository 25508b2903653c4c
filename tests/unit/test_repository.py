"""The repository keeps its promises about itself: no import cycles, documentation anchors that exist,
small classes, generated settings docs in step (test_settings checks those)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.helpers import ROOT

PACKAGE = ROOT / "archiver"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every archiver module this file imports, at any depth of the file (deferred imports too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("archiver"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("archiver"))
    return found


def test_repository_has_no_import_cycles() -> None:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {
        name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()
    }
    # A package's __init__ importing its own submodules is how packages work, not a cycle.
    graph = {name: {m for m in deps if not m.startswith(name + ".")} for name, deps in graph.items()}
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        if node in trail:
            cycles.append([*trail[trail.index(node) :], node])
            return
        for nxt in sorted(graph[node]):
            if nxt not in done:
                visit(nxt, [*trail, node])
        done.add(node)

    done: set[str] = set()
    for name in sorted(graph):
        visit(name, [])
    assert cycles == []


def test_repository_documentation_anchors_cited_in_code_exist() -> None:
    doc = (ROOT / "docs" / "ringcentral-api.md").read_text()
    anchors = {
        re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in doc.splitlines()
        if line.startswith("#")
    }
    cited = {
        (path.name, anchor)
        for path in [*PACKAGE.rglob("*.py"), *(ROOT / "tests").rglob("*.py")]
        for anchor in re.findall(r"ringcentral-api\.md#([a-z0-9-]+)", path.read_text())
    }
    assert cited, "the code cites the RingCentral facts it relies on"
    assert {(name, anchor) for name, anchor in cited if anchor not in anchors} == set()


def test_repository_classes_outside_the_emulator_stay_small() -> None:
    """No class in archiver/ (the emulator aside) is longer than 200 lines: one job each (a class that
    grows past it does two: split it by job, as S3Destination's probe went to s3_probe.py and the
    call log's paging to ringcentral/paging.py). The settings model is the exception: a declarative
    schema, one documented field per setting, from which the settings reference and the example file
    are generated."""
    exempt = {("settings.py", "Settings")}
    long = []
    for path in PACKAGE.rglob("*.py"):
        if "emulator" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                length = node.end_lineno - node.lineno + 1
                if length > 200 and (path.name, node.name) not in exempt:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)")
    assert long == []


def test_repository_code_needs_no_formatter_exceptions() -> None:
    """No `# fmt: skip` or `# fmt: off` in archiver/: a call the formatter must not touch is a call
    with too many positional arguments, which a context or keyword arguments replace."""
    marked = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in PACKAGE.rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if re.search(r"#\s*fmt:\s*(skip|off)\b", line)
    ]
    assert marked == []
