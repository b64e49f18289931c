"""Check the README's relative links: each target file exists, and each `#anchor` names a heading
of the target Markdown file (or of the README itself). MkDocs checks the links inside docs/ (the
test command's "== docs" step); the README is outside docs/, so this checks it.

Usage: python scripts/check_readme_links.py [README.md]. Exit 1, listing them, on broken links.
Anchors are slugs as Python-Markdown's toc extension (and GitHub, for plain headings) makes them:
the heading's text without Markdown code marks, lower-cased, punctuation dropped, spaces to `-`.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from pathlib import Path

LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = "```"


def slug(heading: str) -> str:
    """The anchor of a heading: `The image check (`== image`)` -> `the-image-check-image`."""
    text = unicodedata.normalize("NFKD", heading.replace("`", "")).encode("ascii", "ignore")
    words = re.sub(r"[^\w\s-]", "", text.decode("ascii")).strip().lower()
    return re.sub(r"[-\s]+", "-", words)


def anchors(markdown: str) -> set[str]:
    """The slugs of every heading outside code fences."""
    found, fenced = set(), False
    for line in markdown.splitlines():
        if line.startswith(FENCE):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            found.add(slug(line.lstrip("#")))
    return found


def broken_links(readme: Path) -> list[str]:
    """Each relative link of `readme` whose file or anchor is missing, as `link: reason`."""
    text = readme.read_text(encoding="utf-8")
    bad = []
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
            continue
        path, _, anchor = target.partition("#")
        file = readme.parent / path if path else readme
        if not file.is_file():
            bad.append(f"{target}: no file {file}")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file.read_text("utf-8")):
            bad.append(f"{target}: no heading with anchor #{anchor} in {file}")
    return bad


def main() -> int:
    readme = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    bad = broken_links(readme)
    for line in bad:
        print(f"{readme}: broken link {line}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
