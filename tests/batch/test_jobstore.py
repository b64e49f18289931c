"""The job store: exactly-once results, counts in step with them, key-ordered paging."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.batch.jobs import speed
from app.batch.jobstore import DuplicateKey, ItemRow, JobStore


def test_results_are_recorded_and_counted_exactly_once(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
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


def test_state_changes_and_persistence(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    store.create("j1", "ner", "pii", None, 2, '{"k": 1}', now=1.0)
    store.create("j2", "ner", "pii", None, 2, "{}", now=2.0)
    assert store.finish("j1", "cancelled", now=3.0)
    assert not store.finish("j1", "done", now=4.0)  # an ended job stays ended
    assert not store.mark_running("j1", now=4.0)
    store.close()
    again = JobStore(tmp_path / "jobs.db")
    assert again.unfinished() == ["j2"]
    assert [j.id for j in again.recent()] == ["j2", "j1"]
    j1 = again.get("j1")
    assert j1 is not None and j1.state == "cancelled" and again.spec_json("j1") == '{"k": 1}'
    assert again.get("nope") is None
    again.close()


def test_results_page_in_key_order(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
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


def test_rate_and_eta_count_only_this_run(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
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


def test_items_are_stored_in_chunks_and_read_back_unfinished_in_order(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
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
    tmp_path: Path,
) -> None:
    store = JobStore(tmp_path / "jobs.db")
    store.add_items("ghost", [ItemRow(0, "a", None)])
    store.create("real", "ner", "en-core-web-sm", None, 1, "{}", 1.0)
    store.add_items("real", [ItemRow(0, "0", "text")])
    store.close()
    store = JobStore(tmp_path / "jobs.db")
    assert store.has_items("real") and not store.has_items("ghost")
    assert store.pending_items("real") == [ItemRow(0, "0", "text")]
    store.close()
