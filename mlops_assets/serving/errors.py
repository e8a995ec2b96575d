"""Client errors: each is a 4xx with the body FastAPI gives a 422, `{"detail": [{type, loc, msg, input}]}`.

FastAPI alone answers some client input with a 500 or another shape:
- `json.loads` takes `NaN`, `Infinity` and `1e400` (inf); the 422 that echoes such a value cannot be
  rendered (Starlette's JSONResponse refuses non-finite floats): 500. So do a string with a lone surrogate
  (`"\\ud800"`, valid JSON escapes, not encodable as UTF-8) and a non-UTF-8 body sent as text/plain;
- a body that is not UTF-8, nested deeper than the parser's recursion limit, or holding an integer of more
  than 4,300 digits gets 400 `{"detail": "There was an error parsing the body"}`;
- a body that is not `application/json` is validated as raw bytes: a 422 about "a valid dictionary".

Here the body is decoded strictly (`StrictJSONRoute`: UTF-8, finite numbers only; each failure is FastAPI's
own `json_invalid` 422 with the reason), a body of another media type is a 415, a 404 or 405 gets the same
list shape, and every error echoed back is made JSON-safe first. Nothing here runs on a valid request
but the body decode FastAPI does anyway.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

MAX_ECHO_DEPTH = 16  # an echoed input nested deeper is cut: rendering it must not recurse without bound
JSON_MEDIA_TYPE = "application/json"
# FastAPI's own answer when reading the body raised something other than a JSON decode error
FASTAPI_BODY_ERROR = "There was an error parsing the body"
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|(-?Infinity|NaN|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)')


# ---- the documented shape (OpenAPI) -------------------------------------------------------------------


class ErrorDetail(BaseModel):
    """One problem, as FastAPI's ValidationError describes it."""

    type: str = Field(description="Machine-readable kind, e.g. int_type, unknown_airport, json_invalid.")
    loc: list[str | int] = Field(description='Where: ["body", "flights", 3, "dest"], ["header", ...].')
    msg: str = Field(description="What is wrong and how to fix it.")
    input: Any = Field(default=None, description="The value refused (JSON-safe; deep values cut).")
    ctx: dict[str, Any] | None = None


class ClientErrorBody(BaseModel):
    detail: list[ErrorDetail]


class ServiceUnavailable(BaseModel):
    detail: str = Field(description="Why: no champion model yet, or the online store cannot be read.")


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these status codes (422 is FastAPI's own, in the same shape)."""
    described = {
        413: "The body is over the service's `max_body_bytes`.",
        415: "The body is not sent as application/json.",
        503: "No champion model yet, or the online store cannot be read; try again later.",
    }
    return {
        code: {
            "model": ServiceUnavailable if code == 503 else ClientErrorBody,
            "description": described[code],
        }
        for code in codes
    }


def client_error(status: int, kind: str, loc: list[str | int], msg: str, value: Any = None) -> JSONResponse:
    detail = [{"type": kind, "loc": loc, "msg": msg, "input": json_safe(value)}]
    return JSONResponse({"detail": detail}, status_code=status)


# ---- decoding the body --------------------------------------------------------------------------------


class _NonFinite(ValueError):
    def __init__(self, literal: str) -> None:
        super().__init__(literal)
        self.literal = literal


def _refuse_constant(name: str) -> float:
    raise _NonFinite(name)


def _finite_float(literal: str) -> float:
    """Called by the decoder for numbers with a fraction or exponent only (a valid request has none)."""
    value = float(literal)
    if not math.isfinite(value):
        raise _NonFinite(literal)
    return value


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)


def decode_json(body: bytes) -> Any:
    """The body as JSON (RFC 8259: UTF-8, numbers finite); any failure is a json.JSONDecodeError, which
    FastAPI answers as its own `json_invalid` 422 naming the position and the reason."""
    try:
        text = body.decode("utf-8-sig")  # a byte order mark is let through, as json.loads(bytes) does
    except UnicodeDecodeError as error:
        reason = f"the body is not UTF-8 (byte 0x{body[error.start]:02x} at offset {error.start})"
        if body.startswith(b"\x1f\x8b"):
            reason += ": it looks gzip-compressed, and the service takes uncompressed JSON"
        raise json.JSONDecodeError(f"{reason}; send JSON encoded as UTF-8", "", error.start) from None
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError:
        raise
    except _NonFinite as error:
        literal = error.literal
        reason = f"{literal} is not a finite number (JSON has no NaN or Infinity; doubles end near 1.8e308)"
        raise json.JSONDecodeError(reason, text, _find(text, lambda token: token == literal)[0]) from None
    except RecursionError:
        raise json.JSONDecodeError("the body is nested too deeply", text, 0) from None
    except ValueError:  # an integer past Python's conversion limit (sys.get_int_max_str_digits())
        limit = sys.get_int_max_str_digits()
        at, token = _find(text, lambda token: len(token.lstrip("-")) > limit)
        reason = f"a number of {len(token.lstrip('-'))} digits is too long (at most {limit})"
        raise json.JSONDecodeError(reason, text, at) from None


def _find(text: str, refused: Callable[[str], bool]) -> tuple[int, str]:
    """Where the refused number is, and its text: the first such token outside a string."""
    for match in _TOKEN.finditer(text):
        if match.group(1) is not None and refused(match.group(1)):
            return match.start(), match.group(1)
    return 0, ""


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = decode_json(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    """FastAPI's documented way to change how a route reads its request: the same route, whose request
    decodes JSON strictly (`decode_json`)."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def strict_handler(request: Request):
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict_handler


# ---- the handlers -------------------------------------------------------------------------------------


async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    """FastAPI's 422, every value made JSON-safe; a body FastAPI did not read as JSON (its media type is
    another) is a 415."""
    if isinstance(error.body, bytes):
        media = request.headers.get("content-type")
        message = (
            f"send the body as JSON with content-type: {JSON_MEDIA_TYPE} (got {media or 'no content-type'})"
        )
        return client_error(415, "unsupported_media_type", ["header", "content-type"], message, media)
    detail = [_safe_error(entry) for entry in error.errors()]
    for entry in detail:
        if entry.get("type") == "json_invalid" and isinstance(entry.get("ctx"), dict):
            entry["msg"] = f"the body is not valid JSON: {entry['ctx'].get('error')}"
    return JSONResponse({"detail": detail}, status_code=422)


async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
    """4xx in the list shape (404, 405, and FastAPI's 400 for a body it could not read, which is a 422
    json_invalid); 5xx as FastAPI answers them, `{"detail": "..."}`."""
    if error.status_code == 400 and error.detail == FASTAPI_BODY_ERROR:
        cause = error.__cause__
        reason = f"{type(cause).__name__}: {cause}" if cause else "unreadable"
        return client_error(422, "json_invalid", ["body"], f"the body could not be read: {reason}")
    if 400 <= error.status_code < 500:
        kind = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "client_error")
        where: list[str | int] = ["method"] if error.status_code == 405 else ["path"]
        asked = request.method if error.status_code == 405 else request.url.path
        message = f"{error.detail}: {request.method} {request.url.path}"
        if error.headers and "Allow" in error.headers:
            message += f" (allowed: {error.headers['Allow']})"
        response = client_error(error.status_code, kind, where, message, asked)
        response.headers.update(error.headers or {})  # 405's Allow
        return response
    return await http_exception_handler(request, error)


def _safe_error(entry: dict[str, Any]) -> dict[str, Any]:
    safe = {key: json_safe(value) for key, value in entry.items() if key != "url"}
    safe["loc"] = [part if isinstance(part, int) else json_safe(str(part)) for part in entry.get("loc", ())]
    return safe


def json_safe(value: Any, depth: int = 0) -> Any:
    """`value` as something JSONResponse renders: non-finite floats as their names, strings re-encodable
    as UTF-8 (a lone surrogate as its escape), bytes decoded, containers cut at MAX_ECHO_DEPTH."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return (
            value
            if math.isfinite(value)
            else ("NaN" if math.isnan(value) else ("-" if value < 0 else "") + "Infinity")
        )
    if isinstance(value, str):
        return value if value.isascii() else value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, dict | list | tuple) and depth >= MAX_ECHO_DEPTH:
        return "..."
    if isinstance(value, dict):
        return {json_safe(str(key)): json_safe(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item, depth + 1) for item in value]
    return json_safe(str(value))
