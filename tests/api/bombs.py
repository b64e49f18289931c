"""Tiny image files that declare huge images (decompression bombs), built byte by byte from
small real encodings, so each format's own header parser sees a well-formed file."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image


def encode(fmt: str, size: tuple[int, int] = (16, 12), **kw: object) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (20, 160, 90)).save(buf, fmt, **kw)
    return buf.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png(width: int, height: int, idat: bytes = b"\0" * 16, extra: bytes = b"") -> bytes:
    """An 8-bit RGB PNG whose IHDR (valid CRC) declares width x height; `idat` is deflated
    into one IDAT chunk, after the `extra` chunks."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + extra
        + png_chunk(b"IDAT", zlib.compress(idat, 9))
        + png_chunk(b"IEND", b"")
    )


def jpeg(width: int, height: int) -> bytes:
    """A real baseline JPEG whose SOF0 says width x height (at most 65535 each)."""
    data = bytearray(encode("JPEG"))
    sof = data.index(b"\xff\xc0")  # marker, length (2), precision (1), height, width
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def gif_screen(width: int, height: int) -> bytes:
    """A GIF whose logical screen is width x height (its one frame stays 16 x 12)."""
    data = bytearray(encode("GIF"))
    data[6:10] = struct.pack("<HH", width, height)
    return bytes(data)


def gif_frame(width: int, height: int) -> bytes:
    """A GIF with a 16 x 12 screen whose first image descriptor is width x height."""
    data = bytearray(encode("GIF"))
    desc = data.index(b"\x2c", 13)  # image separator after the header and global colour table
    data[desc + 5 : desc + 9] = struct.pack("<HH", width, height)
    return bytes(data)


def webp_vp8x(width: int, height: int) -> bytes:
    """A still WebP: a VP8X chunk declaring a width x height canvas, then a 16 x 12 VP8L."""
    frame = encode("WEBP", lossless=True)[12:]  # the VP8L chunk, after RIFF....WEBP
    canvas = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + b"VP8X" + struct.pack("<I", 10) + b"\0" * 4 + canvas + frame
    return b"RIFF" + struct.pack("<I", len(body)) + body


def webp_animated(width: int, height: int, frames: int = 3) -> bytes:
    """A valid animated WebP of 16 x 16 frames on a width x height canvas (VP8X edited)."""
    images = [Image.new("RGB", (16, 16), (i * 40 % 256, 0, 0)) for i in range(frames)]
    buf = io.BytesIO()
    images[0].save(buf, "WEBP", save_all=True, append_images=images[1:], lossless=True)
    data = bytearray(buf.getvalue())
    at = data.index(b"VP8X") + 12
    data[at : at + 6] = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return bytes(data)


def bombs(width: int, height: int) -> dict[str, bytes]:
    """One file per format and header field, each declaring width x height."""
    return {
        "png": png(width, height),
        "jpeg": jpeg(width, height),
        "gif-screen": gif_screen(width, height),
        "gif-frame": gif_frame(width, height),
        "webp-vp8x": webp_vp8x(width, height),
        "webp-animated": webp_animated(width, height),
    }


def zeros_deflated(size: int) -> bytes:
    """A zlib stream of `size` zero bytes (a multiple of 1 MiB), built in milliseconds: one MiB
    deflated on its own (its back-references reach no byte before it) and repeated."""
    mib = b"\0" * (1 << 20)
    block = zlib.compressobj(9, zlib.DEFLATED, -15)
    segment = block.compress(mib) + block.flush(zlib.Z_SYNC_FLUSH)
    final = zlib.compressobj(9, zlib.DEFLATED, -15)
    adler = 1
    for _ in range(size >> 20):
        adler = zlib.adler32(mib, adler)
    ending = final.flush() + adler.to_bytes(4, "big")
    return b"\x78\xda" + segment * (size >> 20) + ending


def zlib_bombs() -> dict[str, bytes]:
    """Valid 100 x 100 PNGs carrying 1 GiB of zeros deflated to ~1 MB: as pixel data past the
    image's end, as a zTXt text chunk and as an iCCP colour profile."""
    deflated = zeros_deflated(1 << 30)
    rows = b"\0" * (100 * 301)  # 100 rows: filter byte + 100 RGB pixels
    ihdr = png_chunk(b"IHDR", struct.pack(">IIBBBBB", 100, 100, 8, 2, 0, 0, 0))
    end = png_chunk(b"IEND", b"")
    head = b"\x89PNG\r\n\x1a\n" + ihdr
    idat = png_chunk(b"IDAT", zlib.compress(rows))
    return {
        "idat": head + png_chunk(b"IDAT", deflated) + end,
        "ztxt": head + png_chunk(b"zTXt", b"k\0\0" + deflated) + idat + end,
        "iccp": head + png_chunk(b"iCCP", b"k\0\0" + deflated) + idat + end,
    }
