"""Files of a batch export: written atomically, at safe paths under the output folder."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath


def relative(file_name: str, suffix: str) -> PurePosixPath:
    """file_name -> a safe relative path with `suffix` (no root, no '..')."""
    parts = [p for p in PurePosixPath(file_name.replace("\\", "/")).parts if p not in ("/", "..")]
    return PurePosixPath(*parts).with_suffix(suffix) if parts else PurePosixPath("_" + suffix)


def write_atomic(path: Path, text: str) -> Path:
    """Write atomically (temp file + rename), so an export is never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
