"""The search page at / in a real headless browser: Debian's chromium driven by Playwright (sync API)
against `ragops serve` on 127.0.0.1 with a bearer token (given to the page as ?token=...). Type a query,
see results with titles, snippets and scores, see the answer whose citations link to its sources, and
claims marked supported or unsupported. The screenshot is kept as a test artifact:
<basetemp>/screenshots/search-page.png. A second server answers through the real `anthropic` SDK from the
local Messages-API stand-in, with one quoted claim and one made-up claim, scored by the build's trained
grounding scorer: the page marks the made-up one unsupported."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fake_anthropic import FakeAnthropic, Step

from .test_serve import TOKEN, Server, judging_server, serve_params

pytestmark = pytest.mark.integration
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def page_server(built_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from judging_server(built_project, tmp_path_factory.mktemp("serve-page"))


def test_search_page_in_a_real_browser(page_server: Server, tmp_path_factory: pytest.TempPathFactory) -> None:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (apt-get install chromium)", pytrace=False)
    shots = tmp_path_factory.getbasetemp() / "screenshots"
    shots.mkdir(exist_ok=True)
    query = "Does vitamin D deficiency increase the risk of fractures?"
    expected = httpx.post(
        f"{page_server.url}/search", json={"query": query, "top_k": 10}, headers={"Authorization": f"Bearer {TOKEN}"}
    ).json()["results"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1400})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{page_server.url}/?token={TOKEN}")
            assert "token=" not in page.url  # taken into localStorage, removed from the address
            page.wait_for_function("document.getElementById('model').textContent.includes('local')")
            assert page.locator("#token-box").is_hidden()
            # the mode list is the served build's: every mode it carries, its default first and marked
            options = page.locator("#mode option")
            values = [options.nth(i).get_attribute("value") for i in range(options.count())]
            assert values[0] == "hybrid" and set(values) == {"bm25", "dense", "hybrid", "dense_ft", "hybrid_ft",
                                                             "hybrid_rerank", "hybrid_ft_rerank"}
            assert options.nth(0).inner_text() == "hybrid (default)"
            page.fill("#query", query)
            page.click("#go")
            page.wait_for_selector("#results li.result", timeout=30_000)
            page.wait_for_selector("#answer:not([hidden])", timeout=60_000)
            page.screenshot(path=str(shots / "search-page.png"), full_page=True)

            items = page.locator("#results li.result")
            assert items.count() == 10
            assert [items.nth(i).get_attribute("data-doc-id") for i in range(10)] == [r["doc_id"] for r in expected]
            first = items.nth(0)
            assert first.locator(".title").inner_text() == expected[0]["title"]
            assert f"score {expected[0]['score']:.3f}" in first.locator(".meta").inner_text()
            assert first.locator(".snippet").inner_text().strip() == expected[0]["snippet"].strip()

            links = page.locator("#answer-text a.cite")
            assert links.count() >= 1
            for i in range(links.count()):
                target = links.nth(i).get_attribute("href")
                assert target.startswith("#src-") and page.locator(target).count() == 1  # a source it links to
            links.nth(0).click()
            assert page.url.endswith(links.nth(0).get_attribute("href"))
            claims = page.locator("#claims li")
            assert claims.count() >= 1
            for i in range(claims.count()):
                li = claims.nth(i)
                kind = li.get_attribute("class")
                assert kind in ("supported", "unsupported")
                assert ("✗ unsupported" if kind == "unsupported" else "✓ supported") in li.inner_text()
            flags = page.locator("#answer-text .flag").count()
            assert flags == page.locator("#claims li.unsupported").count()
            assert "claims supported" in page.locator("#support").inner_text()
            assert not errors, errors
        finally:
            browser.close()
    assert (shots / "search-page.png").stat().st_size > 10_000
    # Keep a copy outside the rotating basetemp when asked (CI uploads it).
    if os.environ.get("RAGOPS_SCREENSHOTS"):
        keep = Path(os.environ["RAGOPS_SCREENSHOTS"])
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copy2(shots / "search-page.png", keep / "search-page.png")


def test_judging_a_result_on_the_page_appends_it(page_server: Server) -> None:
    from playwright.sync_api import sync_playwright

    from ragops.eval.judgments import query_id, read

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (apt-get install chromium)", pytrace=False)
    query = "statins and cardiovascular risk"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{page_server.url}/?token={TOKEN}")
            page.wait_for_function("document.getElementById('model').textContent.includes('local')")
            page.uncheck("#want-answer")
            page.select_option("#mode", "bm25")
            page.fill("#query", query)
            page.click("#go")
            page.wait_for_selector("#results li.result", timeout=30_000)
            second = page.locator("#results li.result").nth(1)
            doc = second.get_attribute("data-doc-id")
            yes, no = second.locator("button.judge-yes"), second.locator("button.judge-no")
            assert yes.inner_text() == "relevant" and no.inner_text() == "not relevant"
            assert yes.get_attribute("aria-pressed") == "false"
            yes.click()
            page.wait_for_selector(f'li.result[data-doc-id="{doc}"][data-judged=relevant]', timeout=10_000)
            assert yes.get_attribute("aria-pressed") == "true" and no.get_attribute("aria-pressed") == "false"
            assert "judged relevant" in second.locator(".judge-note").inner_text()
            judged = read(page_server.judgments)
            row = judged[(judged["query_id"] == query_id(query)) & (judged["doc_id"] == doc)]
            assert row[["score", "by", "mode"]].values.tolist() == [[1, "page", "bm25"]]
            # a failure says why: with a wrong token the server answers 401 and the result shows the message
            page.evaluate("localStorage.setItem('ragops.token', 'wrong')")
            no.click()
            page.wait_for_selector("#results li.result .judge-note.error", timeout=10_000)
            assert "/judge: 401" in second.locator(".judge-note").inner_text()
            assert yes.get_attribute("aria-pressed") == "true"  # the recorded state stays
            assert len(read(page_server.judgments)) == len(judged)
            assert not errors, errors
        finally:
            browser.close()


MADE_UP = "Violins tuned to 432 Hz were recorded growing more slowly during the winter months"


def test_page_marks_a_made_up_claim_unsupported(built_project: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The answer comes from the real SDK against the local Messages-API server: the first sentence of the first
    document, quoted, then a made-up claim citing the same document. The trained scorer (the build's
    models/grounding, as served) must mark the made-up one, and the page must show it as such."""
    from playwright.sync_api import sync_playwright

    dest = tmp_path_factory.mktemp("serve-page-anthropic")
    script = [Step(text=f"{{first_sentence}} [{{first}}]. {MADE_UP} [{{first}}].")]
    with FakeAnthropic(script=script) as fake:
        params = serve_params(built_project, dest, answer={"generator": "anthropic", "scorer": "trained"})
        env = {"RAGOPS_API_TOKEN": TOKEN, "ANTHROPIC_API_KEY": "sk-page", "ANTHROPIC_BASE_URL": fake.url}
        server = Server(built_project, ["--model", "local", "--params", str(params)], env)
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                try:
                    page = browser.new_page(viewport={"width": 1200, "height": 1400})
                    page.goto(f"{server.url}/?token={TOKEN}")
                    page.fill("#query", "Does vitamin D deficiency increase the risk of fractures?")
                    page.click("#go")
                    page.wait_for_selector("#answer:not([hidden])", timeout=60_000)
                    page.wait_for_selector("#claims li", timeout=30_000)
                    claims = page.locator("#claims li")
                    texts = [claims.nth(i).inner_text() for i in range(claims.count())]
                    kinds = [claims.nth(i).get_attribute("class") for i in range(claims.count())]
                finally:
                    browser.close()
        finally:
            server.stop()
    assert len(fake.requests) == 1, "the page's question reached the Messages API once"
    made_up = [k for t, k in zip(texts, kinds, strict=True) if "432 Hz" in t]
    assert made_up == ["unsupported"], list(zip(texts, kinds, strict=True))
    assert any("✗ unsupported" in t for t in texts if "432 Hz" in t)
    # the quoted sentence is the document's own: supported
    assert kinds[0] == "supported", list(zip(texts, kinds, strict=True))
