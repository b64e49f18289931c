"""Project classifiers on the real MiniLM embedder: the linear model against scikit-learn, the
zero-shot scores, the SQLite store, and background training (coalescing, failures)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.domain.classify import zeroshot
from app.domain.classify.linear import LinearModel, NotTrainable, anchored, cross_validate, fit
from app.domain.classify.sqlite_store import SqliteProjectStore
from app.domain.classify.store import ExampleIn
from app.domain.classify.trainer import Trainer, fit_and_score
from app.inference.embedder import SentenceEmbedder, Vector
from app.inference.manifest import Manifest
from app.inference.session import SessionOptions, create_session

MANIFEST = Manifest.load(Path(__file__).resolve().parents[2] / "models")

# Customer-support messages of three intents, six each.
SUPPORT = {
    "refund": [
        "I want a refund for my order",
        "Please give my money back",
        "How do I return this jacket and get reimbursed?",
        "The item arrived broken, I expect my payment returned",
        "Cancel the purchase and refund the card I used",
        "Still waiting for the refund you promised last week",
    ],
    "bug": [
        "The app crashes every time I open the settings page",
        "Login fails with error 500 since the update",
        "The export button does nothing in Firefox",
        "Images do not load on the dashboard anymore",
        "Sync stopped working after I changed my password",
        "The screen freezes when I upload a large file",
    ],
    "praise": [
        "Your support team was wonderful, thank you!",
        "Love the new design, great job",
        "Best purchase I made this year",
        "Thanks for the quick delivery, very happy",
        "The staff at your store were so friendly",
        "Fantastic product, works exactly as described",
    ],
}
TEXTS = [t for ts in SUPPORT.values() for t in ts]
LABELS = [label for label, ts in SUPPORT.items() for _ in ts]


@pytest.fixture(scope="module")
def embedder() -> SentenceEmbedder:
    spec = MANIFEST.get("minilm-l6-v2")
    if MANIFEST.problems(spec):
        pytest.skip("minilm-l6-v2 not fetched: run `prelabel models fetch minilm-l6-v2`")
    session = create_session(MANIFEST.path(spec, "onnx"), SessionOptions("cpu", 2))
    return SentenceEmbedder(session, MANIFEST.path(spec, "tokenizer"), spec.input.max_tokens)


@pytest.fixture(scope="module")
def x(embedder: SentenceEmbedder) -> np.ndarray[Any, Any]:
    return np.stack(embedder.run_batch(TEXTS))


# --- the linear model ------------------------------------------------------------------------


def test_numpy_probabilities_equal_sklearns(x: np.ndarray[Any, Any]) -> None:
    from sklearn.linear_model import LogisticRegression

    model = fit(x, [(y,) for y in LABELS], multi_label=False, c=10.0)
    ref = LogisticRegression(C=10.0, max_iter=300, class_weight="balanced").fit(x, LABELS)
    np.testing.assert_allclose(model.predict_proba(x), ref.predict_proba(x), atol=1e-4)
    assert model.labels == ("bug", "praise", "refund")


def test_binary_model_has_a_row_per_label(x: np.ndarray[Any, Any]) -> None:
    from sklearn.linear_model import LogisticRegression

    keep = [i for i, y in enumerate(LABELS) if y != "praise"]
    ys = [LABELS[i] for i in keep]
    model = fit(x[keep], [(y,) for y in ys], multi_label=False)  # C = choose_c(12) = 1
    ref = LogisticRegression(C=1.0, max_iter=300, class_weight="balanced").fit(x[keep], ys)
    assert model.coef.shape == (2, 384)
    np.testing.assert_allclose(model.predict_proba(x), ref.predict_proba(x), atol=1e-4)


def test_multi_label_sigmoids_and_a_label_every_example_has(x: np.ndarray[Any, Any]) -> None:
    targets = [(y, "customer") for y in LABELS]
    model = fit(x, targets, multi_label=True)
    p = model.predict_proba(x)
    assert model.labels == ("bug", "customer", "praise", "refund")
    assert (p[:, 1] > 0.99).all()  # constant label: sklearn keeps no coefficients for it
    for i, y in enumerate(LABELS):
        assert p[i, model.labels.index(y)] > 0.5


def test_json_round_trip_predicts_the_same(x: np.ndarray[Any, Any]) -> None:
    model = fit(x, [(y,) for y in LABELS], multi_label=False)
    again = LinearModel.from_json(json.loads(json.dumps(model.to_json())))
    np.testing.assert_allclose(again.predict_proba(x), model.predict_proba(x), atol=1e-5)
    bad = {**model.to_json(), "labels": ["a"]}
    with pytest.raises(ValueError, match="do not match"):
        LinearModel.from_json(bad)


def test_label_anchors_teach_a_label_without_examples(
    x: np.ndarray[Any, Any], embedder: SentenceEmbedder
) -> None:
    """A declared label with no example yet is learned from its name alone."""
    names = ["bug", "praise", "refund", "shipping delay"]
    anchors = np.stack(embedder.run_batch(names))
    xa, ta = anchored(x, [(y,) for y in LABELS], anchors, names)
    model = fit(xa, ta, multi_label=False)
    assert model.labels == tuple(names)
    late = np.stack(embedder.run_batch(["My parcel is two weeks late, where is the delivery?"]))
    assert model.labels[int(model.predict_proba(late).argmax())] == "shipping delay"
    plain = fit(x, [(y,) for y in LABELS], multi_label=False)
    assert "shipping delay" not in plain.labels


def test_one_label_cannot_train(x: np.ndarray[Any, Any]) -> None:
    with pytest.raises(NotTrainable):
        fit(x[:3], [("refund",)] * 3, multi_label=False)


def test_cross_validation_leaves_out_labels_seen_once(x: np.ndarray[Any, Any]) -> None:
    assert cross_validate(x[[0, 6, 7]], [("refund",), ("bug",), ("bug",)], False) is None
    rows = [0, 6, 7, 8, 12, 13, 14]  # one refund, three bug, three praise
    cv = cross_validate(x[rows], [(LABELS[i],) for i in rows], False)
    assert cv is not None and cv.folds == 3  # the rarest label kept has 3 examples
    cv = cross_validate(x, [(y,) for y in LABELS], False)
    assert cv is not None and cv.folds == 5
    assert cv.accuracy >= 0.8  # 18 distinct, well separated messages


# --- zero-shot --------------------------------------------------------------------------------


def test_readable_label_names() -> None:
    assert zeroshot.readable("refund_request") == "refund request"
    assert zeroshot.readable("RefundRequest") == "Refund Request"
    assert zeroshot.readable("noun.animal") == "noun animal"
    assert zeroshot.readable("___") == "___"


def test_zero_shot_picks_the_matching_intent(embedder: SentenceEmbedder) -> None:
    labels = [
        zeroshot.LabelSpec("refund_request"),
        zeroshot.LabelSpec("bug_report", "software does not work"),
        zeroshot.LabelSpec("compliment"),
    ]
    phrases = [p for lab in labels for p in lab.phrases()]
    protos = zeroshot.prototypes(labels, embedder.run_batch(phrases))
    texts = np.stack(embedder.run_batch([SUPPORT["refund"][1], SUPPORT["bug"][0]]))
    sims = zeroshot.similarities(texts, protos)
    scores = zeroshot.scores(sims)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-5)
    assert scores[0].argmax() == 0 and scores[1].argmax() == 1
    assert (np.argsort(scores, axis=1) == np.argsort(sims, axis=1)).all()


# --- the trainer ------------------------------------------------------------------------------


def _store_with_examples(tmp_path: Path) -> SqliteProjectStore:
    store = SqliteProjectStore(tmp_path / "state.db")
    store.create_project("p", None, None, False, 1.0)
    store.add_examples(
        "p",
        [ExampleIn(str(i), t, (y,)) for i, (t, y) in enumerate(zip(TEXTS, LABELS, strict=True))],
        2.0,
    )
    return store


def _embed_counting(embedder: SentenceEmbedder, calls: list[int]) -> Any:
    async def embed(texts: list[str]) -> list[Vector]:
        calls.append(len(texts))
        return await asyncio.to_thread(embedder.run_batch, texts)

    return embed


def test_training_stores_a_model_and_embeds_each_text_once(
    tmp_path: Path, embedder: SentenceEmbedder
) -> None:
    store = _store_with_examples(tmp_path)
    calls: list[int] = []
    trainer = Trainer(store, _embed_counting(embedder, calls), "minilm@test", 60.0)

    async def go() -> None:
        trainer.request("p")
        trainer.request("p")  # coalesces with the first
        await trainer.wait("p")
        store.add_examples("p", [ExampleIn("new", "My refund never came", ("refund",))], 3.0)
        trainer.request("p")
        await trainer.wait("p")

    asyncio.run(go())
    # Each run: the examples without a cached vector, then the 3 label anchors.
    assert calls == [18, 3, 1, 3]
    model = store.latest_model("p")
    assert model is not None and model.tag.startswith("2-") and model.revision == 2
    metrics = json.loads(model.metrics)
    assert metrics["examples"] == 19 and metrics["cv_folds"] == 5
    assert metrics["examples_per_label"] == {"bug": 6, "praise": 6, "refund": 7}


def test_a_failed_run_keeps_the_previous_model(tmp_path: Path, embedder: SentenceEmbedder) -> None:
    store = _store_with_examples(tmp_path)
    runs: list[str] = []

    def flaky(*args: Any) -> Any:
        runs.append("run")
        if len(runs) > 1:
            raise np.linalg.LinAlgError("singular matrix")
        return fit_and_score(*args)

    trainer = Trainer(store, _embed_counting(embedder, []), "minilm@test", 60.0, fit_fn=flaky)

    async def go() -> None:
        trainer.request("p")
        await trainer.wait("p")
        store.add_examples("p", [ExampleIn("new", "Where is my money", ("refund",))], 3.0)
        trainer.request("p")
        await trainer.wait("p")

    asyncio.run(go())
    model = store.latest_model("p")
    assert model is not None and model.tag.startswith("1-")
    assert trainer.state("p").last_error == "training failed: LinAlgError: singular matrix"
    assert store.count_examples("p") == 19  # examples untouched


def test_a_run_past_its_time_bound_fails(tmp_path: Path, embedder: SentenceEmbedder) -> None:
    store = _store_with_examples(tmp_path)
    gate = __import__("threading").Event()

    def slow(*args: Any) -> Any:
        gate.wait(5)  # released by the test once the trainer has given up
        return fit_and_score(*args)

    trainer = Trainer(store, _embed_counting(embedder, []), "minilm@test", 0.05, fit_fn=slow)

    async def go() -> None:
        trainer.request("p")
        await trainer.wait("p")
        gate.set()

    asyncio.run(go())
    assert store.latest_model("p") is None
    assert trainer.state("p").last_error == "training took longer than 0.05 s"
