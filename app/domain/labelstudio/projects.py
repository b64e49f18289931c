"""Label Studio projects connected to this backend: what `/setup` told us about each.

`/setup` must answer within Label Studio's 3 s timeout and load nothing: it records the
project's labeling config, host and token, and returns the model version. The version is derived
from the models' own versions and the config, so it is the same after a restart and the same for
every call: Label Studio compares it with stored predictions, and any drift would make each
retrieval add a duplicate prediction.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LsProject:
    """project: Label Studio's "<id>.<created unix ts>"; schema: the labeling config XML;
    hostname: Label Studio's base URL to fetch task data from; access_token: its API token."""

    project: str
    schema: str
    hostname: str | None
    access_token: str | None = field(repr=False)  # never in a log line or traceback
    model_version: str


class LsProjects:
    """Thread-safe registry of connected projects (in memory; `/setup` is re-sent by Label
    Studio whenever it needs it, so nothing is lost on a restart)."""

    def __init__(
        self, models_version: str, default_host: str | None = None, default_token: str | None = None
    ) -> None:
        self.models_version = models_version
        self.default_host = default_host
        self.default_token = default_token
        self._projects: dict[str, LsProject] = {}
        self._lock = threading.Lock()

    def model_version(self, schema: str) -> str:
        digest = hashlib.sha256(f"{self.models_version}\n{schema}".encode()).hexdigest()
        return f"prelabel-{digest[:12]}"

    def setup(
        self, project: str, schema: str, hostname: str | None, access_token: str | None
    ) -> LsProject:
        entry = LsProject(
            project=project,
            schema=schema,
            hostname=(hostname or self.default_host or None),
            access_token=(access_token or self.default_token or None),
            model_version=self.model_version(schema),
        )
        with self._lock:
            self._projects[project] = entry
        return entry

    def get(self, project: str) -> LsProject | None:
        with self._lock:
            return self._projects.get(project)

    def by_number(self, number: object) -> LsProject | None:
        """The project whose key starts with Label Studio's numeric id (webhooks send the id,
        /setup sends "<id>.<created unix ts>")."""
        prefix = f"{number}."
        with self._lock:
            for key, project in self._projects.items():
                if key == str(number) or key.startswith(prefix):
                    return project
        return None

    def __len__(self) -> int:
        with self._lock:
            return len(self._projects)
