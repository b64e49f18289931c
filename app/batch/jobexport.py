"""A job's export over HTTP (GET /v1/jobs/{id}/export): its finished items, read back from the
job store a chunk at a time, written by the batch export (`export.py`, the catalogue's formats)
into a temporary folder, and answered as one download. Blocking: run it on a worker thread."""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from app.batch.export import export
from app.batch.jobbackend import JobBackend


def package(
    store: JobBackend, job_id: str, task: str, fmt: str, meta: dict[str, Any]
) -> tuple[str, bytes, str]:
    """(file name, bytes, media type) of job `job_id` exported as `fmt` (a catalogue name),
    `meta` being the identity stored at submission (class order, model versions). A format that
    writes one file comes as that file; YOLO and VOC (a file per image) as a zip of the folder
    `prelabel annotate` would write, named `<job id>-<format>.zip`."""
    records: dict[str, Any] = {}
    after: str | None = None
    while rows := store.results(job_id, after):
        records.update((r.key, json.loads(r.payload)) for r in rows if r.ok)
        after = rows[-1].key
    with tempfile.TemporaryDirectory(prefix="prelabel-export-") as tmp:
        files = export(Path(tmp), fmt, task, meta, records)
        if len(files) == 1 and fmt not in ("yolo", "voc"):
            media = "application/json" if files[0].suffix == ".json" else "text/plain"
            return files[0].name, files[0].read_bytes(), media
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for f in sorted(files):
                z.write(f, f.relative_to(tmp).as_posix())
        return f"{job_id}-{fmt}.zip", buf.getvalue(), "application/zip"
