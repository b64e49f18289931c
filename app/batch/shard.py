"""Deterministic sharding by a stable hash of the item key (never Python's salted `hash()`),
so every process of a job, on any machine, agrees on which shard owns which item."""

from __future__ import annotations

import hashlib


def in_shard(key: str, index: int, count: int) -> bool:
    """True when `key` belongs to shard `index` of `count` (0 <= index < count)."""
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard index {index} is not in 0..{count - 1}")
    digest = hashlib.sha1(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count == index
