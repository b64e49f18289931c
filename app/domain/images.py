"""The one image-decoding function, with limits checked before the pixels are decoded."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps, UnidentifiedImageError

from app.errors import ImageTooLarge, InvalidImage, PayloadTooLarge, UnsupportedMediaType

# Formats a labeling tool sends. Pillow can open many more (EPS, PSD, ...); refusing them keeps
# the attack surface small. MPO is a JPEG with more pictures after the first (cameras write it
# for previews and depth maps); like every multi-frame file, only its first picture is decoded.
ALLOWED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "BMP", "TIFF", "GIF"})


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int
    max_pixels: int


def webp_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) that a WebP file's first chunk declares (the VP8X canvas, or the VP8 /
    VP8L frame), or None if `data` is not WebP. Read by hand because Pillow opens every WebP with
    libwebp's animation decoder, which reserves two RGBA canvases of that size at once (1.1 GB
    for a 186-byte file declaring 12000 x 12000), before Pillow reports the size."""
    if len(data) < 30 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    kind = data[12:16]
    if kind == b"VP8X":  # 24-bit canvas width - 1 and height - 1
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if kind == b"VP8L" and data[20] == 0x2F:  # 14-bit width - 1 and height - 1
        bits = int.from_bytes(data[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if kind == b"VP8 ":  # after the 3-byte frame tag and start code: 14-bit width, height
        w, h = int.from_bytes(data[26:28], "little"), int.from_bytes(data[28:30], "little")
        return w & 0x3FFF, h & 0x3FFF
    return None


def decode_image(data: bytes, limits: ImageLimits) -> npt.NDArray[np.uint8]:
    """Decode encoded image bytes to an HWC uint8 RGB array, EXIF orientation applied.

    The header is read first: size and pixel count are checked before any pixel is decoded, so a
    small file that claims gigantic dimensions costs nothing. Truncated or corrupt files raise
    `InvalidImage` (never a partially grey image). Coordinates everywhere in Prelabel refer to
    this array: x to the right, y down, origin at the top-left pixel corner, as a browser shows
    the image.

    Raises: `InvalidImage` (400), `UnsupportedMediaType` (415), `PayloadTooLarge` (413; its
    subclass `ImageTooLarge` for a pixel count over the limit, a decompression bomb).
    """
    if not data:
        raise InvalidImage("empty image body")
    if len(data) > limits.max_bytes:
        raise PayloadTooLarge(f"image is {len(data)} bytes; the limit is {limits.max_bytes}")
    declared = webp_size(data)
    if declared is not None and declared[0] * declared[1] > limits.max_pixels:
        w, h = declared
        raise ImageTooLarge(f"image is {w}x{h} = {w * h} pixels; the limit is {limits.max_pixels}")
    try:
        with warnings.catch_warnings():
            # Our own pixel limit below is the one that counts; Pillow's warning is noise, and its
            # hard error (2x Image.MAX_IMAGE_PIXELS) is raised by the runtime when ours is higher.
            # Its warnings about corrupt data (EXIF, truncated TIFF) are noise too: such data
            # fails as InvalidImage below, or was harmless.
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as e:
        raise UnsupportedMediaType("body is not a supported image (JPEG, PNG, WebP, ...)") from e
    except Image.DecompressionBombError as e:
        raise ImageTooLarge(f"image dimensions exceed {limits.max_pixels} pixels") from e
    except (OSError, ValueError) as e:
        raise InvalidImage("image header is corrupt") from e
    with img:
        if img.format not in ALLOWED_FORMATS:
            raise UnsupportedMediaType(f"image format {img.format} is not accepted")
        w, h = img.size
        if w <= 0 or h <= 0:
            raise InvalidImage("image has zero width or height")
        if w * h > limits.max_pixels:
            raise ImageTooLarge(
                f"image is {w}x{h} = {w * h} pixels; the limit is {limits.max_pixels}"
            )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # In place, and no convert of what is RGB already: each copy would cost 4 bytes a
                # pixel (Pillow pads RGB), 160 MB at the pixel limit.
                ImageOps.exif_transpose(img, in_place=True)
                rgb = img if img.mode == "RGB" else img.convert("RGB")
                rgb.load()
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            raise InvalidImage("image data is truncated or corrupt") from e
        return np.asarray(rgb, dtype=np.uint8)
