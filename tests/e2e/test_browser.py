"""The web page in real headless Chromium against the running stack (processes, real Redis).

Steps: pick a customer -> 12 photos; text search "dress" -> dresses; upload a real H&M
photo -> results; apply a colour filter -> every shown item has that colour; clear -> the
same feed as before. A screenshot of each step goes to ``test-artifacts/browser/``.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import ARTIFACTS

pytestmark = [pytest.mark.browser, pytest.mark.integration]

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = ARTIFACTS / "browser"
TIMEOUT_MS = 30_000
ALL_PHOTOS_LOADED = """(n) => {
  const imgs = [...document.querySelectorAll('[data-testid=card-image]')];
  return imgs.length === n && imgs.every((i) => i.complete && i.naturalWidth > 0);
}"""
SETTLED = "() => document.getElementById('loading').hidden"
page_errors: list[str] = []  # uncaught JavaScript errors on the page


@pytest.fixture(scope="module")
def browser_page(stack) -> Iterator:
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium not found at {CHROMIUM}; enable this test with: apt-get install -y chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    user_data = tempfile.mkdtemp(prefix="hm_chromium_")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            user_data,
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
            ],
            # Tall enough that all 12 lazily loaded photos are in view.
            viewport={"width": 1280, "height": 2200},
        )
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        page_errors.clear()
        page.on("pageerror", lambda exc: page_errors.append(str(exc)))
        try:
            yield page
        finally:
            context.close()
            shutil.rmtree(user_data, ignore_errors=True)


def _cards(page) -> list[dict[str, str]]:
    return page.eval_on_selector_all(
        "[data-testid=card]",
        "cards => cards.map(c => ({id: c.dataset.articleId, type: c.dataset.productType, colour: c.dataset.colour,"
        " meta: c.querySelector('.meta').textContent}))",
    )


def _colour_of(hm_sample_dir: Path, article_id: str) -> str:
    import pandas as pd

    articles = pd.read_csv(
        hm_sample_dir / "articles.csv", dtype={"article_id": str}, usecols=["article_id", "colour_group_name"]
    )
    return str(articles.loc[articles["article_id"] == article_id, "colour_group_name"].iloc[0])


def _shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_pick_search_upload_filter_clear(browser_page, stack, hm_sample_dir):
    page = browser_page
    page.goto(stack.gateway + "/")
    page.wait_for_selector("[data-testid=facet-colour_group_name]")  # facets came from the gateway

    # 1. Pick a customer from the type-ahead: their feed, 12 photos.
    page.get_by_test_id("customer-input").click()
    option = page.get_by_test_id("customer-option").first
    option.wait_for()
    customer_id = option.get_attribute("data-customer-id")
    with page.expect_response(lambda r: "/recommend" in r.url and r.status == 200):
        option.click()
    page.wait_for_function(ALL_PHOTOS_LOADED, arg=12)
    page.wait_for_function(SETTLED)
    _shot(page, "01_customer_feed")
    feed = _cards(page)
    assert len(feed) == 12
    assert "source: ranker" in page.get_by_test_id("status").inner_text()
    assert customer_id[:10] in page.get_by_test_id("results-title").inner_text()

    # 2. Text search "dress": the results are dresses, and the card says so.
    page.get_by_test_id("search-input").fill("dress")
    with page.expect_response(lambda r: r.url.endswith("/search") and r.status == 200):
        page.get_by_test_id("search-button").click()
    page.wait_for_function(SETTLED)
    page.wait_for_function(ALL_PHOTOS_LOADED, arg=len(_cards(page)))
    _shot(page, "02_text_search_dress")
    found = _cards(page)
    assert len(found) == 12  # the tiny world has well over 12 dresses
    dresses = [c for c in found if c["type"] == "Dress"]
    assert all(c["type"] == "Dress" for c in found[:6]), [c["type"] for c in found]
    assert len(dresses) >= 10, [c["type"] for c in found]
    assert all("Dress" in c["meta"] for c in dresses)  # shown on the card, not only in data attributes

    # 3. Upload a real H&M photo: similar articles appear, with a preview of the upload.
    photo = sorted((hm_sample_dir / "images").rglob("*.jpg"))[0]
    photo_colour = _colour_of(hm_sample_dir, photo.stem)
    with page.expect_response(lambda r: r.url.endswith("/search") and r.status == 200, timeout=60_000):
        page.get_by_test_id("image-input").set_input_files(str(photo))
    page.wait_for_function(SETTLED)
    similar = _cards(page)
    assert len(similar) >= 1
    page.wait_for_function(ALL_PHOTOS_LOADED, arg=len(similar))
    assert page.get_by_test_id("image-preview").is_visible()
    assert "photo" in page.get_by_test_id("results-title").inner_text().lower()
    _shot(page, "03_image_search")
    # Visually similar: the synthetic photos share colour with the real one (a black
    # garment finds black ones), so most results have the uploaded article's colour.
    same_colour = [c for c in similar if c["colour"] == photo_colour]
    assert len(same_colour) >= 0.75 * len(similar), (photo_colour, [c["colour"] for c in similar])

    # 4. Filter by a colour none of the results has: the grid changes, every item has it.
    options = page.eval_on_selector_all(
        "[data-testid=facet-colour_group_name] option", "opts => opts.map(o => o.value).filter(v => v)"
    )
    colour = next(v for v in options if v not in {c["colour"] for c in similar})
    with page.expect_response(lambda r: r.url.endswith("/search") and r.status == 200, timeout=60_000):
        page.get_by_test_id("facet-colour_group_name").select_option(colour)
    page.wait_for_function(SETTLED)
    filtered = _cards(page)
    _shot(page, "04_filter_colour")
    assert len(filtered) >= 1
    assert {c["colour"] for c in filtered} == {colour}
    assert all(colour in c["meta"] for c in filtered)
    assert page.get_by_test_id("image-preview").is_visible()  # still a photo search, now filtered

    # 5. Clear the filter and the search: the customer's feed is back, as it was.
    with page.expect_response(lambda r: r.url.endswith("/search") and r.status == 200, timeout=60_000):
        page.get_by_test_id("clear-filters").click()
    with page.expect_response(lambda r: "/recommend" in r.url and r.status == 200):
        page.get_by_test_id("clear-search").click()
    page.wait_for_function(SETTLED)
    page.wait_for_function(ALL_PHOTOS_LOADED, arg=12)
    _shot(page, "05_cleared_back_to_feed")
    assert [c["id"] for c in _cards(page)] == [c["id"] for c in feed]
    assert page.get_by_test_id("image-preview").is_hidden()
    assert page.get_by_test_id("error").is_hidden()
    assert page_errors == []


def test_page_at_phone_width_shows_the_feed(browser_page, stack, customers):
    """The same page at 390 px wide: a customer's feed still renders, nothing overflows sideways."""
    page = browser_page
    page.set_viewport_size({"width": 390, "height": 3000})
    try:
        page.goto(stack.gateway + "/")
        page.get_by_test_id("customer-input").fill(customers[1])
        with page.expect_response(lambda r: "/recommend" in r.url and r.status == 200):
            page.get_by_test_id("customer-input").press("Enter")
        page.wait_for_function(ALL_PHOTOS_LOADED, arg=12)
        _shot(page, "06_phone_width_feed")
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"page is {overflow}px wider than a phone screen"
    finally:
        page.set_viewport_size({"width": 1280, "height": 2200})


def test_the_page_says_what_is_still_warming_up(browser_page, stack):
    """A live `hmrec run` record with full-quality training still running: the page shows a
    notice naming it; once the record is gone (full quality reached), a fresh page shows none."""
    import json
    import os
    import socket

    page = browser_page
    record = stack.output_dir / "warmup.json"
    steps = [{"name": "photo index", "state": "done"}, {"name": "ranker (full)", "state": "running"}]
    record.write_text(
        json.dumps({"phase": "full_quality", "pid": os.getpid(), "host": socket.gethostname(), "steps": steps})
    )
    try:
        page.goto(stack.gateway + "/")
        notice = page.get_by_test_id("warming")
        notice.wait_for(state="visible")
        assert "a quick model serves the feed" in notice.inner_text()
        assert "training the ranker now" in notice.inner_text()
        _shot(page, "07_warming_up")
    finally:
        record.unlink()
    with page.expect_response(lambda r: r.url.endswith("/status") and r.status == 200):
        page.goto(stack.gateway + "/")
    page.wait_for_timeout(300)
    assert page.get_by_test_id("warming").is_hidden()
    assert page_errors == []


DROP_FILE = """async ([b64, name]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const data = new DataTransfer();
  data.items.add(new File([bytes], name, { type: "image/jpeg" }));
  const zone = document.querySelector("[data-testid=drop-zone]");
  for (const type of ["dragenter", "dragover", "drop"]) {
    zone.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: data }));
  }
}"""


def test_drop_a_photo_page_through_the_feed_and_see_degraded_notice(browser_page, live_stack, customers, hm_sample_dir):
    """Drag-and-drop search, paging, and the notice the page shows when the ranker is down."""
    import base64

    page = browser_page
    page.goto(live_stack.gateway + "/")
    page.get_by_test_id("customer-input").fill(customers[2])
    with page.expect_response(lambda r: "/recommend" in r.url and r.status == 200):
        page.get_by_test_id("customer-input").press("Enter")
    page.wait_for_function(ALL_PHOTOS_LOADED, arg=12)
    first_page = [c["id"] for c in _cards(page)]

    # Paging: the next page is 12 other articles of the same feed.
    with page.expect_response(lambda r: "offset=12" in r.url and r.status == 200):
        page.get_by_test_id("pager-next").click()
    page.wait_for_function(SETTLED)
    second_page = [c["id"] for c in _cards(page)]
    assert second_page and not set(second_page) & set(first_page)
    assert page.get_by_test_id("page-label").inner_text().startswith("Page 2 of ")
    _shot(page, "07_feed_page_2")

    # Drag-and-drop a real photo onto the drop zone: a photo search with a preview.
    photo = sorted((hm_sample_dir / "images").rglob("*.jpg"))[1]
    payload = base64.b64encode(photo.read_bytes()).decode()
    with page.expect_response(lambda r: r.url.endswith("/search") and r.status == 200, timeout=60_000):
        page.evaluate(DROP_FILE, [payload, photo.name])
    page.wait_for_function(SETTLED)
    assert len(_cards(page)) >= 1
    assert page.get_by_test_id("image-preview").is_visible()
    _shot(page, "08_dropped_photo_search")
    with page.expect_response(lambda r: "/recommend" in r.url and r.status == 200):
        page.get_by_test_id("clear-search").click()
    page.wait_for_function(SETTLED)

    # The ranker goes down: the feed still shows 12 items, and the page says it is degraded.
    live_stack.stop("ranker")
    page.get_by_test_id("customer-input").fill(customers[3])
    with page.expect_response(lambda r: "/recommend" in r.url and r.status == 200):
        page.get_by_test_id("customer-input").press("Enter")
    page.wait_for_function(SETTLED)
    page.wait_for_function(ALL_PHOTOS_LOADED, arg=12)
    notice = page.get_by_test_id("notice-degraded")
    assert notice.is_visible()
    assert "ranker" in notice.inner_text()
    assert "source: candidates" in page.get_by_test_id("status").inner_text()
    _shot(page, "09_degraded_ranker_down")
    assert page_errors == []
