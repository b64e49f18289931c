"""The job API's embedded SQLite store: one row per job, one row per finished item.

`results` has PRIMARY KEY (job_id, key) and rows go in with INSERT OR IGNORE, in the same
transaction as the job's done/failed counter update, so an item is recorded and counted
exactly once however often it is retried (a resume, a cancelled write). Payloads are stored as
JSON text: the item's record (`ok` = 1, see `serial.py`) or its public error message (`ok` = 0).

A job's items are rows of `items` (sequence number, key, text for NER), written in chunks while
the submission is checked and read back in chunks when the job (re)starts, so neither holds the
whole list in one piece; `spec_json` keeps only the job's settings and export identity (jobs
from before kept their items there too, and are moved to `items` on their next start).

Leases (`claim`, `renew`, `release`, `claimable`): the same interface as PostgreSQL's, where
several replicas share the jobs. A SQLite file has one process at a time, so every lease found
at open belonged to a process that is gone and is cleared there.

One connection, serialised by a lock; callers on the event loop go through `asyncio.to_thread`.
WAL with synchronous=NORMAL: a commit is durable against a process crash (kill -9) without an
fsync per item; a power loss may lose the last few items, which a resume recomputes.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

STATES = ("queued", "running", "done", "failed", "cancelled")
UNFINISHED = ("queued", "running")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    task TEXT NOT NULL,
    model TEXT NOT NULL,
    format TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    started REAL,
    started_count INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    spec_json TEXT NOT NULL,
    owner TEXT
);
CREATE TABLE IF NOT EXISTS items (
    job_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    key TEXT NOT NULL,
    text TEXT,
    PRIMARY KEY (job_id, seq)
);
CREATE UNIQUE INDEX IF NOT EXISTS items_key ON items (job_id, key);
CREATE TABLE IF NOT EXISTS results (
    job_id TEXT NOT NULL,
    key TEXT NOT NULL,
    ok INTEGER NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (job_id, key)
);
"""

_JOB_COLUMNS = (
    "id, state, task, model, format, created, updated, started, started_count, total, done, "
    "failed, error, owner"
)


@dataclass(frozen=True)
class JobRow:
    """A job's state. Times are Unix seconds; `started`/`started_count` mark the latest (re)start
    and how many items were finished before it (the rate counts only this run's items)."""

    id: str
    state: str
    task: str
    model: str
    format: str | None
    created: float
    updated: float
    started: float | None
    started_count: int
    total: int
    done: int
    failed: int
    error: str | None
    owner: str | None = None  # the API key's name that submitted it (None: auth was off)


@dataclass(frozen=True)
class ItemRow:
    """One submitted item: `key` is its path or URL (images) or its zero-padded index (texts)."""

    seq: int
    key: str
    text: str | None


class DuplicateKey(ValueError):
    """An item key given twice in one job."""


class CapReached(ValueError):
    """`create` refused: `count` unfinished jobs (`scope` "total" or "caller") is the cap."""

    def __init__(self, scope: str, count: int) -> None:
        super().__init__(f"{count} unfinished jobs ({scope})")
        self.scope = scope
        self.count = count


@dataclass(frozen=True)
class ResultRow:
    key: str
    ok: bool
    payload: str  # JSON text


class JobStore:
    """Thread-safe access to the jobs database at `path` (created if missing)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = sqlite3.connect(
            path, check_same_thread=False, isolation_level=None
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(jobs)")}
        if "owner" not in columns:  # a database from before job ownership
            self._db.execute("ALTER TABLE jobs ADD COLUMN owner TEXT")
        if "caller" not in columns:  # a database from before the per-caller job cap
            self._db.execute("ALTER TABLE jobs ADD COLUMN caller TEXT")
        if "runner" not in columns:  # a database from before leases
            self._db.execute("ALTER TABLE jobs ADD COLUMN runner TEXT")
            self._db.execute("ALTER TABLE jobs ADD COLUMN lease_until REAL")
        # One process at a time on a SQLite file: every lease here is a dead process's.
        self._db.execute("UPDATE jobs SET runner = NULL, lease_until = NULL")
        # Items of a submission that never became a job (the process died while checking it).
        self._db.execute("DELETE FROM items WHERE job_id NOT IN (SELECT id FROM jobs)")

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the job store is closed")
        return self._db

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def create(
        self,
        job_id: str,
        task: str,
        model: str,
        fmt: str | None,
        total: int,
        spec_json: str,
        now: float,
        owner: str | None = None,
        caller: str | None = None,
        caps: tuple[int, int] | None = None,
        lease: tuple[str, float] | None = None,
    ) -> None:
        """A new queued job. `caps` = (most unfinished jobs in all, most per `caller`): checked
        in the same transaction as the insert (`CapReached`); `lease` = (runner, until): the
        submitting replica holds it from the start, so no other replica claims it first."""
        lease_row = lease if lease is not None else (None, None)
        with self._lock:
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            try:
                if caps is not None:
                    _check_caps(db, caps, caller)
                db.execute(
                    "INSERT INTO jobs (id, state, task, model, format, created, updated, total, "
                    "spec_json, owner, caller, runner, lease_until) "
                    "VALUES (?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        job_id,
                        task,
                        model,
                        fmt,
                        now,
                        now,
                        total,
                        spec_json,
                        owner,
                        caller,
                        *lease_row,
                    ),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def claim(self, job_id: str, runner: str, now: float, lease_s: float) -> bool:
        """Take (or keep) an unfinished job for `runner` until now + lease_s, if nobody else
        holds a live lease on it; it becomes `running` with its rate clock restarted."""
        with self._lock:
            cur = self._conn().execute(
                "UPDATE jobs SET state = 'running', started = ?, started_count = done + failed, "
                "updated = ?, runner = ?, lease_until = ? WHERE id = ? "
                "AND state IN ('queued', 'running') "
                "AND (runner IS NULL OR runner = ? OR lease_until < ?)",
                (now, now, runner, now + lease_s, job_id, runner, now),
            )
            return cur.rowcount == 1

    def renew(self, job_id: str, runner: str, now: float, lease_s: float) -> bool:
        """Extend `runner`'s lease; False if the job ended (cancelled) or the lease is lost."""
        with self._lock:
            cur = self._conn().execute(
                "UPDATE jobs SET lease_until = ? WHERE id = ? AND runner = ? "
                "AND state IN ('queued', 'running')",
                (now + lease_s, job_id, runner),
            )
            return cur.rowcount == 1

    def release(self, job_id: str, runner: str) -> None:
        """Give up `runner`'s lease (a clean stop: another replica may claim at once)."""
        with self._lock:
            self._conn().execute(
                "UPDATE jobs SET runner = NULL, lease_until = NULL WHERE id = ? AND runner = ?",
                (job_id, runner),
            )

    def claimable(self, now: float) -> list[str]:
        """Unfinished jobs nobody holds a live lease on, oldest first."""
        with self._lock:
            rows = (
                self._conn()
                .execute(
                    "SELECT id FROM jobs WHERE state IN ('queued', 'running') "
                    "AND (runner IS NULL OR lease_until < ?) ORDER BY created, id",
                    (now,),
                )
                .fetchall()
            )
        return [str(r[0]) for r in rows]

    def active(self, caller: str | None = None) -> int:
        """Queued and running jobs (only `caller`'s, if given)."""
        where, args = ("AND caller = ?", (caller,)) if caller is not None else ("", ())
        with self._lock:
            row = (
                self._conn()
                .execute(
                    f"SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running') {where}", args
                )
                .fetchone()
            )
        return int(row[0])

    def add_items(self, job_id: str, rows: list[ItemRow]) -> None:
        """Append one chunk of a job's items (one transaction); `DuplicateKey` if a key is
        already there."""
        with self._lock:
            db = self._conn()
            db.execute("BEGIN")
            try:
                db.executemany(
                    "INSERT INTO items (job_id, seq, key, text) VALUES (?, ?, ?, ?)",
                    [(job_id, r.seq, r.key, r.text) for r in rows],
                )
                db.execute("COMMIT")
            except sqlite3.IntegrityError as e:
                db.execute("ROLLBACK")
                raise DuplicateKey(str(e)) from e
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def delete_items(self, job_id: str) -> None:
        with self._lock:
            self._conn().execute("DELETE FROM items WHERE job_id = ?", (job_id,))

    def has_items(self, job_id: str) -> bool:
        with self._lock:
            row = (
                self._conn()
                .execute("SELECT 1 FROM items WHERE job_id = ? LIMIT 1", (job_id,))
                .fetchone()
            )
        return row is not None

    def pending_items(self, job_id: str, after: int = -1, limit: int = 1000) -> list[ItemRow]:
        """Up to `limit` items after sequence number `after` that have no result yet, in
        submission order (keyset paging: a resume reads the list a chunk at a time)."""
        with self._lock:
            rows = (
                self._conn()
                .execute(
                    "SELECT i.seq, i.key, i.text FROM items i WHERE i.job_id = ? AND i.seq > ? "
                    "AND NOT EXISTS (SELECT 1 FROM results r WHERE r.job_id = i.job_id "
                    "AND r.key = i.key) ORDER BY i.seq LIMIT ?",
                    (job_id, after, limit),
                )
                .fetchall()
            )
        return [ItemRow(int(q), str(k), t) for q, k, t in rows]

    def mark_running(self, job_id: str, now: float) -> bool:
        """queued/running -> running, restarting the rate clock. False if the job has ended."""
        with self._lock:
            cur = self._conn().execute(
                "UPDATE jobs SET state = 'running', started = ?, started_count = done + failed, "
                "updated = ? WHERE id = ? AND state IN ('queued', 'running')",
                (now, now, job_id),
            )
            return cur.rowcount == 1

    def finish(
        self,
        job_id: str,
        state: str,
        now: float,
        error: str | None = None,
        runner: str | None = None,
    ) -> bool:
        """An unfinished job -> `state` (done, failed, cancelled). False if it had already ended,
        so a cancel and a natural finish never overwrite each other; with `runner`, also False
        unless that runner holds the job's lease."""
        assert state in STATES and state not in UNFINISHED
        mine, args = ("AND runner = ?", (runner,)) if runner is not None else ("", ())
        with self._lock:
            cur = self._conn().execute(
                "UPDATE jobs SET state = ?, updated = ?, error = ? "
                f"WHERE id = ? AND state IN ('queued', 'running') {mine}",
                (state, now, error, job_id, *args),
            )
            return cur.rowcount == 1

    def add_result(self, job_id: str, key: str, ok: bool, payload: str, now: float) -> bool:
        """Record one item's outcome; False (and no count change) if `key` already has one, or
        if the store was closed meanwhile (shutdown: the item is redone on resume)."""
        column = "done" if ok else "failed"
        with self._lock:
            if self._db is None:
                return False
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                cur = db.execute(
                    "INSERT OR IGNORE INTO results (job_id, key, ok, payload) VALUES (?, ?, ?, ?)",
                    (job_id, key, int(ok), payload),
                )
                inserted = cur.rowcount == 1
                if inserted:
                    db.execute(
                        f"UPDATE jobs SET {column} = {column} + 1, updated = ? WHERE id = ?",
                        (now, job_id),
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return inserted

    def get(self, job_id: str) -> JobRow | None:
        with self._lock:
            row = (
                self._conn()
                .execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
                .fetchone()
            )
        return JobRow(*row) if row else None

    def recent(self, limit: int = 100, owner: str | None = None) -> list[JobRow]:
        """The newest `limit` jobs (only `owner`'s, if given), newest first."""
        where, args = ("WHERE owner = ? ", (owner, limit)) if owner is not None else ("", (limit,))
        with self._lock:
            rows = (
                self._conn()
                .execute(
                    f"SELECT {_JOB_COLUMNS} FROM jobs {where}ORDER BY created DESC, id LIMIT ?",
                    args,
                )
                .fetchall()
            )
        return [JobRow(*r) for r in rows]

    def unfinished(self) -> list[str]:
        """Ids of queued and running jobs, oldest first (resumed at start-up)."""
        with self._lock:
            rows = (
                self._conn()
                .execute(
                    "SELECT id FROM jobs WHERE state IN ('queued', 'running') ORDER BY created, id"
                )
                .fetchall()
            )
        return [str(r[0]) for r in rows]

    def spec_json(self, job_id: str) -> str | None:
        with self._lock:
            row = (
                self._conn()
                .execute("SELECT spec_json FROM jobs WHERE id = ?", (job_id,))
                .fetchone()
            )
        return str(row[0]) if row else None

    def finished_keys(self, job_id: str) -> set[str]:
        with self._lock:
            rows = (
                self._conn()
                .execute("SELECT key FROM results WHERE job_id = ?", (job_id,))
                .fetchall()
            )
        return {str(r[0]) for r in rows}

    def results(self, job_id: str, after: str | None = None, limit: int = 500) -> list[ResultRow]:
        """Up to `limit` results in key order, starting after key `after` (keyset paging, so a
        long stream holds the lock only per chunk)."""
        with self._lock:
            rows = (
                self._conn()
                .execute(
                    "SELECT key, ok, payload FROM results WHERE job_id = ? AND key > ? "
                    "ORDER BY key LIMIT ?",
                    (job_id, "" if after is None else after, limit),
                )
                .fetchall()
            )
        return [ResultRow(str(k), bool(ok), str(p)) for k, ok, p in rows]

    def count_results(self, job_id: str) -> int:
        with self._lock:
            row = (
                self._conn()
                .execute("SELECT COUNT(*) FROM results WHERE job_id = ?", (job_id,))
                .fetchone()
            )
        return int(row[0])


def _check_caps(db: sqlite3.Connection, caps: tuple[int, int], caller: str | None) -> None:
    unfinished = "SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')"
    (total,) = db.execute(unfinished).fetchone()
    if total >= caps[0]:
        raise CapReached("total", int(total))
    if caller is not None:
        (mine,) = db.execute(unfinished + " AND caller = ?", (caller,)).fetchone()
        if mine >= caps[1]:
            raise CapReached("caller", int(mine))
