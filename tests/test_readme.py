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
