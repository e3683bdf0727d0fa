"""The README and the documentation site (docs/, mkdocs.yml) stay true to the code: every `embedkit` command
they show parses with the CLI as it is, their relative links lead to files that exist, every page of the site's
navigation exists, and the README stays a front door (250 lines at most). `make docs` (mkdocs --strict, in CI)
checks the site's own links and API references; tests/config/test_reference.py keeps the recipe reference page
generated."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"```(?:bash|sh|shell)\n(.*?)```", re.S)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def shown_commands(text: str) -> list[str]:
    """The `embedkit ...` command lines of a page's shell blocks, continuation lines joined, comments dropped."""
    commands = []
    for block in BLOCK.findall(text):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            line = line.strip()
            if line.startswith("embedkit ") or line.startswith("torchrun ") and " -m embedkit " in line:
                commands.append(line.split(" -m embedkit ", 1)[-1].removeprefix("embedkit "))
    return commands


def _page_commands() -> list[tuple[str, str]]:
    return [(page.relative_to(ROOT).as_posix(), command) for page in PAGES
            for command in shown_commands(page.read_text(encoding="utf-8"))]


def test_shown_commands_are_found():
    shown = [command for _, command in _page_commands()]
    assert len(shown) > 30 and any(c.startswith("quickstart ") for c in shown)
    assert shown_commands("```bash\nembedkit eval --model m \\\n    --data d  # a comment\n```") == [
        "eval --model m  --data d  # a comment"]


@pytest.mark.parametrize("page, command", _page_commands())
def test_every_shown_command_parses(page, command):
    from embedkit.cli import build_parser

    words = shlex.split(command, comments=True)
    words = [w for w in words if w not in ("|", "&&")][:next((i for i, w in enumerate(words) if w in ("|", "&&")),
                                                           len(words))]
    try:
        build_parser().parse_args(words)
    except SystemExit as exc:
        pytest.fail(f"{page}: `embedkit {command}` does not parse (exit {exc.code})")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_lead_to_files(page):
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)  # outputs shown are not links
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        if not path.exists():
            broken.append(target)
    assert broken == [], f"{page.name}: links to missing files {broken}"


def test_the_navigation_names_pages_that_exist():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))

    def pages(nav):
        for entry in nav:
            for value in (entry.values() if isinstance(entry, dict) else [entry]):
                yield from pages(value) if isinstance(value, list) else [value]

    named = list(pages(config["nav"]))
    assert "reference/recipe.md" in named and "measurements/index.md" in named
    assert [p for p in named if not (ROOT / "docs" / p).is_file()] == []


def test_the_readme_is_a_front_door():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    assert "make quickstart" in readme and "make test" in readme and "docs/getting-started.md" in readme
