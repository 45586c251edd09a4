"""The structures that messages carry, each as a pair: to plain msgpack
data, and back, checked field by field (the shapes are in the package
docstring: ``S``, ``D``, ``C``, ``R``, ``V``, ``T``)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from ..errors import ConfigurationError
from ..knowledge import Version
from ..model import Conflict, ConflictType, Outcome, Status, TableSchema, Value
from ..names import Names
from ..types import Column, ValueType
from .fields import (
    MAX_TICK,
    Invalid,
    _array,
    _bad,
    _bool,
    _build,
    _count,
    _enum,
    _fields,
    _int,
    _knowledge,
    _names,
    _one_of,
    _opt_time,
    _replica,
    _size,
    _Spec,
    _str,
    _tick,
    _time,
    _value,
)  # fmt: skip


def _schema_to(s: TableSchema) -> list[Any]:
    specs = [[c.name, c.type.value, c.nullable, c.length, c.precision, c.scale, c.declared] for c in s.specs]
    return [s.name, list(s.columns), list(s.key), list(s.types), specs]


_VALUE_TYPES = [t.value for t in ValueType]


_COLUMN_FIELDS: _Spec = (
    ("name", _str, "name"), ("type", _one_of(ValueType, _VALUE_TYPES), "type"), ("nullable", _bool, "nullable"),
    ("length", _size, "length"), ("precision", _size, "precision"), ("scale", _size, "scale"),
    ("declared", _str, "declared type"),
)  # fmt: skip


def _spec_from(v: object, what: str) -> Column:
    return _build(Column, _COLUMN_FIELDS, _fields(v, what, len(_COLUMN_FIELDS)), what)


def _schema_from(v: object, what: str = "table schema") -> TableSchema:
    name, columns, key, types, specs = _fields(v, what, 5)
    name = _str(name, f"{what} name")
    cols = _names(columns, f"columns of {name!r}")
    keys = _names(key, f"key of {name!r}")
    if not set(keys) <= set(cols):
        raise Invalid(f"key of {name!r} names a column the table lacks")
    # The type vocabulary grows (docs: type vocabulary); its names are checked where they are used.
    kinds = tuple(_str(t, f"type of a column of {name!r}") for t in _array(types, f"types of {name!r}"))
    if len(kinds) != len(cols):
        raise Invalid(f"{name!r} has {len(cols)} columns but {len(kinds)} types")
    described = tuple(
        _spec_from(d, f"descriptor of a column of {name!r}") for d in _array(specs, f"descriptors of {name!r}")
    )
    if described and tuple(c.name for c in described) != cols:
        raise Invalid(f"the column descriptors of {name!r} do not name its columns in order")
    return TableSchema(name, cols, keys, kinds, described)


def _tables_from(v: object, what: str) -> tuple[TableSchema, ...]:
    out = tuple(_schema_from(s) for s in _array(v, what))
    if len({s.name for s in out}) != len(out):
        raise Invalid(f"{what} names one table twice")
    return out


def _row_to(row: dict[str, Value] | None) -> list[Any] | None:
    return None if row is None else [list(row), list(row.values())]


def _row_from(v: object, what: str) -> dict[str, Value] | None:
    if v is None:
        return None
    names, values = _fields(v, what, 2)
    cols = _names(names, f"{what} columns", nonempty=False)
    vals = _array(values, f"{what} values")
    if len(vals) != len(cols):
        raise Invalid(f"{what} has {len(cols)} columns but {len(vals)} values")
    return {c: _value(x, f"{what} value of {c!r}") for c, x in zip(cols, vals, strict=True)}


def _version_to(v: Version | None) -> list[Any] | None:
    return None if v is None else [v[0], v[1]]


def _version_from(v: object, what: str) -> Version | None:
    if v is None:
        return None
    rid, tick = _fields(v, what, 2)
    return _replica(rid, f"{what} replica"), _int(tick, f"{what} tick", 1, MAX_TICK)


_CONFLICT_TYPES = [t.value for t in ConflictType]
_OUTCOMES = [o.value for o in Outcome]


def _conflict_to(c: Conflict) -> list[Any]:
    return [
        c.scope, c.table, list(c.key), c.type.value, _row_to(c.local_row), _row_to(c.remote_row),
        _version_to(c.local_version), _version_to(c.remote_version), c.local_time, c.remote_time,
        c.policy, None if c.outcome is None else c.outcome.value, c.detail, c.id, c.logged_at,
    ]  # fmt: skip


def _key_from(v: object, what: str) -> tuple[Value, ...]:
    keys = tuple(_value(x, f"{what} value") for x in _array(v, what))
    if not keys:
        raise Invalid(f"{what} is empty")
    return keys


def _remote_version_from(v: object, what: str) -> Version:
    version = _version_from(v, what)
    if version is None:
        _bad(what, v, "a version")
    return version


def _outcome_from(v: object, what: str) -> Outcome | None:
    return None if v is None else _enum(Outcome, v, what, _OUTCOMES)


_CONFLICT_FIELDS: _Spec = (
    ("scope", _str, "scope"), ("table", _str, "table"), ("key", _key_from, "key"),
    ("type", _one_of(ConflictType, _CONFLICT_TYPES), "type"), ("local_row", _row_from, "local row"),
    ("remote_row", _row_from, "remote row"), ("local_version", _version_from, "local version"),
    ("remote_version", _remote_version_from, "remote version"), ("local_time", _opt_time, "local time"),
    ("remote_time", _time, "remote time"), ("policy", _str, "policy"), ("outcome", _outcome_from, "outcome"),
    ("detail", _str, "detail"), ("id", _opt_time, "id"), ("logged_at", _opt_time, "logging time"),
)  # fmt: skip


def _conflict_from(v: object, what: str = "conflict") -> Conflict:
    return _build(Conflict, _CONFLICT_FIELDS, _fields(v, what, len(_CONFLICT_FIELDS)), what)


def _conflicts_from(v: object, what: str) -> list[Conflict]:
    return [_conflict_from(c, f"{what} entry") for c in _array(v, what)]


# A replica's head, shared by replica info and status.
_HEAD: _Spec = (
    ("scope", _str, "scope"), ("replica_id", _replica, "replica id"), ("tick", _tick, "tick"),
    ("knowledge", _knowledge, "knowledge"), ("forgotten", _knowledge, "forgotten knowledge"),
    ("fingerprint", _str, "fingerprint"),
)  # fmt: skip


def _status_to(st: Status) -> list[Any]:
    return [
        st.scope, st.replica_id, st.tick, st.knowledge.to_wire(), st.forgotten.to_wire(), st.fingerprint,
        list(st.tables), st.tracked_rows, st.tombstones, st.conflicts, st.pending, *_names_to(st.names),
    ]  # fmt: skip


_STATUS_FIELDS: _Spec = (
    *_HEAD, ("tables", lambda v, what: _names(v, what, nonempty=False), "tables"),
    ("tracked_rows", _count, "tracked rows"), ("tombstones", _count, "tombstones"),
    ("conflicts", _count, "conflicts"), ("pending", _count, "pending"),
)  # fmt: skip


def _names_to(names: dict[str, Any]) -> list[str]:
    """A status's local names: one more field only when there are any (as
    JSON text), so statuses without them keep their fields as before."""
    return [json.dumps(names)] if names else []


def _names_from(v: object, what: str) -> dict[str, Any]:
    try:
        return Names.from_mapping(json.loads(_str(v, what)), what).to_mapping()
    except (ValueError, ConfigurationError) as exc:
        raise Invalid(f"{what}: {exc}") from None


def _status_from(v: object, what: str = "status") -> Status:
    n = len(_STATUS_FIELDS)
    named = type(v) is list and len(v) == n + 1
    st = _build(Status, _STATUS_FIELDS, _fields(v[:n] if named else v, what, n), what)  # type: ignore[index]
    return replace(st, names=_names_from(v[n], f"{what} names")) if named else st  # type: ignore[index]
