"""The package layout's rules, read from the source: few top-level modules, no cycle between
packages, and the edges that must never exist (the API and the Meta client kept apart)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "wa_outbound"
TOP_LEVEL_MODULE_LIMIT = 12


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every `wa_outbound` module a file imports, by its full dotted name."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("wa_outbound")
        ):
            if node.module != "wa_outbound":
                found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("wa_outbound"))
    modules = {_module_name(p) for p in SRC.rglob("*.py")}
    return {name for name in found if name in modules}


def _unit(module: str) -> str:
    """A package's name, or a top-level module's: the unit the layout rules speak of."""
    return module.split(".")[1] if module.count(".") >= 1 else module


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in SRC.rglob("*.py")}


def test_the_top_level_holds_few_modules_besides_packages() -> None:
    top = [p.name for p in SRC.glob("*.py") if p.name != "__init__.py"]
    assert len(top) <= TOP_LEVEL_MODULE_LIMIT, sorted(top)


def test_every_package_says_what_it_owns() -> None:
    for init in SRC.glob("*/__init__.py"):
        assert ast.get_docstring(ast.parse(init.read_text())), (
            f"{init.parent.name} has no docstring"
        )


def test_no_import_cycle_between_packages(graph: dict[str, set[str]]) -> None:
    edges: dict[str, set[str]] = defaultdict(set)
    for module, imported in graph.items():
        for target in imported:
            if _unit(module) != _unit(target) and _unit(module) != "wa_outbound":
                edges[_unit(module)].add(_unit(target))

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in edges[start]:
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = sorted(unit for unit in list(edges) if reaches(unit, unit, {unit}))
    assert cycles == [], f"packages in an import cycle: {cycles}"


def test_the_api_imports_no_meta_client_code(graph: dict[str, set[str]]) -> None:
    for module, imported in graph.items():
        if module.startswith("wa_outbound.api"):
            assert not {m for m in imported if m.startswith("wa_outbound.whatsapp")}, module


def test_the_meta_client_imports_no_database_code(graph: dict[str, set[str]]) -> None:
    for module in ("wa_outbound.whatsapp.cloud", "wa_outbound.whatsapp.provider"):
        forbidden = {m for m in graph[module] if m.startswith("wa_outbound.db")}
        assert forbidden == set(), module


def test_the_database_package_imports_only_config_and_errors(graph: dict[str, set[str]]) -> None:
    allowed = {"db", "config", "errors"}
    for module, imported in graph.items():
        if module.startswith("wa_outbound.db"):
            assert {_unit(m) for m in imported} <= allowed, module
