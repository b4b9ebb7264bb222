"""The user's documentation: README.md, docs/*.md and the model card stay true to the tree."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from edge.configdoc import COMMAND, config_reference_markdown

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
DOCS = REPO / "docs"
PAGES = [README, REPO / "models" / "MODEL_CARD.md", *sorted(DOCS.glob("*.md"))]

FENCE = re.compile(r"^```.*?^```", re.S | re.M)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def relative_links(text: str) -> list[str]:
    """Targets of Markdown links that point into the repository (not URLs, not #anchors)."""
    text = CODE_SPAN.sub("", FENCE.sub("", text))
    out = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
            continue
        out.append(target.split("#", 1)[0])
    return out


def test_config_reference_is_current():
    page = DOCS / "config.md"
    assert page.is_file(), f"docs/config.md is missing; write it with: {COMMAND}"
    assert page.read_text() == config_reference_markdown(), (
        f"docs/config.md is not current with edge/config.py; regenerate it with: {COMMAND}")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_point_at_files_that_exist(page):
    missing = [t for t in relative_links(page.read_text()) if not (page.parent / t).exists()]
    assert not missing, f"{page.relative_to(REPO)} links to files that do not exist: {missing}"


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    return {slug(h) for h in re.findall(r"^#{1,6}\s+(.+?)\s*$", text, re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_links_to_a_section_name_one_that_exists(page):
    text = CODE_SPAN.sub("", FENCE.sub("", page.read_text()))
    bad = []
    for target in LINK.findall(text):
        path, _, fragment = target.partition("#")
        if not fragment or re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
            continue
        linked = (page.parent / path) if path else page
        if linked.suffix == ".md" and linked.is_file() and fragment not in anchors(linked):
            bad.append(target)
    assert not bad, f"{page.relative_to(REPO)} links to sections that do not exist: {bad}"


def test_slug_is_githubs():
    assert slug("Zoom TTA on tracks (`bench/zoom_across_frames.py`)") == "zoom-tta-on-tracks-benchzoom_across_framespy"
    assert slug("The log: state directory, `moodcam status`") == "the-log-state-directory-moodcam-status"


def test_link_finder_skips_urls_anchors_and_code():
    text = ("[a](docs/a.md) [b](https://x.org/y.md) [c](#top) [d](b.md#part) `[e](no.md)`\n"
            "```\n[f](neither.md)\n```\n![g](pic.png \"title\")\n")
    assert relative_links(text) == ["docs/a.md", "b.md", "pic.png"]


def test_readme_is_a_guide_not_a_notebook():
    lines = README.read_text().splitlines()
    assert len(lines) < 260, f"README.md has {len(lines)} lines; move detail into docs/ (limit 259)"


def test_readme_keeps_the_commands_for_a_fresh_machine():
    text = README.read_text()
    assert "bash deploy/dev-setup.sh && .venv/bin/moodcam run --max-frames 300" in text
    assert "\n.venv/bin/python -m pytest\n" in text
    # .ci/run runs exactly the README's test command
    assert "\n.venv/bin/python -m pytest\n" in (REPO / ".ci" / "run").read_text()


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_pages_do_not_narrate_who_did_what(page):
    text = page.read_text()
    found = re.findall(r"\b(?:sessions?\s+\d+|earlier sessions?|previous sessions?)\b", text, re.I)
    assert not found, f"{page.relative_to(REPO)} says {found}: describe the project, not its history of work"
