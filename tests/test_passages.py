"""An answer cites each passage once and never a page that only lists other pages."""

import json

import pytest
from typer.testing import CliRunner

from pgask.cli import app
from pgask.passages import distinct, is_navigation
from pgask.search import Hit

from .helpers import write


TOC = "- Utility Guide\n\n- About the Utilities\n\n- analyzedb\n\n- gpstart\n\n- gpstop\n\n- gpstate\n\n- pg_dump\n"
TOPICS = ("Securing the database includes protecting access through network configuration.\n\n"
          "- Configuring Client Authentication\nThis topic explains how to configure client connections.\n\n"
          "- Managing Roles\nRoles and permissions are administered with SQL statements.\n\n"
          "Parent topic: Administrator Guide")


@pytest.mark.parametrize("text, navigation", [
    (TOC, True),
    ("-\n\nTomatoes\n\n-\n\nWatering\n\n-\n\nPests\n\n-\n\nLettuce\n\n-\n\nHerbs\n", True),  # a loose list
    ("Parent topic: Guide\n- One\n- Two\n- Three\n- Four\n", True),
    (TOPICS, False),  # a list whose items say something
    ("Water tomato plants deeply two or three times a week, at the base of the stem.", False),
    ("- a\n- b\n- c\n", False),  # too short to tell
    ("- Run gpstart.\n- Run gpstop.\n- Check gpstate.\n- Dump with pg_dump.\n- Restore with pg_restore.\n", False),
])
def test_navigation_pages_are_told_from_content(text, navigation):
    assert is_navigation(text) is navigation


def hit(n: int, content: str) -> Hit:
    return Hit(document_id=n, chunk_id=n, source=f"/d/{n}.md", title="", heading="", content=content, similarity=0.5)


def test_distinct_keeps_the_best_ranked_of_repeated_passages():
    hits = [hit(1, "Water tomatoes deeply.  Twice a week."), hit(2, "water tomatoes deeply. twice a week."),
            hit(3, "Twice a week."), hit(4, "Lettuce needs light watering.")]
    assert [h.document_id for h in distinct(hits)] == [1, 4]


def test_ask_cites_no_table_of_contents_and_no_passage_twice(cli_env, tmp_path):
    docs = tmp_path / "docs"
    tomato = "# Tomatoes\n\nWater tomato plants deeply two or three times a week, early in the morning.\n"
    write(docs / "garden.md", tomato)
    write(docs / "copy" / "garden.md", tomato)  # the same page stored twice
    write(docs / "toc.md", "- Tomatoes\n\n- Watering tomato plants\n\n- Tomato pests\n\n- Lettuce\n\n- Herbs\n\n"
                           "- Tomato varieties\n")
    runner = CliRunner()
    assert runner.invoke(app, ["ingest", str(docs)], env=cli_env).exit_code == 0
    search = json.loads(runner.invoke(app, ["search", "watering tomato plants", "--json"], env=cli_env).stdout)
    assert any(r["source"].endswith("toc.md") for r in search["results"])  # search still finds the page
    result = runner.invoke(app, ["ask", "How often should tomato plants be watered?", "--json"], env=cli_env)
    assert result.exit_code == 0, result.output
    sources = json.loads(result.stdout)["sources"]
    assert sources and not any(s["source"].endswith("toc.md") for s in sources)
    contents = [" ".join(s["content"].split()) for s in sources]
    assert len(contents) == len(set(contents))
    assert json.loads(result.stdout)["answer"].count("two or three times a week") == 1
