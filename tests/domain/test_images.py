"""decode_image on real encoded images: formats, EXIF orientation, corrupt input and limits."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image
from skimage import data as skdata

from app.domain.images import ImageLimits, decode_image
from app.errors import InvalidImage, PayloadTooLarge, UnsupportedMediaType

LIMITS = ImageLimits(max_bytes=20 * 1024 * 1024, max_pixels=40_000_000)
U8 = npt.NDArray[np.uint8]


@pytest.fixture(scope="module")
def astronaut() -> U8:
    """512 x 512 RGB photograph shipped with scikit-image."""
    return np.asarray(skdata.astronaut(), dtype=np.uint8)  # type: ignore[no-untyped-call]


def encode(array: U8, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, fmt, **kw)
    return buf.getvalue()


def _chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose valid IHDR claims `width` x `height` RGB, followed by an IDAT holding a few
    bytes: the header parses, and decoding the pixels is bound to fail."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 16))


def test_png_round_trips_exactly(astronaut: U8) -> None:
    out = decode_image(encode(astronaut, "PNG"), LIMITS)
    assert out.shape == (512, 512, 3)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, astronaut)


def test_jpeg_decodes_close_to_the_source(astronaut: U8) -> None:
    out = decode_image(encode(astronaut, "JPEG", quality=95), LIMITS)
    assert out.shape == (512, 512, 3)
    assert out.dtype == np.uint8
    err = np.abs(out.astype(np.int16) - astronaut.astype(np.int16)).mean()
    assert err < 3.0  # lossy, but the same picture in the same channel order (not BGR)


def test_non_square_keeps_rows_as_height(astronaut: U8) -> None:
    crop = np.ascontiguousarray(astronaut[:100, :300])
    out = decode_image(encode(crop, "PNG"), LIMITS)
    assert out.shape == (100, 300, 3)
    np.testing.assert_array_equal(out, crop)


def test_exif_orientation_is_applied(astronaut: U8) -> None:
    crop = np.ascontiguousarray(astronaut[:100, :300])  # 300 wide, 100 high as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the stored image must be rotated 90° clockwise to show
    buf = io.BytesIO()
    Image.fromarray(crop).save(buf, "JPEG", quality=95, exif=exif.tobytes())
    out = decode_image(buf.getvalue(), LIMITS)
    assert out.shape == (300, 100, 3)
    expected = np.rot90(crop, k=-1)  # clockwise
    err = np.abs(out.astype(np.int16) - expected.astype(np.int16)).mean()
    assert err < 3.0
    # And not the counter-clockwise rotation, which has the same shape.
    wrong = np.abs(out.astype(np.int16) - np.rot90(crop, k=1).astype(np.int16)).mean()
    assert wrong > 20.0


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_file_is_invalid(astronaut: U8, fmt: str) -> None:
    body = encode(astronaut, fmt)
    with pytest.raises(InvalidImage):
        decode_image(body[: len(body) // 2], LIMITS)


def test_empty_body_is_invalid() -> None:
    with pytest.raises(InvalidImage):
        decode_image(b"", LIMITS)


@pytest.mark.parametrize(
    "body",
    [
        np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        b"hello, this is plain text and not an image\n" * 10,
    ],
    ids=["random", "text"],
)
def test_non_image_is_unsupported(body: bytes) -> None:
    with pytest.raises(UnsupportedMediaType):
        decode_image(body, LIMITS)


@pytest.mark.parametrize("fmt", ["PPM", "ICO"])
def test_disallowed_format_is_unsupported(astronaut: U8, fmt: str) -> None:
    body = encode(np.ascontiguousarray(astronaut[:64, :64]), fmt)
    assert Image.open(io.BytesIO(body)).format == fmt  # Pillow itself can read it
    with pytest.raises(UnsupportedMediaType):
        decode_image(body, LIMITS)


def test_huge_dimensions_in_header_are_refused_without_decoding() -> None:
    # 10^10 pixels, no pixel data at all: decoding would fail as InvalidImage, so 413 proves
    # the refusal came from the header alone.
    with pytest.raises(PayloadTooLarge):
        decode_image(png_header_only(100_000, 100_000), LIMITS)


def test_dimensions_over_configured_max_pixels_are_refused_without_decoding() -> None:
    body = png_header_only(2000, 1000)
    with pytest.raises(InvalidImage):  # within the limit: it is decoded, and has no pixels
        decode_image(body, ImageLimits(LIMITS.max_bytes, max_pixels=2_000_000))
    with pytest.raises(PayloadTooLarge, match="2000x1000"):
        decode_image(body, ImageLimits(LIMITS.max_bytes, max_pixels=1_999_999))


def test_body_over_max_bytes_is_refused(astronaut: U8) -> None:
    body = encode(astronaut, "PNG")
    assert decode_image(body, ImageLimits(len(body), LIMITS.max_pixels)).shape == (512, 512, 3)
    with pytest.raises(PayloadTooLarge):
        decode_image(body, ImageLimits(len(body) - 1, LIMITS.max_pixels))


def test_grayscale_png_becomes_three_equal_channels(astronaut: U8) -> None:
    gray = np.ascontiguousarray(astronaut[:80, :120, 1])
    body = encode(gray, "PNG")
    assert Image.open(io.BytesIO(body)).mode == "L"
    out = decode_image(body, LIMITS)
    assert out.shape == (80, 120, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], gray)


def test_rgba_png_drops_alpha(astronaut: U8) -> None:
    rgb = np.ascontiguousarray(astronaut[:80, :120])
    alpha = np.full((80, 120, 1), 255, np.uint8)
    alpha[:40] = 0
    body = encode(np.concatenate([rgb, alpha], axis=2), "PNG")
    assert Image.open(io.BytesIO(body)).mode == "RGBA"
    out = decode_image(body, LIMITS)
    assert out.shape == (80, 120, 3)
    np.testing.assert_array_equal(out, rgb)


def test_configured_max_pixels_is_the_only_pixel_limit(
    astronaut: U8, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Stands in for PRELABEL_MAX_IMAGE_PIXELS above Pillow's default (~89.5 Mpx): shrink
    # Pillow's threshold instead of building a 90 Mpx image.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    small = np.ascontiguousarray(astronaut[:40, :40])  # 1600 px: over Pillow's, under ours
    out = decode_image(encode(small, "PNG"), ImageLimits(LIMITS.max_bytes, max_pixels=10_000))
    np.testing.assert_array_equal(out, small)
