from __future__ import annotations

import pytest

from app.batch.shard import in_shard


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_shards_cover_every_key_exactly_once(count: int) -> None:
    keys = [f"images/{i:05d}.jpg" for i in range(1000)] + [str(i) for i in range(200)]
    owners = {k: [i for i in range(count) if in_shard(k, i, count)] for k in keys}
    assert all(len(o) == 1 for o in owners.values())
    if count > 1:  # and the split is not degenerate
        sizes = [sum(o == [i] for o in owners.values()) for i in range(count)]
        assert min(sizes) > len(keys) / count / 2


def test_shard_assignment_is_stable_across_processes() -> None:
    # sha1-based, so a fixed expectation holds in every process (Python's hash() is salted).
    assert [in_shard(f"{i}.jpg", 0, 2) for i in range(6)] == [
        in_shard(f"{i}.jpg", 0, 2) for i in range(6)
    ]
    assert in_shard("a.jpg", 0, 1)
    with pytest.raises(ValueError):
        in_shard("a.jpg", 2, 2)
