"""The service's ASGI middleware: the request body limit (413) and the fast path of one flight.

Both sit in front of FastAPI (serving/app.py): `BodyLimit` answers an oversized body before any parsing,
`QuickPredict` answers a valid one-flight `POST /predict` without FastAPI's per-request machinery and
hands everything else to the routes unchanged.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from mlops_assets.serving.errors import client_error, decode_json, http_error, validation_error
from mlops_assets.serving.flights import FlightRequest

if TYPE_CHECKING:
    from mlops_assets.serving.app import PredictionService


class BodyLimit:
    """ASGI middleware: a request body over `max_bytes` gets 413 before any parsing (declared by
    Content-Length or counted while it streams in), in the same `detail` shape as a 422.

    FastAPI 0.165 has `FastAPI(max_body_size=...)` (Starlette's RequestBodyLimitMiddleware), but for a
    body whose declared length is over the limit it replaces whatever response the app sends with a
    plain-text "Content Too Large", so a client could not read the reason the way it reads a 422."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, receive, send, int(declared))
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await self._too_large(scope, receive, send, None)
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    async def _too_large(self, scope, receive, send, declared: int | None) -> None:
        size = f"is {declared} bytes" if declared is not None else "streamed in goes past the limit"
        message = (
            f"the request body {size}; the limit is {self.max_bytes} bytes (send fewer flights per request)"
        )
        await client_error(413, "body_too_large", ["body"], message)(scope, receive, send)


JSON_CONTENT_TYPE = b"application/json"
JSON_HEADERS = [(b"content-type", JSON_CONTENT_TYPE)]
# As Starlette's JSONResponse renders, one encoder made once (json.dumps makes one per call with these)
_render = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


class QuickPredict:
    """ASGI middleware: answers a one-flight `POST /predict` whose JSON body is a valid flight itself,
    without FastAPI's routing, dependency solving and response classes around it.

    It decodes the body as the route does (`decode_json`) and validates it with the same model
    (`FlightRequest`); a body sent as anything but `application/json`, or one that fails either step, goes
    on to FastAPI's route untouched, which answers it exactly as before. An error the scoring raises
    (unknown flight or airport: 422; no champion: 503) is answered by the app's own handlers."""

    def __init__(self, app, service: PredictionService, path: str = "/predict") -> None:
        self.app, self.service, self.path = app, service, path

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        if _content_type(scope["headers"]) != JSON_CONTENT_TYPE:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:  # the client went away
            return
        try:
            flight = FlightRequest.model_validate(decode_json(body))
        except Exception:  # not JSON or not a flight: the route's own 422, from the same bytes
            await self.app(scope, _replay(body, receive), send)
            return
        try:
            _, predictions = self.service.score([flight], batch=False)
        except RequestValidationError as error:
            await (await validation_error(Request(scope), error))(scope, receive, send)
            return
        except StarletteHTTPException as error:
            await (await http_error(Request(scope), error))(scope, receive, send)
            return
        payload = _render(predictions[0]).encode()
        headers = [(b"content-length", str(len(payload)).encode()), *JSON_HEADERS]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


def _content_type(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    for name, value in headers:
        if name == b"content-type":
            return value.lower()
    return None


async def _read_body(receive) -> bytes | None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive):
    """A `receive` that gives the app the body already read, then the connection's own messages."""
    replayed = False

    async def replay():
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
