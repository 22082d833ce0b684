"""What Alembic's comparison skips: daily partitions (made by upkeep, not by revisions) and views."""

from __future__ import annotations

import re

__all__ = ["include_object"]

_PARTITION_NAME = re.compile(r"_p\d{8}$")


def include_object(obj, name, type_, reflected, compare_to) -> bool:  # type: ignore[no-untyped-def]
    if type_ == "table" and name and _PARTITION_NAME.search(name):
        return False
    if type_ == "index" and name and _PARTITION_NAME.search(str(getattr(getattr(obj, "table", None), "name", ""))):
        return False
    return True
