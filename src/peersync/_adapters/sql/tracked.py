"""Names every SQL adapter gives a tracked table's objects."""

from __future__ import annotations

from peersync._engine.model import TableSchema

from .meta import PREFIX


class TrackedNames:
    """Mixed into an adapter's ``Tracked`` dataclass (which holds ``schema``):
    the user table's name, its tracking table's, and the tracking table's key
    columns ``k0, k1, ...`` (one per user key column, in key order)."""

    schema: TableSchema

    @property
    def name(self) -> str:
        return self.schema.name

    @property
    def tracking(self) -> str:
        return PREFIX + "t_" + self.schema.name

    @property
    def kcols(self) -> list[str]:
        return [f"k{i}" for i in range(len(self.schema.key))]
