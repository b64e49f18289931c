"""A job's items in the store, a chunk at a time (called on worker threads by `jobs.py`).

At submission, `store_items` checks every item (image paths under the input roots, URLs under
the URL policy: scheme, host allow-list and address literals now, DNS when the item runs) and
writes them CHUNK at a time; at a (re)start, `pending_chunk` reads back the next CHUNK items
that have no result yet and checks their paths again (a root may have been removed from the
settings since). So neither holds the whole list, nor the event loop.

Item keys: an image's path or URL as submitted; a text's index, zero-padded (so key order is
submission order).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from app.batch.inputs import Item
from app.batch.jobbackend import JobBackend
from app.batch.jobpaths import PathChecker
from app.batch.jobstore import DuplicateKey, ItemRow
from app.domain.urls.policy import UrlPolicy, check_target, parse_target
from app.errors import ValidationFailed

CHUNK = 5000  # items checked and stored, or read back, per worker-thread call


def store_items(
    store: JobBackend,
    job_id: str,
    paths: Sequence[str] | None,
    texts: Sequence[str] | None,
    roots: Sequence[Path],
    policy: UrlPolicy,
) -> int:
    """Check and store a submission's items; the count. 422 on the first bad or repeated item
    (the caller then deletes what was stored)."""
    total = 0
    for chunk in chunks(item_rows(paths, texts, roots, policy)):
        try:
            store.add_items(job_id, chunk)
        except DuplicateKey as e:
            raise ValidationFailed("duplicate item paths") from e
        total += len(chunk)
    return total


def item_rows(
    paths: Sequence[str] | None,
    texts: Sequence[str] | None,
    roots: Sequence[Path],
    policy: UrlPolicy | None,
) -> Iterator[ItemRow]:
    """Rows for texts, or for image items checked as they go (unchecked when `policy` is None:
    a stored job's items, checked when they are read back)."""
    if texts is not None:
        width = len(str(len(texts)))
        for i, text in enumerate(texts):
            yield ItemRow(i, f"{i:0{width}d}", text)
        return
    checker = PathChecker(roots)
    for i, p in enumerate(paths or ()):
        if policy is not None:
            if is_url(p):
                check_target(parse_target(p), policy)
            else:
                checker.check(p)
        yield ItemRow(i, p, None)


def migrate(store: JobBackend, job_id: str, doc: dict[str, Any], roots: Sequence[Path]) -> None:
    """A job stored before the `items` table kept its list in `spec_json`: move it."""
    if store.has_items(job_id):
        return
    for chunk in chunks(item_rows(doc.get("paths"), doc.get("texts"), roots, None)):
        store.add_items(job_id, chunk)


def pending_chunk(
    store: JobBackend, job_id: str, after: int, roots: Sequence[Path]
) -> list[tuple[int, Item]]:
    """The next CHUNK unfinished items after sequence number `after`, as (seq, Item)."""
    out = []
    checker = PathChecker(roots)
    for r in store.pending_items(job_id, after, CHUNK):
        if r.text is not None:
            item = Item(r.key, "text", r.key, text=r.text)
        elif is_url(r.key):
            item = Item(r.key, "image", r.key, url=r.key)
        else:
            item = Item(r.key, "image", export_name(r.key, roots), path=Path(checker.check(r.key)))
        out.append((r.seq, item))
    return out


def export_name(raw: str, roots: Sequence[Path]) -> str:
    """An image's file_name in exports: its path under the input root it was given in
    (POSIX), or the path as given."""
    path = Path(raw).expanduser()
    for root in roots:
        if path.is_absolute() and path.is_relative_to(root):
            return path.relative_to(root).as_posix()
    return raw


def chunks(rows: Iterator[ItemRow]) -> Iterator[list[ItemRow]]:
    chunk: list[ItemRow] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def is_url(item: str) -> bool:
    """A URL of any scheme (the policy then refuses all but http(s)), not a path."""
    return "://" in item
