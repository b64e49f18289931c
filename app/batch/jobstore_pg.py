"""The job API's store on PostgreSQL (psycopg 3): the same operations and guarantees as the
SQLite `JobStore` (`jobbackend.JobBackend`), in a database several replicas share.

Tables `prelabel_jobs`, `prelabel_job_items`, `prelabel_job_results` (created at open, under an
advisory lock so replicas starting at once do not race). As in SQLite, a result goes in with
`ON CONFLICT DO NOTHING` in the same transaction as its job's counter update, so an item is
recorded and counted exactly once. Keys and ids are `COLLATE "C"`: byte order, the order SQLite
pages results in, whatever the database's locale. Item texts are stored as UTF-8 `bytea`
(PostgreSQL's `text` cannot hold NUL, a JSON string can).

Leases: a replica runs a job only while it holds the job's lease (`runner`, `lease_until`),
taken by a conditional UPDATE (`claim`: PostgreSQL re-checks the WHERE clause on the row it
locks, so of two replicas claiming at once exactly one gets rowcount 1), renewed while it runs,
released on a clean stop; a dead replica's lease expires and another claims the job. Caps are
checked in `create` under a transaction-scoped advisory lock, so two replicas admitting at once
cannot both take the last place. Times are the replicas' clocks (keep them in NTP step).

Items of a submission that never became a job are dropped at open only once older than
`orphan_age_s`: on a shared database another replica may be checking its submission right now.

One connection per store, serialised by a lock; each method is one transaction; a dropped
connection is reopened on the next call. After `close` every call raises `RuntimeError`, except
`add_result`, which returns False (shutdown: the item is redone on resume).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from app.batch.jobstore import (
    STATES,
    UNFINISHED,
    CapReached,
    DuplicateKey,
    ItemRow,
    JobRow,
    ResultRow,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS prelabel_jobs (
    id TEXT COLLATE "C" PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    task TEXT NOT NULL,
    model TEXT NOT NULL,
    format TEXT,
    created DOUBLE PRECISION NOT NULL,
    updated DOUBLE PRECISION NOT NULL,
    started DOUBLE PRECISION,
    started_count INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    spec_json TEXT NOT NULL,
    owner TEXT,
    caller TEXT
);
ALTER TABLE prelabel_jobs ADD COLUMN IF NOT EXISTS runner TEXT;
ALTER TABLE prelabel_jobs ADD COLUMN IF NOT EXISTS lease_until DOUBLE PRECISION;
CREATE INDEX IF NOT EXISTS prelabel_jobs_state ON prelabel_jobs (state);
CREATE TABLE IF NOT EXISTS prelabel_job_items (
    job_id TEXT COLLATE "C" NOT NULL,
    seq INTEGER NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    text BYTEA,
    stored TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, seq)
);
CREATE UNIQUE INDEX IF NOT EXISTS prelabel_job_items_key ON prelabel_job_items (job_id, key);
CREATE TABLE IF NOT EXISTS prelabel_job_results (
    job_id TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    ok BOOLEAN NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (job_id, key)
);
"""

_JOB_COLUMNS = (
    "id, state, task, model, format, created, updated, started, started_count, total, done, "
    "failed, error, owner"
)


class PostgresJobStore:
    """Thread-safe; `dsn` is a libpq connection string or URL."""

    def __init__(
        self, dsn: str, connect_timeout_s: float = 10.0, orphan_age_s: float = 3600.0
    ) -> None:
        self._dsn = dsn
        self._timeout = connect_timeout_s
        self._lock = threading.Lock()
        self._conn: Any = None
        self._closed = False
        with self._tx() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(471101)")  # replicas creating at once
            cur.execute(_SCHEMA)
            cur.execute(
                "DELETE FROM prelabel_job_items i WHERE i.stored < now() - make_interval("
                "secs => %s) AND NOT EXISTS (SELECT 1 FROM prelabel_jobs j WHERE j.id = i.job_id)",
                (orphan_age_s,),
            )

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        import psycopg

        with self._lock:
            if self._closed:
                raise RuntimeError("the job store is closed")
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(
                    self._dsn, connect_timeout=int(self._timeout), autocommit=True
                )
            try:
                with self._conn.transaction(), self._conn.cursor() as cur:
                    yield cur
            except psycopg.OperationalError:
                self._conn.close()  # reconnect next time
                self._conn = None
                raise

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None

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
        """A new queued job; `caps` and `lease` as in SQLite's `JobStore.create`."""
        runner, until = lease if lease is not None else (None, None)
        with self._tx() as cur:
            if caps is not None:
                cur.execute("SELECT pg_advisory_xact_lock(471102)")  # admissions, one at a time
                unfinished = (
                    "SELECT COUNT(*) FROM prelabel_jobs WHERE state IN ('queued', 'running')"
                )
                cur.execute(unfinished)
                (count,) = cur.fetchone()
                if count >= caps[0]:
                    raise CapReached("total", int(count))
                if caller is not None:
                    cur.execute(unfinished + " AND caller = %s", (caller,))
                    (count,) = cur.fetchone()
                    if count >= caps[1]:
                        raise CapReached("caller", int(count))
            cur.execute(
                "INSERT INTO prelabel_jobs (id, state, task, model, format, created, updated, "
                "total, spec_json, owner, caller, runner, lease_until) "
                "VALUES (%s, 'queued', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
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
                    runner,
                    until,
                ),
            )

    def claim(self, job_id: str, runner: str, now: float, lease_s: float) -> bool:
        """Take (or keep) an unfinished job for `runner` unless another holds a live lease."""
        with self._tx() as cur:
            cur.execute(
                "UPDATE prelabel_jobs SET state = 'running', started = %s, "
                "started_count = done + failed, updated = %s, runner = %s, lease_until = %s "
                "WHERE id = %s AND state IN ('queued', 'running') "
                "AND (runner IS NULL OR runner = %s OR lease_until < %s)",
                (now, now, runner, now + lease_s, job_id, runner, now),
            )
            return bool(cur.rowcount == 1)

    def renew(self, job_id: str, runner: str, now: float, lease_s: float) -> bool:
        """Extend `runner`'s lease; False if the job ended (cancelled) or the lease is lost."""
        with self._tx() as cur:
            cur.execute(
                "UPDATE prelabel_jobs SET lease_until = %s WHERE id = %s AND runner = %s "
                "AND state IN ('queued', 'running')",
                (now + lease_s, job_id, runner),
            )
            return bool(cur.rowcount == 1)

    def release(self, job_id: str, runner: str) -> None:
        with self._tx() as cur:
            cur.execute(
                "UPDATE prelabel_jobs SET runner = NULL, lease_until = NULL "
                "WHERE id = %s AND runner = %s",
                (job_id, runner),
            )

    def claimable(self, now: float) -> list[str]:
        """Unfinished jobs nobody holds a live lease on, oldest first."""
        with self._tx() as cur:
            cur.execute(
                "SELECT id FROM prelabel_jobs WHERE state IN ('queued', 'running') "
                "AND (runner IS NULL OR lease_until < %s) ORDER BY created, id",
                (now,),
            )
            rows = cur.fetchall()
        return [str(r[0]) for r in rows]

    def active(self, caller: str | None = None) -> int:
        """Queued and running jobs (only `caller`'s, if given)."""
        where, args = ("AND caller = %s", (caller,)) if caller is not None else ("", ())
        with self._tx() as cur:
            cur.execute(
                f"SELECT COUNT(*) FROM prelabel_jobs WHERE state IN ('queued', 'running') {where}",
                args,
            )
            row = cur.fetchone()
        return int(row[0])

    def add_items(self, job_id: str, rows: list[ItemRow]) -> None:
        """Append one chunk of a job's items (one transaction); `DuplicateKey` if a key is
        already there."""
        import psycopg

        try:
            with self._tx() as cur:
                cur.executemany(
                    "INSERT INTO prelabel_job_items (job_id, seq, key, text) "
                    "VALUES (%s, %s, %s, %s)",
                    [(job_id, r.seq, r.key, _encode(r.text)) for r in rows],
                )
        except psycopg.errors.UniqueViolation as e:
            raise DuplicateKey(str(e)) from e

    def delete_items(self, job_id: str) -> None:
        with self._tx() as cur:
            cur.execute("DELETE FROM prelabel_job_items WHERE job_id = %s", (job_id,))

    def has_items(self, job_id: str) -> bool:
        with self._tx() as cur:
            cur.execute("SELECT 1 FROM prelabel_job_items WHERE job_id = %s LIMIT 1", (job_id,))
            return cur.fetchone() is not None

    def pending_items(self, job_id: str, after: int = -1, limit: int = 1000) -> list[ItemRow]:
        """Up to `limit` items after sequence number `after` that have no result yet, in
        submission order."""
        with self._tx() as cur:
            cur.execute(
                "SELECT i.seq, i.key, i.text FROM prelabel_job_items i WHERE i.job_id = %s "
                "AND i.seq > %s AND NOT EXISTS (SELECT 1 FROM prelabel_job_results r "
                "WHERE r.job_id = i.job_id AND r.key = i.key) ORDER BY i.seq LIMIT %s",
                (job_id, after, limit),
            )
            rows = cur.fetchall()
        return [ItemRow(int(q), str(k), _decode(t)) for q, k, t in rows]

    def mark_running(self, job_id: str, now: float) -> bool:
        """queued/running -> running, restarting the rate clock. False if the job has ended."""
        with self._tx() as cur:
            cur.execute(
                "UPDATE prelabel_jobs SET state = 'running', started = %s, "
                "started_count = done + failed, updated = %s "
                "WHERE id = %s AND state IN ('queued', 'running')",
                (now, now, job_id),
            )
            return bool(cur.rowcount == 1)

    def finish(
        self,
        job_id: str,
        state: str,
        now: float,
        error: str | None = None,
        runner: str | None = None,
    ) -> bool:
        """An unfinished job -> `state` (done, failed, cancelled). False if it had already
        ended, or, with `runner`, if that runner does not hold its lease."""
        assert state in STATES and state not in UNFINISHED
        mine, args = ("AND runner = %s", (runner,)) if runner is not None else ("", ())
        with self._tx() as cur:
            cur.execute(
                "UPDATE prelabel_jobs SET state = %s, updated = %s, error = %s "
                f"WHERE id = %s AND state IN ('queued', 'running') {mine}",
                (state, now, error, job_id, *args),
            )
            return bool(cur.rowcount == 1)

    def add_result(self, job_id: str, key: str, ok: bool, payload: str, now: float) -> bool:
        """Record one item's outcome; False (and no count change) if `key` already has one, or
        if the store was closed meanwhile."""
        column = "done" if ok else "failed"
        try:
            with self._tx() as cur:
                cur.execute(
                    "INSERT INTO prelabel_job_results (job_id, key, ok, payload) "
                    "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    (job_id, key, ok, payload),
                )
                inserted = bool(cur.rowcount == 1)
                if inserted:
                    cur.execute(
                        f"UPDATE prelabel_jobs SET {column} = {column} + 1, updated = %s "
                        "WHERE id = %s",
                        (now, job_id),
                    )
        except RuntimeError:
            if self._closed:
                return False
            raise
        return inserted

    def get(self, job_id: str) -> JobRow | None:
        with self._tx() as cur:
            cur.execute(f"SELECT {_JOB_COLUMNS} FROM prelabel_jobs WHERE id = %s", (job_id,))
            row = cur.fetchone()
        return JobRow(*row) if row else None

    def recent(self, limit: int = 100, owner: str | None = None) -> list[JobRow]:
        """The newest `limit` jobs (only `owner`'s, if given), newest first."""
        where, args = ("WHERE owner = %s ", (owner, limit)) if owner is not None else ("", (limit,))
        with self._tx() as cur:
            cur.execute(
                f"SELECT {_JOB_COLUMNS} FROM prelabel_jobs {where}"
                "ORDER BY created DESC, id LIMIT %s",
                args,
            )
            rows = cur.fetchall()
        return [JobRow(*r) for r in rows]

    def unfinished(self) -> list[str]:
        """Ids of queued and running jobs, oldest first."""
        with self._tx() as cur:
            cur.execute(
                "SELECT id FROM prelabel_jobs WHERE state IN ('queued', 'running') "
                "ORDER BY created, id"
            )
            rows = cur.fetchall()
        return [str(r[0]) for r in rows]

    def spec_json(self, job_id: str) -> str | None:
        with self._tx() as cur:
            cur.execute("SELECT spec_json FROM prelabel_jobs WHERE id = %s", (job_id,))
            row = cur.fetchone()
        return str(row[0]) if row else None

    def finished_keys(self, job_id: str) -> set[str]:
        with self._tx() as cur:
            cur.execute("SELECT key FROM prelabel_job_results WHERE job_id = %s", (job_id,))
            rows = cur.fetchall()
        return {str(r[0]) for r in rows}

    def results(self, job_id: str, after: str | None = None, limit: int = 500) -> list[ResultRow]:
        """Up to `limit` results in key (byte) order, starting after key `after`."""
        with self._tx() as cur:
            cur.execute(
                "SELECT key, ok, payload FROM prelabel_job_results WHERE job_id = %s "
                "AND key > %s ORDER BY key LIMIT %s",
                (job_id, "" if after is None else after, limit),
            )
            rows = cur.fetchall()
        return [ResultRow(str(k), bool(ok), str(p)) for k, ok, p in rows]

    def count_results(self, job_id: str) -> int:
        with self._tx() as cur:
            cur.execute("SELECT COUNT(*) FROM prelabel_job_results WHERE job_id = %s", (job_id,))
            row = cur.fetchone()
        return int(row[0])


def _encode(text: str | None) -> bytes | None:
    return None if text is None else text.encode("utf-8", "surrogatepass")


def _decode(raw: bytes | memoryview | None) -> str | None:
    return None if raw is None else bytes(raw).decode("utf-8", "surrogatepass")
