"""Label Studio 1.23.2 driven through its own REST API, as a user's scripts (or its UI) would.

Endpoints as its source declares them (label_studio/*/urls.py and api.py):
- `POST /api/projects` (title of 3+ characters, `label_config`);
- `POST /api/storages/localfiles` | `/api/storages/s3` then `POST /api/storages/<type>/<id>/sync`;
- `POST /api/projects/<id>/import` (JSON tasks, or a multipart file: an upload);
- `POST /api/ml` (validates by calling the backend's /health and /setup; 400 with the reason);
- `POST /api/dm/actions?id=retrieve_tasks_predictions&project=<id>` ("Retrieve predictions" on
  the selected tasks: one /predict with all of them, data_manager/actions/basic.py);
- `GET /api/projects/<id>/next` (the label stream; with `show_collab_predictions` and the
  project's `model_version` set to the backend's title it retrieves predictions first,
  tasks/models.py `get_predictions_for_prelabeling`);
- `POST /api/ml/<id>/interactive-annotating` (what the editor sends for a smart tool);
- `GET /api/predictions?task=<id>` (what Label Studio stored).
"""

from __future__ import annotations

from typing import Any

import httpx


class LabelStudioError(AssertionError):
    """A Label Studio API call answered an error status (the status and body are the message)."""

    def __init__(self, method: str, url: str, status: int, body: str) -> None:
        super().__init__(f"{method} {url}: {status} {body[:1500]}")
        self.status = status
        self.body = body


class LabelStudio:
    """A client with the user's legacy token (`Token <t>`), or an access token (`Bearer <t>`)
    that `POST /api/token/refresh/` gave for a personal access token."""

    def __init__(self, url: str, token: str, scheme: str = "Token") -> None:
        self.url = url
        self.http = httpx.Client(
            base_url=url, headers={"Authorization": f"{scheme} {token}"}, timeout=180
        )

    @classmethod
    def with_personal_token(cls, url: str, refresh: str) -> LabelStudio:
        r = httpx.post(f"{url}/api/token/refresh/", json={"refresh": refresh}, timeout=30)
        assert r.status_code == 200, r.text
        return cls(url, str(r.json()["access"]), "Bearer")

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, path: str, **kw: Any) -> Any:
        r = self.http.request(method, path, **kw)
        if r.status_code >= 400:
            raise LabelStudioError(method, path, r.status_code, r.text)
        return r.json() if r.content else None

    def project(self, title: str, config: str, **options: Any) -> int:
        body = {"title": title, "label_config": config, **options}
        return int(self.call("POST", "/api/projects", json=body)["id"])

    def local_files(
        self, project: int, path: str, regex: str = r".*\.(png|jpg)", sync: bool = True
    ) -> None:
        """A Local Files storage on `path` (under the document root), synced unless told not
        to (Label Studio serves `/data/local-files/` below any such storage of the project)."""
        body = {
            "project": project,
            "path": path,
            "use_blob_urls": True,
            "regex_filter": regex,
            "title": "local",
        }
        storage = self.call("POST", "/api/storages/localfiles", json=body)
        if sync:
            self.call("POST", f"/api/storages/localfiles/{storage['id']}/sync")

    def s3(self, project: int, endpoint: str, bucket: str, prefix: str, presign: bool) -> None:
        """An S3 storage on `endpoint` (moto), one task per object, synced."""
        body = {
            "project": project,
            "bucket": bucket,
            "prefix": prefix,
            "use_blob_urls": True,
            "presign": presign,
            "s3_endpoint": endpoint,
            "region_name": "us-east-1",
            "aws_access_key_id": "test",
            "aws_secret_access_key": "test",
            "title": "s3",
        }
        storage = self.call("POST", "/api/storages/s3", json=body)
        self.call("POST", f"/api/storages/s3/{storage['id']}/sync")

    def upload(self, project: int, name: str, content: bytes, mime: str) -> None:
        files = {"file": (name, content, mime)}
        self.call("POST", f"/api/projects/{project}/import", files=files)

    def import_tasks(self, project: int, tasks: list[dict[str, Any]]) -> None:
        self.call("POST", f"/api/projects/{project}/import", json=tasks)

    def tasks(self, project: int) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.call(
            "GET", "/api/tasks", params={"project": project, "page_size": 100}
        )["tasks"]
        return sorted(found, key=lambda t: int(t["id"]))

    def connect(self, project: int, url: str, **options: Any) -> dict[str, Any]:
        """Connect an ML backend (Label Studio calls its /health and /setup first)."""
        body = {"url": url, "project": project, "title": "Prelabel", **options}
        backend: dict[str, Any] = self.call("POST", "/api/ml", json=body)
        return backend

    def backend(self, backend_id: int) -> dict[str, Any]:
        found: dict[str, Any] = self.call("GET", f"/api/ml/{backend_id}")
        return found

    def retrieve_predictions(self, project: int, task_ids: list[int]) -> None:
        """The Data Manager's "Retrieve predictions" on the selected tasks."""
        self.call(
            "POST",
            "/api/dm/actions",
            params={"id": "retrieve_tasks_predictions", "project": project},
            json={"selectedItems": {"all": False, "included": task_ids}},
        )

    def predictions(self, task: int) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.call("GET", "/api/predictions", params={"task": task})
        return found

    def next_task(self, project: int) -> dict[str, Any]:
        found: dict[str, Any] = self.call("GET", f"/api/projects/{project}/next")
        return found

    def interactive(self, backend_id: int, task: int, context: dict[str, Any]) -> dict[str, Any]:
        """What Label Studio relays from the backend for a smart-tool region (`context`)."""
        found: dict[str, Any] = self.call(
            "POST",
            f"/api/ml/{backend_id}/interactive-annotating",
            json={"task": task, "context": context},
        )
        return found

    def webhooks(self, project: int) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.call("GET", "/api/webhooks", params={"project": project})
        return found

    def annotate(self, task: int, result: list[dict[str, Any]]) -> int:
        created = self.call("POST", f"/api/tasks/{task}/annotations", json={"result": result})
        return int(created["id"])
