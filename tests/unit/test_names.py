"""Names that differ between peers, as plain data: parsing a mapping, the
shapes and conflicts it translates, and batches renamed without decoding
their rows."""

from __future__ import annotations

from dataclasses import replace

import pytest

import peersync
from peersync import ConflictType, Names, Outcome, Resolution
from peersync._engine import codec
from peersync._engine.model import ApplyReport, Conflict, SessionEnd, Status, TableSchema
from peersync._engine.names import rename_batch_tables
from peersync._engine.schema import fingerprint
from peersync._engine.types import Column, ValueType
from peersync._engine.wire import decode_batch, encode_batch

from .test_wire import SRC, batch

MAPPING = {"Album": {"table": "album", "columns": {"AlbumId": "album_id", "Title": "title"}}}
LOCAL = TableSchema(
    "album",
    ("album_id", "title", "ArtistId"),
    ("album_id",),
    ("integer", "text", "integer"),
    (Column("album_id", ValueType.INTEGER), Column("title", ValueType.TEXT), Column("ArtistId", ValueType.INTEGER)),
)
GLOBAL = TableSchema(
    "Album",
    ("AlbumId", "Title", "ArtistId"),
    ("AlbumId",),
    ("integer", "text", "integer"),
    (Column("AlbumId", ValueType.INTEGER), Column("Title", ValueType.TEXT), Column("ArtistId", ValueType.INTEGER)),
)


def names() -> Names:
    return Names.from_mapping(MAPPING).resolved("Album", LOCAL)


def test_a_local_shape_in_global_names_has_the_global_fingerprint() -> None:
    n = names()
    assert n.schema_out(LOCAL) == GLOBAL
    assert fingerprint([n.schema_out(LOCAL)]) == fingerprint([GLOBAL])
    assert fingerprint([LOCAL]) != fingerprint([GLOBAL])
    other = TableSchema("artist", ("id",), ("id",), ("integer",), (Column("id", ValueType.INTEGER),))
    assert n.schema_out(other) is other  # an unmapped table keeps its names


def test_mapping_round_trips_through_json_and_drops_what_does_not_differ() -> None:
    n = Names.from_mapping({**MAPPING, "Artist": {"table": "Artist", "columns": {"Name": "Name"}}})
    assert set(n.tables) == {"Album"}
    assert Names.from_json(n.to_json()) == n
    assert not Names() and Names.from_json(None) == Names()
    assert peersync.load_names(MAPPING) == Names.from_mapping(MAPPING)
    assert peersync.load_names(None) == Names()


@pytest.mark.parametrize(
    ("mapping", "match"),
    [
        ([1, 2], "expected a table"),
        ({"Album": "album"}, r"\[Album\] must be a table"),
        ({"Album": {"table": ""}}, "non-empty string"),
        ({"Album": {"table": "a", "cols": {}}}, "unknown key 'cols'"),
        ({"Album": {"columns": {"A": 1}}}, "map names to non-empty names"),
        ({"Album": {"columns": {"A": "x", "B": "X"}}}, "A and B to the same local column X"),
        ({"A": {"table": "t"}, "B": {"table": "T"}}, "tables A and B map to the same local table T"),
    ],
)
def test_malformed_mappings_are_configuration_errors(mapping: object, match: str) -> None:
    with pytest.raises(peersync.ConfigurationError, match=match):
        Names.from_mapping(mapping)  # type: ignore[arg-type]


def test_scope_checks() -> None:
    n = Names.from_mapping(MAPPING)
    n.check_tables(["Album", "Artist"])
    with pytest.raises(peersync.ScopeError, match="names map table Album, which is not among"):
        n.check_tables(["Artist"])
    with pytest.raises(peersync.ScopeError, match="tables Album and album would both be table album here"):
        n.check_tables(["Album", "album"])
    with pytest.raises(peersync.TableError, match=r"names map column Album\.Title to nope"):
        Names.from_mapping({"Album": {"columns": {"Title": "nope"}}}).resolved("Album", LOCAL)
    # a mapped column takes the global name of a column kept as it is
    with pytest.raises(peersync.TableError, match="same global name"):
        Names.from_mapping({"Album": {"columns": {"ArtistId": "title"}}}).resolved("Album", LOCAL)
    # the local spelling is the database's own
    spelled = Names.from_mapping({"Album": {"table": "ALBUM", "columns": {"Title": "TITLE"}}}).resolved("Album", LOCAL)
    assert spelled.tables["Album"].table == "album" and spelled.tables["Album"].columns == {"Title": "title"}


def test_batches_are_renamed_without_touching_rows() -> None:
    rows = {"album": [(3, False, (SRC, 3), (SRC, 3), 1_700_000_000_000, (1, "x", 2))]}
    local_schema = {"album": LOCAL}
    data = encode_batch(batch(rows, first=1, last=5), local_schema)
    n = names()
    out = n.batch_out(data)
    decoded = decode_batch(out, {"Album": GLOBAL})
    assert list(decoded.changes) == ["Album"] and decoded.changes["Album"] == rows["album"]
    assert n.batch_in(out) == data
    assert Names().batch_out(data) is data
    assert rename_batch_tables(b"\x01garbage", {"album": "Album"}) == b"\x01garbage"


def _conflict(table: str, row: dict[str, object] | None, detail: str = "") -> Conflict:
    return Conflict("s", table, (1,), ConflictType.UPDATE_UPDATE, row, row, (SRC, 1), (SRC, 2), 1, 2, detail=detail)


def test_conflicts_leave_in_global_names_and_come_back_local() -> None:
    n = names()
    local = _conflict("album", {"album_id": 1, "title": "t", "ArtistId": 2}, "NOT NULL failed: album.title")
    out = n.conflict_out(local)
    assert out.table == "Album" and out.local_row == {"AlbumId": 1, "Title": "t", "ArtistId": 2}
    assert out.detail == "NOT NULL failed: album.title (table album here)"
    assert n.conflict_out(out) == out  # already global: unchanged, no second note
    assert n.conflict_in(out) == local
    report = ApplyReport(failed=[local])
    assert n.report_out(report).failed == [out]
    end = SessionEnd("0" * 32, peersync.Knowledge.empty(), peersync.Knowledge.empty(), (out,))
    assert n.end_in(end).failures == (local,)


def test_a_callback_sees_global_names_and_merges_in_them() -> None:
    n = names()
    seen: list[Conflict] = []

    def merge(c: Conflict) -> Resolution:
        seen.append(c)
        return Resolution(Outcome.MERGE, {"AlbumId": 1, "Title": "merged", "ArtistId": 2})

    h = n.handler(merge)
    assert getattr(h, "__qualname__", "") == merge.__qualname__  # the log names the user's callback
    res = h(_conflict("album", {"album_id": 1, "title": "t", "ArtistId": 2}))
    assert seen[0].table == "Album"
    assert isinstance(res, Resolution) and res.row == {"album_id": 1, "title": "merged", "ArtistId": 2}
    assert n.handler(peersync.Policy.SOURCE_WINS) is peersync.Policy.SOURCE_WINS
    assert h(replace(_conflict("album", None), local_row=None)) is not None
    skip = n.handler(lambda c: Outcome.DESTINATION)
    assert skip(_conflict("album", None)) is Outcome.DESTINATION


def test_status_names_cross_the_wire_and_old_statuses_still_decode() -> None:
    k = peersync.Knowledge.empty()
    st = Status("s", b"A" * 16, 1, k, k, "fp", ("Album",), 1, 0, 0, 0, Names.from_mapping(MAPPING).to_mapping())
    assert codec.STATUSES.decode(codec.STATUSES.encode([st])) == [st]
    plain = replace(st, names={})
    assert codec.STATUSES.decode(codec.STATUSES.encode([plain])) == [plain]
