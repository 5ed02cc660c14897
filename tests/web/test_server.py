"""Every route of `curate serve` on a real archive: pages, JSON, tiles (content, bounds,
ETags), zarr files for neuroglancer (whitelisted keys, ranges), static files, host checks,
and edits: read-only, CSRF, origin, size, busy while another process holds the lock."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import zarr
from PIL import Image

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from curation.web.app import create_app

BASE = "http://127.0.0.1:8000"
EDIT = {"base": "cell@v2", "note": "web edit", "strokes": [
    {"plane": "xy", "index": 15, "value": 1, "radius": 2, "points": [[140, 20], [140, 60]]}]}


@pytest.fixture(scope="module")
def ro(web_template):
    """A read-only server over the shared archive."""
    with TestClient(create_app(web_template), base_url=BASE) as c:
        yield c


@pytest.fixture
def rw(fresh_archive):
    app = create_app(fresh_archive, allow_edit=True)
    with TestClient(app, base_url=BASE) as c:
        c.token = app.state.server.guard.token
        c.root = fresh_archive
        yield c


def png(resp) -> np.ndarray:
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(resp.content)))


# --- pages ---------------------------------------------------------------------------------------


def test_catalog_lists_and_searches(ro):
    r = ro.get("/")
    assert r.status_code == 200 and "Mouse cortex cells" in r.text and "Human liver hepatocyte" in r.text
    assert "default-src 'self'" in r.headers["content-security-policy"] and "csrf-token" not in r.text
    for q, hit, miss in (("homo", "liver", "cells"), ("SBF-SEM", "cells", "liver"), ("cortex mus", "cells", "liver")):
        r = ro.get("/", params={"q": q})
        assert f'href="/a/{hit}"' in r.text and f'href="/a/{miss}"' not in r.text
    assert "No acquisition matches" in ro.get("/", params={"q": "zebrafish"}).text
    api = ro.get("/api/acquisitions", params={"q": "liver"}).json()
    assert [a["name"] for a in api] == ["liver"] and api[0]["organism"] == "Homo sapiens"


def test_acquisition_page_shows_everything(ro):
    r = ro.get("/a/cells")
    t = r.text
    assert r.status_code == 200
    for part in ("Mouse cortex cells", "cell@v1", "cell@v2", "A. Tracer", "grown on 10, slice 15 added",
                 "Model cards", "Analyses", "Runs", "labels-import", "provenance/labels/cell_v2.json",
                 "History", "cells/cell/v2", "Metadata", "Scientific name", "Mus musculus", "<svg",
                 "/a/cells/view?layers=cell@v2", "/a/cells/thumb/xz.png", "Open in neuroglancer"):
        assert part in t, part
    assert t.count('class="node"') == 2 and 'class="edge"' in t


def test_viewer_page_and_config(ro):
    r = ro.get("/a/cells/view")
    assert r.status_code == 200 and 'id="viewer-config"' in r.text and "/static/viewer.js" in r.text
    assert 'id="paint-box"' not in r.text  # read-only: no painting tools
    cfg = ro.get("/api/a/cells").json()
    assert cfg["shape"] == [20, 160, 200] and cfg["voxel_size_nm"] == [24.0, 8.0, 8.0] and not cfg["allow_edit"]
    assert [v["address"] for v in cfg["versions"]] == ["cell@v1", "cell@v2"]
    assert cfg["versions"][1]["parents"] == ["cell@v1"] and cfg["versions"][1]["names"]["2"] == "nucleolus"
    assert cfg["levels"][0]["shape"] == [20, 160, 200] and len(cfg["levels"]) >= 2
    lo, hi = cfg["window"]
    assert 0 <= lo < hi <= 255


def test_lineage_svg_and_thumbnails(ro):
    r = ro.get("/a/cells/lineage.svg")
    assert r.headers["content-type"].startswith("image/svg+xml") and "cell@v2" in r.text and "marker-end" in r.text
    xy, xz = png(ro.get("/a/cells/thumb/xy.png")), png(ro.get("/a/cells/thumb/xz.png"))
    assert max(xy.shape) == 256
    # true aspect: 20 slices of 24 nm against 200 columns of 8 nm
    assert abs(xz.shape[0] / xz.shape[1] - (20 * 24) / (200 * 8)) < 0.02
    etag = ro.get("/a/cells/thumb/xy.png").headers["etag"]
    assert ro.get("/a/cells/thumb/xy.png", headers={"If-None-Match": etag}).status_code == 304


# --- tiles ----------------------------------------------------------------------------------------


def test_image_tiles_match_the_stored_voxels(ro, web_template):
    a0 = zarr.open_array(str(web_template / "acquisitions/cells/cells.ome.zarr/0"), mode="r")
    a1 = zarr.open_array(str(web_template / "acquisitions/cells/cells.ome.zarr/1"), mode="r")
    t = png(ro.get("/tile/cells/image/xy/0/10/0/0", params={"lo": 0, "hi": 255}))
    assert t.shape == (160, 200) and (t == a0[10]).all()
    t = png(ro.get("/tile/cells/image/xz/0/33/0/0", params={"lo": 0, "hi": 255, "size": 64}))
    assert t.shape == (20, 64) and (t == a0[:, 33, :64]).all()
    t = png(ro.get("/tile/cells/image/yz/0/150/0/1", params={"lo": 0, "hi": 255, "size": 64}))
    assert (t == a0[:, 64:128, 150]).all()
    # level 1: the slice index stays in level-0 voxels; y and x are halved, z is kept (24 nm > 16 nm)
    assert a1.shape == (20, 80, 100)
    t = png(ro.get("/tile/cells/image/xz/1/33/0/0", params={"lo": 0, "hi": 255}))
    assert (t == a1[:, 16, :]).all()
    # contrast: [lo, hi] -> [0, 255]
    t = png(ro.get("/tile/cells/image/xy/0/10/0/0", params={"lo": 100, "hi": 150}))
    ref = np.clip((a0[10].astype(float) - 100) * 255 / 50, 0, 255).astype(np.uint8)
    assert np.abs(t.astype(int) - ref).max() <= 1
    assert ro.get("/tile/cells/image/xy/0/10/0/0", params={"format": "webp"}).headers["content-type"] == "image/webp"
    assert ro.get("/tile/cells/image/xy/0/10/0/0", params={"format": "jpeg"}).headers["content-type"] == "image/jpeg"


def test_label_and_diff_tiles(ro):
    cfg = ro.get("/api/a/cells").json()
    colour1 = cfg["versions"][1]["colors"]["1"]
    t = png(ro.get("/tile/cells/label/cell@v2/xy/0/10/0/0"))
    assert t.shape == (160, 200, 4) and list(t[80, 100]) == colour1 and t[0, 0, 3] == 0
    assert png(ro.get("/tile/cells/label/cell@v1/xy/0/15/0/0"))[..., 3].max() == 0  # v1 leaves slice 15 unlabeled
    d = png(ro.get("/tile/cells/diff/cell@v1/cell@v2/xy/0/10/0/0"))
    assert list(d[80, 100 + 33]) == [40, 200, 90, 255]  # the grown rim: added
    assert d[80, 100, 3] == 0  # unchanged
    d = png(ro.get("/tile/cells/diff/cell@v2/cell@v1/xy/0/15/0/0"))
    assert list(d[40, 40]) == [235, 50, 70, 255]  # removed going back to v1
    d = png(ro.get("/tile/cells/diff/cell@v1/cell@v2/xz/0/80/0/0"))
    assert list(d[15, 100]) == [40, 200, 90, 255] and d[4, 100, 3] == 0


def test_tiles_carry_etags_and_are_immutable(ro):
    r = ro.get("/tile/cells/label/cell@v1/xy/0/4/0/0")
    etag = r.headers["etag"]
    assert "immutable" in r.headers["cache-control"]
    assert ro.get("/tile/cells/label/cell@v1/xy/0/4/0/0", headers={"If-None-Match": etag}).status_code == 304
    assert ro.get("/tile/cells/label/cell@v2/xy/0/4/0/0").headers["etag"] != etag
    img = ro.get("/tile/cells/image/xy/0/4/0/0", params={"lo": 1, "hi": 200}).headers["etag"]
    assert ro.get("/tile/cells/image/xy/0/4/0/0", params={"lo": 2, "hi": 200}).headers["etag"] != img


@pytest.mark.parametrize("url, code", [
    ("/tile/cells/image/xy/0/10/0/0?size=5000", 400),
    ("/tile/cells/image/xy/0/10/0/0?size=8", 400),
    ("/tile/cells/image/xy/0/10/0/0?size=abc", 400),
    ("/tile/cells/image/xy/0/10/0/0?lo=9&hi=3", 400),
    ("/tile/cells/image/xy/0/10/0/0?lo=x", 400),
    ("/tile/cells/image/xy/0/10/0/0?format=gif", 400),
    ("/tile/cells/label/cell@v1/xy/0/4/0/0?format=jpeg", 400),
    ("/tile/cells/image/xy/0/20/0/0", 404),
    ("/tile/cells/image/xy/0/10/9/0", 404),
    ("/tile/cells/image/xy/9/10/0/0", 404),
    ("/tile/cells/image/ab/0/10/0/0", 404),
    ("/tile/cells/image/xy/0/-1/0/0", 404),
    ("/tile/nope/image/xy/0/1/0/0", 404),
    ("/tile/cells/label/cell@v9/xy/0/4/0/0", 404),
    ("/tile/cells/label/cell/xy/0/4/0/0", 404),
    ("/tile/cells/label/mito@v1/xy/0/4/0/0", 404),
    ("/tile/cells/diff/cell@v1/cell@v7/xy/0/4/0/0", 404),
    ("/a/nope", 404), ("/a/nope/view", 404), ("/api/a/nope", 404), ("/a/cells/thumb/ab.png", 404),
    ("/a/..%2f..%2fetc", 404), ("/a/%2e%2e/view", 404), ("/a/.git", 404), ("/a/cells%2f..%2fliver", 404),
    ("/nothing/here", 404),
])
def test_bad_requests_are_refused(ro, url, code):
    r = ro.get(url)
    assert r.status_code == code, (url, r.text)
    assert r.headers["content-type"].startswith("application/json")


def test_html_errors_for_pages(ro):
    r = ro.get("/a/nope", headers={"Accept": "text/html"})
    assert r.status_code == 404 and "no acquisition named" in r.text and "<html" in r.text


def test_host_header_must_be_local(ro):
    assert ro.get("/", headers={"Host": "evil.example"}).status_code == 400
    assert ro.get("/", headers={"Host": "localhost:8000"}).status_code == 200


# --- files: zarr for neuroglancer, the neuroglancer client, static -------------------------------------


def test_zarr_files_by_whitelisted_keys(ro, web_template):
    meta = ro.get("/zarr/cells/zarr.json").json()
    assert meta["attributes"]["ome"]["version"] == "0.5"
    assert ro.get("/zarr/cells/0/zarr.json").json()["shape"] == [20, 160, 200]
    assert ro.get("/zarr/cells/labels/zarr.json").json()["attributes"]["ome"]["labels"] == ["cell_v1", "cell_v2"]
    assert ro.get("/zarr/cells/labels/cell_v2/0/zarr.json").status_code == 200
    shard = web_template / "acquisitions/cells/cells.ome.zarr/0/c/0/0/0"
    whole = ro.get("/zarr/cells/0/c/0/0/0")
    assert whole.status_code == 200 and whole.content == shard.read_bytes()
    tail = ro.get("/zarr/cells/0/c/0/0/0", headers={"Range": "bytes=-20"})
    assert tail.status_code == 206 and tail.content == shard.read_bytes()[-20:]
    part = ro.get("/zarr/cells/0/c/0/0/0", headers={"Range": "bytes=5-14"})
    assert part.status_code == 206 and part.content == shard.read_bytes()[5:15]
    assert ro.head("/zarr/cells/0/c/0/0/0").status_code == 200
    for key in ("../../.git/config", "%2e%2e/%2e%2e/.git/config", "0/c/0/0/9", "7/zarr.json", "labels/cell_v9/zarr.json",
                "labels/0/zarr.json", "c/0/0/0", "0/zarr.json/..", "metadata.json", "..%2fmetadata.json",
                "labels/cell_v1/../../../metadata.json", "0/c/0/0/0/../../../../../metadata.json", ".zattrs"):
        r = ro.get(f"/zarr/cells/{key}")
        assert r.status_code == 404, key
    assert ro.get("/zarr/nope/zarr.json").status_code == 404


def test_neuroglancer_redirect_and_client(ro):
    r = ro.get("/a/cells/neuroglancer", follow_redirects=False)
    assert r.status_code == 302 and r.headers["location"].startswith("/ng/v/curation/#!")
    from urllib.parse import unquote

    state = json.loads(unquote(r.headers["location"].split("#!", 1)[1]))
    assert state["layers"][0]["source"] == f"zarr3://{BASE}/zarr/cells/"
    assert [la["name"] for la in state["layers"][1:]] == ["cell@v1", "cell@v2"]
    assert state["layers"][2]["source"].endswith("/zarr/cells/labels/cell_v2/")
    page = ro.get("/ng/v/curation/")
    assert page.status_code == 200 and "<script" in page.text and "wasm-unsafe-eval" in page.headers[
        "content-security-policy"]
    script = page.text.split('src="')[1].split('"')[0]
    assert ro.get(f"/ng/v/curation/{script}").status_code == 200
    for bad in ("../app.py", "..%2fapp.py", "nothing.js", "__init__.py"):
        assert ro.get(f"/ng/v/curation/{bad}").status_code == 404


def test_static_files_are_a_fixed_set(ro):
    assert ro.get("/static/viewer.js").headers["content-type"].startswith("text/javascript")
    assert ro.get("/static/style.css").status_code == 200
    for bad in ("../app.py", "..%2fapp.py", "%2e%2e/catalog.py", "app.py", "templates/base.html"):
        assert ro.get(f"/static/{bad}").status_code == 404


# --- edits ------------------------------------------------------------------------------------------


def _post(client, body, token=None, **headers):
    h = {"Content-Type": "application/json", **headers}
    if token is not None:
        h["X-CSRF-Token"] = token
    return client.post("/api/a/cells/paint", content=json.dumps(body) if not isinstance(body, bytes) else body,
                       headers=h)


def test_edits_need_allow_edit(ro):
    r = _post(ro, EDIT, token="anything")
    assert r.status_code == 403 and "read-only" in r.json()["message"]
    assert ro.get("/api/a/cells/paint").status_code == 405


def test_edit_refusals(rw):
    assert _post(rw, EDIT).status_code == 403
    assert _post(rw, EDIT, token="wrong").status_code == 403
    r = _post(rw, EDIT, token=rw.token, Origin="http://evil.example")
    assert r.status_code == 403 and r.json()["field"] == "Origin"
    r = rw.post("/api/a/cells/paint", content=json.dumps(EDIT), headers={"X-CSRF-Token": rw.token,
                                                                        "Content-Type": "text/plain"})
    assert r.status_code == 403
    assert _post(rw, b"{nope", token=rw.token).status_code == 400
    assert _post(rw, [1, 2], token=rw.token).status_code == 400
    big = {**EDIT, "note": "x" * (9 * 1024**2)}
    assert _post(rw, big, token=rw.token).status_code == 413
    r = _post(rw, {**EDIT, "strokes": [{"plane": "xy", "index": 99, "value": 1, "points": [[1, 1]]}]}, token=rw.token)
    assert r.status_code == 400 and r.json()["field"] == "strokes[0].index"
    assert rw.post("/api/a/nope/paint", content=json.dumps(EDIT), headers={
        "Content-Type": "application/json", "X-CSRF-Token": rw.token}).status_code == 404
    assert [v["address"] for v in rw.get("/api/a/cells").json()["versions"]] == ["cell@v1", "cell@v2"]


def test_edit_saves_a_version_and_is_busy_while_another_process_holds_the_lock(rw):
    page = rw.get("/a/cells/view").text
    assert f'content="{rw.token}"' in page and 'id="paint-box"' in page
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom curation.repository.archive import open_archive\n"
         f"with open_archive({str(rw.root)!r}).lock(purpose='ingest other'):\n"
         "    print('locked', flush=True)\n    sys.stdin.read()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        t0 = time.monotonic()
        r = _post(rw, EDIT, token=rw.token, Origin=BASE)
        assert r.status_code == 409 and r.json()["status"] == "busy", r.text
        assert "ingest other" in r.json()["found"] and time.monotonic() - t0 < 30
    finally:
        holder.stdin.close()
        holder.wait(10)
    assert [v["address"] for v in rw.get("/api/a/cells").json()["versions"]] == ["cell@v1", "cell@v2"]
    r = _post(rw, EDIT, token=rw.token, Origin=BASE)
    assert r.status_code == 201, r.text
    d = r.json()
    assert d["address"] == "cell@v3" and d["parents"] == ["cell@v2"] and d["tag"] == "cells/cell/v3"
    assert "cell@v3" in rw.get("/a/cells/lineage.svg").text
    t = png(rw.get("/tile/cells/label/cell@v3/xy/0/15/0/0"))
    assert t[140, 40, 3] == 255 and t[120, 40, 3] == 0
    assert png(rw.get("/tile/cells/diff/cell@v2/cell@v3/xy/0/15/0/0"))[140, 40].tolist() == [40, 200, 90, 255]
