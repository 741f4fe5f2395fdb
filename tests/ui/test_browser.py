"""End to end in a real browser: Debian's Chromium (never a downloaded one) driven by Playwright
against `streamlit run app.py` served on localhost."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from playwright.sync_api import sync_playwright
from conftest import REPO

pytestmark = pytest.mark.browser

ROOT = REPO
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(tmp_path_factory, *options: str):
    port = _free_port()
    env = {**os.environ, "FAIRLIN_DATA_ROOT": str(tmp_path_factory.mktemp("data")),
           "FAIRLIN_STORE": str(tmp_path_factory.mktemp("store")), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                                "--server.port", str(port), "--server.address", "127.0.0.1",
                                "--browser.gatherUsageStats", "false", *options],
                               cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                break
        except OSError:
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("streamlit did not start within 60 s")
    yield url
    process.terminate()
    process.wait(timeout=20)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from _serve(tmp_path_factory)


@pytest.fixture(scope="module")
def dark_server(tmp_path_factory):
    yield from _serve(tmp_path_factory, "--theme.base", "dark")


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1800})
    yield page
    page.close()


def test_home_page_renders_datasets_charts_and_checkpoints(server, page):
    page.goto(server, timeout=60_000)
    page.wait_for_selector("text=Shipped base checkpoints", timeout=60_000)
    page.wait_for_selector(".js-plotly-plot", timeout=60_000)
    assert page.locator("h1", has_text="FairLin").count() == 1
    assert page.locator(".js-plotly-plot").count() >= 3
    body = page.inner_text("body")
    assert "digits_resnet18" in body and "toy2d_mlp" in body
    assert "Traceback" not in body


def _open(page, url: str, heading: str) -> None:
    page.goto(url, timeout=60_000)
    page.wait_for_selector(f"h1:has-text('{heading}')", timeout=60_000)
    page.wait_for_timeout(1500)  # let charts and fragments draw


# Streamlit scrolls inside its own container (stMain), so a "full page" screenshot is only the viewport:
# the container's scroll height is the content's height
CONTENT_HEIGHT = "() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight"


def _screenshot(page, name: str) -> None:
    """The whole page (not only the viewport's top) in tests/artifacts/NAME.png: the viewport is grown to the
    content's height for the shot and then restored."""
    viewport = page.viewport_size
    page.set_viewport_size({"width": viewport["width"], "height": max(viewport["height"],
                                                                     page.evaluate(CONTENT_HEIGHT))})
    page.wait_for_timeout(800)  # charts re-measure their containers
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    page.set_viewport_size(viewport)


def _no_exception(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0
    assert "Traceback" not in page.inner_text("body")


def test_every_page_slider_job_and_upload_in_the_browser(server, page):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for path, heading, shot in (("", "FairLin", "home"), ("models_data", "Models & data", "models_data"),
                                ("toy_lab", "Toy lab", "toy_lab"), ("linearize", "Linearize", "linearize")):
        _open(page, f"{server}/{path}", heading)
        _no_exception(page)
        assert page.locator('[data-testid="stSidebar"]').get_by_text("Jobs").count() >= 1
        _screenshot(page, shot)

    # Linearize (opened with diagnostics=accuracy in the address: form state comes from the query parameters):
    # move the budget slider (click near its right end, fewer ReLUs); the exact count and the text follow
    _open(page, f"{server}/linearize?diagnostics=accuracy", "Linearize")
    count = page.get_by_label("Exact ReLU count (of 7,680)")
    assert count.input_value() == "768"
    thumb = page.get_by_role("slider").first.bounding_box()
    track = page.locator('[data-testid="stSlider"]').first.bounding_box()
    page.mouse.click(track["x"] + 0.9 * track["width"], thumb["y"] + thumb["height"] / 2)
    page.wait_for_function("() => document.querySelector('input[aria-label^=\"Exact ReLU count\"]').value !== '768'",
                           timeout=30_000)
    budget = int(count.input_value())
    assert 1 <= budget < 768
    page.wait_for_selector(f"text=SNL learns masks down to {budget:,} of 7,680", timeout=30_000)
    page.get_by_text("DeepReDuce: cull/thin whole stages").click()
    page.wait_for_selector("text=DeepReDuce configuration:", timeout=30_000)
    page.get_by_text("SNL: learned per-pixel masks").click()
    page.wait_for_selector(f"text=SNL learns masks down to {budget:,}", timeout=30_000)

    # a tiny job: one SNL epoch, no finetune
    for label, value in (("SNL epochs (max)", "1"), ("Finetune epochs", "0")):
        field = page.get_by_role("spinbutton", name=label)
        field.fill(value)
        field.press("Enter")
        page.wait_for_timeout(700)
    page.get_by_role("button", name="Submit 1 job").click()
    page.wait_for_selector("text=Submitted 1 job(s)", timeout=30_000)
    _screenshot(page, "linearize_running")
    done = page.locator("p", has_text=f"snl · {budget} ReLUs · seed 0").filter(has_text="· done")
    done.first.wait_for(timeout=120_000)
    page.wait_for_timeout(2500)  # the panel's next poll
    assert page.get_by_role("button", name="Cancel").count() == 0  # nothing left to cancel, no stale button
    _no_exception(page)
    _screenshot(page, "linearize_done")

    # a reload keeps the finished job in both panels (state lives in the job manager and run store)
    _open(page, f"{server}/linearize", "Linearize")
    done.first.wait_for(timeout=30_000)

    # Models & data: a pickle posing as a checkpoint is refused with a readable reason
    _open(page, f"{server}/models_data", "Models & data")
    inputs = page.locator('[data-testid="stFileUploaderDropzoneInput"]')
    inputs.nth(0).set_input_files({"name": "evil.safetensors", "mimeType": "application/octet-stream",
                                   "buffer": b"\x80\x04\x95 pickled payload"})
    inputs.nth(1).set_input_files({"name": "evil.json", "mimeType": "application/json",
                                   "buffer": (ROOT / "checkpoints" / "toy2d_mlp.json").read_bytes()})
    page.wait_for_timeout(1000)
    page.get_by_role("button", name="Validate and add").click()
    error = page.locator('[data-testid="stAlertContentError"]')
    error.first.wait_for(timeout=30_000)
    assert "never unpickles" in error.first.inner_text()
    _no_exception(page)
    _screenshot(page, "models_data_refused_upload")


def _chart_titles(page) -> list[str]:
    return page.locator(".js-plotly-plot .gtitle").all_text_contents()  # SVG text: no innerText


def test_audit_and_why_pages_open_on_the_default_audit_and_scrub(server, page):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # a deep link on a fresh server still opens inside the app's shell (navigation + sidebar)
    _open(page, f"{server}/audit", "Fairness audit")
    _no_exception(page)
    page.locator('[data-testid="stSidebar"]').get_by_text("Group attribute").wait_for(timeout=30_000)
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 7", timeout=60_000)
    page.wait_for_function("() => [...document.querySelectorAll('.js-plotly-plot .gtitle')]"
                           ".some(t => t.textContent.startsWith('snl at 2% (154 ReLUs)'))", timeout=30_000)
    _screenshot(page, "audit")
    slider = page.get_by_role("slider").first
    slider.focus()
    slider.press("End")  # the smallest completed budget
    page.wait_for_function("() => [...document.querySelectorAll('.js-plotly-plot .gtitle')]"
                           ".some(t => t.textContent.startsWith('snl at 0.5% (38 ReLUs)'))", timeout=30_000)
    _no_exception(page)
    _screenshot(page, "audit_scrubbed")

    _open(page, f"{server}/why", "Why (diagnostics)")
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 7", timeout=60_000)
    # the attribution maps come last (they load the base model's test inputs): wait for them, not for a count
    page.wait_for_function("() => [...document.querySelectorAll('.js-plotly-plot .gtitle')]"
                           ".some(t => t.textContent.startsWith('Mean |attribution| of group 9'))", timeout=60_000)
    _no_exception(page)
    titles = _chart_titles(page)
    assert "Group gradient norm ||g_a|| (Figure 3) · test split" in titles
    _screenshot(page, "why")


def test_toy_lab_trains_once_and_draws_both_boundaries(server, page):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    _open(page, f"{server}/toy_lab", "Toy lab")
    page.get_by_role("button", name="Train", exact=True).click()
    page.wait_for_selector("text=Expressiveness: fewer ReLUs, fewer linear regions", timeout=180_000)
    page.wait_for_timeout(1500)
    _no_exception(page)
    titles = _chart_titles(page)
    assert any(t.startswith("ReLU") for t in titles) and any(t.startswith("Linearized") for t in titles)
    _screenshot(page, "toy_lab_trained")


PAGES = (("", "FairLin", "home"), ("models_data", "Models & data", "models_data"), ("linearize", "Linearize", "linearize"),
         ("audit", "Fairness audit", "audit"), ("why", "Why (diagnostics)", "why"), ("toy_lab", "Toy lab", "toy_lab"))

# for every Plotly legend: its visible height (the background rect) and its content's (the scrollbox's bbox)
LEGEND_HEIGHTS = """() => [...document.querySelectorAll('.js-plotly-plot')].flatMap(plot =>
    [...plot.querySelectorAll('g.legend')].map(legend => {
        const bg = legend.querySelector('rect.bg'), box = legend.querySelector('g.scrollbox');
        return {title: (plot.querySelector('.gtitle') || {}).textContent || '',
                visible: bg ? bg.getBBox().height : 0, content: box ? box.getBBox().height : 0};
    }))"""


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_every_page_at_two_widths_with_legends_that_never_scroll_and_no_outside_request(
        theme, server, dark_server, browser):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    url = server if theme == "light" else dark_server
    local = url.split("//")[1]
    for width in (1400, 800):
        page = browser.new_page(viewport={"width": width, "height": 1200})
        outside = []
        page.on("request", lambda request: outside.append(request.url)
                if request.url.split("//")[-1].split("/")[0] != local
                and not request.url.startswith(("data:", "blob:")) else None)
        for path, heading, shot in PAGES:
            _open(page, f"{url}/{path}", heading)
            if path in ("audit", "why", ""):
                page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 2",
                                       timeout=60_000)
                page.wait_for_timeout(1500)
            _no_exception(page)
            for legend in page.evaluate(LEGEND_HEIGHTS):
                assert legend["visible"] + 1 >= legend["content"], f"{shot} {width}px scrolls: {legend}"
            if path == "audit":
                split = page.locator('[data-testid="stSelectbox"]', has_text="Test split")
                shown = split.evaluate("el => el.innerText + ' ' + [...el.querySelectorAll('input')]"
                                       ".map(i => i.value + ' ' + (i.getAttribute('aria-label') || '')).join(' ')")
                assert "balanced" in shown, shown
                assert any(t.startswith("Majority vs minority") for t in _chart_titles(page))
            if width == 800 and path == "audit":  # charts stack: one chart per row
                boxes = [page.locator(".js-plotly-plot").nth(i).bounding_box() for i in range(3)]
                assert boxes[1]["y"] > boxes[0]["y"] and boxes[2]["y"] > boxes[1]["y"]
                assert abs(boxes[1]["width"] - boxes[0]["width"]) < 5
            _screenshot(page, f"{shot}_{width}_{theme}")
        assert not outside, f"requests left localhost: {outside[:5]}"
        page.close()
