"""The web page in a real headless Chromium against the real stack; screenshots are checked."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from service.config import PROJECT_ROOT
from testkit.images import dark_scene, encode
from testkit.stack import Stack

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = PROJECT_ROOT / ".run" / "screenshots"
# Headless, and quiet on this machine's closed network (no background connections at start).
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHOTO = encode(dark_scene(300, 450, seed=5, peak=45), "JPEG", quality=92)

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Chromium is not installed")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _luma(png: bytes) -> float:
    with Image.open(io.BytesIO(png)) as im:
        return float(np.asarray(im.convert("L"), dtype=np.float32).mean())


def _upload(page, stack: Stack) -> None:  # type: ignore[no-untyped-def]
    page.goto(stack.url + "/")
    page.evaluate(
        """() => { window.sawProgress = false;
        const p = document.getElementById('progress');
        new MutationObserver(() => { if (!p.hidden) window.sawProgress = true; })
          .observe(p, {attributes: true}); }"""
    )
    page.set_input_files(
        "#file", files=[{"name": "dark.jpg", "mimeType": "image/jpeg", "buffer": PHOTO}]
    )
    page.wait_for_selector("#result:not([hidden])", timeout=60_000)
    page.wait_for_function("document.getElementById('after').complete")
    page.wait_for_function("document.getElementById('overlay').dataset.ready === '1'")


def test_desktop_upload_slider_mask_and_download(browser, stack: Stack) -> None:  # type: ignore[no-untyped-def]
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1200, "height": 900}, accept_downloads=True)
    _upload(page, stack)
    assert page.evaluate("window.sawProgress") is True
    compare = page.locator("#compare")

    page.locator("#slider").fill("100")  # all before
    before = compare.screenshot(path=str(SHOTS / "desktop-before.png"))
    page.locator("#slider").fill("0")  # all after
    after = compare.screenshot(path=str(SHOTS / "desktop-after.png"))
    assert _luma(after) > _luma(before) + 15  # the page shows the brighter photo

    page.locator("#show-mask").check()
    masked = compare.screenshot(path=str(SHOTS / "desktop-mask.png"))
    with Image.open(io.BytesIO(masked)) as m, Image.open(io.BytesIO(after)) as a:
        diff = np.abs(np.asarray(m, np.float32) - np.asarray(a, np.float32)).mean()
    assert diff > 5  # the overlay is drawn
    assert page.locator("#legend li").count() == 12  # 11 classes and "unknown"
    assert page.locator("#legend li").last.inner_text() == "unknown"
    page.screenshot(path=str(SHOTS / "desktop-page.png"), full_page=True)

    with page.expect_download() as info:
        page.locator("#download").click()
    data = Path(info.value.path()).read_bytes()
    with Image.open(io.BytesIO(data)) as im:
        assert im.size == (450, 300) and im.format == "JPEG"
    page.close()


def test_phone_width_layout(browser, stack: Stack) -> None:  # type: ignore[no-untyped-def]
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    _upload(page, stack)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    box = page.locator("#compare").bounding_box()
    assert box is not None and box["width"] <= 390 and box["height"] > 100
    shot = page.screenshot(path=str(SHOTS / "phone-page.png"), full_page=True)
    assert _luma(shot) > 5
    page.close()


def test_error_is_shown_for_a_non_image(browser, stack: Stack) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page()
    page.goto(stack.url + "/")
    page.set_input_files(
        "#file", files=[{"name": "x.jpg", "mimeType": "image/jpeg", "buffer": b"nope"}]
    )
    page.wait_for_selector("#error:not([hidden])", timeout=30_000)
    assert "not a JPEG" in page.locator("#error").inner_text()
    page.close()


def test_strength_slider_blends_in_the_page_without_uploading_again(browser, stack: Stack) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1200, "height": 900}, accept_downloads=True)
    uploads: list[str] = []
    page.on("request", lambda r: uploads.append(r.url) if r.method == "POST" else None)
    _upload(page, stack)
    page.locator("#slider").fill("0")  # all "after", so the strength is what shows
    compare = page.locator("#compare")
    lumas = []
    for value in ("0", "50", "100"):
        page.locator("#strength").fill(value)
        lumas.append(_luma(compare.screenshot(path=str(SHOTS / f"strength-{value}.png"))))
    assert lumas[0] + 5 < lumas[1] < lumas[2] - 5, lumas
    assert page.locator("#strength-value").inner_text() == "100%"

    page.locator("#strength").fill("50")
    with page.expect_download() as info:
        page.locator("#download").click()
    data = Path(info.value.path()).read_bytes()
    with Image.open(io.BytesIO(data)) as im:
        assert im.size == (450, 300) and im.format == "JPEG"
        half = float(np.asarray(im.convert("L"), dtype=np.float32).mean())
    with Image.open(io.BytesIO(PHOTO)) as im:
        dark = float(np.asarray(im.convert("L"), dtype=np.float32).mean())
    assert dark + 5 < half
    assert len(uploads) == 1  # the slider and the download made no second upload
    page.close()


def test_a_heic_photo_is_enhanced_even_where_the_browser_cannot_show_it(
    browser, stack: Stack
) -> None:  # type: ignore[no-untyped-def]
    from testkit.images import encode_heic

    page = browser.new_page()
    page.goto(stack.url + "/")
    heic = encode_heic(dark_scene(120, 160, peak=45))
    page.set_input_files(
        "#file", files=[{"name": "IMG_0001.HEIC", "mimeType": "image/heic", "buffer": heic}]
    )
    page.wait_for_selector("#result:not([hidden])", timeout=60_000)
    page.wait_for_function("document.getElementById('after').complete")
    page.wait_for_selector("#no-preview:not([hidden])")  # Chromium shows no HEIC
    assert page.locator("#strength").is_disabled()
    assert page.locator("#download").get_attribute("download") == "IMG_0001-enhanced.jpg"
    page.close()


def _guarded_page(browser, stack: Stack):  # type: ignore[no-untyped-def]
    """A page that may reach only the service (anything else is aborted and recorded) and that
    records every Content-Security-Policy violation."""
    page = browser.new_page()
    page.outside = []  # type: ignore[attr-defined]

    def route(r) -> None:  # type: ignore[no-untyped-def]
        if r.request.url.startswith(stack.url):
            r.continue_()
        else:
            page.outside.append(r.request.url)  # type: ignore[attr-defined]
            r.abort()

    page.route("**/*", route)
    page.add_init_script(
        """window.cspViolations = [];
        document.addEventListener('securitypolicyviolation',
          (e) => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));"""
    )
    return page


def test_page_sends_security_headers(stack: Stack) -> None:
    for path in ("/", "/docs"):
        r = stack.client.get(path)
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "style-src 'self'" in csp and "unsafe" not in csp
        assert "frame-ancestors 'none'" in csp and r.headers["x-frame-options"] == "DENY"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"


def test_page_works_under_its_csp_without_network(browser, stack: Stack) -> None:  # type: ignore[no-untyped-def]
    page = _guarded_page(browser, stack)
    _upload(page, stack)
    page.locator("#show-mask").check()
    page.locator("#slider").fill("30")
    assert page.evaluate("window.cspViolations") == []
    assert page.outside == []  # type: ignore[attr-defined]
    page.close()


def test_docs_work_under_the_csp_without_network(browser, stack: Stack) -> None:  # type: ignore[no-untyped-def]
    page = _guarded_page(browser, stack)
    page.goto(stack.url + "/docs")
    page.wait_for_selector(".opblock", timeout=30_000)  # operations rendered from /openapi.json
    assert page.locator(".opblock-summary-path", has_text="/v1/enhance").count() >= 1
    page.locator(".opblock-summary", has_text="/healthz").first.click()  # expands, styled
    page.wait_for_selector(".opblock.is-open", timeout=10_000)
    assert page.evaluate("window.cspViolations") == []
    assert page.outside == []  # type: ignore[attr-defined]
    page.close()


def test_api_key_is_kept_for_the_tab_only(browser, stack: Stack) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page()
    page.goto(stack.url + "/")
    page.locator("details.key summary").click()
    page.locator("#apikey").fill("k-123")
    page.locator("#apikey").dispatch_event("change")
    assert page.evaluate("sessionStorage.getItem('sllen-api-key')") == "k-123"
    assert page.evaluate("localStorage.getItem('sllen-api-key')") is None
    page.close()


def test_picking_the_same_file_after_an_error_sends_it_again(browser, stack: Stack) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page()
    page.goto(stack.url + "/")
    bad = [{"name": "x.jpg", "mimeType": "image/jpeg", "buffer": b"nope"}]
    for _ in range(2):
        with page.expect_request(lambda r: r.method == "POST", timeout=10_000):
            page.set_input_files("#file", files=bad)
        page.wait_for_selector("#error:not([hidden])", timeout=30_000)
        # A real file chooser fires no change event for the file the input already holds
        # (Playwright's set_input_files always does): the page must have let go of it.
        assert page.evaluate("document.getElementById('file').value") == ""
    page.close()
