"""The state page (/_local/) and Swagger UI in a real headless Chromium (Debian's `chromium` and
`chromium-driver`, installed by `make browser`): an order placed through the API appears on the page
by itself, with its status; Swagger UI renders from the local cloud alone. A screenshot of the page is
written to build/localcloud-state.png (the README shows one)."""

from __future__ import annotations

import shutil
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localcloud.client import StoreClient, wait_for
from localcloud.cloud import LocalCloud
from localcloud.pages import SWAGGER_FILES

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SCREENSHOT = Path(__file__).resolve().parents[2] / "build" / "localcloud-state.png"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip(
            "headless Chromium is not installed: run `make browser` (Debian's chromium, chromium-driver)"
        )
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium is not installed: run `make install`"
    )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # Offline: no background requests to the internet (this machine has none); loopback only.
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,900",
    ):
        options.add_argument(flag)
    # The driver is Debian's, named explicitly: Selenium Manager would try to download one.
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def test_an_order_placed_appears_on_the_state_page_by_itself(
    browser: Any, cloud: LocalCloud, customer: StoreClient
) -> None:

    browser.get(cloud.state_page_url)
    created = customer.call("POST", "/orders", {"items": [{"productId": "tee-organic-black", "quantity": 1}]})
    assert created.status == 201, created.body
    order_id = created.body["order"]["orderId"]

    def row() -> str | None:
        """The order's row as text (read in one script: the page replaces its rows every second)."""
        found: str | None = browser.execute_script(
            "const row = [...document.querySelectorAll('#orders tbody tr')]"
            ".find((r) => r.textContent.includes(arguments[0])); return row ? row.innerText : null;",
            order_id,
        )
        return found

    found = wait_for(
        row, "the new order on the page (no reload: the page refreshes itself)", timeout_seconds=15
    )
    assert "PENDING_PAYMENT" in found, found
    assert customer.control("pay", order_id).status == 200
    wait_for(lambda: "PAID" in (row() or "") or "FULFILLED" in (row() or ""), "the status moving on", 60)
    invocations = browser.execute_script("return document.querySelector('#invocations tbody').innerText")
    assert "order-api" in invocations and order_id in invocations
    text = "return document.getElementById(arguments[0]).innerText"
    wait_for(lambda: "accepted" in browser.execute_script(text, "webhooks"), "the webhook's verdict", 15)
    assert "dlq" in browser.execute_script(text, "queues")
    SCREENSHOT.parent.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 10_000


def test_swagger_ui_renders_offline_with_the_token_entered(browser: Any, cloud: LocalCloud) -> None:
    from selenium.webdriver.common.by import By

    page = urllib.request.urlopen(cloud.swagger_url, timeout=10).read().decode()  # noqa: S310 - loopback
    assert "https://" not in page and "http://" not in page  # nothing from a CDN
    base = cloud.api_url.rsplit("/", 1)[0]
    for name in SWAGGER_FILES:
        with urllib.request.urlopen(f"{base}/_local/swagger-ui/{name}", timeout=10) as asset:  # noqa: S310
            assert asset.status == 200 and len(asset.read()) > 0
    browser.get(cloud.swagger_url)
    title = wait_for(
        lambda: browser.find_elements(By.CSS_SELECTOR, ".swagger-ui .info .title"), "Swagger UI", 15
    )
    assert "Better Store" in title[0].text
    deadline = time.monotonic() + 10
    while "locked" not in (
        browser.find_element(By.CSS_SELECTOR, ".btn.authorize").get_attribute("class") or ""
    ):
        assert time.monotonic() < deadline, "the customer token was not entered"
        time.sleep(0.2)
