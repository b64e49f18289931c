"""Framework-free error tree. Each error has a stable code, an HTTP status and a public message.

Internal detail (exception chains, paths) goes to logs through `raise ... from e`, never to clients.
"""

from __future__ import annotations


class PrelabelError(Exception):
    """Base class: `code` is stable for clients, `message` is safe to show them."""

    code = "internal_error"
    status = 500

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadInput(PrelabelError):
    code = "bad_input"
    status = 400


class InvalidImage(BadInput):
    code = "invalid_image"


class UnsupportedMediaType(PrelabelError):
    code = "unsupported_media_type"
    status = 415


class PayloadTooLarge(PrelabelError):
    code = "payload_too_large"
    status = 413


class ImageTooLarge(PayloadTooLarge):
    """An image whose header declares more pixels than allowed (a decompression bomb). Same
    public code as any 413, so clients see no change; `rejection` tells the metrics apart."""

    rejection = "bomb"


class ValidationFailed(PrelabelError):
    code = "validation_error"
    status = 422


class UrlBlocked(PrelabelError):
    """An image URL the URL policy refuses (scheme, host, or an address that is not public).
    422, not 403: the request's content is at fault, not the caller's identity."""

    code = "url_blocked"
    status = 422
    rejection = "url_blocked"


class FetchFailed(PrelabelError):
    """The server behind a URL failed us: unreachable, an error status, too many redirects."""

    code = "fetch_failed"
    status = 502


class FetchTimeout(FetchFailed):
    """A URL fetch ran past its connect, read or total timeout."""

    code = "fetch_timeout"
    status = 504


class NotFound(PrelabelError):
    code = "not_found"
    status = 404


class UnknownModel(NotFound):
    code = "unknown_model"


class Overloaded(PrelabelError):
    code = "overloaded"
    status = 429


class Unauthorized(PrelabelError):
    """No API key, or one that matches no stored hash (401, with `WWW-Authenticate`)."""

    code = "unauthorized"
    status = 401


class Forbidden(PrelabelError):
    """A valid key whose role may not use this route (a `user` key on an admin route)."""

    code = "forbidden"
    status = 403


class RateLimited(PrelabelError):
    """This key (or client address) is over its request rate (429, with `Retry-After`)."""

    code = "rate_limited"
    status = 429


class NotReady(PrelabelError):
    code = "not_ready"
    status = 503


class ShuttingDown(PrelabelError):
    """SIGTERM was received: the server finishes what it has and takes nothing new."""

    code = "shutting_down"
    status = 503
    rejection = "shutting_down"


class DeadlineExceeded(PrelabelError):
    code = "deadline_exceeded"
    status = 504


class ModelMissing(PrelabelError):
    """A configured model's files are absent or fail their sha256 check."""

    code = "model_missing"
    status = 503


class ProviderUnavailable(PrelabelError):
    """`require-gpu` was asked for and ONNX Runtime did not give a GPU provider."""

    code = "provider_unavailable"
    status = 503
