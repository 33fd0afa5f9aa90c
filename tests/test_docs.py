"""The documentation against the CLI, in the style of sqlite-utils' test_docs.py: every command and
every option appears in the docs (README.md, docs/*.md), and the README's command table lists
exactly the CLI's commands, with no option a command does not have."""

import re
from pathlib import Path

import pytest
import typer.main

from pgask.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCS = "\n".join([README] + [p.read_text(encoding="utf-8") for p in sorted((ROOT / "docs").glob("*.md"))])
GROUP = typer.main.get_command(app)
COMMANDS = {name: command for name, command in GROUP.commands.items() if not command.hidden}
# documented once for all commands, under the table
EVERY_COMMAND = {"--json", "--help", "-h"}


def options(command) -> set[str]:
    """The option names a command accepts (hidden ones, kept for old spellings, left out)."""
    return {name for param in command.params if param.param_type_name == "option" and not param.hidden
            for name in param.opts + param.secondary_opts}


def table_rows() -> dict[str, list[str]]:
    """The README's command table: command name -> the text of its rows' first column."""
    section = README.split("## Commands", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, list[str]] = {}
    for line in section.splitlines():
        if line.startswith("| `pgask "):
            first = line.split(" | ", 1)[0]
            rows.setdefault(first.split()[2].strip("`"), []).append(first)
    return rows


def test_the_command_table_lists_every_command_and_no_other():
    assert sorted(table_rows()) == sorted(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_command_table_names_only_options_the_command_has(name):
    named = {word for row in table_rows().get(name, []) for word in re.findall(r"(?<![\w-])--?[a-z][\w-]*", row)}
    assert named - options(COMMANDS[name]) == set()


@pytest.mark.parametrize("name, option", sorted((name, option) for name, command in COMMANDS.items()
                                                for option in options(command) - EVERY_COMMAND))
def test_every_option_is_documented(name, option):
    assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", DOCS), f"pgask {name} {option} is in no doc"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_is_documented(name):
    assert f"pgask {name}" in DOCS


def test_options_every_command_takes_are_said_once():
    assert all("--json" in options(command) for command in COMMANDS.values())
    assert GROUP.context_settings["help_option_names"] == ["-h", "--help"]
    assert "Every command takes `--json` and `-h`/`--help`" in README
