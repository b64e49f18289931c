"""Enumerate the items of an INPUT, deterministically, each with a stable `key`.

INPUT is one of:
- a folder of images: searched recursively, sorted; key = the path relative to the folder
  (POSIX separators), which is also the `file_name` the exports use;
- `.txt`: one text per line (blank lines skipped); key = the 1-based line number;
- `.jsonl`: objects with "text" and an optional "id"; key = the id, else the line number;
- `.lst`: a manifest, one image path (relative to the manifest's folder) or http(s) URL per
  line; key = the line as written;
- `.json`: a Label Studio tasks export, a list of tasks with `data.image` (a local path
  relative to the export's folder, an http(s) URL, or Label Studio's own `/data/...`
  reference) or `data.text`; key = the task's id, else its index.

URLs are fetched when the item runs, through the service's one URL fetcher and its policy
(public https hosts by default, see `app/domain/urls/`); `/data/...` references go to
PRELABEL_LABEL_STUDIO_URL with PRELABEL_LABEL_STUDIO_TOKEN (`app/domain/ls_fetch.py`).

Keys drive resume and sharding, so they must not change between runs; duplicates are refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})


class InputError(ValueError):
    """The INPUT itself cannot be read (a setup error, exit code 1)."""


@dataclass(frozen=True)
class Item:
    """One unit of work. Images: `path` is the file, or `url` the http(s) URL or Label Studio
    `/data/...` reference to fetch; `name` is the dataset's file_name. Texts: `text` is the
    text and `name` its id."""

    key: str
    kind: Literal["image", "text"]
    name: str
    path: Path | None = None
    text: str | None = None
    url: str | None = None


def enumerate_items(source: Path) -> list[Item]:
    if source.is_dir():
        items = _folder(source)
    elif not source.is_file():
        raise InputError(f"{source}: no such file or folder")
    elif source.suffix == ".txt":
        items = _txt(source)
    elif source.suffix == ".jsonl":
        items = _jsonl(source)
    elif source.suffix == ".lst":
        items = _manifest(source)
    elif source.suffix == ".json":
        items = _label_studio(source)
    else:
        raise InputError(f"{source}: expected a folder, .txt, .jsonl, .lst or .json")
    seen: set[str] = set()
    for item in items:
        if item.key in seen:
            raise InputError(f"{source}: duplicate item key {item.key!r}")
        seen.add(item.key)
    return items


def _image(key: str, path: Path, name: str | None = None) -> Item:
    return Item(key, "image", name or key, path=path)


def _folder(root: Path) -> list[Item]:
    paths = (p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    rels = sorted(p.relative_to(root).as_posix() for p in paths)
    return [_image(rel, root / rel) for rel in rels]


def _lines(source: Path) -> list[tuple[int, str]]:
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{source}: cannot read: {e}") from e
    return [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def _txt(source: Path) -> list[Item]:
    return [Item(str(n), "text", str(n), text=line) for n, line in _lines(source)]


def _jsonl(source: Path) -> list[Item]:
    out = []
    for n, line in _lines(source):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{source}:{n}: not JSON: {e}") from e
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
            raise InputError(f"{source}:{n}: expected an object with a string 'text'")
        key = str(obj["id"]) if obj.get("id") is not None else str(n)
        out.append(Item(key, "text", key, text=obj["text"]))
    return out


def _manifest(source: Path) -> list[Item]:
    base = source.parent
    out = []
    for _, line in _lines(source):
        rel = line.strip()
        if "://" in rel:
            out.append(Item(rel, "image", rel, url=rel))
        else:
            out.append(_image(rel, base / rel))
    return out


def _label_studio(source: Path) -> list[Item]:
    try:
        tasks: Any = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{source}: not a readable JSON file: {e}") from e
    if not isinstance(tasks, list):
        raise InputError(f"{source}: expected a list of Label Studio tasks")
    out = []
    for i, task in enumerate(tasks):
        data = task.get("data") if isinstance(task, dict) else None
        if not isinstance(data, dict):
            raise InputError(f"{source}: task {i} has no 'data' object")
        key = str(task["id"]) if task.get("id") is not None else str(i)
        if isinstance(data.get("image"), str):
            ref: str = data["image"]
            if "://" in ref or ref.startswith("/data/"):
                out.append(Item(key, "image", ref, url=ref))
            else:
                out.append(_image(key, source.parent / ref, ref))
        elif isinstance(data.get("text"), str):
            out.append(Item(key, "text", key, text=data["text"]))
        else:
            raise InputError(f"{source}: task {key} has neither data.image nor data.text")
    return out
