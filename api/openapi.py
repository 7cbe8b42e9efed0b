"""The OpenAPI document at /openapi.json, completed from the settings so that it states what this server,
configured as it is, accepts and answers.

FastAPI derives the document from the routes and the pydantic models, which know nothing of the
configuration. The routes declare every status code they can answer in some configuration (their
`responses=`), the models the limits that hold in every one (`api.schemas`), and the key checks their
security scheme (`api.deps`: ApiKey for API_KEY, AdminApiKey for /admin). `contract_document` adds what only
the settings know and drops what they rule out:

- limits: `maxLength` of a text (MAX_TEXT_LENGTH), `maxItems` of a batch (MAX_BATCH_SIZE), `maxLength` of a
  raw e-mail (EMAIL_MAX_BYTES: bytes, for a body of bytes);
- security: ApiKey on the scoring operations and /feedback only while API_KEY is set (without it they need
  no key); AdminApiKey on /admin always (ADMIN_API_KEY, else API_KEY; with neither, admin is off and
  answers 403 whatever is sent);
- status codes: 401 only where a key is set; on /admin 403 while admin is off, and then nothing else; 404 "channel off" only
  while a channel the operation serves (`x-channels`) is off, 503 on /feedback only while the prediction log
  is off.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.deps import ADMIN_KEY_SCHEME, API_KEY_SCHEME
from api.routes.predict import EMAIL_PATH, FEEDBACK_PATH
from api.schemas import CHANNELS_EXTENSION
from api.settings import ApiSettings
from spamfilter.config import Channel

# What an operation that is off answers: 403, or 413 for a body over the limit (checked before routing).
OFF_ANSWERS = ("403", "413")


def _schemes(operation: Mapping[str, Any]) -> set[str]:
    return {name for requirement in operation.get("security", ()) for name in requirement}


def _describe_keys(schemes: dict[str, Any], settings: ApiSettings) -> None:
    api_key = schemes[API_KEY_SCHEME]
    api_key["description"] += (
        " Set on this server: the scoring operations and /feedback need it."
        if settings.api_key is not None
        else " Not set on this server: no operation needs it."
    )
    admin_key = schemes[ADMIN_KEY_SCHEME]
    admin_key["description"] += (
        " Set on this server." if settings.admin_key() is not None else " Neither is set: /admin is off (403)."
    )


def contract_document(
    document: Mapping[str, Any], settings: ApiSettings, served: Collection[Channel]
) -> dict[str, Any]:
    """FastAPI's `document` completed for a server with `settings` serving the `served` channels (see the
    module docstring). Returns a new document."""
    out = copy.deepcopy(dict(document))
    components = out["components"]
    _describe_keys(components["securitySchemes"], settings)
    schemas = components["schemas"]
    schemas["PredictRequest"]["properties"]["text"]["maxLength"] = settings.max_text_length
    texts = schemas["BatchPredictRequest"]["properties"]["texts"]
    texts["maxItems"] = settings.max_batch_size
    texts["items"]["maxLength"] = settings.max_text_length

    key_on = {API_KEY_SCHEME: settings.api_key is not None, ADMIN_KEY_SCHEME: settings.admin_key() is not None}
    for path, operations in out["paths"].items():
        for operation in operations.values():
            responses = operation["responses"]
            schemes = _schemes(operation)
            if not any(key_on[scheme] for scheme in schemes):
                responses.pop("401", None)
            if API_KEY_SCHEME in schemes and not key_on[API_KEY_SCHEME]:
                del operation["security"]
            if ADMIN_KEY_SCHEME in schemes:
                if key_on[ADMIN_KEY_SCHEME]:
                    responses.pop("403", None)
                else:  # admin is off: the key check refuses every request before anything else runs
                    operation["responses"] = responses = {
                        status: response for status, response in responses.items() if status in OFF_ANSWERS
                    }
            channels = operation.get(CHANNELS_EXTENSION)
            if channels is not None and set(channels) <= set(served):
                responses.pop("404", None)
            if path == FEEDBACK_PATH and settings.prediction_log_url:
                responses.pop("503", None)
            if path == EMAIL_PATH:
                for media in operation["requestBody"]["content"].values():
                    media["schema"]["maxLength"] = settings.email_max_bytes
    return out


def install_openapi(app: FastAPI, settings: ApiSettings, served: Collection[Channel]) -> None:
    """Make `app` publish `contract_document` (built on first use, then kept) instead of FastAPI's own."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            base = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=app.openapi_version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = contract_document(base, settings, served)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to publish another document
