from __future__ import annotations

from pathlib import Path

from app.batch.checkpoint import RESULTS, Checkpoint, read_errors, read_results


def test_truncated_last_line_is_ignored_then_cut_off(tmp_path: Path) -> None:
    ck = Checkpoint(tmp_path)
    ck.append_result("a", {"n": 1})
    ck.append_result("b", {"n": 2})
    ck.close()
    with (tmp_path / RESULTS).open("a") as f:
        f.write('{"key":"c","ok":true,"rec')  # what kill -9 mid-write leaves
    assert list(read_results(tmp_path)) == ["a", "b"]
    ck = Checkpoint(tmp_path)  # reopening for append drops the partial line
    ck.append_result("c", {"n": 3})
    ck.close()
    assert read_results(tmp_path) == {"a": {"n": 1}, "b": {"n": 2}, "c": {"n": 3}}


def test_duplicates_dedupe_and_errors_clear_when_an_item_succeeds(tmp_path: Path) -> None:
    ck = Checkpoint(tmp_path)
    ck.append_error("a", "invalid_image: corrupt")
    ck.append_error("b", "deadline_exceeded: slow")
    ck.append_result("b", {"n": 1})
    ck.append_result("b", {"n": 2})
    ck.close()
    assert read_results(tmp_path) == {"b": {"n": 1}}
    assert read_errors(tmp_path) == {"a": "invalid_image: corrupt"}
