"""The README is a guide that fits on a few screens, and every relative link in it and in docs/
leads to a file of the repository; no page names a path outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # code blocks hold no links
    return [target for target in LINK.findall(text)
            if not re.match(r"[a-z][a-z0-9+.-]*:", target) and not target.startswith("#")]


def test_the_readme_is_short():
    lines = len((ROOT / "README.md").read_text().splitlines())
    assert lines <= 320, f"README.md has {lines} lines: move reference text to docs/"


def test_relative_links_resolve():
    broken = []
    for page in PAGES:
        for target in _links(page):
            path = (page.parent / target.split("#", 1)[0]).resolve()
            if not path.exists() or ROOT not in path.parents:
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, "broken links: " + ", ".join(broken)


def test_no_page_names_a_path_outside_the_repository():
    bad = [f"{page.relative_to(ROOT)}: {hit}" for page in PAGES
           for hit in re.findall(r"\.\./shared\S*|/work/\S*", page.read_text())]
    assert not bad, ", ".join(bad)


def test_the_readme_links_every_page_of_docs():
    readme = (ROOT / "README.md").read_text()
    missing = [p.name for p in PAGES[1:] if f"docs/{p.name}" not in readme]
    assert not missing, f"not reachable from the README in one click: {missing}"
