"""PP-OCR adapters (PaddleOCR's PP-OCRv4 detection + recognition and its text-direction
classifier, as ONNX): the steps RapidOCR runs, without RapidOCR.

Images are HWC uint8 **BGR** (the models were trained on OpenCV-read images). Detection takes
one image a forward (sizes differ); recognition batches text-line crops. Every pixel value is
normalised as (v / 255 - 0.5) / 0.5.

- `OcrDetector.preprocess`: scale so the shorter side is at least `limit_side_len` (736), both
  sides rounded to multiples of 32; `run_batch` -> probability maps; `boxes` -> DB quads
  (`app.inference.ocr_db`) filtered, ordered clockwise from the top-left and clipped.
- `OcrRecognizer.run_batch`: crops -> (text, score). The classifier (inputs 3x48x192) turns a
  crop upside down when it says "180" with score > 0.9; the recogniser (height 48, width
  48 * the widest ratio in a group of 6, at least 320) gives per-step softmax over the
  character set stored in the model's metadata (`character`), with the CTC blank first and a
  space last; greedy CTC decoding drops repeats and blanks; the score is the mean probability
  of the kept steps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from app.inference.ocr_db import DbParams, db_boxes

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]

REC_HEIGHT, REC_MIN_WIDTH, REC_GROUP = 48, 320, 6
CLS_SHAPE = (48, 192)


def _norm(img: npt.NDArray[Any]) -> F32:
    """HWC uint8 -> CHW float32 (v / 255 - 0.5) / 0.5."""
    out: F32 = (img.astype(np.float32).transpose(2, 0, 1) / 255.0 - 0.5) / 0.5
    return out


@dataclass(frozen=True)
class LineRead:
    """A crop's text. `columns[i]`: the recogniser output step that gave `text[i]`;
    `col_px`: crop pixels per step (along the crop's width, after any 180-degree turn)."""

    text: str
    score: float
    rotated: bool  # the classifier turned the crop 180 degrees first
    columns: tuple[int, ...] = ()
    col_px: float = 0.0


class OcrDetector:
    def __init__(self, session: Any, limit_side_len: int = 736, db: DbParams | None = None):
        self.session = session
        self.limit_side_len = limit_side_len
        self.db = db or DbParams()
        self._input = session.get_inputs()[0].name

    def preprocess(self, bgr: U8) -> F32 | None:
        """BGR image -> [1,3,H',W'] float32 (None when a side would round to 0)."""
        h, w = bgr.shape[:2]
        ratio = 1.0
        if min(h, w) < self.limit_side_len:
            ratio = self.limit_side_len / (h if h < w else w)
        rh, rw = round(int(h * ratio) / 32) * 32, round(int(w * ratio) / 32) * 32
        if rh <= 0 or rw <= 0:
            return None
        return _norm(cv2.resize(bgr, (rw, rh)))[None]

    def run_batch(self, tensors: Sequence[F32]) -> list[F32]:
        """Each [1,3,H,W] -> its probability map [H,W] (one forward per distinct size)."""
        out: list[F32] = []
        for t in tensors:
            prob = self.session.run(None, {self._input: t})[0]
            out.append(np.asarray(prob[0, 0], np.float32))
        return out

    def boxes(self, prob: F32, height: int, width: int) -> list[tuple[F32, float]]:
        """Quads [4,2] (clockwise from the top-left, clipped to the image, at least 4 px on each
        side) with their detection scores, in an image of `height` x `width`."""
        out = []
        for box, score in db_boxes(prob, width, height, self.db):
            q = order_clockwise(box)
            q[:, 0] = np.clip(q[:, 0], 0, width - 1).astype(np.int32)
            q[:, 1] = np.clip(q[:, 1], 0, height - 1).astype(np.int32)
            if int(np.linalg.norm(q[0] - q[1])) <= 3 or int(np.linalg.norm(q[0] - q[3])) <= 3:
                continue
            out.append((q, score))
        return out


class OcrRecognizer:
    def __init__(self, rec_session: Any, cls_session: Any | None, cls_thresh: float = 0.9):
        self.rec = rec_session
        self.cls = cls_session
        self.cls_thresh = cls_thresh
        # An AdaptiveSession wraps two sessions of the same file: read the wide one's metadata.
        meta = getattr(rec_session, "wide", rec_session).get_modelmeta().custom_metadata_map
        if "character" not in meta:
            raise ValueError("the recognition model carries no `character` metadata")
        self.characters = ["blank", *meta["character"].splitlines(), " "]
        self._rec_in = rec_session.get_inputs()[0].name
        self._cls_in = cls_session.get_inputs()[0].name if cls_session is not None else ""

    def run_batch(self, crops: Sequence[U8]) -> list[LineRead]:
        """BGR crops -> their reads, in order."""
        items = list(crops)
        rotated = [False] * len(items)
        if self.cls is not None and items:
            batch = np.stack([self._cls_tensor(c) for c in items])
            probs = self.cls.run(None, {self._cls_in: batch})[0]
            for i, p in enumerate(probs):
                if int(np.argmax(p)) == 1 and float(p[1]) > self.cls_thresh:
                    items[i], rotated[i] = (
                        np.asarray(cv2.rotate(items[i], cv2.ROTATE_180), np.uint8),
                        True,
                    )
        out: list[LineRead | None] = [None] * len(items)
        ratios = [c.shape[1] / float(c.shape[0]) for c in items]
        order = np.argsort(np.array(ratios), kind="stable")
        for g in range(0, len(items), REC_GROUP):
            idx = [int(i) for i in order[g : g + REC_GROUP]]
            max_ratio = max([REC_MIN_WIDTH / REC_HEIGHT] + [ratios[i] for i in idx])
            batch = np.stack([self._rec_tensor(items[i], max_ratio) for i in idx])
            probs = self.rec.run(None, {self._rec_in: batch})[0]
            width = int(REC_HEIGHT * max_ratio)
            for i, p in zip(idx, probs, strict=True):
                text, score, cols = self.ctc_decode(p)
                h, w = items[i].shape[:2]
                resized = min(width, math.ceil(REC_HEIGHT * w / float(h)))
                col_px = width / len(p) * w / resized
                out[i] = LineRead(text, score, rotated[i], cols, col_px)
        return [r for r in out if r is not None]

    def ctc_decode(self, probs: F32) -> tuple[str, float, tuple[int, ...]]:
        """[T, C] softmax -> (text, mean probability of the kept steps (0 when none), the
        step of each character)."""
        idx = probs.argmax(axis=1)
        best = probs.max(axis=1)
        keep = np.ones(len(idx), bool)
        keep[1:] = idx[1:] != idx[:-1]
        keep &= idx != 0
        text = "".join(self.characters[i] for i in idx[keep])
        score = float(np.mean(best[keep])) if keep.any() else 0.0
        return text, score, tuple(int(c) for c in np.flatnonzero(keep))

    @staticmethod
    def _cls_tensor(img: U8) -> F32:
        h_, w_ = CLS_SHAPE
        h, w = img.shape[:2]
        rw = min(w_, math.ceil(h_ * w / float(h)))
        out = np.zeros((3, h_, w_), np.float32)
        out[:, :, :rw] = _norm(cv2.resize(img, (rw, h_)))
        return out

    @staticmethod
    def _rec_tensor(img: U8, max_ratio: float) -> F32:
        width = int(REC_HEIGHT * max_ratio)
        h, w = img.shape[:2]
        rw = min(width, math.ceil(REC_HEIGHT * w / float(h)))
        out = np.zeros((3, REC_HEIGHT, width), np.float32)
        out[:, :, :rw] = _norm(cv2.resize(img, (rw, REC_HEIGHT)))
        return out


def order_clockwise(pts: F32) -> F32:
    """4 points -> top-left, top-right, bottom-right, bottom-left (the two leftmost points by
    x are the left side, each side ordered by y)."""
    xs = pts[np.argsort(pts[:, 0], kind="stable")]
    left, right = xs[:2], xs[2:]
    tl, bl = left[np.argsort(left[:, 1], kind="stable")]
    tr, br = right[np.argsort(right[:, 1], kind="stable")]
    return np.array([tl, tr, br, bl], np.float32)


def reading_order(quads: Sequence[F32]) -> list[int]:
    """Indices of quads top to bottom, left to right (PaddleOCR's rule: sort by the top-left
    corner's (y, x), then swap neighbours whose tops differ by under 10 px and are out of x
    order)."""
    order = sorted(range(len(quads)), key=lambda i: (float(quads[i][0][1]), float(quads[i][0][0])))
    for i in range(len(order) - 1):
        for j in range(i, -1, -1):
            a, b = quads[order[j]][0], quads[order[j + 1]][0]
            if abs(b[1] - a[1]) < 10 and b[0] < a[0]:
                order[j], order[j + 1] = order[j + 1], order[j]
            else:
                break
    return order


def line_frame(quad: F32) -> tuple[int, int, npt.NDArray[np.float64]]:
    """(width, height, 3x3 perspective matrix from image to crop) of a quad's upright crop."""
    w = int(max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[2] - quad[3])))
    h = int(max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2])))
    dst = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    m = np.asarray(cv2.getPerspectiveTransform(quad.astype(np.float32), dst), np.float64)
    return w, h, m


def word_spans(read: LineRead, quad: F32) -> list[tuple[str, tuple[tuple[float, float], ...]]]:
    """Words of a read line (runs of non-space characters; each CJK character alone) with
    their quads in the image the quad is in: the crop's columns from the word's first step to
    its last step + 1, full crop height, mapped back through the crop's perspective (and its
    90 or 180 degree turns). Step positions are the recogniser's alignment, so edges are
    approximate (about one step, a few pixels)."""
    if not read.text or not read.columns or read.col_px <= 0:
        return []
    w, h, m = line_frame(quad)
    tall = h / max(w, 1) >= 1.5
    along = h if tall else w  # the crop's width after the 90-degree turn
    inv = np.linalg.inv(m)
    spans: list[tuple[int, int]] = []
    for i, ch in enumerate(read.text):
        if ch.isspace():
            continue
        if spans and spans[-1][1] == i and not _is_cjk(ch) and not _is_cjk(read.text[i - 1]):
            spans[-1] = (spans[-1][0], i + 1)
        else:
            spans.append((i, i + 1))
    out = []
    for a, b in spans:
        x0 = min(read.columns[a] * read.col_px, along)
        x1 = min((read.columns[b - 1] + 1) * read.col_px, along)
        if read.rotated:
            x0, x1 = along - x1, along - x0
        across = w if tall else h
        corners = [(x0, 0.0), (x1, 0.0), (x1, across), (x0, across)]
        if tall:  # np.rot90 turned the warped crop counter-clockwise: undo it
            corners = [_unturn(x, y, w) for x, y in corners]
        pts = []
        for x, y in corners:
            px, py, pz = inv @ np.array([x, y, 1.0])
            pts.append((float(px / pz), float(py / pz)))
        out.append((read.text[a:b], tuple(pts)))
    return out


def _unturn(x: float, y: float, warp_w: int) -> tuple[float, float]:
    """A point of a crop turned 90 degrees counter-clockwise (np.rot90) -> the point of the
    crop before the turn (`warp_w` its width)."""
    return warp_w - y, x


def _is_cjk(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff"


def crop_line(bgr: U8, quad: F32) -> U8:
    """The quad's text, warped upright to its own width x height (cubic, replicated border);
    a crop at least 1.5x as tall as wide is turned 90 degrees counter-clockwise."""
    w, h, m = line_frame(quad)
    out = cv2.warpPerspective(
        bgr, m, (w, h), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC
    )
    if out.shape[0] / out.shape[1] >= 1.5:
        out = np.rot90(out)
    return np.ascontiguousarray(out)
