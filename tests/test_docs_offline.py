"""/docs works offline: Swagger UI's files come from this server (the swagger-ui-bundle package), not a CDN."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pgask.api import DOCS_ASSETS, create_app
from pgask.config import Secret
from pgask.kb import KnowledgeBase

from .processes import free_port, stop, wait_until_up

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def client(home):
    with KnowledgeBase(home=home, schema="m_docs", api_token=Secret("docs-token-1234")) as kb:
        yield TestClient(create_app(kb))


def test_docs_page_references_only_this_server_and_the_files_are_served(client):
    page = client.get("/docs")  # no token: the page and its files are public
    assert page.status_code == 200
    urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", page.text)
    assert urls, page.text
    assert all(u.startswith("/") and not u.startswith("//") for u in urls), urls
    assert not re.search(r"https?://", page.text), page.text
    for name, kind in (("swagger-ui-bundle.js", "javascript"), ("swagger-ui.css", "css")):
        assert f"{DOCS_ASSETS}/{name}" in urls
        asset = client.get(f"{DOCS_ASSETS}/{name}")
        assert asset.status_code == 200 and kind in asset.headers["content-type"]
        assert len(asset.content) > 10_000  # the real file, not an error page
    assert client.get("/openapi.json").json()["info"]["title"] == "pgask"
    assert client.get(f"{DOCS_ASSETS}/../../v1/models").status_code in (401, 404)  # no way out of the folder
    assert client.get("/redoc").status_code in (401, 404)  # ReDoc exists only as a CDN build: not offered


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is absent: apt-get install -y chromium")
def test_browser_renders_the_docs_with_every_outside_request_blocked(cli_env):
    from playwright.sync_api import expect, sync_playwright

    port = free_port()
    env = {**os.environ, **cli_env, "PGASK_SCHEMA": "m_docs_browser"}
    server = subprocess.Popen([sys.executable, "-m", "pgask", "serve", "--port", str(port), "--json"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = json.loads(server.stdout.readline())["docs"]
    outside: list[str] = []
    try:
        assert wait_until_up(server, url).status_code == 200
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                 args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
            try:
                page = browser.new_page()

                def only_local(route):
                    if route.request.url.startswith(f"http://127.0.0.1:{port}/"):
                        return route.continue_()
                    outside.append(route.request.url)
                    return route.abort()

                page.route("**/*", only_local)
                page.goto(url)
                expect(page.locator(".swagger-ui .info .title")).to_contain_text("pgask", timeout=60_000)
                expect(page.locator(".opblock-summary-path").first).to_be_visible()
                assert page.get_by_text("/v1/search", exact=True).count() >= 1
            finally:
                browser.close()
    finally:
        stop(server)
    assert outside == []
