"""The docs site builds strictly (broken links and unlisted pages fail), as `make docs` does."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _nav_files(nav: list[object]) -> set[str]:
    out: set[str] = set()
    for item in nav:
        for value in item.values() if isinstance(item, dict) else [item]:
            if isinstance(value, list):
                out |= _nav_files(value)
            elif isinstance(value, str):
                out.add(value)
    return out


def _notebook_pages() -> set[str]:
    """The pages the mkdocs hook (scripts/notebooks.py) renders from each lab's notebook."""
    labs = tomllib.loads((ROOT / "labs" / "labs.toml").read_text())["lab"]
    return {f"notebooks/{Path(lab['notebook']).stem}.md" for lab in labs if lab.get("notebook")}


def test_every_page_is_in_the_nav() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    pages = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    assert pages == _nav_files(config["nav"]) - _notebook_pages()


def test_every_lab_notebook_has_a_page_in_the_nav() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    assert _notebook_pages(), "no lab names a notebook in labs/labs.toml"
    assert _notebook_pages() <= _nav_files(config["nav"]), "mkdocs.yml: add the notebook pages to the nav"
    assert not (ROOT / "docs" / "notebooks").exists(), "docs/notebooks/ is generated at build time"


def test_site_builds_strictly(site: Path) -> None:
    """The strict build itself is the `site` fixture (tests/e2e/conftest.py), shared with the browser test."""
    for page in ("index.html", "getting-started/index.html", "architecture/index.html"):
        assert (site / page).is_file(), page
    for page in _notebook_pages():  # rendered by the hook, with or without executed copies
        assert (site / page.removesuffix(".md") / "index.html").is_file(), page
