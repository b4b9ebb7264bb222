"""The review server: FastAPI over a review source (the store, or a labelled folder).

``create_app(source, token=..., check_host=...)`` builds the app; ``serve`` runs it with uvicorn.
The API (its OpenAPI schema is at ``/openapi.json``):

    GET  /api/info                 what is reviewed, labels, keys, the write token for the page
    GET  /api/faces                one page of items, filtered and sorted, and the total
    GET  /api/faces/{id}           one item
    GET  /api/faces/{id}/crop      its picture (by id only; nothing from the request names a path)
    GET  /api/faces/{id}/scene     the whole frame it was seen in, when kept (logging.scene_width)
    POST /api/reviews              label / accept / not_face / clear items, all at once; returns
                                   each item before and after, which is what the page's undo uses
    GET  /api/stats                counts per class, the accuracy estimate, the confusion matrix
    GET  /api/live                 the daemon's live view: an MJPEG stream (multipart/x-mixed-replace)
    GET  /api/live/frame           one live frame (JPEG), waiting up to 3 s for the daemon
"""
from __future__ import annotations

import errno
import sqlite3
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Body, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from edge.contracts.labels import LABELS
from edge.review import queries
from edge.review.bodies import BodyCap, validation_details
from edge.review.items import CannotApply, Filters, NotFound, ReviewChange
from edge.review.live import MEDIA_TYPE, LiveFiles
from edge.review.security import HEADER, Guard, cookie_name, is_loopback

STATIC = Path(__file__).parent / "static"
MAX_ID = 2**53 - 1                  # the largest id JSON and the page (JavaScript numbers) carry exactly; larger: 422
Label = Literal[LABELS]             # type: ignore[valid-type]
Order = Literal["time", "time_desc", "confidence"]
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
}


class LabelChange(BaseModel):
    """Set the reviewer's label of one item."""
    model_config = ConfigDict(extra="forbid")
    id: int = Field(ge=1, le=MAX_ID, description="item id")
    action: Literal["label"] = Field(description="label: set `label`")
    label: Label = Field(description="the label")


class OtherChange(BaseModel):
    """Accept the prediction, mark as not a face, or clear the review of one item."""
    model_config = ConfigDict(extra="forbid")
    id: int = Field(ge=1, le=MAX_ID, description="item id")
    action: Literal["accept", "not_face", "clear"] = Field(
        description="accept: set the prediction; not_face: not a face; clear: unreviewed")
    label: Label | None = Field(None, description="ignored (only action=label takes a label)")


# The schema says that action=label needs a label, so a request the schema accepts is one the server takes.
Change = Annotated[LabelChange | OtherChange, Field(discriminator="action")]


class ValidationProblem(BaseModel):
    type: str | None = None
    loc: list[str | int | None] = []
    msg: str = ""
    input: str | int | float | bool | None = None


class Problem(BaseModel):
    """Every error answer: one short ``detail`` (a list of field problems for a 422 from validation)."""
    detail: str | list[ValidationProblem]
    errors: int | None = Field(None, description="422 from validation: how many problems in all")


ERROR_RESPONSES = {code: {"model": Problem, "description": text} for code, text in (
    (400, "a body that is not strict JSON, or cannot be parsed"), (401, "the token is missing or wrong"),
    (403, "a write without the X-Moodcam-Token header"), (404, "no such item, or its picture cannot be read"),
    (413, "a request body over the cap (64 KiB)"), (421, "a Host header that is not loopback"),
    (422, "a parameter or body field out of its range"), (503, "the store is busy or unusable; retry"),
    (507, "the disk is full; nothing was saved"))}


# Each change is its own durable (fsynced) commit in the store; 500 keeps one request under a
# few seconds on a Pi's SD card. The page sends larger selections in chunks of this size.
MAX_CHANGES = 500


class ReviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    changes: list[Change] = Field(min_length=1, max_length=MAX_CHANGES)


def _filters(labels, reviewed, min_confidence, max_confidence, since, until) -> Filters:
    return Filters(tuple(labels or ()), reviewed, min_confidence, max_confidence, since, until)


def create_app(source, *, token: str | None = None, check_host: bool = True) -> FastAPI:
    """The app for one source. ``token``: required on every request; ``check_host``: accept only
    loopback Host headers (set it when bound to loopback)."""
    guard = Guard(token, check_host)
    # No /docs: Swagger UI loads scripts from a CDN (the Pi may be offline, and the CSP forbids
    # it); the schema itself is at /openapi.json.
    app = FastAPI(title="moodcam review", version="1", description=__doc__, docs_url=None, redoc_url=None,
                  responses=ERROR_RESPONSES)
    app.state.source = source
    app.state.guard = guard
    # The live view needs the daemon's state directory (store mode); a folder has none.
    live = LiveFiles(source.state_dir) if getattr(source, "mode", "") == "store" else None

    @app.middleware("http")
    async def guard_requests(request: Request, call_next):
        cookie = cookie_name(request.url.port)
        refused = guard.check(request.method, request.headers.get("host", ""), request.headers.get(HEADER),
                              request.cookies.get(cookie), request.query_params.get("token"))
        if refused:
            response = JSONResponse({"detail": refused[1]}, status_code=refused[0])
        elif token and request.method == "GET" and request.url.path == "/" and "token" in request.query_params:
            # Trade the link's token for a cookie and drop it from the address bar and history.
            response = RedirectResponse("/", status_code=303)
            response.set_cookie(cookie, token, httponly=True, samesite="strict", path="/")
        else:
            response = await call_next(request)
        for key, value in SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        return response

    # Bodies are capped and strictly parsed before the guard or FastAPI read them (bodies.py).
    app.add_middleware(BodyCap, headers=SECURITY_HEADERS)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        # FastAPI's default 422 repeats the whole input (a 56 MB body came back whole); name the
        # field and the problem instead.
        return JSONResponse(validation_details(list(exc.errors())), status_code=422)

    def not_found(item_id):
        return HTTPException(404, f"no item with id {item_id}")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index():
        return FileResponse(STATIC / "index.html", media_type="text/html", headers={"Cache-Control": "no-store"})

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str = PathParam(pattern=r"^[a-z]+\.(css|js|svg)$")):
        path = STATIC / name
        if not path.is_file():
            raise HTTPException(404, f"no static file {name}")
        media = {"css": "text/css", "js": "text/javascript", "svg": "image/svg+xml"}[name.rsplit(".", 1)[1]]
        return FileResponse(path, media_type=media, headers={"Cache-Control": "no-cache"})

    @app.get("/api/info")
    def info() -> dict:
        """What is reviewed, the labels in key order (1..7) and the token that POSTs carry."""
        return {"mode": source.mode, "source": source.description, "labels": list(LABELS),
                "write_token": guard.write_token, "token_header": HEADER, "live": live is not None}

    @app.get("/api/faces")
    def faces(
        labels: list[Label] | None = Query(None, alias="label", description="predicted label(s)"),
        reviewed: bool | None = Query(None),
        min_confidence: float | None = Query(None, ge=0.0, le=1.0),
        max_confidence: float | None = Query(None, ge=0.0, le=1.0),
        since: float | None = Query(None, ge=0, le=1e11, description="unix seconds, inclusive"),
        until: float | None = Query(None, ge=0, le=1e11, description="unix seconds, exclusive"),
        order: Order = Query("time_desc", description="time (oldest first), time_desc, confidence (hardest first)"),
        limit: int = Query(120, ge=1, le=1000),
        offset: int = Query(0, ge=0, le=MAX_ID),
    ) -> dict:
        """One page of items matching the filters, and how many match in all."""
        items, total = source.query(_filters(labels, reviewed, min_confidence, max_confidence, since, until),
                                    order, limit, offset)
        return {"total": total, "offset": offset, "items": [it.to_json() for it in items]}

    @app.get("/api/faces/{item_id}")
    def face(item_id: int = PathParam(ge=1, le=MAX_ID)) -> dict:
        try:
            return source.get(item_id).to_json()
        except NotFound:
            raise not_found(item_id) from None

    @app.get("/api/faces/{item_id}/crop", responses={200: {"content": {"image/png": {}}}})
    def crop(item_id: int = PathParam(ge=1, le=MAX_ID)):
        """The face picture of one item, found by id in the store (never by a path)."""
        try:
            data, media_type = source.crop(item_id)
        except NotFound:
            raise not_found(item_id) from None
        except OSError as e:  # a missing or undecodable picture
            raise HTTPException(404, f"picture of item {item_id} cannot be read: {e.__class__.__name__}") from None
        headers = {"Cache-Control": "private, max-age=600"}
        if isinstance(data, Path):
            return FileResponse(data, media_type=media_type, headers=headers)
        return Response(data, media_type=media_type, headers=headers)

    @app.get("/api/faces/{item_id}/scene", responses={200: {"content": {"image/jpeg": {}}}})
    def scene(item_id: int = PathParam(ge=1, le=MAX_ID)):
        """The thumbnail of the whole frame the face was seen in, when the daemon kept one."""
        try:
            path, media_type = source.scene(item_id)
        except (NotFound, AttributeError):     # a folder keeps no scenes
            raise HTTPException(404, f"no scene kept for item {item_id}") from None
        return FileResponse(path, media_type=media_type, headers={"Cache-Control": "private, max-age=600"})

    @app.post("/api/reviews")
    def review(request: ReviewRequest = Body(...)) -> dict:
        """Apply reviews at once (saved before the reply). All ids are checked first: a bulk
        action is applied whole or not at all."""
        try:
            changes = [ReviewChange(c.id, c.action, c.label) for c in request.changes]
            done = source.apply(changes)
        except NotFound as e:
            raise not_found(e.args[0]) from None
        except (CannotApply, ValueError) as e:
            raise HTTPException(422, str(e)) from None
        except OSError as e:  # disk full (edge.store.StoreFullError), a read-only file system
            code = 507 if e.errno in (errno.ENOSPC, errno.EDQUOT) else 503
            raise HTTPException(code, f"not saved: {e.strerror or e}; free some space or fix the file system and retry") from None
        except (sqlite3.OperationalError, RuntimeError) as e:  # the daemon held the write lock past the
            # busy timeout (edge.store.StoreError says so), or the store is unusable: say it, don't 500
            raise HTTPException(503, f"not saved: {e}") from None
        return {"before": [b.to_json() for b, _ in done], "items": [a.to_json() for _, a in done]}

    @app.get("/api/stats")
    def stats(
        min_confidence: float | None = Query(None, ge=0.0, le=1.0),
        max_confidence: float | None = Query(None, ge=0.0, le=1.0),
        since: float | None = Query(None, ge=0, le=1e11),
        until: float | None = Query(None, ge=0, le=1e11),
    ) -> dict:
        """Reviewed N of M, per-class counts, accuracy (95% Wilson interval) and the confusion
        matrix of prediction (rows) vs reviewer label (columns, plus not_face)."""
        return queries.stats(source, _filters((), None, min_confidence, max_confidence, since, until))

    def no_live():
        return HTTPException(404, "no live view here: it shows the daemon's camera, so serve its state "
                                  "directory (--state DIR), not a folder")

    # Not in the OpenAPI schema: a stream that lasts while it is watched is no request-response
    # operation (a schema fuzzer would wait on it forever), and a 503 is their normal answer when
    # no daemon runs. docs/review.md documents both.
    @app.get("/api/live", include_in_schema=False)
    def live_stream():
        """The daemon's frames with faces, tracks and labels drawn, while this request stays open.
        The daemon draws them only while someone watches, at its [live] fps."""
        if live is None:
            raise no_live()
        return StreamingResponse(live.stream(), media_type=MEDIA_TYPE, headers={"Cache-Control": "no-store"})

    @app.get("/api/live/frame", include_in_schema=False)
    async def live_frame():
        """One live frame; 503 when the daemon writes none within 3 s (not running, or [live] fps = 0)."""
        if live is None:
            raise no_live()
        data = await live.wait_frame(3.0)
        if data is None:
            raise HTTPException(503, "no live frame: is the daemon running on this state directory, with "
                                     "[live] fps above 0?")
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    return app


def serve(source, host: str = "127.0.0.1", port: int = 8080, token: str | None = None) -> None:
    """Run the app with uvicorn until Ctrl-C."""
    import uvicorn

    app = create_app(source, token=token, check_host=is_loopback(host))
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, server_header=False)
