"""The docs keep up with the code: every command and option is in the CLI reference
(docs/cli.md, generated from --help), every relative link of README.md and docs/ leads to a file
and heading that exist, and every roomsync command the docs show parses as written."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import click
import pytest

from etl.cli import main

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
REGENERATE = ".venv/bin/python docs/generate_cli.py > docs/cli.md"


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_cli", DOCS / "generate_cli.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GENERATOR = load_generator()


# --------------------------------------------------------------------------- the CLI reference


def squeeze(text: str) -> str:
    """Text without any whitespace: help wrapped at any width (even inside a hyphenated word)
    still matches the help text it came from."""
    return "".join(text.split())


def sections(reference: str) -> dict[str, str]:
    """docs/cli.md's text under each `## roomsync ...` heading, by heading."""
    parts = re.split(r"^## (roomsync\b.*)$", reference, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def listed_options(section: str) -> set[str]:
    """The option spellings in the first column of a section's `Options:` table (not those
    merely named in a help text): `-v, --verbose`, `--timeout FLOAT`, `--x / --no-x`."""
    table = section.partition("\nOptions:\n")[2].partition("\n\n")[0]
    spellings: set[str] = set()
    for line in table.splitlines():
        if line.startswith("  -"):
            first_column = re.split(r"\s{2,}", line.strip())[0]
            spellings.update(w for w in re.split(r"[ ,/]+", first_column) if w.startswith("-"))
    return spellings


def missing_from(reference: str) -> list[str]:
    """What docs/cli.md lacks: commands, their help, options (every spelling) and their help,
    arguments; one line per thing missing."""
    by_heading = sections(reference)
    missing: list[str] = []
    for path, command, ctx in GENERATOR.walk(main):
        section = by_heading.get(path)
        if section is None:
            missing.append(f"command `{path}`")
            continue
        text = squeeze(section)
        if command.help and squeeze(command.help.split("\n\n")[0]) not in text:
            missing.append(f"`{path}`: its help text")
        for param in command.get_params(ctx):
            if isinstance(param, click.Option):
                if param.hidden:
                    continue
                listed = listed_options(section)
                missing += [
                    f"`{path}`: option {spelling}"
                    for spelling in (*param.opts, *param.secondary_opts)
                    if spelling not in listed
                ]
                if param.help and squeeze(param.help) not in text:
                    missing.append(f"`{path}`: the help of {param.opts[-1]}")
            elif (
                isinstance(param, click.Argument)
                and param.human_readable_name.upper() not in section
            ):
                missing.append(f"`{path}`: argument {param.human_readable_name}")
    return missing


def test_every_command_and_option_is_in_the_cli_reference() -> None:
    missing = missing_from((DOCS / "cli.md").read_text(encoding="utf-8"))
    assert not missing, (
        "docs/cli.md is out of date; it lacks:\n  "
        + "\n  ".join(missing)
        + f"\nRegenerate it (from the repository's root): {REGENERATE}"
    )


def test_the_reference_check_sees_a_missing_command_option_or_help() -> None:
    reference = GENERATOR.render()
    assert missing_from(reference) == []
    without_flag = reference.replace("  --via-list  ", "  --via-lis   ")  # named in a help too
    assert missing_from(without_flag) == ["`roomsync backfill`: option --via-list"]
    cut = sections(reference)["roomsync db current"]
    assert missing_from(reference.replace(cut, "\n")) == [
        "`roomsync db current`: its help text",
        "`roomsync db current`: option --json",
        "`roomsync db current`: the help of --json",
        "`roomsync db current`: option --database-url",
        "`roomsync db current`: the help of --database-url",
        "`roomsync db current`: option --env-file",
        "`roomsync db current`: the help of --env-file",
        "`roomsync db current`: option --log-format",
        "`roomsync db current`: the help of --log-format",
        "`roomsync db current`: option -v",
        "`roomsync db current`: option --verbose",
        "`roomsync db current`: the help of --verbose",
        "`roomsync db current`: option -q",
        "`roomsync db current`: option --quiet",
        "`roomsync db current`: the help of --quiet",
        "`roomsync db current`: option -h",
        "`roomsync db current`: option --help",
        "`roomsync db current`: the help of --help",
    ]
    renamed = reference.replace("## roomsync report\n", "## roomsync reports\n")
    assert missing_from(renamed) == ["command `roomsync report`"]


def test_the_reference_is_what_help_prints() -> None:
    """Its text is what `roomsync ... --help` prints on a terminal of 80 columns (a real
    process: click's test runner forces its own width)."""
    reference = sections(GENERATOR.render())
    for args in (["backfill"], ["db", "upgrade"]):
        done = subprocess.run(
            [sys.executable, "-m", "etl", *args, "--help"],
            capture_output=True,
            text=True,
            env={**os.environ, "COLUMNS": "80"},
            timeout=60,
            check=True,
        )
        assert done.stdout.rstrip() in reference[f"roomsync {' '.join(args)}"]


# --------------------------------------------------------------------------- links


def without_code_blocks(markdown: str) -> str:
    return re.sub(r"^```.*?^```", "", markdown, flags=re.MULTILINE | re.DOTALL)


def prose(markdown: str) -> str:
    """Markdown without fenced code blocks and code spans, where a link is not a link."""
    return re.sub(r"`[^`\n]*`", "", without_code_blocks(markdown))


def anchors(markdown: str) -> set[str]:
    """The ids GitHub gives the headings of a page (duplicates get -1, -2, ...)."""
    seen: dict[str, int] = {}
    found = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *$", without_code_blocks(markdown), re.M):
        text = heading.replace("`", "").lower()
        slug = "".join(c for c in text if c.isalnum() or c in " -_").replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def broken_links(page: Path, root: Path = ROOT) -> Iterator[str]:
    """Each relative link of `page` whose file, or heading, does not exist."""
    text = page.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", prose(text)):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        file_part, _, anchor = target.partition("#")
        linked = (page.parent / file_part).resolve() if file_part else page
        if not linked.exists():
            yield f"{page.relative_to(root)}: {target} (no such file)"
        elif (
            anchor
            and linked.suffix == ".md"
            and anchor not in anchors(linked.read_text(encoding="utf-8"))
        ):
            yield f"{page.relative_to(root)}: {target} (no such heading)"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_lead_to_files_and_headings_that_exist(page: Path) -> None:
    assert list(broken_links(page)) == []


def test_the_link_check_sees_a_broken_link(tmp_path: Path) -> None:
    (tmp_path / "there.md").write_text("# A page\n\n## Its part\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](there.md) [ok](there.md#its-part) [ok](#here) [web](https://example.com/x)\n"
        "`[code](nowhere.md)`\n\n## Here\n\n"
        "[gone](gone.md) [no part](there.md#nothing) [no here](#there)\n"
    )
    assert list(broken_links(page, tmp_path)) == [
        "page.md: gone.md (no such file)",
        "page.md: there.md#nothing (no such heading)",
        "page.md: #there (no such heading)",
    ]


# --------------------------------------------------------------------------- commands shown


def shown_commands(page: Path) -> Iterator[list[str]]:
    """The arguments of every `roomsync` (or `.../bin/roomsync`) command in the page's sh
    blocks, one list per command (`a && b` is two), comments left out."""
    text = page.read_text(encoding="utf-8")
    for block in re.findall(r"^```sh\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL):
        for line in block.splitlines():
            lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            words: list[str] = []
            for token in [*lexer, "&&"]:
                if token in ("&&", "||", "|", ";", "&"):
                    if words and (words[0] == "roomsync" or words[0].endswith("/bin/roomsync")):
                        yield words[1:]
                    words = []
                else:
                    words.append(token)


def test_the_commands_the_docs_show_parse_as_written() -> None:
    shown = [(page, args) for page in PAGES for args in shown_commands(page)]
    assert len(shown) > 30  # the README's and the manual's examples were found
    for page, args in shown:
        command: click.Command = main
        rest = list(args)
        while isinstance(command, click.Group) and rest and rest[0] in command.commands:
            command = command.commands[rest.pop(0)]
        assert not isinstance(command, click.Group), (page.name, args)
        try:
            command.make_context(command.name or "roomsync", rest)
        except click.ClickException as exc:
            pytest.fail(f"{page.relative_to(ROOT)}: roomsync {shlex.join(args)}: {exc}")


def test_the_newcomer_commands_are_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    demo = "python3 -m venv .venv && .venv/bin/pip install -q -e . && .venv/bin/roomsync demo"
    assert f"```sh\n{demo}\n```" in readme
    assert "```sh\nbash tests/run.sh\n```" in readme


def test_every_python_api_function_is_in_its_page() -> None:
    from etl import api

    page = (DOCS / "python-api.md").read_text(encoding="utf-8")
    undocumented = [name for name in api.__all__ if f"`api.{name}(" not in page]
    assert undocumented == [], f"add them to docs/python-api.md's table: {undocumented}"
