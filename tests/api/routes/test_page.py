"""api/routes/page.py in-process: the page at / (its behaviour in a browser is tests/api/test_page.py), and the
OpenAPI description and docs the app publishes next to it."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from api.routes.page import PAGE
from tests.api.routes.conftest import SharedService

ROUTES = {
    "/predict": {"post"},
    "/predict/batch": {"post"},
    "/predict/email": {"post"},
    "/feedback": {"post"},
    "/health": {"get"},
    "/ready": {"get"},
    "/model": {"get"},
    "/metrics": {"get"},
    "/admin/reload": {"post"},
}


def test_the_page_is_the_static_html(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.text == PAGE.read_text(encoding="utf-8")
    assert response.text.lstrip().lower().startswith("<!doctype html>")


def test_the_page_posts_the_pasted_text_to_predict_with_the_optional_key(client: TestClient) -> None:
    page = client.get("/").text
    assert re.search(r"<textarea\b[^>]*\bid=\"text\"", page)
    assert 'type="password"' in page  # the API key field, not echoed on screen
    assert 'fetch("/predict"' in page
    assert 'headers["X-API-Key"]' in page


def test_the_page_needs_no_api_key(shared_service: SharedService) -> None:
    # The page itself is public; its requests carry the key the user types.
    response = shared_service(API_KEY="page-key").client.get("/")
    assert response.status_code == 200 and "<textarea" in response.text


def test_openapi_lists_every_route_but_the_page(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    paths = {path: set(operations) for path, operations in schema["paths"].items()}
    assert paths == ROUTES
    # Which operations declare a key scheme depends on the settings: tests/api/test_openapi.py.


def test_docs_page_is_served(client: TestClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert "swagger" in response.text.lower() and "/openapi.json" in response.text
