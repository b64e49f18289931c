"""Labeling-config parse time on hostile shapes (issue 10: a quadratic parse on the event loop).

    .venv/bin/python scripts/bench_ls_config.py [--old REV]

Prints, per shape, its size and the seconds `parse_label_config` takes (and whether it refused
it); with `--old REV` also the parser of that git revision (`app/domain/labelconfig.py`, before
the Label Studio code moved to app/domain/labelstudio/; 3555851 is the last one), loaded from
`git show` into a temporary module.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.domain.labelstudio.config import parse_label_config


def nested(depth: int) -> str:
    """Controls nested `depth` deep, a <Label> in each."""
    opening = "".join(f'<Labels name="c{i}" toName="t"><Label value="L{i}"/>' for i in range(depth))
    return f'<View><Text name="t" value="$text"/>{opening}{"</Labels>" * depth}</View>'


def wide(levels: int, labels: int) -> str:
    """`levels` nested controls (within the depth cap), `labels` labels in each."""
    parts = "".join(
        f'<Labels name="c{i}" toName="t">' + '<Label value="x"/>' * labels for i in range(levels)
    )
    return f'<View><Text name="t" value="$text"/>{parts}{"</Labels>" * levels}</View>'


def timed(parse: Callable[[str], Any], xml: str) -> str:
    t0 = time.perf_counter()
    try:
        parse(xml)
        outcome = "parsed"
    except Exception as e:  # a benchmark reports whatever happened
        outcome = f"refused ({type(e).__name__})"
    return f"{time.perf_counter() - t0:8.3f} s {outcome}"


def old_parser(rev: str) -> Callable[[str], Any]:
    source = subprocess.run(
        ["git", "show", f"{rev}:app/domain/labelconfig.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "old_labelconfig.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("old_labelconfig", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.parse_label_config  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", help="also time the parser of this git revision")
    args = ap.parse_args()
    old = old_parser(args.old) if args.old else None
    shapes = {
        "nested controls x3000": nested(3000),
        "nested controls x7000": nested(7000),
        "90 nested controls x 500 labels": wide(90, 500),
    }
    for name, xml in shapes.items():
        line = f"{name:34s} {len(xml) / 1000:6.0f} KB  new {timed(parse_label_config, xml)}"
        if old is not None:
            line += f"  old {timed(old, xml)}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
