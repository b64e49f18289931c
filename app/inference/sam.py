"""Segment-Anything adapters: a heavy image encoder run once per image, a light prompt decoder
run per click. The decoder follows segment-anything's `SamOnnxModel` export interface."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from app.inference.manifest import InputSpec
from app.inference.preprocess import F32, preprocess

LOW_RES = 256  # side of the decoder's low-resolution mask logits


@dataclass(frozen=True)
class Embedding:
    """An image's SAM embedding: array [1,256,64,64] float32, plus the original image size
    (pixels) and the longest-side scale the encoder input used (1024 / max(H, W))."""

    array: F32
    width: int
    height: int
    scale: float

    @property
    def nbytes(self) -> int:
        return int(self.array.nbytes)


@dataclass(frozen=True)
class EncodeItem:
    tensor: F32  # [3,1024,1024] normalised RGB, zero-padded bottom/right
    width: int
    height: int
    scale: float


@dataclass(frozen=True)
class DecodeItem:
    """One prompt. coords: [N,2] float32 image pixels (x, y); labels: [N] float32 with SAM's
    codes (1 positive, 0 negative, 2/3 box corners, -1 padding); mask_input: optional
    [1,1,256,256] float32 low-res logits from an earlier decode of the same image."""

    embedding: Embedding
    coords: F32
    labels: F32
    mask_input: F32 | None = None


@dataclass(frozen=True)
class DecodedMask:
    """mask: [H,W] bool at the original size; iou: predicted IoU; low_res: [1,1,256,256] logits
    (feed back as `mask_input` to refine)."""

    mask: npt.NDArray[np.bool_]
    iou: float
    low_res: F32


class SamEncoder:
    """Image encoder: input `input` [B,3,1024,1024] -> embeddings [B,256,64,64]."""

    def __init__(self, session: Any, spec: InputSpec) -> None:
        self.session = session
        self.spec = spec
        self._input = session.get_inputs()[0].name

    def preprocess(self, image: npt.NDArray[np.uint8]) -> EncodeItem:
        """HWC uint8 RGB -> encoder item (SAM's ResizeLongestSide + normalise + pad)."""
        tensor, t = preprocess(image, self.spec)
        return EncodeItem(tensor, t.width, t.height, t.scale_x)

    def run_batch(self, items: Sequence[EncodeItem]) -> list[Embedding]:
        if self.spec.fixed_batch == 1 or len(items) == 1:
            arrays = [self.session.run(None, {self._input: it.tensor[None]})[0] for it in items]
        else:
            out = self.session.run(None, {self._input: np.stack([it.tensor for it in items])})[0]
            arrays = [out[i : i + 1] for i in range(len(items))]
        return [
            Embedding(np.ascontiguousarray(a, dtype=np.float32), it.width, it.height, it.scale)
            for a, it in zip(arrays, items, strict=True)
        ]


class SamDecoder:
    """Prompt decoder (single-mask `SamOnnxModel` export). The graph takes one image embedding
    per run, so a batch is a loop: batching here only shares the queue and its metrics."""

    def __init__(self, session: Any) -> None:
        self.session = session

    def run_batch(self, items: Sequence[DecodeItem]) -> list[DecodedMask]:
        return [self.decode(it) for it in items]

    def decode(self, item: DecodeItem) -> DecodedMask:
        emb = item.embedding
        # SAM's ResizeLongestSide.apply_coords: per-axis scale to the resized (unpadded) image.
        new_w = int(emb.width * emb.scale + 0.5)
        new_h = int(emb.height * emb.scale + 0.5)
        coords = item.coords.astype(np.float32, copy=True)
        coords[:, 0] *= new_w / emb.width
        coords[:, 1] *= new_h / emb.height
        has_mask = item.mask_input is not None
        mask_input = item.mask_input if has_mask else np.zeros((1, 1, LOW_RES, LOW_RES), np.float32)
        masks, iou, low_res = self.session.run(
            ["masks", "iou_predictions", "low_res_masks"],
            {
                "image_embeddings": emb.array,
                "point_coords": coords[None],
                "point_labels": item.labels.astype(np.float32)[None],
                "mask_input": mask_input,
                "has_mask_input": np.array([1.0 if has_mask else 0.0], np.float32),
                "orig_im_size": np.array([emb.height, emb.width], np.float32),
            },
        )
        return DecodedMask(masks[0, 0] > 0.0, float(iou[0, 0]), low_res[:1, :1].astype(np.float32))
