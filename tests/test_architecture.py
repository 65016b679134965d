"""The layout of ARCHITECTURE.md that import-linter's layers cannot express: no import cycles."""

from __future__ import annotations

import grimp


def test_no_module_imports_itself_through_others() -> None:
    graph = grimp.build_graph("billing", "gateway", "cli", "web")
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            chain = graph.find_shortest_chain(importer=imported, imported=module)
            if chain:
                cycles.append(" -> ".join((module, *chain)))
    assert cycles == []


def test_no_test_module_imports_another() -> None:
    """Shared helpers live in tests/support/, so a test file can move or go alone."""
    graph = grimp.build_graph("tests")
    offenders = [
        (module, imported)
        for module in graph.modules
        if module.rsplit(".", 1)[-1].startswith("test_")
        for imported in graph.find_modules_directly_imported_by(module)
        if imported.rsplit(".", 1)[-1].startswith(("test_", "conftest"))
    ]
    assert offenders == []
