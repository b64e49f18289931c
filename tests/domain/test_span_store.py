"""The project store's span columns: a state file written before span projects existed opens
with its projects as classification projects; span examples, kind and options round-trip on
SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from app.domain.classify.sqlite_store import SqliteProjectStore
from app.domain.classify.store import ExampleIn, ProjectStore

OLD_SCHEMA = """
CREATE TABLE projects (name TEXT PRIMARY KEY, owner TEXT, labels TEXT,
    multi_label INTEGER NOT NULL, created REAL NOT NULL, updated REAL NOT NULL,
    revision INTEGER NOT NULL DEFAULT 0);
CREATE TABLE examples (project TEXT NOT NULL, key TEXT NOT NULL, text TEXT NOT NULL,
    labels TEXT NOT NULL, vector BLOB, vector_model TEXT, updated REAL NOT NULL,
    PRIMARY KEY (project, key));
INSERT INTO projects VALUES ('old', NULL, NULL, 0, 1.0, 1.0, 1);
INSERT INTO examples VALUES ('old', 'k', 'a text', '["a"]', NULL, NULL, 1.0);
"""


def round_trip(store: ProjectStore) -> None:
    text = "aspirin and penicillin"
    made = store.create_project("s", None, ("DRUG",), True, 2.0, "spans", '{"ner_model": ""}')
    assert (made.kind, made.options) == ("spans", '{"ner_model": ""}')
    spans = ((0, 7, "DRUG"), (12, 22, "DRUG"))
    store.add_examples("s", [ExampleIn("k1", text, ("DRUG", "DRUG"), spans)], 3.0)
    store.add_examples("s", [ExampleIn("k2", "no drug here", (), ())], 3.0)
    rows = {r.key: r for r in store.examples("s")}
    assert rows["k1"].spans == spans and rows["k2"].spans == () and rows["k2"].labels == ()
    assert store.label_counts("s") == {"DRUG": 2}
    store.create_project("c", None, None, False, 2.0)
    store.add_examples("c", [ExampleIn("k", "a text", ("a",))], 3.0)
    c = store.get_project("c")
    assert c is not None and c.kind == "classify" and c.options is None
    assert store.examples("c")[0].spans is None


def test_an_old_state_file_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    db.close()
    store = SqliteProjectStore(path)
    old = store.get_project("old")
    assert old is not None and old.kind == "classify" and old.revision == 1
    assert [(r.key, r.labels, r.spans) for r in store.examples("old")] == [("k", ("a",), None)]
    round_trip(store)
    store.close()
    assert SqliteProjectStore(path).examples("s")[0].spans == ((0, 7, "DRUG"), (12, 22, "DRUG"))


def test_span_rows_on_postgresql() -> None:
    from app.domain.classify.postgres_store import PostgresProjectStore
    from tests.postgres_server import postgres_server

    with postgres_server() as dsn:
        store = PostgresProjectStore(dsn)
        round_trip(store)
        store.close()
        again = PostgresProjectStore(dsn)  # the schema statements run again on a filled database
        assert again.get_project("s") is not None
        again.close()
