"""The value types that travel between peers, and how database column types map to them.

Every synced column has one canonical :class:`ValueType`: what its values
*mean*, whatever the database calls the column. The schema fingerprint
compares tables by these types (see :mod:`peersync._engine.schema`), so a
SQLite ``VARCHAR(20)`` column and a PostgreSQL ``text`` column are the same
column, while SQLite ``TEXT`` and ``BLOB`` are not.

How values travel. Every canonical form is a value SQLite stores as it is
(NULL, an integer, a float, a string or bytes; see each type below). So a
SQLite peer converts nothing either way: it sends what it holds and stores
what arrives, exactly, storage class and bytes included, as it always did.
Server databases (PostgreSQL, MariaDB) convert their values to the canonical
form when they send and from it when they apply. A SQLite peer may hold a
value that is not in its column's canonical form (a date stored as a Julian
day number, a UUID as 16 bytes); it travels as stored, a SQLite destination
keeps it exactly, and a server destination that cannot read it records the
row as an ``error`` conflict rather than guess.

NULL is a value any column may hold when it is nullable; it travels as
msgpack nil, and no type below lists it again.

This module is pure data and parsing: no database driver is imported.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final


class ValueType(enum.StrEnum):
    """A canonical value type. The string is what the fingerprint hashes."""

    INTEGER = "integer"
    """A whole number that fits in 64 bits, signed: msgpack int."""

    REAL = "real"
    """A binary floating-point number: msgpack float 64 (a 32-bit float
    widens exactly). Infinities travel; SQLite cannot hold NaN (it stores
    NULL) nor, with affinity, -0.0: a SQLite destination refuses them as an
    ``error`` conflict (``_adapters/sqlite/fit.py``)."""

    DECIMAL = "decimal"
    """An exact decimal number: its text in plain notation, as the database
    holds it (``"12.30"``, ``"-0.5"``, ``"NaN"``): no float can carry every
    ``numeric(p, s)`` value exactly. SQLite applies its NUMERIC affinity to
    what it stores (``'12.30'`` becomes the REAL 12.3, a 20-digit number a
    rounded REAL, ``'NaN'`` stays text): a SQLite destination refuses, as an
    ``error`` conflict, a text it would turn into another number. A SQLite
    source sends what it holds, an integer, a float or text; a server
    destination reads any of the three."""

    TEXT = "text"
    """Characters: msgpack str (UTF-8). SQLite text whose bytes are not
    UTF-8 travels as :class:`~peersync.RawText` (msgpack ext 1) and only a
    SQLite destination can store it."""

    BYTES = "bytes"
    """Raw bytes: msgpack bin. A SQLite column without a declared type (or
    one SQLite gives BLOB affinity) is ``bytes`` by meaning but keeps any
    value SQLite lets it hold."""

    BOOLEAN = "boolean"
    """True or false: the integer 1 or 0, which is how SQLite stores
    ``TRUE`` and ``FALSE``; PostgreSQL's ``boolean`` and MariaDB's
    ``tinyint(1)`` convert."""

    DATE = "date"
    """A calendar date: text ``YYYY-MM-DD``, what SQLite's ``date()``
    returns and reads."""

    TIME = "time"
    """A time of day without zone: text ``HH:MM:SS`` with ``.ffffff``
    (exactly six digits) when the microseconds are not zero."""

    TIMESTAMP = "timestamp"
    """A date and time without zone: text ``YYYY-MM-DD HH:MM:SS`` with
    ``.ffffff`` when the microseconds are not zero (Python's
    ``datetime.isoformat(" ")``).

    Text, not integer microseconds: a SQLite destination stores what
    arrives, and text is what SQLite's date functions read and what
    ``CURRENT_TIMESTAMP`` writes, so rows from a server sort and compare
    with rows written locally (hence the space, not ``T``); the
    microseconds of PostgreSQL and MariaDB stay exact in decimal digits; and
    the conflict log shows a readable time. Integers would pack a little
    smaller but would mean nothing to SQLite's functions."""

    TIMESTAMPTZ = "timestamptz"
    """An instant: a timestamp's text converted to UTC, followed by
    ``+00:00`` (``2024-03-01 09:30:00+00:00``), which SQLite's date
    functions also read. The original offset is not kept (PostgreSQL does
    not keep it either)."""

    UUID = "uuid"
    """A UUID: text, 36 lowercase characters with hyphens, as PostgreSQL
    prints it. A SQLite peer that stores UUIDs as 16 bytes sends them as
    bytes; a server destination reads either form."""

    JSON = "json"
    """A JSON document: its text, unchanged (PostgreSQL ``jsonb`` sends its
    own normalized text)."""


@dataclass(frozen=True, slots=True)
class Column:
    """One column described in the engine's vocabulary.

    ``type`` is what the fingerprint compares; ``nullable``, ``length``
    (characters for text, bytes for bytes), ``precision`` (total digits for
    a decimal, fractional-second digits for a time or timestamp) and
    ``scale`` are recorded where the database declares them, and are not
    compared: a value that does not fit at a destination fails to apply
    there as an ``error`` conflict. ``declared`` is the database's own
    spelling, for messages.
    """

    name: str
    type: ValueType
    nullable: bool = True
    length: int | None = None
    precision: int | None = None
    scale: int | None = None
    declared: str = ""


_PARAMS = re.compile(r"\(([^()]*)\)")


def parse_declared(declared: str) -> tuple[str, tuple[int, ...]]:
    """Split a declared column type into its name and its size parameters.

    The name is upper case with single spaces, the parenthesized part taken
    out wherever it stands (PostgreSQL writes ``timestamp(3) with time
    zone``); the parameters are its integers, or ``()`` when it has none or
    holds something else (MariaDB's ``enum('a','b')``).

    >>> parse_declared("numeric ( 10, 2 )")
    ('NUMERIC', (10, 2))
    """
    m = _PARAMS.search(declared)
    params: tuple[int, ...] = ()
    if m is not None:
        try:
            params = tuple(int(p) for p in m.group(1).split(","))
        except ValueError:
            params = ()
        declared = declared[: m.start()] + " " + declared[m.end() :]
    return " ".join(declared.upper().split()), params


def column(name: str, vtype: ValueType, params: tuple[int, ...], *, nullable: bool, declared: str) -> Column:
    """A :class:`Column` whose sizes come from a declared type's parameters.

    Text and bytes take the first as their length; a decimal takes precision
    and scale (``DECIMAL(p)`` means scale 0, as in SQL); time and timestamp
    types take the first as fractional-second digits. Other types ignore
    them (``INT(11)`` is a display width).
    """
    length = precision = scale = None
    if params:
        if vtype in (ValueType.TEXT, ValueType.BYTES):
            length = params[0]
        elif vtype is ValueType.DECIMAL:
            precision, scale = params[0], params[1] if len(params) > 1 else 0
        elif vtype in (ValueType.TIME, ValueType.TIMESTAMP, ValueType.TIMESTAMPTZ):
            precision = params[0]
    return Column(name, vtype, nullable, length, precision, scale, declared)


_V = ValueType

# SQLite: a declared type name (as parse_declared spells it) that says what
# the column means. Every other name maps by SQLite's affinity rule
# (SQLITE_AFFINITY_TYPES): VARCHAR(20) and CLOB are text, BIGINT is integer.
SQLITE_TYPES: Final[Mapping[str, ValueType]] = MappingProxyType({
    "BOOLEAN": _V.BOOLEAN, "BOOL": _V.BOOLEAN,
    "DATE": _V.DATE,
    "TIME": _V.TIME, "TIME WITHOUT TIME ZONE": _V.TIME,
    "DATETIME": _V.TIMESTAMP, "TIMESTAMP": _V.TIMESTAMP, "TIMESTAMP WITHOUT TIME ZONE": _V.TIMESTAMP,
    "TIMESTAMPTZ": _V.TIMESTAMPTZ, "TIMESTAMP WITH TIME ZONE": _V.TIMESTAMPTZ,
    "UUID": _V.UUID,
    "JSON": _V.JSON, "JSONB": _V.JSON,
    "DECIMAL": _V.DECIMAL, "NUMERIC": _V.DECIMAL,
    "BINARY": _V.BYTES, "VARBINARY": _V.BYTES, "BYTEA": _V.BYTES,
})  # fmt: skip

# SQLite's five affinities (section 3.1 of its datatype documentation).
SQLITE_AFFINITY_TYPES: Final[Mapping[str, ValueType]] = MappingProxyType({
    "integer": _V.INTEGER, "real": _V.REAL, "text": _V.TEXT, "blob": _V.BYTES, "numeric": _V.DECIMAL,
})  # fmt: skip

# PostgreSQL: by type name as the catalog spells it (pg_type.typname, which
# is information_schema.columns.udt_name): serial columns are int4/int8,
# varchar(n) is varchar with character_maximum_length n. A type not listed
# (arrays, intervals, geometric, money, ranges) cannot be synced yet.
POSTGRES_TYPES: Final[Mapping[str, ValueType]] = MappingProxyType({
    "int2": _V.INTEGER, "int4": _V.INTEGER, "int8": _V.INTEGER,
    "float4": _V.REAL, "float8": _V.REAL,
    "numeric": _V.DECIMAL,
    "text": _V.TEXT, "varchar": _V.TEXT, "bpchar": _V.TEXT, "citext": _V.TEXT,
    "bytea": _V.BYTES,
    "bool": _V.BOOLEAN,
    "date": _V.DATE,
    "time": _V.TIME,
    "timestamp": _V.TIMESTAMP,
    "timestamptz": _V.TIMESTAMPTZ,
    "uuid": _V.UUID,
    "json": _V.JSON, "jsonb": _V.JSON,
})  # fmt: skip

# MariaDB and MySQL: by information_schema.columns.DATA_TYPE. TIMESTAMP is
# an instant (stored in UTC, shown in the session's zone), DATETIME is not.
# MariaDB's JSON is LONGTEXT with a json_valid() CHECK, which its adapter
# recognizes; MySQL reports json. A type not listed (bit, geometry, inet6)
# cannot be synced yet.
MARIADB_TYPES: Final[Mapping[str, ValueType]] = MappingProxyType({
    "tinyint": _V.INTEGER, "smallint": _V.INTEGER, "mediumint": _V.INTEGER, "int": _V.INTEGER,
    "bigint": _V.INTEGER, "year": _V.INTEGER,
    "float": _V.REAL, "double": _V.REAL,
    "decimal": _V.DECIMAL,
    "char": _V.TEXT, "varchar": _V.TEXT, "tinytext": _V.TEXT, "text": _V.TEXT, "mediumtext": _V.TEXT,
    "longtext": _V.TEXT, "enum": _V.TEXT, "set": _V.TEXT,
    "binary": _V.BYTES, "varbinary": _V.BYTES, "tinyblob": _V.BYTES, "blob": _V.BYTES, "mediumblob": _V.BYTES,
    "longblob": _V.BYTES,
    "date": _V.DATE,
    "time": _V.TIME,
    "datetime": _V.TIMESTAMP,
    "timestamp": _V.TIMESTAMPTZ,
    "uuid": _V.UUID,
    "json": _V.JSON,
})  # fmt: skip

# MariaDB: full column types (information_schema.columns.COLUMN_TYPE) that
# mean more than their DATA_TYPE, looked up first: BOOLEAN is tinyint(1).
MARIADB_COLUMN_TYPES: Final[Mapping[str, ValueType]] = MappingProxyType({"tinyint(1)": _V.BOOLEAN})
