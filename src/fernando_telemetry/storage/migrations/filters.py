"""What Alembic's comparison skips: daily partitions (made by upkeep, not by revisions) and views."""

from __future__ import annotations

import re

from sqlalchemy.schema import SchemaItem

__all__ = ["include_object"]

_PARTITION_NAME = re.compile(r"_p\d{8}$")


def include_object(obj: SchemaItem, name: str | None, type_: str, reflected: bool, compare_to: SchemaItem | None) -> bool:
    if type_ == "table" and name and _PARTITION_NAME.search(name):
        return False
    if type_ == "index" and name and _PARTITION_NAME.search(str(getattr(getattr(obj, "table", None), "name", ""))):
        return False
    return True
