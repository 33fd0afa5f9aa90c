"""The chat UI: Streamlit's AppTest drives the script in-process; one real browser (Debian's chromium,
driven by Playwright) talks to `pgask ui` as a person would."""

import json
import os
import subprocess
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import pgask

from .openai_server import sse_chat
from .processes import PGASK, free_port, stop, wait_until_up

APP = str(Path(pgask.__file__).with_name("ui") / "app.py")
CHROMIUM = "/usr/bin/chromium"
TOMATO = "How often should tomato plants be watered?"


@pytest.fixture
def app(shared_kb, cli_env, monkeypatch):
    for name, value in {**cli_env, "PGASK_SCHEMA": shared_kb.schema}.items():
        monkeypatch.setenv(name, value)
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception
    return at


def ask(at: AppTest, question: str) -> AppTest:
    at.chat_input[0].set_value(question).run()
    assert not at.exception
    return at


def test_ui_answers_with_citations_and_expandable_sources(app):
    ask(app, TOMATO)
    user, assistant = app.chat_message
    assert user.name == "user" and user.markdown[0].value == TOMATO
    assert assistant.name == "assistant"
    answer = assistant.markdown[0].value
    assert "two or three times a week" in answer and "[1]" in answer
    labels = [e.label for e in app.expander]
    assert labels[0].startswith("[1] garden.md › The Gardener's Handbook > Watering > Tomatoes · similarity 0.")
    assert all(" · similarity " in label for label in labels) and len(labels) <= 5
    assert "Water tomato plants deeply" in app.expander[0].markdown[0].value
    assert app.sidebar.slider[0].value == 5 and app.sidebar.slider[1].value == 0.3
    assert "Extractive answers" in app.sidebar.caption[0].value


def test_ui_follow_up_shows_the_rewritten_question_and_new_conversation_clears(app):
    ask(app, "How do I care for my bicycle chain?")
    ask(app, "Which product should I use for it?")
    assert len(app.chat_message) == 4
    assert "degreaser" in app.chat_message[3].markdown[0].value
    assert "↪ searched for: Which product should I use for it? (care bicycle chain)" in [c.value for c in app.caption]

    app.sidebar.button[0].click().run()
    assert len(app.chat_message) == 0
    ask(app, "Which product should I use for it?")  # with no conversation, nothing to go on
    assert app.chat_message[1].markdown[0].value == "The documents do not answer this question."


def test_ui_settings_change_the_answer(app):
    app.sidebar.slider[0].set_value(1).run()
    ask(app, TOMATO)
    assert len(app.expander) == 1
    app.sidebar.slider[1].set_value(0.95).run()
    ask(app, TOMATO)
    assert app.chat_message[-1].markdown[0].value == "The documents do not answer this question."


def test_ui_search_mode_and_source_prefix_choose_the_passages(app):
    assert app.sidebar.selectbox[0].value == "hybrid"
    app.sidebar.selectbox[0].set_value("keyword").run()
    ask(app, "Which degreaser cleans a chain?")
    assert app.expander and all(e.label.split(" ")[1] == "bicycle.html" for e in app.expander)
    app.sidebar.selectbox[0].set_value("vector").run()
    app.sidebar.text_input[0].set_value("/no/such/folder/").run()
    ask(app, TOMATO)
    assert app.chat_message[-1].markdown[0].value == "The documents do not answer this question."


def test_ui_streams_a_written_answer_from_the_language_model(app, monkeypatch, httpserver):
    tokens = ["Water them deeply ", "two or three times ", "a week [1]."]
    httpserver.expect_request("/v1/chat/completions").respond_with_response(sse_chat(tokens))
    monkeypatch.setenv("PGASK_LLM_BASE_URL", httpserver.url_for("/v1"))
    monkeypatch.setenv("PGASK_LLM_MODEL", "test-model")
    app.run()
    assert app.sidebar.caption[0].value == "Answers written by test-model."
    ask(app, TOMATO)
    assert app.chat_message[1].markdown[0].value == "".join(tokens)
    assert app.expander[0].label.startswith("[1] garden.md")


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is absent: apt-get install -y chromium")
def test_browser_asks_and_sees_the_answer_and_a_source(shared_kb, cli_env):
    from playwright.sync_api import expect, sync_playwright

    port = free_port()
    env = {**os.environ, **cli_env, "PGASK_SCHEMA": shared_kb.schema}
    ui = subprocess.Popen([PGASK, "ui", "--port", str(port), "--json"], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    url = json.loads(ui.stdout.readline())["url"]  # and Streamlit's own messages go to stderr
    assert url == f"http://127.0.0.1:{port}"
    try:
        assert wait_until_up(ui, f"{url}/_stcore/health").status_code == 200
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                 args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
            try:
                page = browser.new_page(viewport={"width": 1100, "height": 900})
                page.goto(url)
                box = page.get_by_placeholder("Ask a question about your documents")
                box.fill(TOMATO, timeout=120_000)
                box.press("Enter")
                answer = page.get_by_test_id("stChatMessage").nth(1)
                # the first question loads the model in the UI's process: allow for it
                expect(answer).to_contain_text("two or three times a week", timeout=240_000)
                source = page.get_by_test_id("stExpander").first
                expect(source).to_contain_text("[1] garden.md › The Gardener's Handbook > Watering > Tomatoes")
                source.get_by_text("[1] garden.md").click()
                expect(source).to_contain_text("Water tomato plants deeply")
            finally:
                browser.close()
    finally:
        stdout, _ = stop(ui)
    assert stdout == ""
