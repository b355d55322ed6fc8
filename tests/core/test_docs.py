"""The documentation stays navigable: README.md is a short front door, every relative link in
the Markdown files points at a file (and heading) that exists, and every benchmark or research
command they cite names a script that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README_MAX_BYTES = 12 * 1024
DOC_GLOBS = ("README.md", "docs/**/*.md", "research/*.md", "bench/*.md", "sample_data/*.md")

FENCE = re.compile(r"^```.*?^```", re.S | re.M)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
BENCH_CMD = re.compile(r"python3? (bench/[\w/]+\.py)")
RESEARCH_CMD = re.compile(r"python3? -m (research\.\w+)")


def doc_files(root: Path = ROOT) -> list[Path]:
    return sorted({p for g in DOC_GLOBS for p in root.glob(g) if p.is_file()})


def slugs(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings: lower case, punctuation dropped, spaces to
    hyphens, a repeated heading numbered -1, -2, ..."""
    seen: dict[str, int] = {}
    out = set()
    for title in HEADING.findall(FENCE.sub("", markdown)):
        slug = re.sub(r"[^\w\- ]", "", title.replace("`", "").lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """Each relative link of `path` whose file, or heading in a Markdown file, does not exist,
    named by `path` relative to `root`."""
    text = CODE_SPAN.sub("", FENCE.sub("", path.read_text(encoding="utf-8")))
    name = path.relative_to(root)
    bad = []
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            bad.append(f"{name}: {target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in slugs(dest.read_text("utf-8")):
            bad.append(f"{name}: {target} (no such heading)")
    return bad


def test_readme_is_a_short_front_door() -> None:
    size = (ROOT / "README.md").stat().st_size
    assert size <= README_MAX_BYTES, (
        f"README.md is {size:,} bytes, over {README_MAX_BYTES:,}: move details into docs/"
    )


def test_the_docs_exist_and_are_linked_from_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for doc in ("docs/protocol.md", "docs/results.md", "docs/research.md", "docs/usage.md"):
        assert (ROOT / doc).is_file(), doc
        assert f"]({doc})" in readme, f"README.md does not link {doc}"


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path) -> None:
    assert broken_links(path) == []


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_cited_scripts_exist(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    missing = [s for s in BENCH_CMD.findall(text) if not (ROOT / s).is_file()]
    missing += [
        m
        for m in RESEARCH_CMD.findall(text)
        if not (ROOT / (m.replace(".", "/") + ".py")).is_file()
    ]
    assert missing == [], f"{path.relative_to(ROOT)} cites scripts that do not exist: {missing}"


def test_the_link_check_catches_what_it_should(tmp_path: Path) -> None:
    """The checker itself: a missing file and a missing heading are reported; links inside
    code, external links and good anchors are not."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A\n\n## Two words, and `code`\n")
    doc = tmp_path / "README.md"
    doc.write_text(
        "[ok](docs/a.md) [ok](docs/a.md#two-words-and-code) [ok](https://x.org/none.md)\n"
        "[gone](docs/b.md) [no heading](docs/a.md#three) `[in code](nowhere.md)`\n"
        "```\n[in a fence](nowhere.md)\n```\n"
    )
    assert broken_links(doc, tmp_path) == [
        "README.md: docs/b.md (no such file)",
        "README.md: docs/a.md#three (no such heading)",
    ]
