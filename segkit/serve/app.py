"""The FastAPI app: the HTTP endpoints, the live WebSocket and the Try-it page, over a bounded worker pool.

FastAPI (on Starlette, served by uvicorn) rather than bare Starlette: the OpenAPI schema and the /docs page come
from the endpoint signatures, and query parameters are validated into 422s with no hand-written checks.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import FastAPI, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive

import segkit
from segkit import ImageSegmenter, effects
from segkit._common import is_index
from segkit.serve import ops
from segkit.serve.config import EFFECTS, PREFERRED_MODELS, ServeConfig
from segkit.serve.images import ApiError, check_output_size, decode_image, encode_image, output_format
from segkit.serve.live import LIVE_EFFECTS, LiveSession
from segkit.serve.pool import ModelWorkers, Pool

logger = logging.getLogger("segkit.serve")
STATIC_DIR = Path(__file__).resolve().parent / "static"
IMAGE_BODY = {
    "requestBody": {
        "description": "The image: multipart field `file` (other form fields as the query parameters), or the raw "
        "image bytes as the body.",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
            "image/*": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}
# rembg's model names: all are general or person matting models; they map to the server's person model.
REMBG_MODELS = frozenset(
    {
        "u2net", "u2netp", "u2net_human_seg", "u2net_cloth_seg", "u2net_custom", "silueta", "isnet-general-use",
        "isnet-anime", "sam", "birefnet-general", "birefnet-general-lite", "birefnet-portrait", "birefnet-dis",
        "birefnet-hrsod", "birefnet-cod", "birefnet-massive", "bria-rmbg", "ben2-base",
    }
)  # fmt: skip


# --- parameters -----------------------------------------------------------------------------------------------------


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, description="served model name (default: the effect's usual model)")


class _MaskParams(_Params):
    categories: str | None = Field(
        None,
        description="the subject's label names or indices, comma-separated (default: the person, or everything "
        "but background; hair for the hair model)",
    )
    refine: Literal["none", "feather", "guided"] = Field(
        "none", description="mask refinement: feather (soft edges) or guided (snap to image edges)"
    )
    refine_radius: int = Field(4, ge=0, le=256, description="refinement radius in pixels")
    format: Literal["auto", "png", "jpeg", "webp"] = Field("auto", description="output format (auto: the input's)")
    quality: int = Field(90, ge=1, le=100, description="JPEG / WebP quality")


class BlurParams(_MaskParams):
    strength: float = Field(15.0, ge=0, le=1000, description="blur sigma in pixels")


class ReplaceParams(_MaskParams):
    background: str = Field(
        "#00b140",
        description="color ('#00b140', 'white', '0,177,64'); or send an image as multipart field `background`",
    )


class CutoutParams(_MaskParams):
    pass


class RecolorParams(_MaskParams):
    color: str = Field("#b03060", description="target color")
    strength: float = Field(0.8, ge=0, le=1, description="how far to move toward the color")


class OverlayParams(_Params):
    alpha: float = Field(0.5, ge=0, le=1, description="tint opacity")
    legend: bool = Field(True, description="draw the category legend")
    format: Literal["auto", "png", "jpeg", "webp"] = "auto"
    quality: int = Field(90, ge=1, le=100)


class SegmentParams(_Params):
    format: Literal["png", "json"] = Field("png", description="png: one mask (see `masks`); json: labels and PNG masks")
    masks: Literal["alpha", "category"] = Field(
        "alpha",
        description="png: alpha = the subject's 8-bit alpha (white = subject); category = MediaPipe's "
        "category mask (class indices; the selfie models mark the person 0)",
    )
    categories: str | None = Field(None, description="alpha: the subject's label names or indices, comma-separated")
    confidence: bool = Field(True, description="json: include each category's confidence mask (8-bit PNG)")


class RemoveParams(BaseModel):
    """rembg's ``/api/remove`` parameters (names and defaults as rembg); alpha matting maps to guided refinement."""

    model_config = ConfigDict(extra="ignore")

    model: str = "u2net"
    a: bool = False
    af: int = Field(240, ge=0, le=255)
    ab: int = Field(10, ge=0, le=255)
    ae: int = Field(10, ge=0)
    om: bool = False
    ppm: bool = False
    bgc: str | None = None
    extras: str | None = None


class LiveParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    effect: Literal["blur", "replace", "cutout", "recolor", "overlay", "mask"] = "blur"
    categories: str | None = None
    refine: Literal["none", "feather", "guided"] = "none"
    refine_radius: int = Field(4, ge=0, le=256)
    strength: float | None = Field(None, ge=0, le=1000)
    background: str = "#00b140"
    color: str = "#b03060"
    alpha: float = Field(0.5, ge=0, le=1)
    legend: bool = True
    quality: int = Field(80, ge=1, le=100)


# --- the app --------------------------------------------------------------------------------------------------------


class _BodyTooLarge(Exception):
    pass


def _capped(receive: Receive, limit: int) -> Receive:
    """``receive`` that raises _BodyTooLarge once more than ``limit`` body bytes have arrived."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _BodyTooLarge
        return message

    return wrapped


class Upload:
    """A request's image bytes, optional background image bytes and form fields."""

    def __init__(self, data: bytes, background: bytes | None, fields: dict[str, str]) -> None:
        self.data = data
        self.background = background
        self.fields = fields


class Server:
    """What the endpoints share: settings, the worker pool, the live sessions."""

    def __init__(self, config: ServeConfig, pool: Pool) -> None:
        self.config = config
        self.pool = pool
        self.live_sessions = 0
        self.started = time.time()
        self.loop: asyncio.AbstractEventLoop | None = None  # the serving loop, once started

    def begin_shutdown(self) -> None:
        """The server is about to stop: requests still waiting for a worker get 503 now, not a cancellation later.

        Safe from a signal handler or another thread; a no-op before the app has started.
        """
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.pool.stop_waiting)

    def default_model(self, effect: str) -> str:
        for name in PREFERRED_MODELS.get(effect, ()):
            if name in self.pool.models:
                return name
        return next(iter(self.pool.models))

    def workers(self, name: str | None, effect: str) -> ModelWorkers:
        return self.pool.get(name or self.default_model(effect))

    async def read_upload(self, request: Request, deadline: float) -> Upload:
        """The upload (multipart field ``file`` or the raw body), within the size limit and the deadline."""
        limit = self.config.max_upload_bytes
        length = request.headers.get("content-length")
        if length is not None and is_index(length) and int(length) > limit:
            raise ApiError(413, f"upload is {int(length)} bytes; the limit is {limit}")
        capped = Request(request.scope, receive=_capped(request.receive, limit))
        try:
            return await asyncio.wait_for(self._read(capped), max(0.0, deadline - time.monotonic()))
        except _BodyTooLarge:
            raise ApiError(413, f"upload is larger than the limit of {limit} bytes") from None
        except TimeoutError:
            raise ApiError(408, "the upload did not arrive within the per-request timeout") from None

    async def _read(self, request: Request) -> Upload:
        media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()  # case-insensitive
        if media_type != "multipart/form-data":
            return Upload(await request.body(), None, {})
        try:
            form = await request.form(max_files=2, max_fields=32, max_part_size=64 * 1024)
        except StarletteHTTPException as e:
            raise ApiError(400, f"malformed multipart body: {e.detail}") from None
        try:
            files: dict[str, bytes] = {}
            fields: dict[str, str] = {}
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    files[key] = await value.read()
                else:
                    fields[key] = value
        finally:
            await form.close()
        if "file" not in files:
            if "file" in fields:
                raise ApiError(400, "multipart field 'file' must be a file upload, not a text field")
            raise ApiError(400, "multipart body has no field 'file': send the image as field 'file'")
        return Upload(files["file"], files.get("background"), fields)


def _check_form_model(fields: Mapping[str, str], query_model: str | None) -> None:
    """ApiError 400 when the form field ``model`` differs from the query's: the workers are chosen (and the request
    admitted) from the query before the body is read, so a model in the body comes too late."""
    field = fields.get("model")
    if field is not None and field != query_model:
        shown = ops.shown(field)
        raise ApiError(
            400, f"form field model={shown}: give the model as a query parameter (?model=...), not a form field"
        )


def _check_no_background(upload: Upload, path: str) -> None:
    """ApiError 400 for a multipart ``background`` image sent where it is not used (it is not even decoded)."""
    if upload.background is not None:
        raise ApiError(400, f"multipart field 'background' is used only by /v1/replace; {path} takes none")


def _merge(params: BaseModel, fields: Mapping[str, str], model: type[Any]) -> Any:
    """The query parameters with the multipart form fields laid over them, validated again (422 when bad)."""
    if not fields:
        return params
    try:
        return model.model_validate({**params.model_dump(exclude_unset=True), **fields})
    except ValidationError as e:
        raise RequestValidationError(e.errors()) from None


def create_app(config: ServeConfig, pool: Pool | None = None) -> FastAPI:
    """The ASGI app serving ``config.models``; it owns ``pool`` (created here when not given) and closes it."""
    server = Server(config, pool if pool is not None else new_pool(config))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        server.loop = asyncio.get_running_loop()
        yield
        await asyncio.to_thread(server.pool.close)

    app = FastAPI(
        title="segkit",
        version=segkit.__version__,
        description="MediaPipe's Image Segmenter as an HTTP API: masks, background blur / replace / cutout, hair "
        "recolor, category overlays, a rembg-compatible `/api/remove`, and `WS /v1/live` for cameras. "
        "The Try-it page is at `/`.",
        lifespan=lifespan,
    )
    app.state.server = server

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=exc.status, headers=dict(exc.headers))

    @app.exception_handler(RequestValidationError)
    async def invalid_parameters(_: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own 422 body, with the client's values cut short: it echoes each bad value whole otherwise.
        return JSONResponse({"detail": jsonable_encoder(_cut_short(list(exc.errors())))}, status_code=422)

    @app.exception_handler(ClientDisconnect)
    async def client_gone(request: Request, _: ClientDisconnect) -> Response:
        # The client hung up before its upload was complete: nobody is left to answer, and nothing went wrong here.
        logger.debug("client disconnected during its upload to %s", request.url.path)
        return Response(status_code=400)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.error("unexpected error", exc_info=exc)
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}: {exc}"}, status_code=500)

    async def process(
        request: Request,
        workers: ModelWorkers,
        work: Callable[[Upload, ImageSegmenter], tuple[bytes, str, dict[str, str]]],
        check: Callable[[Upload], Awaitable[None]] | None = None,
    ) -> Response:
        deadline = time.monotonic() + config.timeout_s
        with workers.admit():
            upload = await server.read_upload(request, deadline)
            if check is not None:
                await check(upload)
            started = time.perf_counter()

            def run(segmenter: ImageSegmenter) -> tuple[bytes, str, dict[str, str]]:
                try:
                    return work(upload, segmenter)
                except ValueError as e:  # the effects' checks on values the endpoint passed through (a category)
                    raise ApiError(400, str(e)) from None

            body, media_type, headers = await workers.run(server.pool.executor, run, deadline)
        headers = {
            **headers,
            "X-Segkit-Model": workers.description.name,
            "X-Segkit-Time-Ms": f"{(time.perf_counter() - started) * 1000:.1f}",
        }
        return Response(body, media_type=media_type, headers=headers)

    def effect_endpoint(effect: str, params_model: type[_Params]) -> Callable[..., Awaitable[Response]]:
        async def endpoint(request: Request, params: Any) -> Response:
            workers = server.workers(params.model, effect)
            labels = workers.description.labels
            upload_params: Any = params

            async def check(upload: Upload) -> None:
                nonlocal upload_params
                if effect != "replace":
                    _check_no_background(upload, f"/v1/{effect}")
                upload_params = _merge(params, upload.fields, params_model)
                _check_form_model(upload.fields, params.model)
                ops.check_options(_effect_options(effect, upload_params, None), labels)

            ops.check_options(_effect_options(effect, params, None), labels)

            def work(upload: Upload, segmenter: ImageSegmenter) -> tuple[bytes, str, dict[str, str]]:
                decoded = decode_image(upload.data, config.max_pixels)
                fmt = output_format(upload_params.format, decoded.source_format, needs_alpha=effect == "cutout")
                height, width = decoded.pixels.shape[:2]
                check_output_size(width, height, fmt)  # before the work: the effects keep the image's size
                background = None
                if upload.background is not None:
                    background = decode_image(upload.background, config.max_pixels, "background").pixels
                options = _effect_options(effect, upload_params, background)
                result = segmenter.segment(decoded.pixels)
                category, shown = ops.category_map(result, workers.names)
                out = ops.apply_effect(decoded.pixels, result, segmenter, options)
                body, media_type = encode_image(out, fmt, upload_params.quality)
                return body, media_type, {"X-Segkit-Categories": json.dumps(ops.categories_present(category, shown))}

            return await process(request, workers, work, check)

        endpoint.__name__ = effect
        # The parameter model differs per effect: give FastAPI the real type (a string annotation would name a local).
        endpoint.__annotations__ = {"request": Request, "params": Annotated[params_model, Query()], "return": Response}
        return endpoint

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/healthz", summary="Liveness and load")
    async def healthz() -> dict[str, Any]:
        return {
            "status": "ok",
            "version": segkit.__version__,
            "models": list(server.pool.models),
            "in_flight": {name: w.in_flight for name, w in server.pool.models.items()},
            "live_sessions": server.live_sessions,
            "uptime_s": round(time.time() - server.started, 1),
        }

    @app.get("/v1/models", summary="Served models: names, labels, input sizes")
    async def list_models() -> dict[str, Any]:
        out = []
        for name, w in server.pool.models.items():
            d = w.description
            names = w.names
            legend = names if len(names) > 1 else ["background", names[0]]
            out.append(
                {
                    "name": name,
                    "labels": list(d.labels),
                    "display_names": list(d.display_names),
                    "input": {"height": d.input_height, "width": d.input_width, "channels": d.input_channels},
                    "categories": [{"index": i, "label": n, "color": ops.palette_hex(i)} for i, n in enumerate(legend)],
                    "workers": w.workers,
                }
            )
        defaults = {effect: server.default_model(effect) for effect in ("segment", *EFFECTS, "live")}
        return {"models": out, "defaults": defaults, "effects": list(EFFECTS), "live_effects": list(LIVE_EFFECTS)}

    @app.post(
        "/v1/segment",
        summary="Masks: one PNG (the subject's alpha or MediaPipe's category mask), or JSON with labels and PNG masks",
        openapi_extra=IMAGE_BODY,
    )
    async def segment(request: Request, params: Annotated[SegmentParams, Query()]) -> Response:
        workers = server.workers(params.model, "segment")
        names = workers.names
        merged: Any = params

        async def check(upload: Upload) -> None:
            nonlocal merged
            _check_no_background(upload, "/v1/segment")
            merged = _merge(params, upload.fields, SegmentParams)
            _check_form_model(upload.fields, params.model)
            ops.check_options(ops.EffectOptions("segment", categories=merged.categories), workers.description.labels)

        ops.check_options(ops.EffectOptions("segment", categories=params.categories), workers.description.labels)

        def work(upload: Upload, segmenter: ImageSegmenter) -> tuple[bytes, str, dict[str, str]]:
            decoded = decode_image(upload.data, config.max_pixels)
            result = segmenter.segment(decoded.pixels)
            category, shown = ops.category_map(result, names)
            present = ops.categories_present(category, shown)
            raw = np.asarray(result.category_mask.numpy_view())[:, :, 0] if result.category_mask else category
            if merged.format == "png":
                options = ops.EffectOptions("mask", categories=merged.categories)
                mask = (
                    raw if merged.masks == "category" else ops.apply_effect(decoded.pixels, result, segmenter, options)
                )
                headers = {"X-Segkit-Labels": json.dumps(shown), "X-Segkit-Categories": json.dumps(present)}
                return (*encode_image(mask, "png"), headers)
            doc: dict[str, Any] = {
                "model": workers.description.name,
                "width": int(category.shape[1]),
                "height": int(category.shape[0]),
                "labels": shown,
                "categories": present,
                "category_mask": _b64png(raw),
            }
            if merged.confidence:
                doc["confidence_masks"] = [
                    {
                        "label": name,
                        "png": _b64png(ops.to_u8(effects.subject_mask(result, categories=[i], segmenter=segmenter))),
                    }
                    for i, name in enumerate(names)
                ]
            return json.dumps(doc).encode(), "application/json", {}

        return await process(request, workers, work, check)

    for effect, params_model in (
        ("blur", BlurParams),
        ("replace", ReplaceParams),
        ("cutout", CutoutParams),
        ("recolor", RecolorParams),
        ("overlay", OverlayParams),
    ):
        app.post(
            f"/v1/{effect}",
            summary=f"{effect}: image in, image out (the CLI's `segkit {effect}` options as parameters)",
            openapi_extra=IMAGE_BODY,
            response_class=Response,
        )(effect_endpoint(effect, params_model))

    @app.post(
        "/api/remove",
        summary="rembg-compatible background removal: RGBA cutout PNG (or the mask with om=true)",
        openapi_extra=IMAGE_BODY,
    )
    async def rembg_remove(request: Request, params: Annotated[RemoveParams, Query()]) -> Response:
        merged: Any = params

        workers = server.workers(None if params.model in REMBG_MODELS else params.model, "cutout")

        async def check(upload: Upload) -> None:
            nonlocal merged
            merged = _merge(params, upload.fields, RemoveParams)
            field = upload.fields.get("model")
            if field is None or field == params.model:
                return
            # rembg clients send the model as a form field: its own names mean the default cutout model; one of
            # ours can only be honoured when it is the model already chosen from the query (404 when not served).
            chosen = server.workers(None if field in REMBG_MODELS else field, "cutout")
            if chosen is not workers:
                raise ApiError(
                    400,
                    f"form field model={ops.shown(field)} asks for {chosen.description.name}, but the query chose "
                    f"{workers.description.name}: give a segkit model as a query parameter "
                    f"(/api/remove?model={chosen.description.name})",
                )

        def work(upload: Upload, segmenter: ImageSegmenter) -> tuple[bytes, str, dict[str, str]]:
            p: RemoveParams = merged
            decoded = decode_image(upload.data, config.max_pixels)
            refine = "guided" if p.a else "feather" if p.ppm else "none"
            options = ops.EffectOptions("cutout", refine=refine, refine_radius=max(1, min(64, p.ae // 2 if p.a else 4)))
            result = segmenter.segment(decoded.pixels)
            alpha = ops.subject_alpha(decoded.pixels, result, segmenter, options)
            if p.om:
                return (*encode_image(ops.to_u8(alpha), "png"), {})
            out = effects.cutout(decoded.pixels, alpha)
            if p.bgc:
                out = _over_color(out, _rgba(p.bgc))
            return (*encode_image(out, "png"), {})

        if params.bgc:
            _rgba(params.bgc)
        return await process(request, workers, work, check)

    @app.get("/api/remove", summary="rembg's fetch-from-URL variant: not offered (POST the image instead)")
    async def rembg_remove_url() -> Response:
        raise ApiError(400, "this server does not fetch images from URLs: POST the image to /api/remove as 'file'")

    @app.websocket("/v1/live")
    async def live(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            params = LiveParams.model_validate(dict(websocket.query_params))
            workers = server.workers(params.model, params.effect if params.effect in PREFERRED_MODELS else "live")
            names = workers.names
            options = ops.EffectOptions(
                params.effect,
                categories=params.categories,
                refine=params.refine,
                refine_radius=params.refine_radius,
                strength=params.strength,
                background=params.background,
                color=params.color,
                alpha=params.alpha,
                legend=params.legend,
            )
            ops.check_options(options, workers.description.labels)
        except (ValidationError, ApiError) as e:
            reason = e.message if isinstance(e, ApiError) else str(e)
            await websocket.send_text(json.dumps({"type": "error", "message": reason}))
            await websocket.close(code=1008, reason="bad parameters")
            return
        if server.live_sessions >= config.max_live:
            await websocket.send_text(json.dumps({"type": "error", "message": "too many live sessions; retry later"}))
            await websocket.close(code=1013, reason="too many live sessions")
            return
        server.live_sessions += 1
        session: LiveSession | None = None
        tasks: list[asyncio.Task[None]] = []
        try:
            session = await asyncio.to_thread(
                LiveSession,
                Path(workers.description.path),
                config.segmenter_threads,
                options,
                config.max_pixels,
                params.quality,
                asyncio.get_running_loop(),
                workers.normalization,
            )
            session.post_text(
                {"type": "ready", "model": workers.description.name, "effect": params.effect, "labels": names}
            )
            live_session = session

            async def sender() -> None:
                while True:
                    outgoing = await live_session.next_message()
                    if isinstance(outgoing, bytes):
                        await websocket.send_bytes(outgoing)
                    else:
                        await websocket.send_text(outgoing)

            tasks = [asyncio.create_task(sender()), asyncio.create_task(session.feed())]
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                if message.get("bytes") is not None:
                    session.accept_frame(message["bytes"])
                elif message.get("text") is not None:
                    _control(session, message["text"])
        except WebSocketDisconnect:
            pass
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if session is not None:
                await asyncio.to_thread(session.close)
            server.live_sessions -= 1

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def _control(session: LiveSession, text: str) -> None:
    """A client's text message: ``{"type": "stats"}`` asks for the counters."""
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):  # not JSON, a 4300-digit integer, or nested thousands deep
        message = None
    if isinstance(message, dict) and message.get("type") == "stats":
        session.post_text({"type": "stats", **session.stats()})
    else:
        session.post_text({"type": "error", "message": 'text messages must be JSON: {"type": "stats"}'})


def _effect_options(effect: str, params: Any, background: np.ndarray | None) -> ops.EffectOptions:
    """The endpoint's validated parameters as EffectOptions."""
    return ops.EffectOptions(
        effect,
        categories=getattr(params, "categories", None),
        refine=getattr(params, "refine", "none"),
        refine_radius=getattr(params, "refine_radius", 4),
        strength=getattr(params, "strength", None),
        background=background if background is not None else getattr(params, "background", "#00b140"),
        color=getattr(params, "color", "#b03060"),
        alpha=getattr(params, "alpha", 0.5),
        legend=getattr(params, "legend", True),
    )


def _cut_short(value: Any, depth: int = 0) -> Any:
    """``value`` (a validation error's parts) with every long string cut to ops.SHOWN_CHARS characters."""
    if isinstance(value, str):
        return ops.clipped(value)
    if depth > 4:
        return value
    if isinstance(value, dict):
        return {_cut_short(k, depth + 1): _cut_short(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_cut_short(v, depth + 1) for v in value]
    return value


def _b64png(mask: np.ndarray) -> str:
    return base64.b64encode(encode_image(mask, "png")[0]).decode("ascii")


def _rgba(value: str) -> tuple[int, int, int, int]:
    """rembg's ``bgc`` ('r,g,b,a', 0..255 each) as a tuple; ApiError 400 otherwise."""
    parts = [p.strip() for p in value.split(",")]
    if len(parts) == 4 and all(is_index(p) and int(p) <= 255 for p in parts):
        return int(parts[0]), int(parts[1]), int(parts[2]), int(parts[3])
    raise ApiError(400, f"bgc {ops.shown(value)} must be 'r,g,b,a' with each value in 0..255")


def _over_color(rgba: np.ndarray, color: tuple[int, int, int, int]) -> np.ndarray:
    """An RGBA cutout composited over a (possibly translucent) color, as rembg's ``bgcolor``."""
    a = rgba[:, :, 3:4].astype(np.float32) / 255.0
    fill = np.asarray(color, np.float32)
    out = rgba.astype(np.float32) * a + fill * (1.0 - a)
    out[:, :, 3:4] = a * 255.0 + fill[3] * (1.0 - a)
    result: np.ndarray = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return result


def new_pool(config: ServeConfig) -> Pool:
    """The worker pool for ``config``: one segmenter per model is created (and so checked) right away."""
    return Pool(config.models, config.workers, config.queue, config.segmenter_threads)
