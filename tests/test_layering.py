"""The import graph of chat/: no cycles, and layers that run one way.

Read from the source with ast, so an import inside a function counts too.
"""

import ast
from pathlib import Path

import pytest

CHAT = Path(__file__).resolve().parent.parent / "chat"

# The domain: rooms, messages and who may act. It never reaches up into turns.
DOMAIN = {"chat.models", "chat.services", "chat.selectors", "chat.authority", "chat.forms"}
TURNS = (
    {"chat.replies", "chat.reply_stream", "chat.leases", "chat.shutdown", "chat.lifecycle"}
    | {f"chat.turns.{path.stem}" for path in (CHAT / "turns").glob("*.py")}
    | {"chat.turns"}
)


def module_name(path: Path) -> str:
    parts = path.relative_to(CHAT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, known: set[str]) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {name for name in names if name in known}
    return found


def graph() -> dict[str, set[str]]:
    paths = [p for p in CHAT.rglob("*.py") if "migrations" not in p.parts]
    known = {module_name(p) for p in paths}
    return {module_name(p): imports_of(p, known) - {module_name(p)} for p in paths}


def test_there_are_no_import_cycles():
    edges = graph()
    # models imports chat.documents at its end (the documents' own module); that
    # one edge back is Django's model registry, not a layer.
    edges["chat.models"].discard("chat.documents")
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            pytest.fail("import cycle: " + " → ".join([*path[path.index(module) :], module]))
        if module in done:
            return
        for imported in sorted(edges.get(module, ())):
            visit(imported, [*path, module])
        done.add(module)

    for module in sorted(edges):
        visit(module, [])


def test_the_domain_never_imports_the_turns():
    edges = graph()
    for module in DOMAIN:
        assert not edges[module] & TURNS, (module, edges[module] & TURNS)


def test_views_and_services_start_nothing_and_services_render_nothing():
    edges = graph()
    starters = {"chat.turns.supervisor", "chat.turns.watchdog", "chat.replies"}
    views = {module for module in edges if module.endswith("views")} | {"chat.pages"}
    for module in sorted(views | {"chat.services", "chat.consumers"}):
        assert not edges[module] & starters, (module, edges[module] & starters)
    assert "chat.rendering" not in edges["chat.services"]


def test_no_module_imports_another_s_private_names():
    found = []
    for path in CHAT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("chat"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                found += [f"{module_name(path)}: {node.module}.{name}" for name in private]
    assert not found


def test_only_the_model_module_imports_openai():
    importers = set()
    for path in CHAT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            else:
                continue
            if any(name == "openai" or name.startswith("openai.") for name in names):
                importers.add(module_name(path))
    assert importers == {"chat.llm"}
