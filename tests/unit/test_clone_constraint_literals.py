"""Which column defaults and foreign keys a clone from PostgreSQL or MariaDB
carries into SQLite (no database needed): a default is carried only as a
plain literal the column's type keeps as it is; a function default, an
expression, or a literal for a temporal, UUID or JSON column is not; a
foreign key is carried only where SQLite can enforce it as the source does."""

from __future__ import annotations

from typing import Any

import pytest

from peersync._adapters.mysql.constraints import _literal as maria
from peersync._adapters.postgres.constraints import _literal as pg
from peersync._adapters.sql.constraints import ForeignKeySpec, IndexSpec, LocalConstraints, in_global_names
from peersync._engine.model import TableSchema
from peersync._engine.types import ValueType, column

V = ValueType
NOT_CARRIED = (False, None)


@pytest.mark.parametrize(
    ("expr", "vtype", "want"),
    [
        ("'it''s'::character varying", V.TEXT, (True, "it's")),
        ("'a\\b'::text", V.TEXT, (True, "a\\b")),
        ("'y'::sales.mood", V.TEXT, (True, "y")),
        ("'-3'::integer", V.INTEGER, (True, -3)),
        ("5", V.INTEGER, (True, 5)),
        ("1.50", V.DECIMAL, (True, "1.50")),
        ("'-1.5'::numeric", V.REAL, (True, -1.5)),
        ("'Infinity'::double precision", V.REAL, NOT_CARRIED),
        ("true", V.BOOLEAN, (True, 1)),
        ("NULL::text", V.TEXT, (True, None)),
        ("now()", V.TIMESTAMPTZ, NOT_CARRIED),
        ("nextval('t_id_seq'::regclass)", V.INTEGER, NOT_CARRIED),
        ("gen_random_uuid()", V.UUID, NOT_CARRIED),
        ("(1 + 2)", V.INTEGER, NOT_CARRIED),
        ("'a'::text || 'b'::text", V.TEXT, NOT_CARRIED),
        ("'2020-01-01'::date", V.DATE, NOT_CARRIED),
        ("'x'::text", V.INTEGER, NOT_CARRIED),
    ],
)
def test_a_postgresql_default_is_carried_only_as_a_plain_literal(expr: str, vtype: ValueType, want: Any) -> None:
    assert pg(expr, vtype) == want


@pytest.mark.parametrize(
    ("expr", "vtype", "want"),
    [
        ("'it''s'", V.TEXT, (True, "it's")),
        ("'a\\\\b'", V.TEXT, (True, "a\\b")),
        ("'x\\ny'", V.TEXT, (True, "x\ny")),
        ("'NULL'", V.TEXT, (True, "NULL")),
        ("NULL", V.TEXT, (True, None)),
        ("-3", V.INTEGER, (True, -3)),
        ("1.50", V.DECIMAL, (True, "1.50")),
        ("1", V.BOOLEAN, (True, 1)),
        ("1000", V.REAL, (True, 1000.0)),
        ("current_timestamp()", V.TIMESTAMP, NOT_CARRIED),
        ("uuid()", V.TEXT, NOT_CARRIED),
        ("(1 + 2)", V.INTEGER, NOT_CARRIED),
        ("'a\\qb'", V.TEXT, NOT_CARRIED),
        ("'\\0'", V.TEXT, NOT_CARRIED),
    ],
)
def test_a_mariadb_default_is_carried_only_as_a_plain_literal(expr: str, vtype: ValueType, want: Any) -> None:
    assert maria(expr, vtype) == want


def _table(name: str, *cols: str) -> TableSchema:
    specs = tuple(column(c, V.INTEGER, (), nullable=True, declared="integer") for c in cols)
    return TableSchema(name, cols, (cols[0],), ("integer",) * len(cols), specs)


def test_constraints_travel_in_global_names_and_only_where_sqlite_enforces_them() -> None:
    local = [_table("team_t", "team_id", "tag"), _table("player_t", "player_id", "team", "tag", "lvl")]
    glob = [_table("Team", "TeamId", "Tag"), _table("Player", "PlayerId", "Team", "Tag", "Level")]
    team = LocalConstraints(indexes=[IndexSpec("team_tag", ("tag",), False), IndexSpec("team_pk2", ("team_id",), True)])
    player = LocalConstraints(
        indexes=[IndexSpec("p_tag", ("tag",), False), IndexSpec("p_tag_u", ("tag",), True)],
        foreign_keys=[
            ForeignKeySpec(("team",), "0", ("team_id",), "CASCADE", "NO ACTION"),
            ForeignKeySpec(("tag",), "0", ("tag",)),  # the parent's tag is not unique
            ForeignKeySpec(("lvl",), "0", ("team_id",), "SET DEFAULT"),  # lvl's default is not carried
        ],
        defaults={"lvl": 3, "tag": None},
        uncarried={"lvl"},
    )
    got = in_global_names(local, glob, [team, player])
    assert got[0].indexes == (IndexSpec("team_tag", ("Tag",), False),)  # the key's own index dropped
    assert got[1].indexes == (IndexSpec("p_tag_u", ("Tag",), True),)  # the unique one covers the plain one
    assert got[1].foreign_keys == (ForeignKeySpec(("Team",), "Team", ("TeamId",), "CASCADE", "NO ACTION"),)
    assert got[1].defaults == {"Level": 3}
