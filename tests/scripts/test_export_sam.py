"""scripts/export_sam_onnx.py on a tiny random SAM: ONNX Runtime must reproduce torch.

The tiny model is built from segment-anything's own classes with the official shapes at the
interface (1024 input, 256 x 64 x 64 embeddings, 256 x 256 low-res masks) and a small ViT
inside, so exporting and running it takes seconds. Skipped without the `export` extra.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest

torch = pytest.importorskip("torch")
# Not importorskip("segment_anything"): its __init__ needs torchvision, which the exporter
# does without (see import_segment_anything).
if importlib.util.find_spec("segment_anything") is None:
    pytest.skip("segment-anything is not installed (the export extra)", allow_module_level=True)

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "export_sam_onnx.py"
# Measured differences are up to 1e-5 (float32 reassociation); a wrong graph is off by > 0.1.
RTOL = ATOL = 1e-4
Feeds = dict[str, np.ndarray]


def _load_exporter() -> ModuleType:
    spec = importlib.util.spec_from_file_location("export_sam_onnx", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.import_segment_anything()
    return module


def _tiny_sam(seed: int) -> Any:
    """A SAM with official interface shapes, a 2-block 64-wide ViT, and random weights."""
    from segment_anything.modeling import (
        ImageEncoderViT,
        MaskDecoder,
        PromptEncoder,
        Sam,
        TwoWayTransformer,
    )

    torch.manual_seed(seed)
    sam = Sam(
        image_encoder=ImageEncoderViT(
            img_size=1024,
            patch_size=16,
            embed_dim=64,
            depth=2,
            num_heads=2,
            mlp_ratio=4,
            out_chans=256,
            qkv_bias=True,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=True,
            window_size=14,
            global_attn_indexes=(1,),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=256,
            image_embedding_size=(64, 64),
            input_image_size=(1024, 1024),
            mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            transformer_dim=256,
            num_multimask_outputs=3,
            iou_head_depth=3,
            iou_head_hidden_dim=32,
            transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=64, num_heads=8),
        ),
    )
    with torch.no_grad():
        # Zero-initialised upstream; random here so a mis-exported position path would show.
        for name, param in sam.image_encoder.named_parameters():
            if "pos" in name:
                param.normal_(std=0.1)
    return sam.eval()


@pytest.fixture(scope="module")
def exporter() -> ModuleType:
    return _load_exporter()


@pytest.fixture(scope="module")
def sam(exporter: ModuleType) -> Any:
    return _tiny_sam(seed=0)


@pytest.fixture(scope="module")
def cli_run(
    exporter: ModuleType, sam: Any, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[str]]:
    """`main` on a saved `sam`: the out folder and the printed lines.

    The registry's `vit_b` builds the same tiny architecture with other weights, so every
    comparison with `sam` below also proves the checkpoint was loaded.
    """
    from segment_anything.build_sam import sam_model_registry

    tmp = tmp_path_factory.mktemp("export")
    checkpoint = tmp / "tiny.pth"
    torch.save(sam.state_dict(), checkpoint)
    out = tmp / "out"
    stdout = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(stdout):
        mp.setitem(sam_model_registry, "vit_b", lambda: _tiny_sam(seed=1))
        code = exporter.main(
            ["--model-type", "vit_b", "--checkpoint", str(checkpoint), "--out", str(out)]
        )
    assert code == 0
    return out, stdout.getvalue().splitlines()


@pytest.fixture(scope="module")
def exported(cli_run: tuple[Path, list[str]]) -> dict[str, Path]:
    out, _ = cli_run
    return {"encoder": out / "encoder.onnx", "decoder": out / "sam.onnx"}


@pytest.fixture(scope="module")
def decoder(exported: dict[str, Path]) -> ort.InferenceSession:
    return _session(exported["decoder"])


def test_cli_writes_the_pair_and_prints_their_sha256(
    exporter: ModuleType, cli_run: tuple[Path, list[str]]
) -> None:
    out, lines = cli_run
    assert sorted(p.name for p in out.iterdir()) == ["encoder.onnx", "sam.onnx"]
    assert lines == [
        f"{exporter.sha256_file(out / name)}  {out / name}" for name in ("encoder.onnx", "sam.onnx")
    ]
    assert lines[0].split()[0] == hashlib.sha256((out / "encoder.onnx").read_bytes()).hexdigest()


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _io(path: Path) -> tuple[list[tuple[str, list[str | int]]], list[tuple[str, list[str | int]]]]:
    """(name, dims) of the graph inputs and outputs; a symbolic dim is its name."""
    graph = onnx.load(str(path)).graph

    def dims(value: onnx.ValueInfoProto) -> list[str | int]:
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    return [(v.name, dims(v)) for v in graph.input], [(v.name, dims(v)) for v in graph.output]


def test_encoder_interface(exported: dict[str, Path]) -> None:
    inputs, outputs = _io(exported["encoder"])
    assert inputs == [("input", ["batch_size", 3, 1024, 1024])]
    assert outputs == [("output", ["batch_size", 256, 64, 64])]


def test_encoder_matches_torch_at_batch_2(sam: Any, exported: dict[str, Path]) -> None:
    x = torch.randn(2, 3, 1024, 1024, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = sam.image_encoder(x).numpy()
    (got,) = _session(exported["encoder"]).run(None, {"input": x.numpy()})
    assert got.shape == (2, 256, 64, 64)
    assert not np.allclose(expected[0], expected[1])  # the two images really differ
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


def test_decoder_interface(exported: dict[str, Path]) -> None:
    inputs, outputs = _io(exported["decoder"])
    assert inputs == [
        ("image_embeddings", [1, 256, 64, 64]),
        ("point_coords", [1, "num_points", 2]),
        ("point_labels", [1, "num_points"]),
        ("mask_input", [1, 1, 256, 256]),
        ("has_mask_input", [1]),
        ("orig_im_size", [2]),
    ]
    assert [name for name, _ in outputs] == ["masks", "iou_predictions", "low_res_masks"]


def _prompt(
    coords: list[list[float]], labels: list[float], size: tuple[int, int], with_mask: bool
) -> Feeds:
    rng = np.random.default_rng(len(coords))
    return {
        "image_embeddings": rng.standard_normal((1, 256, 64, 64), dtype=np.float32),
        "point_coords": np.array([coords], dtype=np.float32),
        "point_labels": np.array([labels], dtype=np.float32),
        "mask_input": rng.standard_normal((1, 1, 256, 256), dtype=np.float32),
        "has_mask_input": np.array([float(with_mask)], dtype=np.float32),
        "orig_im_size": np.array(size, dtype=np.float32),
    }


# Sizes differ from the export's dummy (480, 640) in aspect ratio, so a crop baked in at
# export time would fail; point counts differ from its 2 as well.
PROMPTS: dict[str, Callable[[], Feeds]] = {
    "point+padding": lambda: _prompt([[200.0, 310.5], [0.0, 0.0]], [1, -1], (512, 512), False),
    "box": lambda: _prompt([[40.0, 60.0], [700.0, 500.0]], [2, 3], (1500, 2250), False),
    "box+negative, mask": lambda: _prompt(
        [[40.0, 60.0], [600.0, 1000.0], [300.0, 300.0]], [2, 3, 0], (1024, 700), True
    ),
    "single point": lambda: _prompt([[900.0, 100.0]], [1], (300, 1200), False),
}


@pytest.mark.parametrize("prompt", PROMPTS.values(), ids=PROMPTS.keys())
def test_decoder_matches_sam_onnx_model(
    sam: Any, decoder: ort.InferenceSession, prompt: Callable[[], Feeds]
) -> None:
    from segment_anything.utils.onnx import SamOnnxModel

    feeds = prompt()
    reference = SamOnnxModel(sam, return_single_mask=True)
    expected = reference(**{k: torch.from_numpy(v) for k, v in feeds.items()})
    got = decoder.run(["masks", "iou_predictions", "low_res_masks"], feeds)

    height, width = feeds["orig_im_size"].astype(int)
    assert got[0].shape == (1, 1, height, width)
    assert got[1].shape == (1, 1)
    assert got[2].shape == (1, 1, 256, 256)
    for name, g, e in zip(("masks", "iou", "low_res"), got, expected, strict=True):
        np.testing.assert_allclose(g, e.numpy(), rtol=RTOL, atol=ATOL, err_msg=name)


def test_place_onnx_gathers_external_tensors(
    exporter: ModuleType, exported: dict[str, Path], decoder: ort.InferenceSession, tmp_path: Path
) -> None:
    """The > 2 GiB path (ViT-H): per-tensor files become one `.data` beside the model."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    onnx.save_model(
        onnx.load(str(exported["decoder"])),
        str(scratch / "sam.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=False,
        size_threshold=0,
    )
    assert len(list(scratch.iterdir())) > 10
    dst = tmp_path / "out" / "sam.onnx"
    dst.parent.mkdir()
    dst.with_name("sam.onnx.data").write_bytes(b"stale bytes onnx would append to")

    written = exporter.place_onnx(scratch / "sam.onnx", dst)

    assert written == [dst, dst.with_name("sam.onnx.data")]
    assert sorted(p.name for p in dst.parent.iterdir()) == ["sam.onnx", "sam.onnx.data"]
    feeds = PROMPTS["box"]()
    for got, expected in zip(_session(dst).run(None, feeds), decoder.run(None, feeds), strict=True):
        np.testing.assert_array_equal(got, expected)
