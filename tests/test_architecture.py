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


def test_the_layering_contracts_name_every_billing_module() -> None:
    """import-linter's forbidden lists are spelled out; a new billing module must join them,
    or the gateway (and the kernel) could start importing it unchecked."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    contracts = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["importlinter"][
        "contracts"
    ]
    forbidden = {
        c["source_modules"][0]: set(c["forbidden_modules"])
        for c in contracts
        if c["type"] == "forbidden" and c["source_modules"] in (["billing.core"], ["gateway"])
    }
    billing = {
        f"billing.{p.stem if p.is_file() else p.name}"
        for p in (root / "billing").iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()
    }
    assert billing - {"billing.core"} <= forbidden["billing.core"]
    assert billing - {"billing.core", "billing.entitlement"} <= forbidden["gateway"]
