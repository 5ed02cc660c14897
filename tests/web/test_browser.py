"""The web catalog in a real browser (Playwright driving Debian's chromium) on a phantom
archive: catalog, search, acquisition page, slice slider, layer toggle, painting a stroke,
saving it as envelope@v2, the lineage graph, comparing v1 and v2, and neuroglancer.

Screenshots go to tests/artifacts/ (or $CURATION_TEST_ARTIFACTS). The tests skip when
chromium or Playwright is missing, and fail then when CURATION_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CURATION_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.browser


def _require() -> None:
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append(f"chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package")
    if missing:
        msg = "browser tests need " + " and ".join(missing)
        if os.environ.get("CURATION_REQUIRE_BROWSER", "") not in ("", "0", "false", "no"):
            pytest.fail(msg + " and CURATION_REQUIRE_BROWSER=1 is set")
        pytest.skip(msg)


@pytest.fixture(scope="module")
def phantom_archive(tmp_path_factory) -> Path:
    _require()
    from curation.demo.phantom import PhantomSpec, write_phantom
    from curation.labels.importer import import_labels
    from curation.repository.archive import init_archive
    from curation.repository.ingest import ingest

    tmp = tmp_path_factory.mktemp("browser")
    ph = write_phantom(tmp / "acq", PhantomSpec(shape=(48, 256, 256), seed=0))
    root = tmp / "archive"
    init_archive(root, title="Phantom archive")
    ingest(root, [ph.images_dir], ph.metadata_path, name="phantom")
    files = sorted((ph.ground_truth_dir / "envelope").glob("*.tif"))
    gt = tmp / "gt"
    gt.mkdir()
    for z in (8, 24, 40):
        shutil.copy(files[z], gt / files[z].name)
    import_labels(root, "phantom", "envelope", gt, names={1: "nuclear envelope"}, note="three slices",
                  creator="A. Tracer")
    return root


@pytest.fixture(scope="module")
def live(phantom_archive):
    import uvicorn

    from curation.web.app import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app(phantom_archive, allow_edit=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser(live):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    pg = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.errors = errors
    yield pg
    pg.close()


def wait_until(pg, expression: str, timeout: float = 20) -> None:
    """Poll ``expression`` in the page (page.evaluate is not subject to the page's CSP,
    which forbids the eval that wait_for_function uses)."""
    deadline = time.monotonic() + timeout
    while not pg.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {expression}")
        pg.wait_for_timeout(100)


def tiles_loaded(pg) -> None:
    wait_until(pg, "document.body.dataset.tilesPending === '0'")
    pg.wait_for_timeout(150)


def canvas_bytes(pg) -> bytes:
    return pg.locator("#view-a canvas").screenshot()


def test_catalog_and_acquisition(page, live, artifacts):
    page.goto(live + "/")
    assert page.locator("#cards .card").count() == 1
    wait_until(page, "[...document.images].every(i => i.complete && i.naturalWidth > 0)")
    page.screenshot(path=str(artifacts / "catalog.png"))
    page.fill('.search input[name="q"]', "zebrafish")
    assert page.locator("#cards .card:visible").count() == 0
    page.fill('.search input[name="q"]', "mus musculus")
    assert page.locator("#cards .card:visible").count() == 1
    page.click("#cards .card >> text=phantom")
    page.wait_for_url("**/a/phantom")
    assert "envelope@v1" in page.locator("#lineage").inner_text()
    assert page.locator("#metadata fieldset").count() >= 3
    page.screenshot(path=str(artifacts / "acquisition.png"), full_page=True)
    assert not page.errors


def test_viewer_slider_layers_paint_save_compare(page, live, artifacts):
    page.goto(live + "/a/phantom")
    page.click("#open-viewer")
    page.wait_for_url("**/a/phantom/view")
    tiles_loaded(page)
    state = "window.curationViewer.state"
    assert page.evaluate(f"[...{state}.overlays]") == ["envelope@v1"]
    # the slider moves through z and the picture changes
    before = canvas_bytes(page)
    page.locator("#slice").fill("8")
    tiles_loaded(page)
    assert page.locator("#slice-out").inner_text().startswith("z = 8")
    assert canvas_bytes(page) != before
    page.screenshot(path=str(artifacts / "viewer_overlay.png"))
    # toggle the layer off and on
    box = page.locator('#layers input[data-address="envelope@v1"]')
    with_overlay = canvas_bytes(page)
    box.uncheck()
    tiles_loaded(page)
    assert page.evaluate(f"[...{state}.overlays]") == [] and canvas_bytes(page) != with_overlay
    box.check()
    tiles_loaded(page)
    # paint a stroke on slice 16 (unannotated in v1)
    page.locator("#slice").fill("16")
    tiles_loaded(page)
    page.click('#tools button[data-tool="brush"]')
    page.locator("#radius").fill("4")
    rect = page.locator("#view-a canvas").bounding_box()
    x0, y0 = rect["x"] + rect["width"] * 0.35, rect["y"] + rect["height"] * 0.3
    page.mouse.move(x0, y0)
    page.mouse.down()
    for i in range(1, 21):
        page.mouse.move(x0 + i * 12, y0 + i * 9)
    page.mouse.up()
    strokes = page.evaluate(f"{state}.strokes")
    assert len(strokes) == 1 and strokes[0]["plane"] == "xy" and strokes[0]["index"] == 16
    assert len(strokes[0]["points"]) > 10 and strokes[0]["value"] == 1
    assert "1 stroke(s)" in page.locator("#pending").inner_text()
    page.screenshot(path=str(artifacts / "painted_stroke.png"))
    page.fill("#note", "a stroke from the browser test")
    page.click("#save")
    wait_until(page, "document.getElementById('save-status').textContent.startsWith('Saved')", 60)
    assert "envelope@v2" in page.locator("#save-status").inner_text()
    wait_until(page, "document.getElementById('lineage').textContent.includes('envelope@v2')")
    tiles_loaded(page)
    assert page.evaluate(f"[...{state}.overlays]") == ["envelope@v2"]
    assert page.locator('#lineage svg g.node[data-address="envelope@v2"]').count() == 1
    assert page.locator("#lineage svg path.edge").count() == 1
    page.screenshot(path=str(artifacts / "saved_lineage.png"))
    # compare v1 and v2: side by side, then the difference (the stroke is added voxels)
    page.click('#compare button[data-mode="side"]')
    page.select_option("#cmp-a", "envelope@v1")
    page.select_option("#cmp-b", "envelope@v2")
    tiles_loaded(page)
    assert page.locator("#view-b").is_visible()
    assert page.locator("#view-a .caption").inner_text() == "A: envelope@v1"
    page.screenshot(path=str(artifacts / "compare_side.png"))
    page.click('#compare button[data-mode="diff"]')
    tiles_loaded(page)
    assert not page.locator("#view-b").is_visible()
    shot = artifacts / "compare_diff.png"
    page.screenshot(path=str(shot))
    from PIL import Image
    import numpy as np

    a = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    green = (a[..., 1] > 150) & (a[..., 0] < 90) & (a[..., 2] < 130)
    assert green.sum() > 300  # the painted stroke shows as added voxels
    assert not page.errors
    # the lineage on the acquisition page
    page.goto(live + "/a/phantom")
    assert page.locator('#lineage g.node[data-address="envelope@v2"]').count() == 1
    assert "a stroke from the browser test" in page.content()


def test_side_planes_and_neuroglancer(page, live, artifacts):
    page.goto(live + "/a/phantom/view?plane=xz&layers=envelope@v1")
    tiles_loaded(page)
    assert page.locator("#slice-out").inner_text().startswith("y = 128")
    page.screenshot(path=str(artifacts / "viewer_xz.png"))
    served = []
    page.on("response", lambda r: served.append((r.status, r.url)) if "/zarr/" in r.url else None)
    page.goto(live + "/a/phantom/neuroglancer")
    page.wait_for_url("**/ng/v/curation/**")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(s == 206 and "/zarr/phantom/0/c/" in u for s, u in served):
        page.wait_for_timeout(250)
    page.wait_for_timeout(2000)
    page.screenshot(path=str(artifacts / "neuroglancer.png"))
    assert any(s == 206 and "/zarr/phantom/0/c/" in u for s, u in served), served[:10]
    assert not [e for e in page.errors if "decode" in e.lower()]
