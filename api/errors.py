"""One JSON shape for every error: `{"error": code, "message": text, "details": [...]}`.

Every failure a client can cause maps to a 4xx here; only a bug in the service gives a 500,
and even then the body is JSON and the traceback goes to the log, not the client.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    503: "unavailable",
}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        self.headers = headers


def invalid_field(field: str, problem: str, message: str) -> ApiError:
    """The 422 for one bad field, in the shape every validation error has:
    `{"error": "invalid_request", "message": …, "details": [{"field": …, "problem": …}]}`."""
    return ApiError(422, "invalid_request", message, [{"field": field, "problem": problem}])


class BodyTooLargeError(Exception):
    """Raised while reading a request body that outgrows the configured limit."""


def error_response(
    status: int, code: str, message: str, details: list[dict[str, Any]] | None = None, headers: Any = None
) -> JSONResponse:
    return JSONResponse(
        {"error": code, "message": message, "details": details or []}, status_code=status, headers=headers
    )


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(part) for part in loc if part != "body"]
    out = ""
    for part in parts:
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out or "body"


_PROBLEMS = {
    "missing": "is required",
    "extra_forbidden": "is not a known field",
    "string_type": "must be a string, got {input}",
    "list_type": "must be a list of strings, got {input}",
    "model_type": "must be a JSON object, got {input}",
    "model_attributes_type": "must be a JSON object, got {input}",
    "dict_type": "must be a JSON object, got {input}",
}


def _problem(error: dict[str, Any]) -> str:
    given = error.get("input")
    if isinstance(given, bytes):  # FastAPI hands over the raw body when it is not declared JSON
        return "must be a JSON object sent as Content-Type: application/json"
    template = _PROBLEMS.get(error.get("type", ""))
    if template is None:
        return str(error.get("msg", "is invalid"))
    return template.format(input="null" if given is None else type(given).__name__)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    for error in errors:
        if error.get("type") == "json_invalid":
            # The decoder's message may end in "starting at"; its position counts characters, not bytes.
            reason = str((error.get("ctx") or {}).get("error", "malformed")).removesuffix(" at")
            position = error["loc"][-1] if error.get("loc") else "?"
            return error_response(
                400, "invalid_json", f"request body is not valid JSON: {reason} at character {position}"
            )
    details = [{"field": _field(error.get("loc", ())), "problem": _problem(error)} for error in errors]
    message = "; ".join(f"{d['field']} {d['problem']}" for d in details) or "invalid request"
    return error_response(422, "invalid_request", message, details)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    cause = exc.__cause__
    if isinstance(cause, UnicodeDecodeError):
        return error_response(
            400, "invalid_encoding", f"request body is not UTF-8: {cause.reason} at byte {cause.start}"
        )
    if isinstance(cause, BodyTooLargeError):
        return error_response(413, "too_large", str(cause))
    code = HTTP_CODES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None))


async def _too_large(_request: Request, exc: Exception) -> JSONResponse:
    # A raw body (POST /predict/email) read by the route itself, past its limit.
    return error_response(413, "too_large", str(exc))


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "the service failed to handle this request; see its log")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(BodyTooLargeError, _too_large)
    app.add_exception_handler(Exception, _unexpected)
