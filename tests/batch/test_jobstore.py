"""The job store contract, on SQLite and on a real PostgreSQL server (tests/postgres_server.py):
exactly-once results, counts in step with them, key-ordered paging."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from app.batch.jobbackend import JobBackend, open_job_store
from app.batch.jobs import speed
from app.batch.jobstore import CapReached, DuplicateKey, ItemRow, JobStore
from app.batch.jobstore_pg import PostgresJobStore
from tests.postgres_server import postgres_server

Opener = Callable[[], JobBackend]
_databases = itertools.count()


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str]:
    with postgres_server() as dsn:
        yield dsn


def fresh_database(dsn: str) -> str:
    """A new, empty database on the module's server, its default collation ICU's en-US (as
    production databases' often is: not byte order); its DSN."""
    name = f"jobs_{next(_databases)}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            f"CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"
        )
    return make_conninfo(dsn, dbname=name)


@pytest.fixture(params=["sqlite", "postgres"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens a store on one fresh database; a second call is a restart, or another replica on
    the same state. (PostgreSQL's orphaned items go at once here: the age rule has its test.)"""
    opened: list[JobBackend] = []
    if request.param == "sqlite":

        def open_store() -> JobBackend:
            opened.append(JobStore(tmp_path / "jobs.db"))
            return opened[-1]

    else:
        dsn = fresh_database(request.getfixturevalue("pg_dsn"))

        def open_store() -> JobBackend:
            opened.append(PostgresJobStore(dsn, orphan_age_s=0.0))
            return opened[-1]

    yield open_store
    for s in opened:
        s.close()


def test_results_are_recorded_and_counted_exactly_once(opener: Opener) -> None:
    store = opener()
    store.create("j1", "detect", "nanodet-g", "coco", 3, "{}", now=100.0)
    assert store.mark_running("j1", now=100.0)
    assert store.add_result("j1", "b", True, json.dumps({"x": 1}), now=101.0)
    assert not store.add_result("j1", "b", False, json.dumps("again"), now=102.0)
    assert store.add_result("j1", "a", False, json.dumps("invalid_image: bad"), now=102.0)
    job = store.get("j1")
    assert job is not None and (job.done, job.failed, job.total) == (1, 1, 3)
    assert [(r.key, r.ok) for r in store.results("j1")] == [("a", False), ("b", True)]
    assert json.loads(store.results("j1")[1].payload) == {"x": 1}  # the first write won
    assert store.finished_keys("j1") == {"a", "b"}
    store.close()
    assert not store.add_result("j1", "c", True, "{}", now=103.0)  # closed: redone on resume


def test_state_changes_and_persistence(opener: Opener) -> None:
    store = opener()
    store.create("j1", "ner", "pii", None, 2, '{"k": 1}', now=1.0)
    store.create("j2", "ner", "pii", None, 2, "{}", now=2.0)
    assert store.finish("j1", "cancelled", now=3.0)
    assert not store.finish("j1", "done", now=4.0)  # an ended job stays ended
    assert not store.mark_running("j1", now=4.0)
    store.close()
    again = opener()
    assert again.unfinished() == ["j2"]
    assert [j.id for j in again.recent()] == ["j2", "j1"]
    j1 = again.get("j1")
    assert j1 is not None and j1.state == "cancelled" and again.spec_json("j1") == '{"k": 1}'
    assert again.get("nope") is None
    again.close()


def test_results_page_in_key_order(opener: Opener) -> None:
    store = opener()
    store.create("j", "ner", "pii", None, 25, "{}", now=1.0)
    for i in reversed(range(25)):
        store.add_result("j", f"{i:02d}", True, "{}", now=2.0)
    keys: list[str] = []
    after = None
    while rows := store.results("j", after, limit=7):
        keys += [r.key for r in rows]
        after = rows[-1].key
    assert keys == [f"{i:02d}" for i in range(25)]
    assert store.count_results("j") == 25


def test_rate_and_eta_count_only_this_run(opener: Opener) -> None:
    store = opener()
    store.create("j", "ner", "pii", None, 30, "{}", now=0.0)
    for i in range(10):
        store.add_result("j", str(i), True, "{}", now=1.0)
    store.mark_running("j", now=100.0)  # a restart after 10 items
    for i in range(10, 20):
        store.add_result("j", str(i), True, "{}", now=104.0)
    row = store.get("j")
    assert row is not None
    st = speed(row, now=105.0)
    assert st.rate == 2.0 and st.eta_s == 5.0
    store.finish("j", "done", now=110.0)
    row = store.get("j")
    assert row is not None and speed(row, now=999.0).eta_s == 0.0


def test_items_are_stored_in_chunks_and_read_back_unfinished_in_order(opener: Opener) -> None:
    store = opener()
    store.create("j", "detect", "nanodet-g", None, 5, "{}", 1.0, caller="addr:1")
    store.add_items("j", [ItemRow(i, f"k{i}", None) for i in range(3)])
    store.add_items("j", [ItemRow(i, f"k{i}", None) for i in range(3, 5)])
    with pytest.raises(DuplicateKey):
        store.add_items("j", [ItemRow(5, "k5", None), ItemRow(6, "k1", None)])
    assert [r.key for r in store.pending_items("j")] == [
        "k0",
        "k1",
        "k2",
        "k3",
        "k4",
    ]  # k5 rolled back
    store.add_result("j", "k1", True, "{}", 2.0)
    store.add_result("j", "k3", False, '"x"', 2.0)
    assert [r.seq for r in store.pending_items("j", -1, 2)] == [0, 2]
    assert [r.seq for r in store.pending_items("j", 2)] == [4]
    assert store.active() == 1 and store.active("addr:1") == 1 and store.active("key:x") == 0
    store.finish("j", "done", 3.0)
    assert store.active() == 0
    store.close()


def test_items_of_a_submission_that_never_became_a_job_are_dropped_on_open(
    opener: Opener,
) -> None:
    store = opener()
    store.add_items("ghost", [ItemRow(0, "a", None)])
    store.create("real", "ner", "en-core-web-sm", None, 1, "{}", 1.0)
    store.add_items("real", [ItemRow(0, "0", "text")])
    store.close()
    store = opener()
    assert store.has_items("real") and not store.has_items("ghost")
    assert store.pending_items("real") == [ItemRow(0, "0", "text")]
    store.close()


def test_results_page_in_byte_order_whatever_the_locale(opener: Opener) -> None:
    """Keyset paging needs one order for `>` and ORDER BY: code-point (byte) order on both
    backends, not a locale's (where "B" < "a" and "/" may be ignored)."""
    store = opener()
    keys = ["a/b.jpg", "B.jpg", "a.jpg", "ab.jpg", "Z/1.png", "é.png", "_x.png", "a b.jpg"]
    store.create("j", "detect", "nanodet-g", None, len(keys), "{}", 1.0)
    for k in keys:
        store.add_result("j", k, True, "{}", 2.0)
    seen: list[str] = []
    after = None
    while rows := store.results("j", after, limit=3):
        seen += [r.key for r in rows]
        after = rows[-1].key
    assert seen == sorted(keys)


def test_texts_round_trip_unchanged(opener: Opener) -> None:
    """Any JSON string is a valid text item: NUL (which PostgreSQL's text type refuses),
    astral characters, newlines."""
    store = opener()
    texts = ["nul \x00 inside", "emoji \U0001f600", "two\nlines", ""]
    store.create("j", "ner", "pii", None, len(texts), "{}", 1.0)
    store.add_items("j", [ItemRow(i, f"{i}", t) for i, t in enumerate(texts)])
    assert [r.text for r in store.pending_items("j")] == texts


def test_two_replicas_share_one_postgres_job_store(pg_dsn: str) -> None:
    """Two stores on one database (two pods behind one DSN): a result recorded by one counts
    once in both; a cancel by one ends the job for the other; a fresh submission of one is
    not dropped as an orphan when the other starts."""
    dsn = fresh_database(pg_dsn)
    a = open_job_store(Path("unused"), dsn)
    a.add_items("in-flight", [ItemRow(0, "k", None)])  # checked, not yet a job
    b = open_job_store(Path("unused"), dsn)
    assert isinstance(b, PostgresJobStore)
    assert a.has_items("in-flight")  # kept: younger than the orphan age (an hour)
    a.create("j", "ner", "pii", None, 2, "{}", 1.0, owner="alice", caller="key:alice")
    assert a.add_result("j", "0", True, "{}", 2.0)
    assert not b.add_result("j", "0", True, "{}", 3.0)  # already recorded by the other pod
    job = b.get("j")
    assert job is not None and (job.done, job.owner) == (1, "alice")
    assert b.active("key:alice") == 1
    assert b.finish("j", "cancelled", 4.0)
    assert not a.mark_running("j", 5.0)  # ended for every replica
    assert a.unfinished() == [] and [j.id for j in a.recent(owner="alice")] == ["j"]
    a.close()
    b.close()
    with pytest.raises(RuntimeError, match="closed"):
        a.get("j")


def test_sqlite_without_dsn(tmp_path: Path) -> None:
    store = open_job_store(tmp_path / "jobs.db")
    assert isinstance(store, JobStore)
    store.close()


def test_a_lease_is_held_by_one_runner_until_it_expires_or_is_released(opener: Opener) -> None:
    store = opener()
    store.create("j", "ner", "pii", None, 1, "{}", 1.0, lease=("a", 31.0))
    assert store.claimable(now=10.0) == []  # held by its submitter from the start
    assert not store.claim("j", "b", now=10.0, lease_s=30.0)
    assert store.claim("j", "a", now=10.0, lease_s=30.0)  # the holder keeps it
    assert store.renew("j", "a", now=20.0, lease_s=30.0)  # now until 50
    assert not store.renew("j", "b", now=20.0, lease_s=30.0)
    assert store.claimable(now=49.0) == [] and store.claimable(now=51.0) == ["j"]
    assert store.claim("j", "b", now=51.0, lease_s=30.0)  # a's lease expired: b takes over
    assert not store.renew("j", "a", now=52.0, lease_s=30.0)  # a notices it lost the job
    assert not store.finish("j", "done", 52.0, runner="a")  # and cannot end it
    store.release("j", "a")  # not a's to release: no change
    assert not store.claim("j", "c", now=53.0, lease_s=30.0)
    store.release("j", "b")
    assert store.claimable(now=53.0) == ["j"] and store.claim("j", "c", now=53.0, lease_s=30.0)
    assert store.finish("j", "cancelled", 54.0)  # a cancel from anywhere
    assert not store.renew("j", "c", now=55.0, lease_s=30.0)  # the runner notices
    assert not store.claim("j", "c", now=55.0, lease_s=30.0) and store.claimable(99.0) == []


def test_create_checks_the_caps_in_the_same_step(opener: Opener) -> None:
    store = opener()
    store.create("a1", "ner", "pii", None, 1, "{}", 1.0, caller="key:a", caps=(2, 1))
    with pytest.raises(CapReached) as per_caller:
        store.create("a2", "ner", "pii", None, 1, "{}", 2.0, caller="key:a", caps=(2, 1))
    assert (per_caller.value.scope, per_caller.value.count) == ("caller", 1)
    store.create("b1", "ner", "pii", None, 1, "{}", 3.0, caller="key:b", caps=(2, 1))
    with pytest.raises(CapReached) as total:
        store.create("c1", "ner", "pii", None, 1, "{}", 4.0, caller="key:c", caps=(2, 1))
    assert (total.value.scope, total.value.count) == ("total", 2)
    assert store.get("a2") is None and store.get("c1") is None
    store.finish("a1", "cancelled", 5.0)
    store.create("c1", "ner", "pii", None, 1, "{}", 6.0, caller="key:c", caps=(2, 1))


def test_two_replicas_admitting_at_once_never_pass_the_cap(pg_dsn: str) -> None:
    """Eight threads on two stores create one job each against a cap of 3 in all."""
    dsn = fresh_database(pg_dsn)
    stores = [PostgresJobStore(dsn), PostgresJobStore(dsn)]

    def admit(i: int) -> bool:
        try:
            stores[i % 2].create(f"j{i}", "ner", "pii", None, 1, "{}", float(i), caps=(3, 3))
        except CapReached:
            return False
        return True

    with ThreadPoolExecutor(8) as pool:
        admitted = sum(pool.map(admit, range(8)))
    assert admitted == 3 and stores[0].active() == 3
    for s in stores:
        s.close()


def test_sqlite_clears_leases_at_open(tmp_path: Path) -> None:
    """One process at a time on the file: a lease found at open is a dead process's."""
    store = JobStore(tmp_path / "jobs.db")
    store.create("j", "ner", "pii", None, 1, "{}", 1.0, lease=("dead", 1e12))
    store.close()
    store = JobStore(tmp_path / "jobs.db")
    assert store.claimable(now=2.0) == ["j"] and store.claim("j", "new", 2.0, 30.0)
    store.close()
