"""The online store role: the latest feature state per (view, key), for reads at serving time."""

from rtml.backends.online_store.base import Append, Key, OnlineStore

__all__ = ["Append", "Key", "OnlineStore"]
