"""Settings from the environment."""

from __future__ import annotations

import pytest

from app.config import Settings


def test_models_list_reads_comma_separated_or_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRELABEL_DEFAULT_SAM", "")
    monkeypatch.setenv("PRELABEL_DEFAULT_NER", "pii")
    monkeypatch.setenv("PRELABEL_MODELS", " nanodet-g , pii ")
    assert Settings().models == ["nanodet-g", "pii"]
    monkeypatch.setenv("PRELABEL_MODELS", '["nanodet-g", "pii"]')
    assert Settings().models == ["nanodet-g", "pii"]


def test_nested_serving_overrides_and_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRELABEL_SERVING", '{"nanodet-g": {"max_batch_size": 32, "workers": 1}}')
    monkeypatch.setenv("PRELABEL_PROVIDER", "prefer-gpu")
    s = Settings()
    assert s.serving["nanodet-g"].max_batch_size == 32 and s.provider == "prefer-gpu"
    monkeypatch.setenv("PRELABEL_PROVIDER", "tpu")
    with pytest.raises(ValueError, match="provider"):
        Settings()
    monkeypatch.setenv("PRELABEL_PROVIDER", "cpu")
    monkeypatch.setenv("PRELABEL_SERVING", '{"nanodet-g": {"max_batch": 32}}')
    with pytest.raises(ValueError, match="max_batch"):
        Settings()


def test_shard_settings_read_kubernetes_indexed_job_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "3")
    monkeypatch.setenv("PRELABEL_SHARD_COUNT", "5")
    s = Settings()
    assert (s.shard_index, s.shard_count) == (3, 5)
    monkeypatch.setenv("PRELABEL_SHARD_INDEX", "1")  # an explicit setting wins
    assert Settings().shard_index == 1
