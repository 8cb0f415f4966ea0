"""New rows as plain dicts, completed from the models' own column defaults: the hot paths
insert without a session (a batch of submissions in one statement), and the values a new row
takes are still the ORM's, defined once in ``fitq/store/models.py``."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from sqlalchemy import Table

from fitq.store.models import Base


class RowShape:
    """A table's insertable columns (all but the one the database numbers) and their Python
    defaults, read once."""

    def __init__(self, table: Table) -> None:
        serial = table.autoincrement_column
        self.table = table
        self.columns = tuple(column.key for column in table.columns if column is not serial)
        self._defaults = {c.key: c.default for c in table.columns if c.default is not None}

    def complete(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """``row`` with every column the row leaves unset (or None) given its default."""
        unknown = set(row) - set(self.columns)
        if unknown:
            raise ValueError(f"expected columns of {self.table.name}, received {sorted(unknown)}")
        complete = dict(row)
        for name, default in self._defaults.items():
            if complete.get(name) is None:
                # SQLAlchemy wraps a callable default to take its execution context.
                complete[name] = default.arg(None) if default.is_callable else default.arg  # type: ignore[attr-defined]
        return complete

    def new(self, **values: Any) -> dict[str, Any]:
        """Every insertable column: the value given, else its default, else None."""
        return self.complete({**dict.fromkeys(self.columns), **values})


@cache
def shape_of(model: type[Base]) -> RowShape:
    return RowShape(model.__table__)  # type: ignore[arg-type]


def new_row(model: type[Base], **values: Any) -> dict[str, Any]:
    """A new row of ``model``'s table as a dict (see ``RowShape.new``)."""
    return shape_of(model).new(**values)
