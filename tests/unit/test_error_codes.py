"""Every exception class has a stable code, and a remote side rebuilds the same class from it."""

from __future__ import annotations

import inspect
import re

import pytest

import peersync
from peersync._engine import errors as _errors
from peersync._engine.codec import ERROR
from peersync._engine.errors import error_from_wire, error_to_wire

EXPORTED = [
    getattr(peersync, n)
    for n in peersync.__all__
    if inspect.isclass(getattr(peersync, n)) and issubclass(getattr(peersync, n), BaseException)
]

# Codes are a wire contract: a change here breaks peers of another version.
STABLE = {
    "SyncError": "sync-error",
    "ConfigurationError": "configuration",
    "InvalidURL": "invalid-url",
    "ScopeError": "scope",
    "TableError": "table",
    "AccessDenied": "access-denied",
    "SchemaMismatch": "schema-mismatch",
    "ReplicaOutdated": "replica-outdated",
    "RepairNeeded": "repair-needed",
    "ProtocolError": "protocol",
    "TransportError": "transport",
    "StorageError": "storage",
    "DatabaseLocked": "database-locked",
}


def test_every_exported_exception_has_its_own_unique_code() -> None:
    assert EXPORTED
    for cls in EXPORTED:
        assert "code" in vars(cls), f"{cls.__name__} inherits its code"
        assert re.fullmatch(r"[a-z][a-z-]*", cls.code), cls.code
    codes = [cls.code for cls in EXPORTED]
    assert len(set(codes)) == len(codes)


def test_codes_never_change() -> None:
    assert {cls.__name__: cls.code for cls in EXPORTED} == STABLE


def test_docstring_table_lists_every_code() -> None:
    assert _errors.__doc__
    table = _errors.__doc__.rsplit("::", 1)[1]
    rows = dict(re.findall(r"^\s+([a-z][a-z-]*)\s+([A-Z]\w+)\s*$", table, re.M))
    assert rows == {code: name for name, code in STABLE.items()}


@pytest.mark.parametrize("cls", EXPORTED, ids=lambda c: c.__name__)
def test_each_class_round_trips_to_itself(cls: type[peersync.SyncError]) -> None:
    exc = cls(f"something about {cls.__name__}: ünïcødé")
    wire = error_to_wire(exc)
    assert wire == {"code": cls.code, "message": str(exc)}
    for back in (error_from_wire(wire), ERROR.decode(ERROR.encode(exc))):
        assert type(back) is cls
        assert str(back) == str(exc)


def test_a_subclass_defined_elsewhere_travels_as_its_nearest_class() -> None:
    class Busy(peersync.DatabaseLocked):
        pass

    back = ERROR.decode(ERROR.encode(Busy("held by pid 42")))
    assert type(back) is peersync.DatabaseLocked
    assert str(back) == "held by pid 42"


def test_unknown_code_becomes_a_protocol_error_naming_it() -> None:
    back = error_from_wire({"code": "quota-exceeded", "message": "over 10 GB"})
    assert type(back) is peersync.ProtocolError
    assert "quota-exceeded" in str(back) and "over 10 GB" in str(back)


@pytest.mark.parametrize(
    "obj",
    [
        None,
        "scope",
        ["scope", "x"],
        {"code": "scope"},
        {"message": "x"},
        {"code": "scope", "message": "x", "extra": 1},
        {"code": 1, "message": "x"},
        {"code": "scope", "message": b"x"},
    ],
)
def test_malformed_error_becomes_a_protocol_error(obj: object) -> None:
    back = error_from_wire(obj)
    assert type(back) is peersync.ProtocolError
    assert str(back).startswith("malformed error")
