"""The session-aware feed in real headless Chromium against the running stack (processes, Redis).

Pick a customer; choose a product type that their feed has candidates of but hardly shows on
its first page; show only that type (the page's filter), click three of its cards (each click
opens the detail view and is recorded by POST /events; one is added to the cart); clear the
filter: the next feed shows more of that type, and says why ("because you viewed ...").
Screenshots go to ``test-artifacts/browser/``.
"""

from __future__ import annotations

from collections import Counter

import httpx
import pytest

from .test_browser import ALL_PHOTOS_LOADED, SETTLED, SHOTS, _cards, browser_page  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def _type_to_browse(gateway: str, customer_id: str) -> tuple[str, int]:
    """(a product type with >= 6 candidates in the feed but the fewest on its first page, how many there)."""
    feed = httpx.get(gateway + "/recommend", params={"customer_id": customer_id, "k": 100}, timeout=30).json()
    first = Counter(i["product_type"] for i in feed["items"][:12])
    deep = Counter(i["product_type"] for i in feed["items"])
    options = [t for t, n in deep.items() if n >= 6]
    assert options, deep
    chosen = min(options, key=lambda t: (first[t], -deep[t], t))
    return chosen, first[chosen]


def _close_and_wait_for_the_feed(page) -> None:
    with page.expect_response(lambda r: "/recommend" in r.url and r.status == 200):
        page.get_by_test_id("detail-close").click()
    page.wait_for_function(SETTLED)


def test_three_clicks_on_one_type_shift_the_next_feed(browser_page, stack, customers):  # noqa: F811
    page = browser_page
    customer_id = customers[3]
    product_type, shown_before = _type_to_browse(stack.gateway, customer_id)
    page.goto(stack.gateway + "/")
    page.wait_for_selector("[data-testid=facet-product_type_name]")
    page.get_by_test_id("customer-input").fill(customer_id)
    with page.expect_response(lambda r: "/recommend" in r.url and r.status == 200):
        page.get_by_test_id("customer-input").press("Enter")
    page.wait_for_function(ALL_PHOTOS_LOADED, arg=12)
    before = _cards(page)
    assert sum(c["type"] == product_type for c in before) == shown_before
    assert page.get_by_test_id("because").is_hidden()

    with page.expect_response(lambda r: "/recommend" in r.url and r.status == 200):
        page.get_by_test_id("facet-product_type_name").select_option(product_type)
    page.wait_for_function(SETTLED)
    clicked: list[str] = []
    names: list[str] = []
    for i in range(3):
        card = next(c for c in _cards(page) if c["id"] not in clicked)
        assert card["type"] == product_type
        with page.expect_response(lambda r: r.url.endswith("/events") and r.status == 202):
            page.locator(f"[data-testid=card][data-article-id='{card['id']}']").click()
        assert page.get_by_test_id("detail").is_visible()
        names.append(page.get_by_test_id("detail-name").inner_text())
        assert names[-1]
        if i == 0:
            with page.expect_response(lambda r: r.url.endswith("/events") and r.status == 202):
                page.get_by_test_id("add-to-cart").click()
            assert page.get_by_test_id("add-to-cart").inner_text() == "In your cart"
            page.screenshot(path=str(SHOTS / "07_detail_add_to_cart.png"))
        clicked.append(card["id"])
        _close_and_wait_for_the_feed(page)

    with page.expect_response(lambda r: "/recommend" in r.url and r.status == 200):
        page.get_by_test_id("clear-filters").click()
    page.wait_for_function(SETTLED)
    page.wait_for_function(ALL_PHOTOS_LOADED, arg=12)
    page.screenshot(path=str(SHOTS / "08_feed_after_three_clicks.png"), full_page=True)
    after = _cards(page)
    shown_after = sum(c["type"] == product_type for c in after)
    print(f"[session feed] {product_type}: {shown_before} of 12 before, {shown_after} of 12 after 3 clicks")
    assert shown_after >= shown_before + 2, (product_type, [c["type"] for c in after])
    because = page.get_by_test_id("because").inner_text()
    assert because.startswith("Because you viewed and carted:"), because
    # the session's strongest article (the carted one: 3.0 + 1.0 against 1.0) is named first
    assert because.split(": ", 1)[1].startswith(names[0]), (because, names)
    status = page.get_by_test_id("status").inner_text()
    assert "fresh" in status  # the session changed the cache key: not the feed cached before the clicks
