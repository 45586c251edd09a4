"""Readers of decoded msgpack, one per kind of field: each checks one field
and returns it typed, or raises :class:`Invalid` naming what is wrong (the
message codecs word it as a :class:`~peersync.ProtocolError`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NoReturn, TypeVar

from ..errors import ProtocolError
from ..knowledge import REPLICA_ID_BYTES, Knowledge
from ..model import RawText, Value

FORMAT = 1
DEFAULT_MAX_SIZE = 64 * 1024 * 1024  # bytes; a message (or one streamed batch) larger is refused
MAX_TICK = 2**63 - 1
MIN_INT, MAX_INT = -(2**63), 2**63 - 1
MAX_SIZE_PARAM = 2**31 - 1  # a column's declared length, precision or scale
_SCALARS = (type(None), int, float, str, bytes, RawText)
T = TypeVar("T")


class Invalid(Exception):
    """A field breaks the format; the caller words it as a decode or encode error."""


class Map:
    """A msgpack map as decoded: kept apart from every type a field may have."""

    __slots__ = ("pairs",)

    def __init__(self, pairs: list[tuple[Any, Any]]) -> None:
        self.pairs = pairs


def _bad(what: str, v: object, expected: str) -> NoReturn:
    raise Invalid(f"{what} must be {expected}, not {_type_name(v)}")


def _type_name(v: object) -> str:
    names = {type(None): "nil", list: "an array", Map: "a map", bool: "a bool", bytes: "bin", str: "a string"}
    return names.get(type(v), type(v).__name__)


def _fields(v: object, what: str, n: int) -> list[Any]:
    if type(v) is not list:
        _bad(what, v, "an array")
    if len(v) != n:
        raise Invalid(f"{what} has {len(v)} fields, expected {n}")
    return v


def _array(v: object, what: str) -> list[Any]:
    if type(v) is not list:
        _bad(what, v, "an array")
    return v


def _int(v: object, what: str, lo: int, hi: int) -> int:
    if type(v) is not int:
        _bad(what, v, "an integer")
    if not lo <= v <= hi:
        raise Invalid(f"{what} {v} is outside {lo}..{hi}")
    return v


def _opt_int(v: object, what: str, lo: int, hi: int) -> int | None:
    return None if v is None else _int(v, what, lo, hi)


def _str(v: object, what: str) -> str:
    if type(v) is not str:
        _bad(what, v, "a string")
    return v


def _bool(v: object, what: str) -> bool:
    if type(v) is not bool:
        _bad(what, v, "a bool")
    return v


def _replica(v: object, what: str) -> bytes:
    if type(v) is not bytes:
        _bad(what, v, "bin")
    if len(v) != REPLICA_ID_BYTES:
        raise Invalid(f"{what} is {len(v)} bytes, expected {REPLICA_ID_BYTES}")
    return v


def _value(v: object, what: str) -> Value:
    if type(v) not in _SCALARS:
        _bad(what, v, "nil, an integer, a float, a string, bin or raw text")
    if type(v) is int and not MIN_INT <= v <= MAX_INT:
        raise Invalid(f"{what} {v} is outside the 64-bit range")
    return v


def _knowledge(v: object, what: str) -> Knowledge:
    try:
        return Knowledge.from_wire(v)
    except ProtocolError as exc:
        raise Invalid(f"{what}: {exc}") from None


def _enum(cls: Callable[[str], T], v: object, what: str, names: Iterable[str]) -> T:
    s = _str(v, what)
    if s not in names:
        raise Invalid(f"{what} {s!r} is not one of {', '.join(names)}")
    return cls(s)


def _names(v: object, what: str, nonempty: bool = True) -> tuple[str, ...]:
    out = tuple(_str(x, f"{what} entry") for x in _array(v, what))
    if nonempty and not out:
        raise Invalid(f"{what} is empty")
    if len(set(out)) != len(out):
        raise Invalid(f"{what} names one column twice")
    return out


def _size(v: object, what: str) -> int | None:
    return _opt_int(v, what, 0, MAX_SIZE_PARAM)


def _time(v: object, what: str) -> int:
    return _int(v, what, MIN_INT, MAX_INT)


def _opt_time(v: object, what: str) -> int | None:
    return _opt_int(v, what, MIN_INT, MAX_INT)


def _count(v: object, what: str) -> int:
    return _int(v, what, 0, MAX_INT)


def _tick(v: object, what: str) -> int:
    return _int(v, what, 0, MAX_TICK)


def _limit(v: object, what: str) -> int:
    return _int(v, what, 1, MAX_INT)


def _one_of(cls: Callable[[str], T], names: list[str]) -> Callable[[object, str], T]:
    """A reader of an enum field that travels by value."""
    return lambda v, what: _enum(cls, v, what, names)


# A structure's fields in wire order: (attribute, reader, how a message names it).
_Spec = tuple[tuple[str, Callable[[Any, str], Any], str], ...]


def _build(cls: Callable[..., T], spec: _Spec, values: list[Any], what: str = "") -> T:
    """``cls`` from ``values``, each checked by its field's reader; a message
    names a field by its label, after ``what`` when given."""
    prefix = f"{what} " if what else ""
    return cls(**{attr: read(v, prefix + label) for (attr, read, label), v in zip(spec, values, strict=True)})
