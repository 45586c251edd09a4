"""The public face: a sorted ``__all__``, the exception tree, the shipped test helpers."""

from __future__ import annotations

import inspect
import re
import textwrap

import pytest

import peersync
import peersync.testing
from peersync._engine import errors as _errors


def test_all_is_sorted_and_unique() -> None:
    assert peersync.__all__ == sorted(peersync.__all__)
    assert len(set(peersync.__all__)) == len(peersync.__all__)


@pytest.mark.parametrize("name", peersync.__all__)
def test_every_public_name_exists(name: str) -> None:
    assert hasattr(peersync, name)


def test_public_names_are_not_private_modules() -> None:
    for name in peersync.__all__:
        assert not inspect.ismodule(getattr(peersync, name)), name


def _tree_from_docstring() -> dict[str, str | None]:
    """Parse the box drawing in ``_errors``'s docstring into ``{name: parent}``."""
    assert _errors.__doc__
    block = _errors.__doc__.split("::", 1)[1].split("\n\n")[1]  # the literal block after "::"
    parents: dict[str, str | None] = {}
    stack: list[str] = []  # stack[d] = the last class seen at depth d
    for line in textwrap.dedent(block).splitlines():
        m = re.match(r"^[\s│├└─]*([A-Z]\w+)", line)
        if not m:
            continue  # a continued description
        depth = m.start(1) // 4
        del stack[depth:]
        parents[m.group(1)] = stack[-1] if stack else None
        stack.append(m.group(1))
    return parents


EXPECTED_TREE: dict[str, str | None] = {
    "SyncError": None,
    "ConfigurationError": "SyncError",
    "InvalidURL": "ConfigurationError",
    "ScopeError": "ConfigurationError",
    "TableError": "ConfigurationError",
    "AccessDenied": "ConfigurationError",
    "SchemaMismatch": "SyncError",
    "ReplicaOutdated": "SyncError",
    "RepairNeeded": "SyncError",
    "ProtocolError": "SyncError",
    "TransportError": "SyncError",
    "StorageError": "SyncError",
    "DatabaseLocked": "StorageError",
}


def test_docstring_draws_the_expected_tree() -> None:
    assert _tree_from_docstring() == EXPECTED_TREE


@pytest.mark.parametrize(("name", "parent"), EXPECTED_TREE.items())
def test_exception_classes_match_the_tree(name: str, parent: str | None) -> None:
    cls = getattr(peersync, name)
    assert name in peersync.__all__
    assert issubclass(cls, peersync.SyncError)
    if parent is None:
        assert cls.__bases__ == (Exception,)
    else:
        assert cls.__bases__ == (getattr(peersync, parent),)


def test_specific_relations() -> None:
    assert issubclass(peersync.DatabaseLocked, peersync.StorageError)
    for cls in (peersync.InvalidURL, peersync.ScopeError, peersync.TableError):
        assert issubclass(cls, peersync.ConfigurationError)
    # Branches the caller handles differently stay apart.
    assert not issubclass(peersync.TransportError, peersync.ProtocolError)
    assert not issubclass(peersync.ProtocolError, peersync.ConfigurationError)
    assert not issubclass(peersync.DatabaseLocked, peersync.TransportError)


def test_every_public_exception_is_in_the_tree() -> None:
    exported = {
        name
        for name in peersync.__all__
        if inspect.isclass(getattr(peersync, name)) and issubclass(getattr(peersync, name), BaseException)
    }
    declared = {name for name, obj in vars(_errors).items() if inspect.isclass(obj) and issubclass(obj, Exception)}
    assert exported == declared == set(EXPECTED_TREE)


def test_testing_helpers() -> None:
    for name in ("FaultyPeer", "RecordingPeer"):
        assert name in peersync.testing.__all__
        assert inspect.isclass(getattr(peersync.testing, name))
    assert peersync.testing.__all__ == sorted(peersync.testing.__all__)
    for name in peersync.testing.__all__:
        assert hasattr(peersync.testing, name)
