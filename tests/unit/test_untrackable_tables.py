"""What every SQL adapter refuses to track, checked once on the catalog row
(``_adapters/sql/tracked.py``, ``user_table``): no such table, another kind of
object, a name with a reserved prefix in any letter case."""

from __future__ import annotations

import pytest

import peersync
from peersync._adapters.sql.meta import PREFIX
from peersync._adapters.sql.tracked import user_table


def test_a_table_row_is_returned_as_the_catalog_gave_it() -> None:
    row = ("Item", "BASE TABLE", "InnoDB")
    assert user_table(row, "item", ("BASE TABLE",)) is row


def test_a_missing_table_is_refused_by_the_name_the_user_gave() -> None:
    with pytest.raises(peersync.TableError, match=r"^no such table: orders$"):
        user_table(None, "orders", ("table",))


@pytest.mark.parametrize(("kind", "shown"), [("view", "view"), ("VIEW", "view"), ("SYSTEM VIEW", "system view")])
def test_another_kind_of_object_is_refused_naming_its_kind(kind: str, shown: str) -> None:
    with pytest.raises(peersync.TableError, match=f"^v_item is a {shown}, not a table$"):
        user_table(("v_item", kind), "v_item", ("table", "BASE TABLE"))


@pytest.mark.parametrize(
    ("name", "prefix"),
    [(PREFIX + "log", PREFIX), (PREFIX.upper() + "Mine", PREFIX), ("sqlite_stat1", "sqlite_"), ("SQLITE_x", "sqlite_")],
)
def test_a_reserved_prefix_is_refused_whatever_the_letter_case(name: str, prefix: str) -> None:
    with pytest.raises(peersync.TableError, match=f"names starting with {prefix} are reserved"):
        user_table((name, "table"), name, ("table",), (PREFIX, "sqlite_"))


def test_only_the_reserved_prefixes_given_are_refused() -> None:
    assert user_table(("sqlite_like", "BASE TABLE"), "sqlite_like", ("BASE TABLE",))[0] == "sqlite_like"
