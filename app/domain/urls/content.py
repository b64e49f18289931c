"""Is a fetched body an image? Both the declared content type and the file's magic bytes must
say so before the bytes go anywhere near a decoder."""

from __future__ import annotations

from app.errors import InvalidImage, UnsupportedMediaType

# Generic binary types: S3 stores objects uploaded without a type as binary/octet-stream.
_GENERIC_TYPES = frozenset({"application/octet-stream", "binary/octet-stream"})

# The formats the image decoder accepts (app/domain/images.py ALLOWED_FORMATS).
_SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),  # BigTIFF
    (b"MM\x00+", "TIFF"),
)


def sniff_image(body: bytes) -> str | None:
    """The image format the first bytes announce (JPEG, PNG, GIF, WebP, BMP, TIFF), or None."""
    if body[:4] == b"RIFF" and body[8:12] == b"WEBP":
        return "WEBP"
    for magic, name in _SIGNATURES:
        if body.startswith(magic):
            return name
    return None


def check_image(body: bytes, content_type: str, url: str) -> bytes:
    """`body` if it is served as an image and starts like one. `content_type` is the media type
    in lower case without parameters; an absent one counts as application/octet-stream (RFC
    9110, 8.3). Raises UnsupportedMediaType (415) or InvalidImage (400, empty)."""
    generic = not content_type or content_type in _GENERIC_TYPES
    if not generic and not content_type.startswith("image/"):
        raise UnsupportedMediaType(f"{url} is served as {content_type[:60]!r}, not as an image")
    if not body:
        raise InvalidImage(f"{url} answered with an empty body")
    if sniff_image(body) is None:
        raise UnsupportedMediaType(
            f"the content of {url} is not a JPEG, PNG, GIF, WebP, BMP or TIFF file"
        )
    return body
