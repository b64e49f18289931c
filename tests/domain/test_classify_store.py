"""The `ProjectStore` contract, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.domain.classify.postgres_store import PostgresProjectStore
from app.domain.classify.sqlite_store import KEEP_MODELS, SqliteProjectStore
from app.domain.classify.store import ExampleIn, ProjectStore
from tests.postgres_server import postgres_server

Opener = Callable[[], ProjectStore]


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str]:
    with postgres_server() as dsn:
        yield dsn


@pytest.fixture(params=["sqlite", "postgres"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens a store on one database; every call is another replica on the same state."""
    opened: list[ProjectStore] = []
    if request.param == "sqlite":

        def open_store() -> ProjectStore:
            opened.append(SqliteProjectStore(tmp_path / "state.db"))
            return opened[-1]

    else:
        dsn = request.getfixturevalue("pg_dsn")

        def open_store() -> ProjectStore:
            opened.append(PostgresProjectStore(dsn))
            return opened[-1]

    yield open_store
    if opened:
        opened[0].delete_project("p")  # the PostgreSQL server is shared by the module
    for s in opened:
        s.close()


def test_first_creator_wins(opener: Opener) -> None:
    store = opener()
    a = store.create_project("p", "alice", ("x", "y"), True, 1.0)
    b = store.create_project("p", "bob", None, False, 2.0)
    assert a == b
    assert (a.owner, a.labels, a.multi_label, a.revision) == ("alice", ("x", "y"), True, 0)


def test_replaces_by_key_and_drops_a_stale_vector(opener: Opener) -> None:
    store = opener()
    store.create_project("p", "alice", None, False, 1.0)
    assert store.add_examples("p", [ExampleIn("k1", "hello", ("a",))], 2.0) == 1
    store.set_vectors("p", "m@1", [("k1", b"\x00" * 8)])
    store.add_examples("p", [ExampleIn("k1", "hello", ("b",)), ExampleIn("k2", "x", ("b",))], 3.0)
    k1, k2 = store.examples("p")
    assert (k1.key, k1.labels, k1.vector, k1.vector_model) == ("k1", ("b",), b"\x00" * 8, "m@1")
    assert k2.vector is None
    store.add_examples("p", [ExampleIn("k1", "goodbye", ("b", "c"))], 4.0)
    assert store.examples("p")[0].vector is None  # new text: the cached vector goes
    assert store.label_counts("p") == {"b": 2, "c": 1}
    assert (project := store.get_project("p")) is not None and project.revision == 3
    assert store.delete_examples("p", ["k2", "nope"], 5.0) == 1
    assert store.count_examples("p") == 1
    assert (project := store.get_project("p")) is not None and project.revision == 4


def test_versions_increase_across_replicas_and_old_ones_are_pruned(opener: Opener) -> None:
    store = opener()
    store.create_project("p", None, None, False, 1.0)
    saved = [store.save_model("p", 1.0, f"h{i}", i, "{}", "{}", float(i)) for i in range(5)]
    tags = [m.tag for m in saved if m is not None]
    assert tags == ["1-h0", "2-h1", "3-h2", "4-h3", "5-h4"]
    other = opener()  # a second replica on the same state
    assert other.latest_model_tag("p") == "5-h4"
    sixth = other.save_model("p", 1.0, "x", 9, '{"a": 1}', "{}", 9.0)
    assert sixth is not None and sixth.version == 6
    newest = store.latest_model("p")
    assert newest is not None and (newest.tag, newest.revision, newest.payload) == (
        "6-x",
        9,
        '{"a": 1}',
    )
    assert store.delete_project("p") and store.latest_model_tag("p") is None
    assert store.get_project("p") is None and store.count_examples("p") == 0
    assert not store.delete_project("p")


def test_only_the_newest_models_are_kept(opener: Opener) -> None:
    store = opener()
    store.create_project("p", None, None, False, 1.0)
    for i in range(KEEP_MODELS + 2):
        store.save_model("p", 1.0, "h", 0, "{}", "{}", float(i))
    assert (model := store.latest_model("p")) is not None and model.version == KEEP_MODELS + 2
    store.delete_project("p")
    store.create_project("p", None, None, False, 2.0)
    assert store.latest_model("p") is None  # a reset starts from nothing


def test_a_model_trained_before_a_reset_is_not_stored(opener: Opener) -> None:
    store = opener()
    assert store.save_model("p", 1.0, "h", 0, "{}", "{}", 1.0) is None  # no such project
    store.create_project("p", None, None, False, 1.0)
    store.delete_project("p")
    store.create_project("p", None, None, False, 2.0)  # the same name, another project
    assert store.save_model("p", 1.0, "old", 0, "{}", "{}", 3.0) is None
    assert store.latest_model_tag("p") is None
    assert store.save_model("p", 2.0, "new", 0, "{}", "{}", 3.0) is not None
