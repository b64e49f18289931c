"""`ProjectStore` on PostgreSQL (psycopg 3): the state several replicas share.

The same tables as `sqlite_store.py` (labels as jsonb, vectors as bytea, models as JSON text).
One connection per store, serialised by a lock; each method is one transaction. `save_model`
locks the project's row (`SELECT ... FOR UPDATE`), so two replicas that finish training at once
get versions n and n+1, never the same one. A dropped connection is reopened on the next call.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from app.domain.classify.sqlite_store import KEEP_MODELS, _spans, _spans_json
from app.domain.classify.store import ExampleIn, ExampleRow, ModelRow, ProjectRow

_SCHEMA = """
CREATE TABLE IF NOT EXISTS prelabel_projects (
    name TEXT PRIMARY KEY,
    owner TEXT,
    labels JSONB,
    multi_label BOOLEAN NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    updated DOUBLE PRECISION NOT NULL,
    revision INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS prelabel_examples (
    project TEXT NOT NULL,
    key TEXT NOT NULL,
    text TEXT NOT NULL,
    labels JSONB NOT NULL,
    vector BYTEA,
    vector_model TEXT,
    updated DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (project, key)
);
CREATE TABLE IF NOT EXISTS prelabel_models (
    project TEXT NOT NULL,
    version INTEGER NOT NULL,
    tag TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    revision INTEGER NOT NULL,
    payload TEXT NOT NULL,
    metrics TEXT NOT NULL,
    PRIMARY KEY (project, version)
);
ALTER TABLE prelabel_projects ADD COLUMN IF NOT EXISTS kind TEXT NOT NULL DEFAULT 'classify';
ALTER TABLE prelabel_projects ADD COLUMN IF NOT EXISTS options TEXT;
ALTER TABLE prelabel_examples ADD COLUMN IF NOT EXISTS spans TEXT;
"""

_PROJECT = "name, owner, labels, multi_label, created, updated, revision, kind, options"
_MODEL = "version, tag, created, revision, payload, metrics"


class PostgresProjectStore:
    """Thread-safe; `dsn` is a libpq connection string or URL."""

    def __init__(self, dsn: str, connect_timeout_s: float = 10.0) -> None:
        self._dsn = dsn
        self._timeout = connect_timeout_s
        self._lock = threading.Lock()
        self._conn: Any = None
        with self._tx() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(471100)")  # replicas creating at once
            cur.execute(_SCHEMA)

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        import psycopg

        with self._lock:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(self._dsn, connect_timeout=int(self._timeout))
            try:
                with self._conn.transaction(), self._conn.cursor() as cur:
                    yield cur
            except psycopg.OperationalError:
                self._conn.close()  # reconnect next time
                self._conn = None
                raise

    def close(self) -> None:
        """Close the connection (the runtime's stop); a later call opens a new one."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def get_project(self, name: str) -> ProjectRow | None:
        with self._tx() as cur:
            cur.execute(f"SELECT {_PROJECT} FROM prelabel_projects WHERE name = %s", (name,))
            row = cur.fetchone()
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
        with self._tx() as cur:
            cur.execute(
                "INSERT INTO prelabel_projects (name, owner, labels, multi_label, created, "
                "updated, kind, options) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (name) DO NOTHING",
                (name, owner, fixed, multi_label, now, now, kind, options),
            )
            cur.execute(f"SELECT {_PROJECT} FROM prelabel_projects WHERE name = %s", (name,))
            row = cur.fetchone()
        return _project(row)

    def add_examples(self, name: str, examples: Sequence[ExampleIn], now: float) -> int:
        with self._tx() as cur:
            cur.executemany(
                "INSERT INTO prelabel_examples (project, key, text, labels, updated, spans) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (project, key) DO UPDATE SET "
                "text = EXCLUDED.text, labels = EXCLUDED.labels, updated = EXCLUDED.updated, "
                "spans = EXCLUDED.spans, "
                "vector = CASE WHEN prelabel_examples.text = EXCLUDED.text "
                "THEN prelabel_examples.vector END, "
                "vector_model = CASE WHEN prelabel_examples.text = EXCLUDED.text "
                "THEN prelabel_examples.vector_model END",
                [
                    (name, e.key, e.text, json.dumps(list(e.labels)), now, _spans_json(e.spans))
                    for e in examples
                ],
            )
            return _bump(cur, name, now)

    def delete_examples(self, name: str, keys: Sequence[str], now: float) -> int:
        with self._tx() as cur:
            cur.execute(
                "DELETE FROM prelabel_examples WHERE project = %s AND key = ANY(%s)",
                (name, list(keys)),
            )
            gone = int(cur.rowcount)
            if gone:
                _bump(cur, name, now)
            return gone

    def count_examples(self, name: str) -> int:
        with self._tx() as cur:
            cur.execute("SELECT COUNT(*) FROM prelabel_examples WHERE project = %s", (name,))
            return int(cur.fetchone()[0])

    def label_counts(self, name: str) -> dict[str, int]:
        with self._tx() as cur:
            cur.execute(
                "SELECT label, COUNT(*) FROM prelabel_examples, "
                "jsonb_array_elements_text(labels) AS label WHERE project = %s "
                'GROUP BY label ORDER BY label COLLATE "C"',
                (name,),
            )
            return {str(label): int(n) for label, n in cur.fetchall()}

    def examples(self, name: str) -> list[ExampleRow]:
        with self._tx() as cur:
            cur.execute(
                "SELECT key, text, labels, vector, vector_model, spans FROM prelabel_examples "
                'WHERE project = %s ORDER BY key COLLATE "C"',
                (name,),
            )
            rows = cur.fetchall()
        return [
            ExampleRow(k, t, tuple(lab), None if v is None else bytes(v), vm, _spans(sp))
            for k, t, lab, v, vm, sp in rows
        ]

    def set_vectors(self, name: str, model: str, vectors: Sequence[tuple[str, bytes]]) -> None:
        with self._tx() as cur:
            cur.executemany(
                "UPDATE prelabel_examples SET vector = %s, vector_model = %s "
                "WHERE project = %s AND key = %s",
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
        with self._tx() as cur:
            cur.execute(
                "SELECT 1 FROM prelabel_projects WHERE name = %s AND created = %s FOR UPDATE",
                (name, created),
            )
            if cur.fetchone() is None:
                return None
            cur.execute(
                "SELECT COALESCE(MAX(version), 0) FROM prelabel_models WHERE project = %s",
                (name,),
            )
            version = int(cur.fetchone()[0]) + 1
            row = (version, f"{version}-{hash8}", now, revision, payload, metrics)
            cur.execute(
                f"INSERT INTO prelabel_models (project, {_MODEL}) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (name, *row),
            )
            cur.execute(
                "DELETE FROM prelabel_models WHERE project = %s AND version <= %s",
                (name, version - KEEP_MODELS),
            )
        return ModelRow(*row)

    def latest_model(self, name: str) -> ModelRow | None:
        with self._tx() as cur:
            cur.execute(
                f"SELECT {_MODEL} FROM prelabel_models WHERE project = %s "
                "ORDER BY version DESC LIMIT 1",
                (name,),
            )
            row = cur.fetchone()
        return ModelRow(int(row[0]), *row[1:]) if row else None

    def latest_model_tag(self, name: str) -> str | None:
        with self._tx() as cur:
            cur.execute(
                "SELECT tag FROM prelabel_models WHERE project = %s ORDER BY version DESC LIMIT 1",
                (name,),
            )
            row = cur.fetchone()
        return str(row[0]) if row else None

    def delete_project(self, name: str) -> bool:
        with self._tx() as cur:
            cur.execute("DELETE FROM prelabel_examples WHERE project = %s", (name,))
            cur.execute("DELETE FROM prelabel_models WHERE project = %s", (name,))
            cur.execute("DELETE FROM prelabel_projects WHERE name = %s", (name,))
            return bool(cur.rowcount == 1)


def _bump(cur: Any, name: str, now: float) -> int:
    cur.execute(
        "UPDATE prelabel_projects SET revision = revision + 1, updated = %s WHERE name = %s "
        "RETURNING revision",
        (now, name),
    )
    return int(cur.fetchone()[0])


def _project(row: tuple[Any, ...]) -> ProjectRow:
    name, owner, labels, multi, created, updated, revision, kind, options = row
    return ProjectRow(
        str(name),
        None if owner is None else str(owner),
        None if labels is None else tuple(labels),
        bool(multi),
        float(created),
        float(updated),
        int(revision),
        str(kind),
        options,
    )
