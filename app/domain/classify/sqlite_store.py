"""`ProjectStore` on an embedded SQLite file (or `:memory:`): one replica's state.

One connection serialised by a lock (callers on the event loop go through `asyncio.to_thread`);
WAL with synchronous=NORMAL, as the job store: a commit survives a process crash. Label lists are
JSON text; embeddings are float32 bytes; models are JSON (never pickle).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from app.domain.classify.store import ExampleIn, ExampleRow, ModelRow, ProjectRow

KEEP_MODELS = 3  # versions kept per project (the newest serves; older ones for inspection)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS projects (
    name TEXT PRIMARY KEY,
    owner TEXT,
    labels TEXT,
    multi_label INTEGER NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    revision INTEGER NOT NULL DEFAULT 0,
    kind TEXT NOT NULL DEFAULT 'classify',
    options TEXT
);
CREATE TABLE IF NOT EXISTS examples (
    project TEXT NOT NULL,
    key TEXT NOT NULL,
    text TEXT NOT NULL,
    labels TEXT NOT NULL,
    vector BLOB,
    vector_model TEXT,
    updated REAL NOT NULL,
    spans TEXT,
    PRIMARY KEY (project, key)
);
CREATE TABLE IF NOT EXISTS models (
    project TEXT NOT NULL,
    version INTEGER NOT NULL,
    tag TEXT NOT NULL,
    created REAL NOT NULL,
    revision INTEGER NOT NULL,
    payload TEXT NOT NULL,
    metrics TEXT NOT NULL,
    PRIMARY KEY (project, version)
);
"""

_PROJECT = "name, owner, labels, multi_label, created, updated, revision, kind, options"
# Columns added after the first release: (table, column, definition), added when missing.
_ADDED = (
    ("projects", "kind", "TEXT NOT NULL DEFAULT 'classify'"),
    ("projects", "options", "TEXT"),
    ("examples", "spans", "TEXT"),
)
_MODEL = "version, tag, created, revision, payload, metrics"


class SqliteProjectStore:
    """Thread-safe; `path` None keeps everything in memory (lost at exit)."""

    def __init__(self, path: Path | None) -> None:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = self._open()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(
            ":memory:" if self._path is None else self._path,
            check_same_thread=False,
            isolation_level=None,
        )
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=10000")  # another process on the same file
        db.executescript(_SCHEMA)
        for table, column, definition in _ADDED:
            have = {str(r[1]) for r in db.execute(f"PRAGMA table_info({table})")}
            if column not in have:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
        return db

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._db is None:
                self._db = self._open()
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        """Close the connection (the runtime's stop); a later call opens the file again (an
        in-memory store starts empty)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def get_project(self, name: str) -> ProjectRow | None:
        with self._tx() as db:
            row = db.execute(f"SELECT {_PROJECT} FROM projects WHERE name = ?", (name,)).fetchone()
        return _project(row) if row else None

    def create_project(
        self,
        name: str,
        owner: str | None,
        labels: tuple[str, ...] | None,
        multi_label: bool,
        now: float,
        kind: str = "classify",
        options: str | None = None,
    ) -> ProjectRow:
        fixed = None if labels is None else json.dumps(list(labels))
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO projects (name, owner, labels, multi_label, created, "
                "updated, kind, options) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (name, owner, fixed, int(multi_label), now, now, kind, options),
            )
            row = db.execute(f"SELECT {_PROJECT} FROM projects WHERE name = ?", (name,)).fetchone()
        return _project(row)

    def add_examples(self, name: str, examples: Sequence[ExampleIn], now: float) -> int:
        with self._tx() as db:
            db.executemany(
                "INSERT INTO examples (project, key, text, labels, updated, spans) "
                "VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (project, key) DO UPDATE SET text = excluded.text, "
                "labels = excluded.labels, updated = excluded.updated, spans = excluded.spans, "
                "vector = CASE WHEN examples.text = excluded.text THEN examples.vector END, "
                "vector_model = CASE WHEN examples.text = excluded.text "
                "THEN examples.vector_model END",
                [
                    (name, e.key, e.text, json.dumps(list(e.labels)), now, _spans_json(e.spans))
                    for e in examples
                ],
            )
            return _bump(db, name, now)

    def delete_examples(self, name: str, keys: Sequence[str], now: float) -> int:
        with self._tx() as db:
            before = db.total_changes
            db.executemany(
                "DELETE FROM examples WHERE project = ? AND key = ?", [(name, k) for k in keys]
            )
            gone = db.total_changes - before
            if gone:
                _bump(db, name, now)
            return gone

    def count_examples(self, name: str) -> int:
        with self._tx() as db:
            row = db.execute("SELECT COUNT(*) FROM examples WHERE project = ?", (name,)).fetchone()
        return int(row[0])

    def label_counts(self, name: str) -> dict[str, int]:
        with self._tx() as db:
            rows = db.execute(
                "SELECT value, COUNT(*) FROM examples, json_each(examples.labels) "
                "WHERE project = ? GROUP BY value ORDER BY value",
                (name,),
            ).fetchall()
        return {str(label): int(n) for label, n in rows}

    def examples(self, name: str) -> list[ExampleRow]:
        with self._tx() as db:
            rows = db.execute(
                "SELECT key, text, labels, vector, vector_model, spans FROM examples "
                "WHERE project = ? ORDER BY key",
                (name,),
            ).fetchall()
        return [
            ExampleRow(k, t, tuple(json.loads(lab)), v, vm, _spans(sp))
            for k, t, lab, v, vm, sp in rows
        ]

    def set_vectors(self, name: str, model: str, vectors: Sequence[tuple[str, bytes]]) -> None:
        with self._tx() as db:
            db.executemany(
                "UPDATE examples SET vector = ?, vector_model = ? WHERE project = ? AND key = ?",
                [(v, model, name, k) for k, v in vectors],
            )

    def save_model(
        self,
        name: str,
        created: float,
        hash8: str,
        revision: int,
        payload: str,
        metrics: str,
        now: float,
    ) -> ModelRow | None:
        with self._tx() as db:
            same = db.execute(
                "SELECT 1 FROM projects WHERE name = ? AND created = ?", (name, created)
            ).fetchone()
            if same is None:
                return None
            (latest,) = db.execute(
                "SELECT COALESCE(MAX(version), 0) FROM models WHERE project = ?", (name,)
            ).fetchone()
            version = int(latest) + 1
            row = (version, f"{version}-{hash8}", now, revision, payload, metrics)
            db.execute(
                f"INSERT INTO models (project, {_MODEL}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (name, *row),
            )
            db.execute(
                "DELETE FROM models WHERE project = ? AND version <= ?",
                (name, version - KEEP_MODELS),
            )
        return ModelRow(*row)

    def latest_model(self, name: str) -> ModelRow | None:
        with self._tx() as db:
            row = db.execute(
                f"SELECT {_MODEL} FROM models WHERE project = ? ORDER BY version DESC LIMIT 1",
                (name,),
            ).fetchone()
        return ModelRow(int(row[0]), *row[1:]) if row else None

    def latest_model_tag(self, name: str) -> str | None:
        with self._tx() as db:
            row = db.execute(
                "SELECT tag FROM models WHERE project = ? ORDER BY version DESC LIMIT 1", (name,)
            ).fetchone()
        return str(row[0]) if row else None

    def delete_project(self, name: str) -> bool:
        with self._tx() as db:
            db.execute("DELETE FROM examples WHERE project = ?", (name,))
            db.execute("DELETE FROM models WHERE project = ?", (name,))
            return db.execute("DELETE FROM projects WHERE name = ?", (name,)).rowcount == 1


def _bump(db: sqlite3.Connection, name: str, now: float) -> int:
    db.execute(
        "UPDATE projects SET revision = revision + 1, updated = ? WHERE name = ?", (now, name)
    )
    (revision,) = db.execute("SELECT revision FROM projects WHERE name = ?", (name,)).fetchone()
    return int(revision)


def _spans_json(spans: tuple[tuple[int, int, str], ...] | None) -> str | None:
    return None if spans is None else json.dumps([list(s) for s in spans])


def _spans(raw: str | None) -> tuple[tuple[int, int, str], ...] | None:
    if raw is None:
        return None
    return tuple((int(s), int(e), str(lab)) for s, e, lab in json.loads(raw))


def _project(row: tuple[object, ...]) -> ProjectRow:
    name, owner, labels, multi, created, updated, revision, kind, options = row
    fixed = None if labels is None else tuple(json.loads(str(labels)))
    return ProjectRow(
        str(name),
        None if owner is None else str(owner),
        fixed,
        bool(multi),
        float(created),  # type: ignore[arg-type]
        float(updated),  # type: ignore[arg-type]
        int(revision),  # type: ignore[call-overload]
        str(kind),
        None if options is None else str(options),
    )
