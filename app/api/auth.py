"""API-key authentication and roles, as plain ASGI middleware, plus the helpers routes use.

Keys are optional: with none configured (`PRELABEL_API_KEYS_FILE`, `PRELABEL_API_KEYS`) the
middleware is not installed, every route is open, and start-up logs a warning. With keys:

- `/livez`, `/readyz`: always open; credentials are not even looked at (kubelet probes).
- `/health` (Label Studio's probe) and `/metrics` (unless `PRELABEL_METRICS_REQUIRE_AUTH`):
  open to requests without credentials, but credentials that are sent must be valid, because
  Label Studio checks the basic-auth user and password it was given by calling /health and
  reports "authentication parameters ... incorrect" only on a 401.
- Everything else needs a valid key: the API, Label Studio's /setup, /predict and /webhook,
  and the docs (`/docs`, `/redoc`, `/openapi.json`; a browser is asked for Basic credentials
  there: any user name, the key as password).

Accepted: `Authorization: Bearer <key>`, `Token <key>` (Label Studio's own API style) and
`Basic base64(user:key)`: Label Studio's ML-backend "Basic Auth" settings send the user and
password they were given with requests' `HTTPBasicAuth` on every call (/health, /setup,
/predict), so the key goes in the password field; a key as the user name with an empty
password (`curl -u KEY:`) works too. Keys never reach a log.

The authenticated `Principal(name, role)` is left in `request.state.principal`
(`principal_of(request)`); `require_admin(request)` guards admin-only routes (403 `forbidden`
for a `user` key; a no-op when authentication is off).
"""

from __future__ import annotations

import base64
import binascii
import logging

from fastapi import FastAPI, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.errors import send_error
from app.config import Settings
from app.domain.apikeys import KeyStore, Principal
from app.errors import Forbidden, Unauthorized

__all__ = ["AuthMiddleware", "Principal", "install", "principal_of", "require_admin"]

log = logging.getLogger(__name__)

ALWAYS_OPEN = frozenset({"/livez", "/readyz"})
DOCS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
MAX_KEY_CHARS = 512
_REALM = 'realm="prelabel"'


def route_path(scope: Scope) -> str:
    """The path the router will match (without a proxy's `root_path`)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def presented_key(scope: Scope) -> str | None:
    """The key in the Authorization header, None when there is no such header.
    Raises `Unauthorized` for a header that is present but unusable."""
    raw: str | None = None
    name: bytes
    value: bytes
    for name, value in scope["headers"]:
        if name == b"authorization":
            raw = value.decode("latin-1")
            break
    if raw is None:
        return None
    scheme, _, rest = raw.strip().partition(" ")
    scheme, rest = scheme.lower(), rest.strip()
    if scheme in ("bearer", "token"):
        key = rest
    elif scheme == "basic":
        try:
            decoded = base64.b64decode(rest, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as e:
            raise Unauthorized("malformed Basic credentials") from e
        user, sep, password = decoded.partition(":")
        if not sep:
            raise Unauthorized("malformed Basic credentials")
        key = password or user
    else:
        raise Unauthorized("unsupported Authorization scheme; use Bearer, Token or Basic")
    if not key or len(key) > MAX_KEY_CHARS:
        raise Unauthorized("invalid API key")
    return key


class AuthMiddleware:
    """Authenticates every HTTP request against `keys` (see the module docstring for which
    routes need what). Install only when `keys.enabled`."""

    def __init__(self, app: ASGIApp, keys: KeyStore, metrics_open: bool = True) -> None:
        self.app = app
        self.keys = keys
        self.anonymous_ok = frozenset({"/health", "/metrics"} if metrics_open else {"/health"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = route_path(scope)
        if path in ALWAYS_OPEN:
            await self.app(scope, receive, send)
            return
        try:
            principal = self._authenticate(scope, path)
        except Unauthorized as e:
            scheme = "Basic" if path in DOCS else "Bearer"
            e.headers = {"WWW-Authenticate": f"{scheme} {_REALM}"}
            await send_error(scope, receive, send, e)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)

    def _authenticate(self, scope: Scope, path: str) -> Principal | None:
        key = presented_key(scope)
        if key is None:
            if path in self.anonymous_ok:
                return None
            raise Unauthorized("an API key is required: send Authorization: Bearer <key>")
        principal = self.keys.lookup(key)
        if principal is None:
            raise Unauthorized("invalid API key")
        return principal


def install(app: FastAPI, settings: Settings) -> KeyStore:
    """Load the keys and add the middleware when there are any (else warn: no auth)."""
    keys = KeyStore.load(settings.api_keys_file, settings.api_keys)
    app.state.auth_enabled = keys.enabled
    if keys.enabled:
        app.add_middleware(
            AuthMiddleware, keys=keys, metrics_open=not settings.metrics_require_auth
        )
        log.info("authentication on: %d API key(s)", len(keys))
    else:
        log.warning(
            "no API keys configured (PRELABEL_API_KEYS_FILE, PRELABEL_API_KEYS): "
            "the service is unauthenticated"
        )
    return keys


def principal_of(request: Request) -> Principal | None:
    """Who sent the request; None when authentication is off (or on an open route)."""
    principal: Principal | None = getattr(request.state, "principal", None)
    return principal


def require_admin(request: Request) -> Principal | None:
    """Raise unless the request may use an admin-only route: 403 `forbidden` for a `user`
    key, 401 without a key. When authentication is off every caller may (None is returned).
    Call it first thing in a route, or use it as `Depends(require_admin)`."""
    principal = principal_of(request)
    if principal is None:
        if getattr(request.app.state, "auth_enabled", False):
            raise Unauthorized(
                "an admin API key is required",
                headers={"WWW-Authenticate": f"Bearer {_REALM}"},
            )
        return None
    if not principal.is_admin:
        raise Forbidden(f"this route needs an admin key; {principal.name!r} is a user key")
    return principal
