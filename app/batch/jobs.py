"""The service's batch jobs: submitted over HTTP, run on the shared runtime's bulk lane, and
persisted item by item in the job store (`jobbackend.open_job_store`: SQLite at
`PRELABEL_JOBS_DB`, or PostgreSQL at `PRELABEL_STATE_DSN`), so a restart resumes where it stopped.

Several replicas on one PostgreSQL database: a replica runs a job only while it holds the job's
lease (its `runner` id, `PRELABEL_JOB_LEASE_S` ahead). The submitting replica holds it from
creation; a watcher task renews the leases of this replica's jobs every `PRELABEL_JOB_POLL_S`,
stops a job whose renewal fails (cancelled on any replica, or its lease lost), and claims the
jobs nobody holds (a dead replica's expired lease, a clean stop's released one). An item that
was in flight on a replica that died is computed again by the next one; its result is recorded
once (the store's exactly-once `add_result`).

Each job is one asyncio task that feeds its items through `pipeline.process` (the CLI's
per-item function) under one semaphore shared by all jobs (`job_concurrency` items in flight
in total), recording every outcome as soon as it is known. Keys that already have a result are
skipped, so a resumed job never redoes or duplicates an item. Failed items are final for the job
(their reason is in the results); a job whose setup fails (model gone) ends `failed`.

Bounded per caller: at most `PRELABEL_MAX_ACTIVE_JOBS_PER_KEY` queued or running jobs per
caller (API key name, else client address) and `PRELABEL_MAX_ACTIVE_JOBS` in all (429
`too_many_jobs`). A submission's items are checked on a worker thread and stored a chunk at a
time (`jobstore.py` `items`); a (re)start reads them back a chunk at a time, skipping finished
ones, so neither a submission nor a resume holds the event loop or the whole list at once.

Item keys: an image's path or URL as submitted; a text's index, zero-padded (so key order is
submission order). Image paths must resolve (symlinks and `..` included) under one of the
configured input roots; http(s) URLs are fetched under the URL policy (`app/domain/urls/`:
its scheme and host rules are checked at submission, DNS and addresses when the item runs).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from app.batch import jobitems
from app.batch.export import formats_for
from app.batch.inputs import Item
from app.batch.jobbackend import JobBackend, open_job_store
from app.batch.jobexport import package
from app.batch.jobrequest import JobRequest, expand, job_format, job_spec
from app.batch.jobstore import CapReached, JobRow
from app.batch.pipeline import JobSpec, in_process, outcome
from app.domain.apikeys import Principal
from app.errors import NotFound, PrelabelError, ValidationFailed
from app.runtime import Runtime

log = logging.getLogger(__name__)


class TooManyJobs(PrelabelError):
    """A caller (or everyone together) has the most unfinished jobs allowed (429)."""

    code = "too_many_jobs"
    status = 429


@dataclass(frozen=True)
class JobStatus:
    """A job row plus its speed: `rate` items/s over this run, `eta_s` at that rate (None
    until there is a rate, 0 once ended)."""

    job: JobRow
    rate: float
    eta_s: float | None


class JobManager:
    """Jobs in the SQLite file `db_path`, or in PostgreSQL at `dsn` when given."""

    def __init__(
        self,
        rt: Runtime,
        db_path: Path,
        input_roots: Sequence[str],
        concurrency: int,
        dsn: str | None = None,
    ):
        self.rt = rt
        self.db_path = db_path
        self.dsn = dsn
        self.roots = [Path(r).expanduser().resolve() for r in input_roots]
        self.concurrency = concurrency
        self.runner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_s = rt.settings.job_lease_s
        self.poll_s = rt.settings.job_poll_s
        self.release_on_stop = True  # False: leave the leases as a killed process would
        self._store: JobBackend | None = None
        self._sem = asyncio.Semaphore(concurrency)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._claimed: set[str] = set()  # jobs whose lease this replica holds
        self._watcher: asyncio.Task[None] | None = None

    @property
    def started(self) -> bool:
        return self._store is not None

    @property
    def store(self) -> JobBackend:
        if self._store is None:
            raise RuntimeError("the job manager is not started")
        return self._store

    async def start(self) -> None:
        """Open the store, resume every job nobody holds, and start the lease watcher."""
        self._store = await asyncio.to_thread(open_job_store, self.db_path, self.dsn)
        await self._claim_free()
        self._watcher = asyncio.create_task(self._watch(), name="job-leases")

    async def stop(self) -> None:
        """Cancel the running jobs (their finished items are already stored; they stay
        `running` in the database, their leases released, and resume on the next start or on
        another replica), then close the store."""
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
            self._watcher = None
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._store is not None:
            await asyncio.to_thread(self._store.close)
            self._store = None

    # -- API --------------------------------------------------------------------------------------

    async def submit(self, req: JobRequest) -> str:
        """Check and store the job, then start it. The items are checked and written on a
        worker thread, a chunk at a time; the caps are checked before that (cheap refusal)
        and again by the store in the job's creation (one transaction, across replicas on
        PostgreSQL: no two submissions both take the last place)."""
        await self._check_caps(req.caller)
        if req.source is not None:
            req = await asyncio.to_thread(expand, req, self.roots)
        if req.format is not None:  # stored under the catalogue's name (an alias resolved)
            req = replace(req, format=job_format(req.format, req.task))
        spec, doc = job_spec(self.rt, req, self.concurrency)
        job_id = uuid.uuid4().hex
        try:
            total = await asyncio.to_thread(
                jobitems.store_items,
                self.store,
                job_id,
                req.paths,
                req.texts,
                self.roots,
                self.rt.url_fetcher.policy,
            )
            s = self.rt.settings
            now = time.time()
            try:
                await asyncio.to_thread(
                    self.store.create,
                    job_id,
                    spec.task,
                    spec.model,
                    req.format,
                    total,
                    json.dumps(doc),
                    now,
                    req.owner,
                    req.caller,
                    (s.max_active_jobs, s.max_active_jobs_per_key),
                    (self.runner, now + self.lease_s),
                )
            except CapReached as e:
                raise self._too_many(e.scope, e.count) from None
        except BaseException:
            await asyncio.to_thread(self.store.delete_items, job_id)
            raise
        self._launch(job_id)
        return job_id

    async def _check_caps(self, caller: str | None) -> None:
        """The caps, counted in the store (all replicas' jobs)."""
        s = self.rt.settings
        total = await asyncio.to_thread(self.store.active)
        if total >= s.max_active_jobs:
            raise self._too_many("total", total)
        if caller is None:  # not from HTTP (tests, tools): only the total applies
            return
        mine = await asyncio.to_thread(self.store.active, caller)
        if mine >= s.max_active_jobs_per_key:
            raise self._too_many("caller", mine)

    def _too_many(self, scope: str, count: int) -> TooManyJobs:
        if scope == "total":
            msg = f"{count} jobs are queued or running, the limit; retry later"
        else:
            msg = (
                f"you have {count} jobs queued or running, the limit per caller; wait for one "
                "to end or cancel one"
            )
        return TooManyJobs(msg, headers={"Retry-After": "60"})

    async def status(self, job_id: str, who: Principal | None = None) -> JobStatus:
        """A job `who` may see: their own, or any for an admin or with authentication off.
        Anyone else's is NotFound, as if it did not exist."""
        row = await asyncio.to_thread(self.store.get, job_id)
        if row is None or not (who is None or who.is_admin or row.owner == who.name):
            raise NotFound(f"no job {job_id!r}")
        return speed(row, time.time())

    async def recent(self, limit: int = 100, who: Principal | None = None) -> list[JobStatus]:
        """The newest jobs `who` may see (see `status`)."""
        now = time.time()
        owner = None if who is None or who.is_admin else who.name
        return [speed(r, now) for r in await asyncio.to_thread(self.store.recent, limit, owner)]

    async def cancel(self, job_id: str, who: Principal | None = None) -> JobStatus:
        """Stop a queued or running job (state `cancelled`); an ended job is left as it is.
        Only its owner or an admin may (others get NotFound)."""
        await self.status(job_id, who)
        await asyncio.to_thread(self.store.finish, job_id, "cancelled", time.time())
        task = self._tasks.get(job_id)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return await self.status(job_id)

    async def export(
        self, job_id: str, fmt: str | None, who: Principal | None = None
    ) -> tuple[str, bytes, str]:
        """The job's finished items as one document in `fmt` (default: the job's format):
        (file name, bytes, media type). Single-file formats come as the file itself; YOLO and
        VOC (a file per image) as a zip of the folder `prelabel annotate` would write."""
        row = (await self.status(job_id, who)).job
        fmt = fmt or row.format
        if fmt is None:
            raise ValidationFailed(
                f"give ?format= (one of {formats_for(row.task)}): the job was submitted without one"
            )
        fmt = job_format(fmt, row.task)
        raw = await asyncio.to_thread(self.store.spec_json, job_id)
        doc = json.loads(raw or "{}")
        return await asyncio.to_thread(package, self.store, job_id, row.task, fmt, doc["meta"])

    # -- running ----------------------------------------------------------------------------------

    def _launch(self, job_id: str) -> None:
        task = asyncio.create_task(self._run(job_id), name=f"job-{job_id}")
        self._tasks[job_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(job_id, None))

    async def _run(self, job_id: str) -> None:
        store = self.store
        raw = await asyncio.to_thread(store.spec_json, job_id)
        if raw is None or not await asyncio.to_thread(
            store.claim, job_id, self.runner, time.time(), self.lease_s
        ):
            return  # ended, or another replica holds it
        self._claimed.add(job_id)
        try:
            doc = json.loads(raw)
            spec = JobSpec(**doc["spec"])
            if doc.get("paths") is not None or doc.get("texts") is not None:
                await asyncio.to_thread(jobitems.migrate, store, job_id, doc, self.roots)
            await self._run_items(job_id, spec, self._pending(job_id))
        except asyncio.CancelledError:
            # cancel(), the watcher (cancelled elsewhere, lease lost) or shutdown: the state is
            # already right; a clean stop lets go of the lease so another replica resumes now.
            if self.release_on_stop:
                await asyncio.to_thread(store.release, job_id, self.runner)
            raise
        except Exception as e:
            log.exception("job %s failed", job_id)
            await asyncio.to_thread(
                store.finish, job_id, "failed", time.time(), repr(e), self.runner
            )
            return
        finally:
            self._claimed.discard(job_id)
        await asyncio.to_thread(store.finish, job_id, "done", time.time(), None, self.runner)

    async def _claim_free(self) -> None:
        """Launch every unfinished job that no replica holds a live lease on."""
        for job_id in await asyncio.to_thread(self.store.claimable, time.time()):
            if job_id not in self._tasks:
                log.info("resuming job %s", job_id)
                self._launch(job_id)

    async def _watch(self) -> None:
        """Every `poll_s`: renew this replica's leases, stop the jobs whose renewal fails, and
        claim the jobs nobody holds. A store error (database unreachable) is logged and retried
        on the next round; leases that expire meanwhile go to whichever replica claims first."""
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                for job_id in list(self._claimed):
                    ours = await asyncio.to_thread(
                        self.store.renew, job_id, self.runner, time.time(), self.lease_s
                    )
                    if not ours and job_id in self._claimed:
                        log.info("job %s: cancelled or taken over elsewhere; stopping", job_id)
                        if (task := self._tasks.get(job_id)) is not None:
                            task.cancel()
                await self._claim_free()
            except Exception:
                log.exception("job lease round failed")

    async def _pending(self, job_id: str) -> AsyncIterator[Item]:
        """The job's unfinished items in order, read and checked a chunk at a time on a worker
        thread. Paths are checked again on every (re)start: a root may have been removed from
        the settings since."""
        after = -1
        while rows := await asyncio.to_thread(
            jobitems.pending_chunk, self.store, job_id, after, self.roots
        ):
            after = rows[-1][0]
            for _, item in rows:
                yield item

    async def _run_items(self, job_id: str, spec: JobSpec, items: AsyncIterator[Item]) -> None:
        running: set[asyncio.Task[None]] = set()
        try:
            async for item in items:
                await self._sem.acquire()
                task = asyncio.create_task(self._one(job_id, spec, item))
                running.add(task)
                task.add_done_callback(running.discard)
            await asyncio.gather(*running)
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    async def _one(self, job_id: str, spec: JobSpec, item: Item) -> None:
        try:
            ok, value = await outcome(in_process(self.rt, spec), item)
            payload = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
            store = self.store
            await asyncio.to_thread(store.add_result, job_id, item.key, ok, payload, time.time())
        finally:
            self._sem.release()


def speed(row: JobRow, now: float) -> JobStatus:
    """Items/s since the latest (re)start, and the remaining time at that rate."""
    processed = row.done + row.failed
    remaining = max(0, row.total - processed)
    ended = row.state not in ("queued", "running")
    rate = 0.0
    if row.started is not None:
        elapsed = (row.updated if ended else now) - row.started
        if elapsed > 0:
            rate = (processed - row.started_count) / elapsed
    eta: float | None = 0.0 if ended else (remaining / rate if rate > 0 else None)
    return JobStatus(row, rate, eta)
