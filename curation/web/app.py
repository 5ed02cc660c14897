"""``curate serve``: the web catalog, slice viewer and ground-truth painter of one archive.

Routes (every name in a path is checked by :class:`~.catalog.Catalog`, never joined onto
the file system)::

    GET  /                                   catalog; ?q= searches titles, organisms, techniques
    GET  /a/NAME                             acquisition: thumbnails, metadata, history,
                                             label lineage, model cards, analyses, runs
    GET  /a/NAME/view                        slice viewer (?plane=&z=&y=&x=&layers=&compare=&a=&b=)
    GET  /a/NAME/lineage.svg                 the lineage graph alone
    GET  /a/NAME/thumb/PLANE.png             middle-slice thumbnail (xy, xz, yz)
    GET  /a/NAME/neuroglancer                3D: redirect to the bundled neuroglancer client
    GET  /a/NAME/analysis/RUN/FILE           a report, plot or table an analysis run wrote
    GET  /api/acquisitions                   the catalog as JSON (?q=)
    GET  /api/a/NAME                         viewer configuration (levels, window, versions)
    GET  /tile/NAME/image/PLANE/L/I/R/C      image tile (?size= 16..1024, lo=, hi=, format=png|webp)
    GET  /tile/NAME/label/LAYER@vN/PLANE/L/I/R/C        label overlay tile (RGBA)
    GET  /tile/NAME/diff/LAYER@vA/LAYER@vB/PLANE/L/I/R/C  added/removed/changed voxels
    POST /api/a/NAME/paint                   store an edit as the next version (--allow-edit,
                                             X-CSRF-Token); 409 "busy" while the archive is locked
    GET  /zarr/NAME/KEY                      the OME-Zarr's files, for neuroglancer (Range requests)
    GET  /ng/v/TOKEN/[FILE]                  the neuroglancer client bundled in its wheel
    GET  /ng/events/TOKEN                    the (silent) event stream that client expects
    GET  /static/FILE                        this app's own script and style

Tiles and zarr files carry ETags from immutable data (image and version checksums) and
``Cache-Control: immutable``.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from ..errors import (
    CurationError,
    ForbiddenError,
    InvalidNameError,
    LockedError,
    NotAnArchiveError,
    NotFoundError,
    RequestTooLargeError,
)
from ..safeload import load_json
from . import render as R
from . import security as S
from . import views as V
from .catalog import Catalog
from .lineage import lineage_svg
from .tiles import Tiles, check_spec

HERE = Path(__file__).resolve().parent
#: the wheel's client finds its server from a /v/TOKEN/ path; nothing depends on the value
NG_TOKEN = "curation"
NG_STREAM_SECONDS = 12 * 3600
IMMUTABLE = "public, max-age=31536000, immutable"
#: what analyses write, served as
ANALYSIS_MEDIA = {".png": "image/png", ".html": "text/html", ".csv": "text/csv",
                  ".parquet": "application/vnd.apache.parquet"}


class Server:
    """What the routes share: the catalog, the tile renderer, the edit guard."""

    def __init__(self, archive: Path | str, *, allow_edit: bool = False, cache_bytes: int = 512 * 1024**2,
                 scheduler: str | None = None) -> None:
        self.catalog = Catalog(archive)
        self.tiles = Tiles(self.catalog, cache_bytes)
        self.guard = S.EditGuard(allow_edit)
        self.scheduler = scheduler
        self.writing = threading.Lock()
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.static = V.static_files()
        self.neuroglancer = V.neuroglancer_files()
        self.thumbs: dict[tuple[str, str], tuple[bytes, str]] = {}

    # --- helpers --------------------------------------------------------------------------

    def page(self, request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("title", self.catalog.title)
        context.update(archive_title=self.catalog.title, allow_edit=self.guard.allow_edit,
                       csrf_token=self.guard.token, has_neuroglancer=bool(self.neuroglancer))
        return self.templates.TemplateResponse(request, template, context, status_code=status,
                                               headers=S.page_headers())


def _int(request: Request, key: str) -> int:
    return int(request.path_params[key])


def _query_float(request: Request, key: str) -> float | None:
    raw = request.query_params.get(key)
    if raw in (None, ""):
        return None
    try:
        return float(raw)
    except ValueError:
        raise CurationError("not a number", field=key, found=raw) from None


def _size(request: Request) -> int:
    raw = request.query_params.get("size", "512")
    if not raw.isdigit() or len(raw) > 5:
        raise CurationError("tile size is a whole number", field="size", expected="16..1024", found=raw[:20])
    return int(raw)


def _cached(request: Request, tile) -> Response:
    headers = {"ETag": tile.etag, "Cache-Control": IMMUTABLE, "X-Content-Type-Options": "nosniff"}
    if request.headers.get("if-none-match") == tile.etag:
        return Response(status_code=304, headers=headers)
    return Response(tile.body, media_type=tile.media_type, headers=headers)


def build_routes(server: Server) -> list[Route]:
    cat, tiles = server.catalog, server.tiles

    # --- pages ------------------------------------------------------------------------------

    async def catalog_page(request: Request):
        q = request.query_params.get("q", "")[:200]
        rows = await run_in_threadpool(cat.summaries, q)
        return server.page(request, "catalog.html", rows=rows, q=q, total=len(cat.names()))

    async def acquisition_page(request: Request):
        name = request.path_params["name"]

        def gather():
            versions = cat.versions(name)
            return {
                "s": cat.summary(name), "geo": cat.geometry(name),
                "sections": V.metadata_sections(cat.metadata(name)), "history": cat.history(name, 100),
                "versions": versions, "runs": cat.runs(name), "models": cat.models(name),
                "analyses": cat.analyses(name),
                "lineage": lineage_svg(versions, lambda v: f"/a/{name}/view?layers={v.address}"),
            }

        ctx = await run_in_threadpool(gather)
        return server.page(request, "acquisition.html", name=name, title=f"{name} · {cat.title}", **ctx)

    async def viewer_page(request: Request):
        name = request.path_params["name"]

        def gather():
            geo = cat.geometry(name)
            return V.viewer_config(name, geo, tiles.window(name), cat.versions(name), server.guard.allow_edit)

        config = await run_in_threadpool(gather)
        return server.page(request, "viewer.html", name=name, config=config, title=f"{name} viewer")

    async def lineage(request: Request):
        name = request.path_params["name"]
        versions = await run_in_threadpool(cat.versions, name)
        svg = lineage_svg(versions, lambda v: f"/a/{name}/view?layers={v.address}") or \
            '<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>'
        return Response(svg, media_type="image/svg+xml", headers={**S.page_headers(), "Cache-Control": "no-cache"})

    async def thumb(request: Request):
        name, plane = request.path_params["name"], request.path_params["plane"]
        if plane not in R.PLANES:
            raise NotFoundError("no such plane", field="plane", expected="xy | xz | yz", found=plane)

        def make():
            from .preview import picture

            cat.require(name)
            geo = cat.geometry(name)
            key = (name, plane)
            hit = server.thumbs.get(key)
            if hit is None or hit[1] != geo.data_id:
                body = R.encode(picture(cat, name, plane, max_side=256, window=tiles.window(name)))
                hit = server.thumbs[key] = (body, geo.data_id)
            return hit

        body, data_id = await run_in_threadpool(make)
        etag = f'"thumb-{plane}-{data_id[:24]}"'
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"ETag": etag})
        return Response(body, media_type="image/png", headers={"ETag": etag, "Cache-Control": "no-cache"})

    async def model_cover(request: Request):
        model, version = request.path_params["model"], request.path_params["version"]
        path = await run_in_threadpool(cat.model_cover, model, int(version))
        return Response(path.read_bytes(), media_type="image/png", headers={"Cache-Control": "max-age=31536000, "
                                                                                           "immutable"})

    async def neuroglancer(request: Request):
        name = request.path_params["name"]
        if not server.neuroglancer:
            raise NotFoundError("the neuroglancer client is not installed", field="neuroglancer",
                                hint="pip install neuroglancer")
        geo = await run_in_threadpool(cat.geometry, name)
        versions = await run_in_threadpool(cat.versions, name)
        state = V.neuroglancer_state(str(request.base_url), name, geo, versions)
        return RedirectResponse(f"/ng/v/{NG_TOKEN}/#{V.neuroglancer_fragment(state)}", status_code=302)

    async def analysis_file(request: Request):
        name, run, file = (request.path_params[k] for k in ("name", "run", "file"))
        path = await run_in_threadpool(cat.analysis_file, name, run, file)
        media = ANALYSIS_MEDIA.get(Path(file).suffix.lower())  # the record's name: annex keys may drop it
        if media is None:  # pragma: no cover - analyses write only these
            raise NotFoundError("not a file an analysis serves", field="file", found=file)
        headers = {**S.page_headers(), "Cache-Control": "no-cache"}
        if media != "text/html":
            headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
            if media not in ("image/png",):
                headers["Content-Disposition"] = f'attachment; filename="{file}"'
        return FileResponse(path, media_type=media, headers=headers)

    # --- JSON -------------------------------------------------------------------------------

    async def api_acquisitions(request: Request):
        q = request.query_params.get("q", "")[:200]
        rows = await run_in_threadpool(cat.summaries, q)
        return JSONResponse([{"name": s.name, "title": s.title, "organism": s.organism, "technique": s.technique,
                              "shape": list(s.shape), "dtype": s.dtype, "voxel_size_nm": list(s.voxel_size_nm),
                              "label_versions": s.n_label_versions} for s in rows])

    async def api_acquisition(request: Request):
        name = request.path_params["name"]

        def gather():
            geo = cat.geometry(name)
            return V.viewer_config(name, geo, tiles.window(name), cat.versions(name), server.guard.allow_edit)

        return JSONResponse(await run_in_threadpool(gather), headers={"Cache-Control": "no-cache"})

    # --- tiles ------------------------------------------------------------------------------

    def spec(request: Request):
        return check_spec(request.path_params["plane"], _int(request, "level"), _int(request, "index"),
                          _int(request, "row"), _int(request, "col"), _size(request))

    async def image_tile(request: Request):
        name, sp = request.path_params["name"], spec(request)
        cat.require(name)
        lo, hi = _query_float(request, "lo"), _query_float(request, "hi")
        fmt = request.query_params.get("format", "png")
        return _cached(request, await run_in_threadpool(tiles.image_tile, name, sp, lo, hi, fmt))

    async def label_tile(request: Request):
        name, sp = request.path_params["name"], spec(request)
        fmt = request.query_params.get("format", "png")
        return _cached(request, await run_in_threadpool(tiles.label_tile, name, request.path_params["address"],
                                                        sp, fmt))

    async def diff_tile(request: Request):
        name, sp = request.path_params["name"], spec(request)
        fmt = request.query_params.get("format", "png")
        return _cached(request, await run_in_threadpool(tiles.diff_tile, name, request.path_params["a"],
                                                        request.path_params["b"], sp, fmt))

    # --- edits ------------------------------------------------------------------------------

    async def paint(request: Request):
        name = request.path_params["name"]
        server.guard.check(request.headers, str(request.base_url))
        S.check_body_size(request.headers)
        body = await request.body()
        S.check_body_size(request.headers, body)
        edit = load_json(body, path="request body", error=CurationError)
        if not isinstance(edit, dict):
            raise CurationError("the edit is a JSON object", field="body", found=type(edit).__name__)
        cat.require(name)
        if not server.writing.acquire(blocking=False):
            raise LockedError("this server is saving another edit", path=name,
                              hint="wait until it is stored, then save again")
        try:
            from .paint import paint as store

            result = await run_in_threadpool(store, cat, name, edit, tool="curate serve",
                                             scheduler=server.scheduler)
        finally:
            server.writing.release()
        return JSONResponse({"status": "ok", "message": result.message, **result.to_json()["data"]},
                            status_code=201)

    # --- files ------------------------------------------------------------------------------

    async def zarr_file(request: Request):
        name, key = request.path_params["name"], request.path_params["key"]
        path = await run_in_threadpool(cat.zarr_file, name, key)
        media = "application/json" if key.endswith("zarr.json") else "application/octet-stream"
        return FileResponse(path, media_type=media, headers={"Cache-Control": "no-cache" if media ==
                                                             "application/json" else IMMUTABLE,
                                                             "X-Content-Type-Options": "nosniff"})

    async def ng_events(request: Request):
        # The wheel's client is its Python-integration build: it opens an event stream to
        # its Python server. This one stays open and silent (the state is in the URL).
        async def stream():
            yield ": neuroglancer state lives in the URL\n\n"
            for _ in range(NG_STREAM_SECONDS // 15):
                await asyncio.sleep(15)
                if await request.is_disconnected():
                    return
                yield ": keep-alive\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    async def ng_file(request: Request):
        name = request.path_params.get("file") or "index.html"
        hit = server.neuroglancer.get(name)
        if hit is None:
            raise NotFoundError("no such file of the neuroglancer client", field="file", found=name[:100])
        path, media = hit
        return FileResponse(path, media_type=media, headers=S.page_headers(neuroglancer=True))

    async def static_file(request: Request):
        name = request.path_params["file"]
        path = server.static.get(name)
        if path is None:
            raise NotFoundError("no such static file", field="file", found=name[:100])
        return FileResponse(path, media_type=V.STATIC[name], headers={"Cache-Control": "no-cache",
                                                                      "X-Content-Type-Options": "nosniff"})

    tile_tail = "{plane}/{level:int}/{index:int}/{row:int}/{col:int}"
    return [
        Route("/", catalog_page),
        Route("/a/{name}", acquisition_page),
        Route("/a/{name}/view", viewer_page),
        Route("/a/{name}/lineage.svg", lineage),
        Route("/a/{name}/thumb/{plane}.png", thumb),
        Route("/a/{name}/neuroglancer", neuroglancer),
        Route("/models/{model}/v{version:int}/cover.png", model_cover),
        Route("/a/{name}/analysis/{run}/{file}", analysis_file),
        Route("/api/acquisitions", api_acquisitions),
        Route("/api/a/{name}", api_acquisition),
        Route("/api/a/{name}/paint", paint, methods=["POST"]),
        Route(f"/tile/{{name}}/image/{tile_tail}", image_tile),
        Route(f"/tile/{{name}}/label/{{address}}/{tile_tail}", label_tile),
        Route(f"/tile/{{name}}/diff/{{a}}/{{b}}/{tile_tail}", diff_tile),
        Route("/zarr/{name}/{key:path}", zarr_file, methods=["GET", "HEAD"]),
        Route(f"/ng/v/{NG_TOKEN}/", ng_file),
        Route(f"/ng/v/{NG_TOKEN}/{{file}}", ng_file),
        Route(f"/ng/events/{NG_TOKEN}", ng_events),
        Route("/static/{file}", static_file),
    ]


# --- errors ------------------------------------------------------------------------------------

STATUS = [(ForbiddenError, 403), (RequestTooLargeError, 413), (LockedError, 409), (NotFoundError, 404),
          (InvalidNameError, 404), (NotAnArchiveError, 404), (CurationError, 400)]


def _status(exc: CurationError) -> int:
    for cls, code in STATUS:
        if isinstance(exc, cls):
            return code
    return 400  # pragma: no cover


def _wants_html(request: Request) -> bool:
    path = request.url.path
    return not path.startswith(("/api/", "/tile/", "/zarr/", "/ng/", "/static/")) and \
        "text/html" in request.headers.get("accept", "")


def make_error_handler(server: Server):
    async def handle(request: Request, exc: Exception):
        assert isinstance(exc, CurationError)
        code = _status(exc)
        payload = {"status": "busy" if code == 409 else "error", **exc.to_dict()}
        if _wants_html(request):
            return server.page(request, "error.html", status=code, code=code, message=exc.one_line())
        return JSONResponse(payload, status_code=code, headers={"X-Content-Type-Options": "nosniff"})

    return handle


async def _not_found(request: Request, exc: Exception):
    return JSONResponse({"status": "error", "error": "NotFound", "message": "no such page"}, status_code=404)


def create_app(archive: Path | str, *, allow_edit: bool = False, host: str = "127.0.0.1",
               extra_hosts: tuple[str, ...] = (), cache_bytes: int = 512 * 1024**2,
               scheduler: str | None = None) -> Starlette:
    """The Starlette application serving ``archive`` (see the module docstring)."""
    server = Server(archive, allow_edit=allow_edit, cache_bytes=cache_bytes, scheduler=scheduler)
    app = Starlette(
        routes=build_routes(server),
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=S.allowed_hosts(host, extra_hosts))],
        exception_handlers={CurationError: make_error_handler(server), 404: _not_found},
    )
    app.state.server = server
    return app


def serve(archive: Path | str, *, host: str = "127.0.0.1", port: int = 8000, allow_edit: bool = False,
          cache_mb: int = 512, scheduler: str | None = None, log_level: str = "warning") -> None:
    """Run the server until interrupted (used by ``curate serve``)."""
    import uvicorn

    app = create_app(archive, allow_edit=allow_edit, host=host, cache_bytes=cache_mb * 1024**2, scheduler=scheduler)
    uvicorn.run(app, host=host, port=port, log_level=log_level, server_header=False, timeout_graceful_shutdown=3)
