"""Label Studio projects connected to this backend: what `/setup` told us about each, and where
a project's task data may be fetched from with which credentials.

`/setup` must answer within Label Studio's 3 s timeout and load nothing: it records the
project's labeling config, host and token, and returns the model version. The version is derived
from the models' own versions and the config, so it is the same after a restart and the same for
every call: Label Studio compares it with stored predictions, and any drift would make each
retrieval add a duplicate prediction.

Trust (`LsOrigins.access`): anyone who can call `/setup` names a host, so that host is trusted
(may be private or loopback, may be plain http) only when the operator named it:
PRELABEL_LABEL_STUDIO_URL or an origin in PRELABEL_LS_ALLOWED_ORIGINS. Any other host is fetched
under the full URL policy, like an `image_url`. The operator's token (PRELABEL_LABEL_STUDIO_TOKEN)
goes only to the operator's host, and is the one used there when set; a token given in `/setup`
goes only to the host given with it.
"""

from __future__ import annotations

import collections
import hashlib
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from app.domain.urls.policy import parse_target
from app.errors import PrelabelError, ValidationFailed

Origin = tuple[str, str, int]
"""(scheme, lower-case host, port), as app.domain.urls.policy.Target.origin."""


def origin_of(url: str) -> Origin:
    """The origin of an http(s) URL; ValidationFailed when it is not one."""
    try:
        return parse_target(url).origin
    except PrelabelError as e:
        raise ValidationFailed(f"not an http(s) Label Studio URL: {e.message}") from e


@dataclass(frozen=True)
class LsAccess:
    """Where relative task data is fetched from and what goes with it.

    host: Label Studio's base URL ("http://ls:8080", maybe with a path prefix), or None.
    token: sent only to `host`'s origin. trusted: `host` is the operator's, so its addresses may
    be private; otherwise every request is held to the full URL policy."""

    host: str | None
    token: str | None = field(repr=False)  # never in a log line or traceback
    trusted: bool = False

    @property
    def fingerprint(self) -> str:
        """Identifies the credentials (host and token) without revealing the token: part of
        every cache and result key, so two callers never share what they fetched."""
        blob = f"{self.host}\n{self.token}".encode("utf-8", "surrogatepass")
        return hashlib.sha256(blob).hexdigest()[:16]


class LsOrigins:
    """The operator's Label Studio settings, deciding the access of every project."""

    def __init__(
        self,
        default_host: str | None = None,
        default_token: str | None = None,
        allowed: Iterable[str] = (),
    ) -> None:
        self.default_host = default_host.rstrip("/") if default_host else None
        self.default_token = default_token
        self._default = origin_of(default_host) if default_host else None
        self._trusted = {origin_of(o) for o in allowed}
        if self._default is not None:
            self._trusted.add(self._default)

    def access(self, hostname: str | None, token: str | None) -> LsAccess:
        """The access for a `/setup` (or a /predict of a project this process never saw, with
        both None). ValidationFailed when `hostname` is not an http(s) URL."""
        if not hostname:
            return LsAccess(self.default_host, token or self.default_token, trusted=True)
        host = hostname.strip().rstrip("/")
        origin = origin_of(host)
        if origin == self._default and self.default_token:
            # The operator's token for the operator's host, and only there; it wins over the
            # /setup token, which is the project creator's legacy token (ml/api_connector.py),
            # refused where legacy tokens are off (1.23.2's default for new organizations).
            token = self.default_token
        return LsAccess(host, token or None, trusted=origin in self._trusted)


@dataclass(frozen=True)
class LsProject:
    """project: Label Studio's "<id>.<created unix ts>"; schema: the labeling config XML;
    access: where its task data comes from (see LsAccess)."""

    project: str
    schema: str = field(repr=False)
    access: LsAccess
    model_version: str


class LsProjects:
    """Thread-safe registry of connected projects, the `max_projects` most recently set up or
    used (in memory; Label Studio re-sends `/setup` whenever it needs it, so nothing is lost on
    a restart or an eviction)."""

    def __init__(
        self, models_version: str, origins: LsOrigins | None = None, max_projects: int = 1000
    ) -> None:
        self.models_version = models_version
        self.origins = origins or LsOrigins()
        self.max_projects = max_projects
        self._projects: collections.OrderedDict[str, LsProject] = collections.OrderedDict()
        self._lock = threading.Lock()

    def model_version(self, schema: str) -> str:
        blob = f"{self.models_version}\n{schema}".encode("utf-8", "surrogatepass")
        return f"prelabel-{hashlib.sha256(blob).hexdigest()[:12]}"

    def setup(
        self, project: str, schema: str, hostname: str | None, access_token: str | None
    ) -> LsProject:
        """Record a `/setup`. ValidationFailed when `hostname` is not an http(s) URL."""
        return self._put(
            LsProject(
                project,
                schema,
                self.origins.access(hostname, access_token),
                self.model_version(schema),
            )
        )

    def with_schema(self, known: LsProject | None, project: str, schema: str) -> LsProject:
        """`project` with a new labeling config, keeping the access `/setup` gave (the
        operator's defaults when there was none)."""
        access = known.access if known is not None else self.origins.access(None, None)
        return self._put(LsProject(project, schema, access, self.model_version(schema)))

    def _put(self, entry: LsProject) -> LsProject:
        with self._lock:
            self._projects[entry.project] = entry
            self._projects.move_to_end(entry.project)
            while len(self._projects) > self.max_projects:
                self._projects.popitem(last=False)
        return entry

    def get(self, project: str) -> LsProject | None:
        with self._lock:
            found = self._projects.get(project)
            if found is not None:
                self._projects.move_to_end(project)
            return found

    def by_number(self, number: object) -> LsProject | None:
        """The most recently used project whose key is Label Studio's numeric id or starts with
        it (webhooks send the id, /setup sends "<id>.<created unix ts>")."""
        prefix = f"{number}."
        with self._lock:
            for key in reversed(self._projects):
                if key == str(number) or key.startswith(prefix):
                    return self._projects[key]
        return None

    def __len__(self) -> int:
        with self._lock:
            return len(self._projects)
