"""The README's promises: two quickstart commands, and CI runs the test command."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quickstart_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_quickstart_is_two_commands_ingest_ask_and_tests():
    main_job, tests = quickstart_commands()
    assert "pgask ingest docs" in main_job and "pgask ask" in main_job
    assert "pytest" in tests and "[test]" in tests


def test_ci_runs_the_readme_test_command():
    _, tests = quickstart_commands()
    assert tests in (ROOT / ".ci" / "run").read_text()


def test_first_hour_uses_only_commands_and_options_that_exist():
    """Every `pgask ...` line of "Your first hour" parses: its command exists and its options are
    accepted (checked with --help appended, so nothing runs)."""
    from typer.testing import CliRunner

    from pgask.cli import app

    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Your first hour", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.+?)\n```", section, re.S).group(1)
    import shlex

    lines = [shlex.split(line.split("#", 1)[0]) for line in block.splitlines() if line.startswith("pgask")]
    assert len(lines) >= 5
    for words in lines:
        result = CliRunner().invoke(app, words[1:] + ["--help"])
        assert result.exit_code == 0, (words, result.output)


def test_no_machine_paths_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    assert not re.search(r"/work/|/tmp/(?!runtime)|/root/", readme), re.findall(r"\S*(?:/work/|/tmp/|/root/)\S*", readme)
