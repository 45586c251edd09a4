"""The layout holds the architecture: the engine imports no database driver,
no network library and no adapter, transport or CLI module; adapters and
transports never import the CLI; and no module imports itself in a circle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import peersync
from peersync._engine import registry

SRC = Path(peersync.__file__).resolve().parent

# Drivers, network and server libraries the engine must never depend on.
FORBIDDEN_IN_ENGINE = {
    "sqlite3", "_sqlite3", "psycopg", "psycopg2", "psycopg_pool", "asyncpg", "pymysql", "MySQLdb", "mysql",
    "mariadb", "aiomysql", "asyncmy", "httpx", "requests", "urllib3", "http", "socket", "ssl", "aiohttp",
    "starlette", "uvicorn", "fastapi", "click", "rich",
}  # fmt: skip


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Absolute names of the modules ``path`` imports, relative imports resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # ``from pkg import mod`` imports pkg.mod; ``from mod import name``
            # is walked back to mod by ``_closest``.
            out.update(f"{mod}.{a.name}" for a in node.names)
    return out


def _files(sub: str) -> list[Path]:
    return sorted((SRC / sub).rglob("*.py"))


@pytest.mark.parametrize("path", _files("_engine"), ids=lambda p: p.name)
def test_the_engine_imports_no_driver_network_library_or_outer_layer(path: Path) -> None:
    for name in _imports(path):
        assert name.split(".")[0] not in FORBIDDEN_IN_ENGINE, f"{path.name} imports {name}"
        for outer in ("peersync._adapters", "peersync._transports", "peersync._cli", "peersync._api"):
            assert not name.startswith(outer), f"{path.name} imports {name}"


def test_adapters_and_transports_never_import_the_cli() -> None:
    for path in _files("_adapters") + _files("_transports"):
        for name in _imports(path):
            assert not name.startswith("peersync._cli"), f"{path} imports {name}"


def test_the_farm_orchestrates_through_connect_and_the_engine_only() -> None:
    """The farm reaches databases and servers only through ``connect(url)``
    and the session API; nothing below it knows the farm."""
    for path in _files("_farm"):
        for name in _imports(path):
            if name.startswith("peersync."):
                assert name.startswith(("peersync._engine", "peersync._api", "peersync._farm")), (
                    f"{path} imports {name}"
                )
    for path in _files("_engine") + _files("_adapters") + _files("_transports"):
        for name in _imports(path):
            assert not name.startswith(("peersync._farm", "peersync.farm")), f"{path} imports {name}"


def test_no_import_cycles_between_modules() -> None:
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for mod, path in modules.items():
        # Imports under ``if TYPE_CHECKING:`` still draw the architecture: count them.
        graph[mod] = {m for m in (_closest(name, modules) for name in _imports(path)) if m and m != mod}
    cycle = _find_cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


def _closest(name: str, modules: dict[str, Path]) -> str | None:
    """The module ``name`` refers to (a name imported from a module counts as that module)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    # Importing a package's submodule runs the package's __init__; that edge
    # is Python's, not the code's design, so only real modules count.
    return name or None


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return [*stack[stack.index(m) :], m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_an_unknown_scheme_is_refused_with_the_schemes_there_are() -> None:
    with pytest.raises(peersync.InvalidURL, match=r"unsupported database URL 'ftp://x/y'.*sqlite://"):
        peersync.connect("ftp://x/y")


def test_a_registered_scheme_opens_through_connect(tmp_path: Path) -> None:
    opened: list[tuple[str, dict[str, object]]] = []

    def opener(url: str, **options: object) -> peersync.Database:
        opened.append((url, options))
        return peersync.connect(tmp_path / "x.db")

    (tmp_path / "x.db").write_bytes(b"")
    registry.register("testkind", opener)
    try:
        with peersync.connect("TestKind://somewhere", flavour=1) as db:
            assert db.scopes() == []
    finally:
        registry._openers.pop("testkind")
    assert opened == [("TestKind://somewhere", {"flavour": 1})]
