"""What the job API needs from its store (`JobBackend`), and the two stores that provide it:
`jobstore.JobStore` (SQLite, one file: one replica, or a volume the pods take turns on) and
`jobstore_pg.PostgresJobStore` (PostgreSQL: the database `PRELABEL_STATE_DSN` names, the one
where the project store keeps examples and classifiers, so a deployment's state is in one
place). Both pass the same contract tests (tests/batch/test_jobstore.py).

Every method is blocking (callers on the event loop go through `asyncio.to_thread`) and
thread-safe. Times are Unix seconds; payloads are JSON text. Guarantees both keep:
- `add_result` records a key's outcome at most once and bumps the job's done/failed counter in
  the same transaction; after `close` it returns False instead of raising;
- `finish` and `mark_running` change only an unfinished (queued/running) job;
- `results` pages in key byte order (keyset: `after` = the last key seen);
- `add_items` is all or nothing per chunk and raises `DuplicateKey` on a repeated key;
- `create` with `caps` checks the unfinished-job caps and inserts in one step (`CapReached`),
  across replicas on PostgreSQL;
- leases: `claim` succeeds for at most one runner at a time (unless the holder's lease has
  expired), `renew` is False once the job ended or the lease went to another runner, and
  `claimable` lists unfinished jobs with no live lease. SQLite clears leases at open (one
  process at a time on its file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from app.batch.jobstore import ItemRow, JobRow, JobStore, ResultRow


class JobBackend(Protocol):
    def close(self) -> None: ...

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
    ) -> None: ...

    def claim(self, job_id: str, runner: str, now: float, lease_s: float) -> bool: ...

    def renew(self, job_id: str, runner: str, now: float, lease_s: float) -> bool: ...

    def release(self, job_id: str, runner: str) -> None: ...

    def claimable(self, now: float) -> list[str]: ...

    def active(self, caller: str | None = None) -> int: ...

    def add_items(self, job_id: str, rows: list[ItemRow]) -> None: ...

    def delete_items(self, job_id: str) -> None: ...

    def has_items(self, job_id: str) -> bool: ...

    def pending_items(self, job_id: str, after: int = -1, limit: int = 1000) -> list[ItemRow]: ...

    def mark_running(self, job_id: str, now: float) -> bool: ...

    def finish(
        self,
        job_id: str,
        state: str,
        now: float,
        error: str | None = None,
        runner: str | None = None,
    ) -> bool: ...

    def add_result(self, job_id: str, key: str, ok: bool, payload: str, now: float) -> bool: ...

    def get(self, job_id: str) -> JobRow | None: ...

    def recent(self, limit: int = 100, owner: str | None = None) -> list[JobRow]: ...

    def unfinished(self) -> list[str]: ...

    def spec_json(self, job_id: str) -> str | None: ...

    def finished_keys(self, job_id: str) -> set[str]: ...

    def results(
        self, job_id: str, after: str | None = None, limit: int = 500
    ) -> list[ResultRow]: ...

    def count_results(self, job_id: str) -> int: ...


def open_job_store(path: Path, dsn: str | None = None) -> JobBackend:
    """PostgreSQL at `dsn` when given (the same DSN as the project store), else SQLite at
    `path`."""
    if dsn is not None:
        from app.batch.jobstore_pg import PostgresJobStore

        return PostgresJobStore(dsn)
    return JobStore(path)
