"""The Dockerfile, checked without a Docker engine (none here, nor in CI): its install and model
fetch are the README's own commands with the same extras; its dependency layer installs exactly
what pyproject pins; the runtime stage runs as the user the pods run as, writes only under
/data and serves on the port the pods probe; and the small commands it runs at build and health
check time really do what they claim, run here on this checkout."""

from __future__ import annotations

import http.server
import os
import re
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy import image
from tests.deploy.manifests import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
SETUP = (ROOT / "scripts/setup.sh").read_text(encoding="utf-8")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def runs(stage: str) -> list[str]:
    return image.stages()[stage].values("RUN")


def extras_default() -> str:
    """The PRELABEL_EXTRAS build argument's default (the global ARG before the first FROM)."""
    text = image.DOCKERFILE.read_text(encoding="utf-8")
    match = re.search(r"^ARG PRELABEL_EXTRAS=(\S+)$", text, re.M)
    assert match, "global ARG PRELABEL_EXTRAS=... missing"
    return match.group(1)


def test_stages_and_default_target() -> None:
    stages = image.stages()
    assert list(stages)[-1] == "cpu"  # `docker build .` makes the CPU image
    assert stages["gpu"].base == stages["cpu"].base == "runtime"
    assert stages["runtime"].base == "base"
    # The base is a build argument, the public Python image by default.
    assert stages["base"].base == "${BASE_IMAGE}"
    assert image.global_args()["BASE_IMAGE"].startswith("python:3.11-slim")
    # The venv's python3 is the base image's: build and runtime share it, in both modes.
    for source in ("online", "offline"):
        chain = image.lineage("build", {"PRELABEL_SOURCE": source})
        assert [s.name for s in chain] == ["build", f"build-{source}", "base"]
        assert image.lineage("runtime")[-1] is chain[-1]
    assert image.global_args()["PRELABEL_SOURCE"] == "online"


def test_offline_mode_downloads_nothing() -> None:
    """PRELABEL_SOURCE=offline: no Node image (npm), pip installs from the context's wheelhouse
    only, for the extras being built; the online stage is the one that brings npm."""
    online, offline = image.stages()["build-online"], image.stages()["build-offline"]
    assert any(v.startswith("--from=node ") for v in online.values("COPY"))
    assert not any("node" in v for _, v in offline.instructions)
    assert offline.values("COPY") == ["wheelhouse/${PRELABEL_EXTRAS} /opt/wheelhouse"]
    assert offline.env() == {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "/opt/wheelhouse"}
    assert "PRELABEL_EXTRAS" in offline.values("ARG")
    # Only the build stage sees the wheels: the runtime copies the venv, not /opt/wheelhouse.
    assert image.stages()["runtime"].values("COPY")[0] == "--from=build /opt/prelabel /opt/prelabel"
    # scripts/wheelhouse.sh fills wheelhouse/EXTRAS, with the build backend setup.sh needs.
    script = (ROOT / "scripts/wheelhouse.sh").read_text(encoding="utf-8")
    assert 'dest="wheelhouse/$extras"' in script
    assert '["build-system"]["requires"]' in script


def test_setup_is_the_readme_command_with_the_same_extras() -> None:
    """The image installs and fetches with `bash scripts/setup.sh`, passing PRELABEL_EXTRAS:
    the README's setup command (`PRELABEL_EXTRAS=gpu bash scripts/setup.sh` for the GPU)."""
    (setup_run,) = [r for r in runs("build") if "scripts/setup.sh" in r]
    assert re.match(
        r'PRELABEL_EXTRAS="\$\{PRELABEL_EXTRAS\}" bash scripts/setup\.sh( |$)', setup_run
    )
    assert "bash scripts/setup.sh && .venv/bin/prelabel serve" in README
    assert "`PRELABEL_EXTRAS=gpu bash scripts/setup.sh`" in README
    # setup.sh is what runs `prelabel models fetch` (sha256-checked), for image and README alike.
    assert ".venv/bin/prelabel models fetch" in SETUP.splitlines()
    assert 'extras="${PRELABEL_EXTRAS:-cpu}"' in SETUP
    # cpu by default, as setup.sh; gpu for the gpu target, as the README's GPU command.
    assert extras_default() == "cpu"
    header = image.DOCKERFILE.read_text(encoding="utf-8")
    assert "docker build --target gpu --build-arg PRELABEL_EXTRAS=gpu" in header
    assert {"cpu", "gpu"} <= set(PYPROJECT["project"]["optional-dependencies"])


def test_dependency_layer_comes_before_the_source() -> None:
    build = image.stages()["build"].instructions
    order = [(i, v) for i, v in build if i in ("COPY", "RUN")]
    copies = [v for i, v in order if i == "COPY" and not v.startswith("--from")]
    assert copies[0] == "pyproject.toml ./"
    first_pip = next(n for n, (i, v) in enumerate(order) if i == "RUN" and "pip install" in v)
    app_copy = order.index(("COPY", "app app"))
    setup = next(n for n, (i, v) in enumerate(order) if i == "RUN" and "scripts/setup.sh" in v)
    assert first_pip < app_copy < setup
    # Everything setup.sh and `pip install -e .` read is copied (README.md is pyproject's readme).
    assert PYPROJECT["project"]["readme"] == "README.md"
    for needed in ("README.md ./", "scripts/setup.sh scripts/setup.sh", "models models", "app app"):
        assert ("COPY", needed) in build


@pytest.mark.parametrize("extras", ["cpu", "gpu", "cpu,dev"])
def test_dependency_layer_installs_exactly_the_pins(extras: str) -> None:
    """Run the Dockerfile's own requirements one-liner on this pyproject.toml."""
    (layer,) = [r for r in runs("build") if "tomllib" in r]
    code = re.search(r'\.venv/bin/python -c "(.*?)" "\$\{PRELABEL_EXTRAS\}"', layer)
    assert code, layer
    out = subprocess.run(
        [sys.executable, "-c", code.group(1), extras],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    project = PYPROJECT["project"]
    expected = list(project["dependencies"])
    for extra in extras.split(","):
        expected += project["optional-dependencies"][extra]
    assert out == expected
    assert all("==" in r for r in out)  # pinned: the layer is reproducible


def test_runtime_user_env_and_entrypoint() -> None:
    runtime = image.stages()["runtime"]
    uid, gid = image.user_ids("runtime")
    assert uid == gid == 10001
    env = image.env_of("runtime")
    for key in ("HOME", "TMPDIR", "XDG_CACHE_HOME"):
        assert env[key] == "/data" or env[key].startswith("/data/"), key
    assert runtime.values("VOLUME") == ['["/data"]']
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"  # and the build compiled app/ already
    assert any("compileall" in r for r in runs("build"))
    assert env["PRELABEL_HOST"] == "0.0.0.0"
    assert runtime.values("EXPOSE") == [env["PRELABEL_PORT"]]
    assert image.exec_form(runtime.values("ENTRYPOINT")[0]) == ["prelabel"]
    assert image.exec_form(runtime.values("CMD")[0]) == ["serve"]
    assert image.env_of("gpu")["PRELABEL_PROVIDER"] == "require-gpu"
    assert image.env_of("cpu")["PRELABEL_PROVIDER"] == "cpu"


def test_dockerignore_keeps_what_the_build_copies() -> None:
    lines = [
        ln.strip()
        for ln in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    for excluded in (".git", ".venv", ".env", "tests"):
        assert excluded in lines, excluded
    # Fetched model files and the wheelhouse travel in the context (the offline build's inputs).
    for needed in ("pyproject.toml", "README.md", "app", "models", "wheelhouse"):
        assert not any(ln.strip("/*") == needed or ln.startswith(needed + "/") for ln in lines)
    assert "!scripts/setup.sh" in lines


class _Readyz(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/readyz" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def readyz_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Readyz)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("status", [200, 503])
def test_healthcheck_command_follows_readyz(
    status: int, readyz_server: http.server.HTTPServer
) -> None:
    """HEALTHCHECK's exec-form command, run here against a /readyz that answers `status`."""
    (value,) = image.stages()["runtime"].values("HEALTHCHECK")
    cmd = image.exec_form(value.split(" CMD ", 1)[1])
    assert cmd[0] == "/opt/prelabel/.venv/bin/python"
    _Readyz.status = status
    env = {**os.environ, "PRELABEL_PORT": str(readyz_server.server_address[1])}
    proc = subprocess.run([sys.executable, *cmd[1:]], env=env, capture_output=True, timeout=30)
    assert (proc.returncode == 0) == (status == 200)


@pytest.mark.parametrize("target", ["cpu", "gpu"])
def test_provider_guard(target: str) -> None:
    """Each target's build-time guard, run on this checkout's venv (the CPU wheel): the cpu
    guard passes, the gpu guard refuses, naming the build argument."""
    (guard,) = [r for r in runs(target) if "get_available_providers" in r]
    code = re.fullmatch(r'python -c "(.*)"', guard)
    assert code, guard
    proc = subprocess.run(
        [sys.executable, "-c", code.group(1)], capture_output=True, text=True, timeout=60
    )
    if target == "cpu":
        assert proc.returncode == 0, proc.stderr
    else:
        assert proc.returncode == 1
        assert "--build-arg PRELABEL_EXTRAS=gpu" in proc.stderr


def test_checkov_skips_carry_reasons() -> None:
    """Every security-scan exception in the deployment files names its check and says why."""
    files = [image.DOCKERFILE, *sorted(Path(ROOT / "k8s").rglob("*.yaml"))]
    skips = []
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            if "checkov:skip" in line or "checkov.io/skip" in line:
                skips.append((path.name, line))
                assert re.search(r"CKV2?_[A-Z0-9]+_\d+\s*[=:]\s*\S.{10,}", line), line
    assert skips  # the image digest exception, at least


def test_image_check_keys_every_copy_source() -> None:
    """scripts/check_image.sh reuses an image when none of its inputs changed: every file the
    Dockerfile COPYs from the context (and the Dockerfile and .dockerignore) must be one."""
    script = (ROOT / "scripts/check_image.sh").read_text(encoding="utf-8")
    match = re.search(r"^inputs=\((.*?)\)$", script, re.M | re.S)
    assert match, "inputs=(...) missing in scripts/check_image.sh"
    inputs = {w.strip('"').replace("$extras", "${PRELABEL_EXTRAS}") for w in match.group(1).split()}
    assert {"Dockerfile", ".dockerignore"} <= inputs
    sources = set()
    for stage in image.stages().values():
        for value in stage.values("COPY"):
            if not value.startswith("--from="):
                sources.update(value.split()[:-1])
    assert sources
    assert sources <= inputs, sources - inputs
