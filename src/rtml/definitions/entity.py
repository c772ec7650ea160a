"""``Entity``: the thing features describe, named by its join keys."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import ClassVar

from rtml.definitions.base import Definition, as_tuple, check_name


@dataclasses.dataclass(frozen=True, kw_only=True)
class Entity(Definition):
    """E.g. ``Entity(name="user", join_keys=["user_id"])``."""

    kind: ClassVar[str] = "Entity"

    join_keys: Sequence[str]

    def _validate(self) -> None:
        keys = as_tuple(self.join_keys)
        object.__setattr__(self, "join_keys", keys)
        if not keys:
            raise self.fail("join_keys", "needs at least one join key", "e.g. join_keys=['user_id']")
        for key in keys:
            check_name(key, field="join_keys", obj=self.title)
        if len(set(keys)) != len(keys):
            raise self.fail("join_keys", f"repeats a key in {list(keys)}", "list each key once")
